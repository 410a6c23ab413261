"""The ingest pipeline: messages from any source → checked → stored in batches → acknowledged.

Sources call `submit(message)` from their own threads. One writer thread takes what has arrived
(up to `batch_max` messages, waiting at most `batch_wait_s` for more), writes it in one transaction
(store.write_batch) and only then acknowledges each message to its source — so a message the
database has not taken is never acknowledged, and the broker delivers it again after a crash.
While the database is away the writer keeps the batch and retries every `retry_s`; sources keep
their unacknowledged messages (the broker holds the rest). A batch the database refuses for a
reason other than the connection (it should not happen after the checks) is split message by
message, and whatever is still refused is quarantined with the database's words.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import psycopg

from ingest.telemetry import offline, store
from ingest.telemetry.episodes import AlarmBook, Episode
from ingest.telemetry.payload import Acknowledger, Message, Reading, Rejection, parse
from ingest.telemetry.registry import DeviceRegistry
from ingest.telemetry.rules import Rules

log = logging.getLogger("qiwang.ingest")
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class IngestStats:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    alarms: int = 0            # alarm transitions written (raised, escalated, eased, cleared)
    batches: int = 0
    database_retries: int = 0
    offline_marked: int = 0
    reasons: dict[str, int] = field(default_factory=dict)   # quarantine reasons by field


def _acknowledge(messages: list[Message]) -> None:
    """Acknowledge committed messages to their sources, all of a source's at once."""
    by_source: dict[int, tuple[Acknowledger, list[Any]]] = {}
    for message in messages:
        if message.token is not None:
            source, handle = message.token
            by_source.setdefault(id(source), (source, []))[1].append(handle)
    for source, handles in by_source.values():
        source.acknowledge(handles)


class Pipeline:
    """Checks, stores and acknowledges telemetry; raises alarms; marks silent devices offline."""

    def __init__(self, conninfo: str, rules: Rules, *, clock: Clock = utc_now, outbox: bool = False,
                 on_alarm: Callable[[dict], None] | None = None, batch_max: int = 5000,
                 batch_wait_s: float = 0.05, retry_s: float = 1.0, offline_check: bool = True) -> None:
        self.conninfo = conninfo
        self.rules = rules
        self.clock = clock
        self.outbox = outbox
        self.on_alarm = on_alarm
        self.batch_max, self.batch_wait_s, self.retry_s = batch_max, batch_wait_s, retry_s
        self.offline_check = offline_check
        self.stats = IngestStats()
        self.idle = threading.Event()       # set whenever the queue is empty and nothing is in hand
        self._queue: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection | None = None
        self._known_months: set[tuple[int, int]] = set()
        self._started_at = clock()
        self._next_offline_check = 0.0
        self.registry = DeviceRegistry(self._connect_short)
        self.book = self._load_book()

    # -- setup ---------------------------------------------------------------------------------

    def _connect_short(self) -> psycopg.Connection:
        return psycopg.connect(self.conninfo, connect_timeout=3)

    def _load_book(self) -> AlarmBook:
        """Open episodes and last reading times from the database (the ingest may have restarted)."""
        with self._connect_short() as conn:
            episodes = {
                (ent, dtype, code, measure, direction): Episode(alarm_id, level, peak if peak is not None else value)
                for alarm_id, ent, dtype, code, measure, direction, level, value, peak in conn.execute(
                    "SELECT id, enterprise_code, device_type, device_code, measure, direction, level, value, "
                    "peak_value FROM alarm WHERE cleared_at IS NULL")
            }
            last_ts = {(ent, dtype, code): at for ent, dtype, code, at in conn.execute(
                "SELECT enterprise_code, device_type, code, last_reading_at FROM telemetry_device "
                "WHERE last_reading_at IS NOT NULL")}
        # The open episode's level is the alarm's worst level; the next reading corrects it.
        return AlarmBook(self.rules, episodes, last_ts)

    # -- the sources' side ---------------------------------------------------------------------

    def submit(self, message: Message) -> None:
        """Hand a message over (thread-safe, never blocks)."""
        if self.idle.is_set():      # Event.clear takes a lock: not once per message at 10,000/s
            self.idle.clear()
        self._queue.put(message)

    # -- running -------------------------------------------------------------------------------

    def start(self) -> Pipeline:
        self._thread = threading.Thread(target=self._run, name="qiwang-ingest-writer", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop after the batch in hand; what is still queued stays unacknowledged (redelivered)."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout_s)
        if self._conn is not None:
            self._conn.close()

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until everything submitted so far is stored (or quarantined) and acknowledged."""
        return self.idle.wait(timeout_s)

    def _take(self) -> list[Message]:
        try:
            first = self._queue.get(timeout=self.batch_wait_s)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.batch_wait_s
        while len(batch) < self.batch_max:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                time.sleep(min(remaining, 0.005))
        return batch

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._take()
            if batch:
                self._process(batch)
            elif self._queue.empty():
                self.idle.set()
            self._maybe_check_offline()

    # -- one batch -----------------------------------------------------------------------------

    def _process(self, messages: list[Message]) -> None:
        now = self.clock()
        self.registry.maybe_reload()
        readings: list[Reading] = []
        rejections: list[Rejection] = []
        seen: set[tuple[str, str, str, datetime]] = set()
        duplicates_in_batch = 0
        for message in messages:
            outcome = parse(message, self.registry, now)
            if isinstance(outcome, Rejection):
                rejections.append(outcome)
                continue
            key = (*outcome.device.key, outcome.ts)
            if key in seen:
                duplicates_in_batch += 1   # same device and instant twice in one batch: stored once
                continue
            seen.add(key)
            readings.append(outcome)
        result = self._write(readings, rejections, now)
        if result is None:
            return  # stopping while the database was away: nothing acknowledged
        self.stats.received += len(messages)
        self.stats.batches += 1
        self.stats.stored += len(result.stored)
        self.stats.duplicates += result.duplicates + duplicates_in_batch
        self.stats.quarantined += result.quarantined
        self.stats.alarms += len(result.alarm_messages)
        for bad in rejections:
            self.stats.reasons[bad.field or "?"] = self.stats.reasons.get(bad.field or "?", 0) + 1
        _acknowledge(messages)
        if self.on_alarm:
            for alarm in result.alarm_messages:
                self.on_alarm(alarm)

    def _write(self, readings: list[Reading], rejections: list[Rejection], now: datetime) -> store.BatchResult | None:
        """Write until the database takes the batch; None if asked to stop meanwhile."""
        while not self._stop.is_set():
            try:
                conn = self._connection()
                view = self.book.fork()
                with conn.transaction():
                    result = store.write_batch(conn, readings, rejections, view, now, self.outbox, self._known_months)
                view.commit()
                self._known_months |= result.new_months
                return result
            except psycopg.OperationalError as exc:
                self._lost_connection(exc)
            except psycopg.Error as exc:
                if self._conn is None or self._conn.closed or self._conn.broken:
                    self._lost_connection(exc)
                    continue
                log.error("database refused a batch of %d (%s); writing message by message",
                          len(readings) + len(rejections), exc)
                return self._write_one_by_one(readings, rejections, now)
        return None

    def _write_one_by_one(self, readings: list[Reading], rejections: list[Rejection],
                          now: datetime) -> store.BatchResult | None:
        total = store.BatchResult()
        items: list[Reading | Rejection] = [*readings, *rejections]
        for item in items:
            while True:
                if self._stop.is_set():
                    return None
                try:
                    conn = self._connection()
                    view = self.book.fork()
                    single = ([item], []) if isinstance(item, Reading) else ([], [item])
                    with conn.transaction():
                        result = store.write_batch(conn, *single, view, now, self.outbox, self._known_months)
                    view.commit()
                    break
                except psycopg.OperationalError as exc:
                    self._lost_connection(exc)
                except psycopg.Error as exc:
                    if isinstance(item, Rejection):
                        raise  # the quarantine itself refused: a bug, not bad input
                    item = Rejection(item.message, None, f"database refused it: {str(exc).splitlines()[0][:300]}",
                                     *item.device.key)
            total.stored += result.stored
            total.duplicates += result.duplicates
            total.quarantined += result.quarantined
            total.alarm_messages += result.alarm_messages
            self._known_months |= result.new_months
        return total

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self.conninfo, connect_timeout=5, autocommit=True)
            store.prepare(self._conn)
        return self._conn

    def _lost_connection(self, exc: Exception) -> None:
        self.stats.database_retries += 1
        if self.stats.database_retries == 1 or self.stats.database_retries % 30 == 0:
            log.warning("database unavailable (%s); holding the batch and retrying every %.0f s",
                        str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, self.retry_s)
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
            self._conn = None
        self._stop.wait(self.retry_s)

    # -- offline detection ---------------------------------------------------------------------

    def _maybe_check_offline(self) -> None:
        if not self.offline_check or time.monotonic() < self._next_offline_check:
            return
        self._next_offline_check = time.monotonic() + self.rules.offline_check_every_s
        try:
            conn = self._connection()
            with conn.transaction():
                changes = offline.detect_offline(conn, self.clock(), self.rules.offline_after_intervals,
                                                 never_reported_since=self._started_at, outbox=self.outbox)
            self.stats.offline_marked += len(changes)
        except psycopg.Error as exc:
            log.warning("offline check skipped: %s", str(exc).strip().splitlines()[0] if str(exc).strip() else exc)
            if self._conn is not None and (self._conn.closed or self._conn.broken):
                self._conn = None
