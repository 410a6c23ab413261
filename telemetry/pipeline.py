"""The ingest pipeline: messages from any source → checked → stored in batches → acknowledged.

Sources call `submit(message)` from their own threads. One writer thread takes what has arrived
(up to `batch_max` messages, waiting at most `batch_wait_s` for more), writes it in one transaction
(store.write_batch) and only then acknowledges each message to its source — so a message the
database has not taken is never acknowledged, and the broker delivers it again after a crash.
While the database is away the writer keeps the batch and retries every `retry_s`; sources keep
their unacknowledged messages (the broker holds the rest).

Defence in depth, so that one message can never stop the ingest: `parse` turns any error on a
message into its rejection; a batch the store refuses for any reason other than the connection
(it should not happen after the checks) is split in halves until the message at fault is alone,
and that one is quarantined with the error (the others are stored as usual); a message that cannot
even be quarantined is left unacknowledged (the broker keeps it) and logged. Should the writer's
loop still fail, its supervisor logs it, records it in `health` (reported by `/health`) and runs
the loop again.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
import psycopg.conninfo

from telemetry import offline, store, system_alarms
from telemetry.episodes import AlarmBook, Episode
from telemetry.health import ComponentHealth
from telemetry.payload import Acknowledger, Message, Reading, Rejection, parse
from telemetry.registry import DeviceRegistry
from telemetry.rules import Rules

log = logging.getLogger("qiwang.ingest")
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


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
                 batch_wait_s: float = 0.05, retry_s: float = 1.0, offline_check: bool = True,
                 stalled_after_s: float = 30.0, lock_timeout: str = "10s") -> None:
        self.conninfo = conninfo
        # A batch held longer than this (database away, or its statements cancelled or locked out)
        # makes the writer "not alive" in /health: retrying forever must not look like working.
        self.stalled_after_s = stalled_after_s
        self.lock_timeout = lock_timeout   # a lock wait becomes a retry, never a silent hang
        self._retrying_since: float | None = None
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
        self.system_events = system_alarms.SystemEvents()
        self.health = ComponentHealth("writer", alive=self.working, on_event=self.note_system_event)
        self._in_hand: list[Message] | None = None   # the batch being processed (for the supervisor)
        self._committed = False                     # ... and whether its transaction has committed
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

    def note_system_event(self, part: str, action: str, reason: str | None) -> None:
        """A supervised part failed or was restarted (thread-safe): written as a system alarm by the
        writer thread at its next turn (see system_alarms.py)."""
        self.system_events.add(system_alarms.SystemEvent(part, action, self.clock(), reason))

    # -- running -------------------------------------------------------------------------------

    def start(self) -> Pipeline:
        """Start the writer thread (again, if it ended: the queue and the alarm book are kept)."""
        self._thread = threading.Thread(target=self._run, name="qiwang-ingest-writer", daemon=True)
        self._thread.start()
        return self

    def working(self) -> bool:
        """Running, and not holding a batch the database has refused to take for `stalled_after_s`."""
        since = self._retrying_since
        return self.running() and (since is None or time.monotonic() - since < self.stalled_after_s)

    def running(self) -> bool:
        """Is the writer thread alive (and not asked to stop)?"""
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

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
        """The writer's supervisor: whatever escapes the loop is logged and recorded, and the loop
        runs again (after `retry_s`, so a failure that repeats does not spin)."""
        while not self._stop.is_set():
            try:
                self._loop()
            except Exception as exc:
                log.exception("the ingest writer failed")
                error = f"{type(exc).__name__}: {str(exc).strip()[:300]}"
                self.health.failed(error)
                self._quarantine_in_hand(error)
                if self._stop.wait(self.retry_s):
                    break
                self.health.restarted()

    def _quarantine_in_hand(self, error: str) -> None:
        """The batch the writer failed on, if not yet committed: quarantined with the error (to be
        replayed once the fault is fixed) rather than left unacknowledged until a reconnection."""
        batch, self._in_hand = self._in_hand, None
        if not batch or self._committed:
            return
        try:
            result = self._write_items([Rejection(m, None, f"the ingest writer failed on its batch: {error}")
                                        for m in batch], self.clock(), top=True)
            if result is not None:
                self.stats.quarantined += result.quarantined
                self._acknowledge_written(batch, result)
        except Exception:
            log.exception("the batch in hand could not be quarantined; left unacknowledged")

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._write_system_events()
            batch = self._take()
            if batch:
                self._in_hand, self._committed = batch, False
                self._process(batch)
                self._in_hand = None
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
        self._committed = True
        self.stats.received += len(messages)
        self.stats.batches += 1
        self.stats.stored += len(result.stored)
        self.stats.duplicates += result.duplicates + duplicates_in_batch
        self.stats.quarantined += result.quarantined
        self.stats.alarms += len(result.alarm_messages)
        for bad in rejections:
            self.stats.reasons[bad.field or "?"] = self.stats.reasons.get(bad.field or "?", 0) + 1
        self._acknowledge_written(messages, result)
        if self.on_alarm:
            for alarm in result.alarm_messages:
                try:
                    self.on_alarm(alarm)
                except Exception:
                    log.exception("alarm %s stored but not published", alarm.get("code"))

    @staticmethod
    def _acknowledge_written(messages: list[Message], result: store.BatchResult) -> None:
        """Acknowledge what is stored or quarantined; never what is neither (the broker keeps it)."""
        if result.unwritten:
            refused = {id(m) for m in result.unwritten}
            messages = [m for m in messages if id(m) not in refused]
        _acknowledge(messages)

    def _write(self, readings: list[Reading], rejections: list[Rejection], now: datetime) -> store.BatchResult | None:
        """Write until the database takes the batch; None if asked to stop meanwhile."""
        return self._write_items([*readings, *rejections], now, top=True)

    def _write_items(self, items: list[Reading | Rejection], now: datetime,
                     top: bool = False) -> store.BatchResult | None:
        """Write `items` in one transaction, retrying while the database is away. If the store
        refuses them for another reason, bisect: the halves are written on their own (in order, so
        alarm episodes see the readings as they came) until the one at fault is alone; that one is
        quarantined with the error. None if asked to stop meanwhile."""
        if not items:
            return store.BatchResult()
        while True:
            if self._stop.is_set():
                return None
            try:
                result = self._write_once(items, now)
                self._retrying_since = None
                return result
            except psycopg.OperationalError as exc:
                # The connection lost, or a statement cancelled (statement_timeout, lock_timeout,
                # deadlock): the batch is held and retried, the broker keeps it unacknowledged.
                self._lost_connection(exc)
            except Exception as exc:  # noqa: BLE001 - any error: find the message at fault
                if isinstance(exc, psycopg.Error) and (self._conn is None or self._conn.closed or self._conn.broken):
                    self._lost_connection(exc)
                    continue
                error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ''}"
                break
        if top:
            log.error("the store refused a batch of %d (%s); splitting it to find the message at fault",
                      len(items), error)
        if len(items) > 1:
            middle = len(items) // 2
            first = self._write_items(items[:middle], now)
            second = self._write_items(items[middle:], now) if first is not None else None
            if first is None or second is None:
                return None
            first.merge(second)
            return first
        return self._quarantine_refused(items[0], error, now)

    def _quarantine_refused(self, item: Reading | Rejection, error: str, now: datetime) -> store.BatchResult | None:
        """Quarantine one message the store refused; if even that fails, leave it unacknowledged."""
        if isinstance(item, Reading):
            bad = Rejection(item.message, None, f"the store refused it: {error}", *item.device.key)
        elif not item.extra.get("last_resort"):
            # The quarantine row itself was refused: keep the raw bytes and the error (in ASCII:
            # whatever text broke the row stays out of it), without field and device.
            reason = f"could not be quarantined as checked ({error}); it was refused for: {item.reason}"
            bad = Rejection(item.message, None, reason.encode("ascii", "backslashreplace").decode()[:1000],
                            extra={"last_resort": True})
        else:
            log.error("a message on %r could not be quarantined (%s); left unacknowledged",
                      item.message.topic[:200], error)
            return store.BatchResult(unwritten=[item.message])
        return self._write_items([bad], now)

    def _write_once(self, items: list[Reading | Rejection], now: datetime) -> store.BatchResult:
        conn = self._connection()
        view = self.book.fork()
        readings = [item for item in items if isinstance(item, Reading)]
        rejections = [item for item in items if not isinstance(item, Reading)]
        with conn.transaction():
            result = store.write_batch(conn, readings, rejections, view, now, self.outbox, self._known_months)
        view.commit()
        self._known_months |= result.new_months
        return result

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            # the conninfo's own options (the ingest's role, app/cli/telemetry.py) and the lock timeout
            options = psycopg.conninfo.conninfo_to_dict(self.conninfo).get("options") or ""
            self._conn = psycopg.connect(self.conninfo, connect_timeout=5, autocommit=True,
                                         options=f"{options} -c lock_timeout={self.lock_timeout}".strip())
            store.prepare(self._conn)
        return self._conn

    def _lost_connection(self, exc: Exception) -> None:
        if self._retrying_since is None:
            self._retrying_since = time.monotonic()
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

    def _write_system_events(self) -> None:
        events = self.system_events.take()
        if not events:
            return
        try:
            messages = system_alarms.write_events(self._connection(), events)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:   # the database is away
            self.system_events.put_back(events)
            log.warning("system alarms held: %s", str(exc).strip().splitlines()[0] if str(exc).strip() else exc)
            if self._conn is not None and (self._conn.closed or self._conn.broken):
                self._conn = None
            return
        except psycopg.Error:             # refused for good: in the log, never retried in a loop
            log.exception("system alarms refused by the database: %s", events)
            return
        self.stats.alarms += len(messages)
        if self.on_alarm:
            for alarm in messages:
                try:
                    self.on_alarm(alarm)
                except Exception:
                    log.exception("system alarm %s stored but not published", alarm.get("code"))

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
