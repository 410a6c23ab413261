"""Regulator outbox against the real database and a real HTTP receiver on 127.0.0.1.

The receiver can accept (200), refuse (503), take a batch but answer 500 (the response is lost),
or be shut down (connection refused). Time is simulated: the sender's clock and purge's `now`
are chosen instants, so nothing here depends on how fast the machine is.
"""
from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from core.errors import QiwangError
from telemetry import outbox
from telemetry.outbox import OutboxSender, enqueue, enqueue_many, purge, status

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
KINDS = ("readings", "alarm", "alarm_event", "device_status")


class Receiver:
    """The regulator's endpoint: records every request; mode "accept", "refuse" or "lose"; stop() closes the port."""

    def __init__(self) -> None:
        self.mode = "accept"
        self.requests: list[dict] = []  # {"status", "key", "auth", "body" (bytes)} in arrival order
        self.lock = threading.Lock()
        self.port = 0
        self.server: ThreadingHTTPServer | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/outbox"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = {"accept": 200, "refuse": 503, "lose": 500}[receiver.mode]
                with receiver.lock:
                    receiver.requests.append({"status": status, "key": self.headers["Idempotency-Key"],
                                              "auth": self.headers["Authorization"], "body": body})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        # The same port again after stop(): the sender keeps its URL across an outage.
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()
        self.server = None

    def taken(self) -> list[dict]:
        """Requests whose body the receiver kept (answered 200, or 500 with the answer lost)."""
        return [r for r in self.requests if r["status"] in (200, 500)]

    def ids(self, requests: list[dict] | None = None) -> list[int]:
        """Record ids in arrival order, repeats included."""
        return [rec["id"] for r in (self.taken() if requests is None else requests)
                for rec in json.loads(r["body"])["records"]]


@pytest.fixture(scope="module")
def conninfo(db_url: str) -> str:
    return make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def conn(conninfo: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("TRUNCATE outbox")
        yield conn


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    if receiver.server is not None:
        receiver.stop()


def backlog(conn: psycopg.Connection, n: int = 300, days: int = 91) -> list[int]:
    """n records spread evenly from NOW - days to NOW, kinds in turn; returns their ids in order."""
    step = timedelta(days=days) / (n - 1)
    with conn.transaction():
        enqueue_many(conn, [(KINDS[i % len(KINDS)], {"seq": i, "value": i * 0.5, "name": "调压站"},
                             NOW - timedelta(days=days) + i * step) for i in range(n)])
    return all_ids(conn)


def all_ids(conn: psycopg.Connection, where: str = "TRUE", params: tuple = ()) -> list[int]:
    return [r[0] for r in conn.execute(f"SELECT id FROM outbox WHERE {where} ORDER BY id", params)]


def sender(conninfo: str, receiver: Receiver, at: datetime = NOW, **kw: Any) -> OutboxSender:
    return OutboxSender(conninfo, receiver.url, clock=lambda: at, timeout_s=5, **kw)


def test_backlog_of_91_days_is_kept_and_replayed_in_order(conn: psycopg.Connection, conninfo: str,
                                                          receiver: Receiver) -> None:
    ids = backlog(conn)
    assert len(ids) == 300
    s = sender(conninfo, receiver, batch_size=64, token="secret")

    receiver.stop()  # link down: connection refused
    report = s.send_pending()
    assert (report.sent, report.batches, report.pending, report.error) == (0, 0, 300, "connection refused")
    assert report.oldest_pending_created_at == NOW - timedelta(days=91)
    # Only the batch it tried carries the failure.
    assert conn.execute("SELECT array_agg(id ORDER BY id) FROM outbox WHERE attempts = 1 "
                        "AND last_error = 'connection refused'").fetchone() == (ids[:64],)
    assert all_ids(conn, "attempts = 0 AND last_error IS NULL") == ids[64:]
    st = status(conn, NOW)
    assert (st["pending"], st["last_sent_at"], st["last_error"], st["attempts"]) == (300, None, "connection refused", 1)
    assert st["oldest_pending_age_days"] == pytest.approx(91)

    receiver.start()
    receiver.mode = "refuse"
    report = s.send_pending()
    assert (report.sent, report.pending, report.error) == (0, 300, "HTTP 503")
    assert all_ids(conn, "attempts = 2 AND last_error = 'HTTP 503'") == ids[:64]
    receiver.stop()

    # 91 days of unsent data survive the default purge.
    with conn.transaction():
        assert purge(conn, NOW) == (0, 0)
    assert len(all_ids(conn)) == 300

    receiver.start()  # link back
    receiver.mode = "accept"
    receiver.requests.clear()
    report = s.send_pending()
    assert (report.sent, report.batches, report.pending, report.oldest_pending_created_at, report.error) == \
        (300, 5, 0, None, None)
    assert receiver.ids() == ids  # exactly in id order, each once
    assert [r["status"] for r in receiver.requests] == [200] * 5
    assert [r["key"] for r in receiver.requests] == [f"{ids[i]}-{ids[min(i + 64, 300) - 1]}" for i in range(0, 300, 64)]
    assert [len(json.loads(r["body"])["records"]) for r in receiver.requests] == [64, 64, 64, 64, 44]
    assert {r["auth"] for r in receiver.requests} == {"Bearer secret"}
    first = json.loads(receiver.requests[0]["body"])["records"][0]
    assert first == {"id": ids[0], "kind": "readings", "created_at": "2026-08-24T08:00:00.000000Z",
                     "payload": {"seq": 0, "value": 0.0, "name": "调压站"}}
    assert all_ids(conn, "sent_at = %s", (NOW,)) == ids
    assert status(conn, NOW)["last_sent_at"] == NOW

    # Nothing left to send: no request at all.
    assert s.send_pending().sent == 0 and len(receiver.requests) == 5

    with conn.transaction():
        assert purge(conn, NOW + timedelta(days=6)) == (0, 0)
    with conn.transaction():
        assert purge(conn, NOW + timedelta(days=8)) == (300, 0)
    assert all_ids(conn) == []


def test_lost_response_repeats_the_same_batch(conn: psycopg.Connection, conninfo: str, receiver: Receiver) -> None:
    ids = backlog(conn, n=50, days=3)
    s = sender(conninfo, receiver, batch_size=20)

    assert s.send_pending(max_batches=1).sent == 20
    receiver.mode = "lose"  # the receiver stores the batch, the answer never makes it
    report = s.send_pending()
    assert (report.sent, report.pending, report.error) == (0, 30, "HTTP 500")
    receiver.mode = "accept"
    report = s.send_pending()
    assert (report.sent, report.batches, report.pending) == (30, 2, 0)

    reqs = receiver.requests
    assert [r["status"] for r in reqs] == [200, 500, 200, 200]
    assert [r["key"] for r in reqs] == [f"{ids[0]}-{ids[19]}", f"{ids[20]}-{ids[39]}", f"{ids[20]}-{ids[39]}",
                                        f"{ids[40]}-{ids[49]}"]
    assert reqs[1]["body"] == reqs[2]["body"]  # the repeat is byte-identical
    arrived = receiver.ids()
    assert arrived == ids[:40] + ids[20:]
    deduped = list(dict.fromkeys(arrived))  # what a receiver deduping by id keeps, in arrival order
    assert deduped == ids
    assert all_ids(conn, "attempts = 1 AND last_error = 'HTTP 500' AND sent_at IS NOT NULL") == ids[20:40]
    assert all_ids(conn, "sent_at IS NULL") == []


def test_purge_keeps_unsent_records_for_the_retention(conn: psycopg.Connection) -> None:
    ages = [10, 89, 100, 179, 181, 200, 400]
    with conn.transaction():
        for age in ages:
            enqueue(conn, "alarm", {"age_days": age}, NOW - timedelta(days=age))
        # Sent ones: taken 8 days ago (purged) and 6 days ago (kept), both created long before.
        enqueue_many(conn, [("readings", [1, 2], NOW - timedelta(days=300)),
                            ("readings", [3, 4], NOW - timedelta(days=300))])
    sent8, sent6 = all_ids(conn, "kind = 'readings'")
    conn.execute("UPDATE outbox SET sent_at = %s WHERE id = %s", (NOW - timedelta(days=8), sent8))
    conn.execute("UPDATE outbox SET sent_at = %s WHERE id = %s", (NOW - timedelta(days=6), sent6))

    def unsent_ages() -> list[int]:
        return [r[0] for r in conn.execute("SELECT (payload->>'age_days')::int FROM outbox "
                                           "WHERE sent_at IS NULL ORDER BY id")]

    with pytest.raises(QiwangError, match="90"):
        purge(conn, NOW, keep_unsent_days=30)
    with pytest.raises(QiwangError):
        purge(conn, NOW, keep_unsent_days=89.9)
    assert unsent_ages() == ages and len(all_ids(conn)) == 9

    with conn.transaction():
        assert purge(conn, NOW) == (1, 3)
    assert unsent_ages() == [10, 89, 100, 179]
    assert all_ids(conn, "sent_at IS NOT NULL") == [sent6]

    with conn.transaction():
        assert purge(conn, NOW, keep_unsent_days=90) == (0, 2)
    assert unsent_ages() == [10, 89]
    with conn.transaction():
        assert purge(conn, NOW, keep_unsent_days=90, keep_sent_days=0) == (1, 0)
    assert len(all_ids(conn)) == 2


def test_records_enqueued_after_a_failure_follow_the_older_ones(conn: psycopg.Connection, conninfo: str,
                                                                receiver: Receiver) -> None:
    with conn.transaction():
        enqueue_many(conn, [("alarm", {"n": i}, NOW - timedelta(hours=2)) for i in range(10)])
    older = all_ids(conn)
    s = sender(conninfo, receiver, batch_size=4)

    receiver.mode = "refuse"
    assert s.send_pending().error == "HTTP 503"
    with conn.transaction():
        enqueue_many(conn, [("device_status", {"n": i}, NOW - timedelta(hours=1)) for i in range(7)])
    newer = all_ids(conn, f"id > {older[-1]}")
    assert s.send_pending().error == "HTTP 503"
    assert [r["key"] for r in receiver.requests] == [f"{older[0]}-{older[3]}"] * 2  # never skips ahead

    receiver.mode = "accept"
    receiver.requests.clear()
    report = s.send_pending(max_batches=2)
    assert (report.sent, report.batches, report.pending) == (8, 2, 9)
    report = s.send_pending()
    assert (report.sent, report.batches, report.pending) == (9, 3, 0)
    assert receiver.ids() == older + newer
    assert [r["key"] for r in receiver.requests] == [f"{a[0]}-{a[-1]}" for a in
                                                     ((older + newer)[i:i + 4] for i in range(0, 17, 4))]


def test_uncommitted_earlier_record_is_not_overtaken(conn: psycopg.Connection, conninfo: str,
                                                     receiver: Receiver) -> None:
    """Ids are drawn at insert time: a later id may commit first. The sender waits for the earlier one."""
    s = sender(conninfo, receiver, lock_wait_s=0.2)
    with psycopg.connect(conninfo) as slow:
        enqueue(slow, "alarm", {"n": "earlier"}, NOW)  # open transaction, not committed yet
        with conn.transaction():
            enqueue(conn, "alarm", {"n": "later"}, NOW)
        report = s.send_pending()
        assert (report.sent, report.error) == (0, "outbox busy: writers still in flight")
        assert receiver.requests == []
        slow.commit()
    assert s.send_pending().sent == 2
    assert [json.loads(r["body"])["records"][i]["payload"]["n"] for r in receiver.requests for i in range(2)] == \
        ["earlier", "later"]


def test_one_sender_at_a_time(conn: psycopg.Connection, conninfo: str, receiver: Receiver) -> None:
    backlog(conn, n=5, days=1)
    with psycopg.connect(conninfo, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (outbox.ADVISORY_LOCK_KEY,))
        report = sender(conninfo, receiver).send_pending()
        assert (report.sent, report.pending, report.error) == (0, 5, "another sender is running")
        assert receiver.requests == []
    assert sender(conninfo, receiver).send_pending().sent == 5


def test_backoff_doubles_to_300_s_and_resets() -> None:
    delays, delay = [], 5.0
    for ok in [False] * 8 + [True, False]:
        delay = outbox.next_delay(delay, ok, 5.0)
        delays.append(delay)
    assert delays == [10, 20, 40, 80, 160, 300, 300, 300, 5, 10]


def test_run_sends_until_stopped(conn: psycopg.Connection, conninfo: str, receiver: Receiver) -> None:
    ids = backlog(conn, n=30, days=1)
    stop = threading.Event()
    s = sender(conninfo, receiver, batch_size=7)
    thread = threading.Thread(target=s.run, args=(stop,), kwargs={"every_s": 0.05}, daemon=True)
    thread.start()
    try:
        for _ in range(200):  # poll; the assertion is on what arrived, not on how fast
            if len(receiver.requests) >= 5:
                break
            stop.wait(0.05)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert receiver.ids() == ids
    assert all_ids(conn, "sent_at IS NULL") == []


def test_naive_instants_are_refused(conn: psycopg.Connection) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        enqueue(conn, "alarm", {}, datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        purge(conn, datetime(2026, 1, 1))


def qiwang_outbox_send(db_url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`./qiwang outbox send` as an operator runs it, with settings from `env` only."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("QIWANG_REGULATOR")}
    return subprocess.run([str(ROOT / "qiwang"), "outbox", "send", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**environ, "DATABASE_URL": db_url, **env}, stdin=subprocess.DEVNULL, timeout=300)


def test_the_regulator_token_setting_is_sent_as_bearer(conn: psycopg.Connection, db_url: str, tmp_path: Path,
                                                       receiver: Receiver) -> None:
    """QIWANG_REGULATOR_TOKEN (or the settings file's regulator_token) reaches the endpoint."""
    ids = backlog(conn, n=3)
    done = qiwang_outbox_send(db_url, "--regulator-url", receiver.url, QIWANG_REGULATOR_TOKEN="t0ken-from-env")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "sent 3 in 1 batches; pending 0\n"
    assert [r["auth"] for r in receiver.requests] == ["Bearer t0ken-from-env"]
    assert receiver.ids() == ids

    # URL and token from the settings file; the environment's token wins over the file's.
    conn.execute("UPDATE outbox SET sent_at = NULL")
    settings = tmp_path / "qiwang.toml"
    settings.write_text(f'regulator_url = "{receiver.url}"\nregulator_token = "t0ken-from-file"\n', encoding="utf-8")
    done = qiwang_outbox_send(db_url, QIWANG_SETTINGS_FILE=str(settings))
    assert done.returncode == 0, done.stderr
    done = qiwang_outbox_send(db_url, QIWANG_SETTINGS_FILE=str(settings), QIWANG_REGULATOR_TOKEN="t0ken-from-env")
    assert done.returncode == 0, done.stderr
    assert [r["auth"] for r in receiver.requests] == ["Bearer t0ken-from-env", "Bearer t0ken-from-file"]
    assert done.stdout == "sent 0 in 0 batches; pending 0\n"   # the file's run had sent them

    done = qiwang_outbox_send(db_url, QIWANG_SETTINGS_FILE=str(settings), QIWANG_REGULATOR_TOKEN="two words")
    assert (done.returncode, done.stderr) == (1, "qiwang: error: QIWANG_REGULATOR_TOKEN: must be printable, "
                                                 "without spaces\n")
