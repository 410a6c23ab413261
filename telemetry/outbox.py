"""Regulator outbox: records kept in table `outbox` until the regulator's endpoint has taken them.

The standard requires an enterprise system to keep the data owed to the regulator for at least 90
days while the link is down, and to replay it, in order, once the link is back. So:

- The ingest calls `enqueue` / `enqueue_many` inside its own transaction: a record exists exactly
  when the data it describes was stored.
- `OutboxSender.send_pending` posts the unsent records strictly in id order, batch by batch, and
  stops at the first failure, so a later record never reaches the regulator before an earlier one.
  Delivery is at least once: when a response is lost (the receiver stored the batch, the answer
  never arrived) the same batch is posted again with the same `Idempotency-Key`, and the receiver
  dedupes by record id.
- `OutboxSender.run` keeps sending, backing off (doubling, up to 300 s) while the link is down.
- `purge` drops what the regulator took a while ago, and unsent records only past a retention that
  may not be below the standard's 90 days.

All instants are timezone-aware datetimes (stored as timestamptz; sent as ISO 8601 in UTC).
"""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import requests
from psycopg.types.json import Jsonb

from core.errors import QiwangError

log = logging.getLogger(__name__)

#: The standard's minimum retention of unsent records, in days.
MIN_KEEP_UNSENT_DAYS = 90
#: Longest pause between two sending rounds while the link is down, in seconds.
MAX_BACKOFF_S = 300.0
#: Session advisory lock (pg_try_advisory_lock) held by the one sender allowed at a time.
ADVISORY_LOCK_KEY = 0x51_4F_55_54_42_4F_58  # "QOUTBOX"
#: Longest stored last_error, in characters.
MAX_ERROR_CHARS = 200

Payload = dict[str, Any] | list[Any]


def _aware(at: datetime, name: str) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {at!r}")
    return at


def enqueue(conn: psycopg.Connection, kind: str, payload: Payload, created_at: datetime) -> None:
    """Add one record for the regulator (one INSERT; the caller owns the transaction).

    `created_at` (timezone-aware) is when the data was produced, not when it was enqueued.
    """
    enqueue_many(conn, [(kind, payload, created_at)])


def enqueue_many(conn: psycopg.Connection, rows: Iterable[tuple[str, Payload, datetime]]) -> None:
    """Add records (kind, payload, created_at) in the given order; ids follow that order.

    The caller owns the transaction. `created_at` must be timezone-aware.
    """
    params = [(_aware(created_at, "created_at"), kind, Jsonb(payload)) for kind, payload, created_at in rows]
    if params:
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO outbox (created_at, kind, payload) VALUES (%s, %s, %s)", params)


@dataclass(frozen=True)
class SendReport:
    """What one `send_pending` call did.

    sent: records the receiver acknowledged (2xx); batches: batches acknowledged; pending: records
    still unsent afterwards; oldest_pending_created_at: created_at of the oldest of them (None when
    none); error: why sending stopped early ("HTTP 503", "connection refused", …), None when it did not.
    """

    sent: int
    batches: int
    pending: int
    oldest_pending_created_at: datetime | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _utc_iso(at: datetime) -> str:
    """ISO 8601 in UTC with microseconds and a Z suffix, e.g. 2026-01-02T03:04:05.000000Z."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _describe(exc: BaseException, timeout_s: float) -> str:
    """A short, stable text for a failed request (stored in last_error)."""
    if isinstance(exc, requests.Timeout):
        return f"timeout after {timeout_s:g} s"
    # requests wraps urllib3 wraps the socket error: look down the chain for the cause.
    seen: set[int] = set()
    stack: list[object] = [exc]
    while stack:
        e = stack.pop()
        if not isinstance(e, BaseException) or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, ConnectionRefusedError):
            return "connection refused"
        if isinstance(e, ConnectionResetError):
            return "connection reset"
        stack.extend([*e.args, getattr(e, "reason", None), e.__cause__, e.__context__])
    return f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]


class OutboxSender:
    """Posts unsent outbox records to the regulator's endpoint, oldest (lowest id) first.

    One sender at a time: `send_pending` holds a session advisory lock (ADVISORY_LOCK_KEY, taken
    with pg_try_advisory_lock on its own connection) for the whole call, so two senders never
    interleave their batches; a second one returns at once with error "another sender is running".
    Rows are therefore selected plainly (no FOR UPDATE SKIP LOCKED, which would let senders skip
    ahead of each other).

    Each batch is `POST url` with body {"records": [{"id", "kind", "created_at", "payload"}, …]} and
    headers `Idempotency-Key: <first id>-<last id>` and, when a token is given, `Authorization:
    Bearer <token>`. A 2xx marks the batch sent (sent_at = clock()); anything else increments
    attempts and stores last_error on the batch's records, and ends the call.

    conninfo: psycopg connection string; clock: returns the current instant (timezone-aware);
    batch_size: records per request; timeout_s: connect and read timeout per request, in seconds;
    lock_wait_s: how long a round waits for in-flight writers of the outbox (see `_next_batch`).
    """

    def __init__(self, conninfo: str, url: str, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 batch_size: int = 500, timeout_s: float = 10, token: str | None = None,
                 lock_wait_s: float = 1.0):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.conninfo = conninfo
        self.url = url
        self.clock = clock
        self.batch_size = batch_size
        self.timeout_s = timeout_s
        self.token = token
        self.lock_wait_s = lock_wait_s
        self.session = requests.Session()

    def send_pending(self, max_batches: int | None = None) -> SendReport:
        """Send unsent records in id order until none is left, a batch fails, or max_batches
        batches were sent. Database errors propagate (the caller retries; nothing is lost)."""
        sent = batches = 0
        error: str | None = None
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            (locked,) = conn.execute("SELECT pg_try_advisory_lock(%s)", (ADVISORY_LOCK_KEY,)).fetchone() or (False,)
            if not locked:
                error = "another sender is running"
            else:
                try:
                    while max_batches is None or batches < max_batches:
                        batch = self._next_batch(conn)
                        if batch is None:
                            error = "outbox busy: writers still in flight"
                            break
                        if not batch:
                            break
                        error = self._post(batch)
                        ids = [row[0] for row in batch]
                        if error is not None:
                            conn.execute("UPDATE outbox SET attempts = attempts + 1, last_error = %s "
                                         "WHERE id = ANY(%s)", (error, ids))
                            log.warning("outbox: batch %s-%s not taken: %s", ids[0], ids[-1], error)
                            break
                        # AND sent_at IS NULL: a record is marked once, at its first acknowledgement.
                        conn.execute("UPDATE outbox SET sent_at = %s WHERE id = ANY(%s) AND sent_at IS NULL",
                                     (_aware(self.clock(), "clock()"), ids))
                        sent += len(ids)
                        batches += 1
                finally:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))
            pending, oldest = conn.execute(  # an aggregate: always one row
                "SELECT count(*), min(created_at) FROM outbox WHERE sent_at IS NULL").fetchone() or (0, None)
        return SendReport(sent, batches, pending, oldest, error)

    def _next_batch(self, conn: psycopg.Connection) -> list[tuple[int, str, datetime, Any]] | None:
        """The lowest-id unsent records (up to batch_size); None when writers hold the table too long.

        Ids are drawn when a row is inserted, not when its transaction commits: a writer may still
        be about to commit id 100 while id 101 is already visible. The SHARE lock waits for the
        writers in flight and holds new ones back for the moment of the SELECT, so what it sees
        is every id below the highest one it sees.
        """
        try:
            with conn.transaction():
                conn.execute(f"SET LOCAL lock_timeout = {max(1, round(self.lock_wait_s * 1000))}")
                conn.execute("LOCK TABLE outbox IN SHARE MODE")
                return conn.execute(
                    "SELECT id, kind, created_at, payload FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT %s",
                    (self.batch_size,)).fetchall()
        except psycopg.errors.LockNotAvailable:
            return None

    def _post(self, batch: list[tuple[int, str, datetime, Any]]) -> str | None:
        """POST one batch; None when the receiver took it (2xx), else a short reason."""
        body = {"records": [{"id": id_, "kind": kind, "created_at": _utc_iso(created_at), "payload": payload}
                            for id_, kind, created_at, payload in batch]}
        headers = {"Content-Type": "application/json; charset=utf-8",
                   "Idempotency-Key": f"{batch[0][0]}-{batch[-1][0]}"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        # Compact and deterministic: a repeated batch is byte-identical to the first attempt.
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        try:
            response = self.session.post(self.url, data=data, headers=headers, timeout=self.timeout_s)
        except requests.RequestException as exc:
            return _describe(exc, self.timeout_s)
        response.close()
        return None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"

    def run(self, stop: threading.Event, every_s: float = 5.0) -> None:
        """Send every `every_s` seconds until `stop` is set; after a failed round (link down, or the
        database away) wait twice as long as before, up to MAX_BACKOFF_S, and back to every_s after
        a round that sent everything it tried."""
        delay = every_s
        while not stop.is_set():
            try:
                ok = self.send_pending().ok
            except psycopg.Error as exc:
                log.warning("outbox: database unavailable: %s", exc)
                ok = False
            delay = next_delay(delay, ok, every_s)
            stop.wait(delay)


def next_delay(delay: float, ok: bool, every_s: float) -> float:
    """Seconds to wait before the next round: every_s after success, doubled (≤ MAX_BACKOFF_S) after failure."""
    return every_s if ok else min(max(delay, every_s) * 2, MAX_BACKOFF_S)


def purge(conn: psycopg.Connection, now: datetime, keep_unsent_days: float = 180,
          keep_sent_days: float = 7) -> tuple[int, int]:
    """Delete sent records whose sent_at is more than keep_sent_days before `now`, and unsent ones
    whose created_at is more than keep_unsent_days before `now`. Returns (sent_deleted, unsent_deleted).

    The caller owns the transaction. Raises QiwangError when keep_unsent_days is below the
    standard's 90 days: data owed to the regulator may not be dropped sooner.
    """
    if keep_unsent_days < MIN_KEEP_UNSENT_DAYS:
        raise QiwangError(f"outbox: keep_unsent_days={keep_unsent_days:g} is below the standard's minimum of "
                          f"{MIN_KEEP_UNSENT_DAYS} days; unsent records must be kept at least that long")
    if keep_sent_days < 0:
        raise ValueError(f"keep_sent_days must not be negative, got {keep_sent_days}")
    now = _aware(now, "now")
    with conn.cursor() as cur:
        cur.execute("DELETE FROM outbox WHERE sent_at < %s", (now - timedelta(days=keep_sent_days),))
        sent_deleted = cur.rowcount
        cur.execute("DELETE FROM outbox WHERE sent_at IS NULL AND created_at < %s",
                    (now - timedelta(days=keep_unsent_days),))
        unsent_deleted = cur.rowcount
    return sent_deleted, unsent_deleted


def status(conn: psycopg.Connection, now: datetime) -> dict[str, Any]:
    """The outbox at a glance.

    pending: unsent records; oldest_pending_age_days: days from the oldest unsent record's
    created_at to `now` (None when nothing is pending); last_sent_at: latest sent_at (None if
    never); last_error and attempts: of the oldest unsent record, the one sending is stuck on.
    """
    now = _aware(now, "now")
    pending, oldest = conn.execute(  # aggregates: always one row
        "SELECT count(*), min(created_at) FROM outbox WHERE sent_at IS NULL").fetchone() or (0, None)
    (last_sent_at,) = conn.execute("SELECT max(sent_at) FROM outbox").fetchone() or (None,)
    head = conn.execute("SELECT last_error, attempts FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT 1").fetchone()
    return {
        "pending": pending,
        "oldest_pending_age_days": None if oldest is None else (now - oldest).total_seconds() / 86400,
        "last_sent_at": last_sent_at,
        "last_error": head[0] if head else None,
        "attempts": head[1] if head else 0,
    }
