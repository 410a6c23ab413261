"""Offline detection and offline rates on the demo city, with a simulated clock.

Every test works inside one transaction that is rolled back, so the shared database is unchanged;
all instants are explicit (the database clock is never read).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import psycopg
import pytest
from sqlalchemy.engine import make_url

from core.errors import QiwangError
from telemetry.offline import StatusChange, detect_offline, offline_rate

UTC = UTC
BASE = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
S, H = timedelta(seconds=1), timedelta(hours=1)


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    conninfo = make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo) as conn:
        try:
            yield conn
        finally:
            conn.rollback()


def _pick(conn: psycopg.Connection, table: str, n: int) -> list[tuple[str, str, str, str, int]]:
    """(device_type, code, enterprise_code, admin_code, id) of the first n devices of a table."""
    if table == "sentry":
        sql = "SELECT 'sentry', code, enterprise_code, admin_code, id FROM sentry ORDER BY id LIMIT %s"
    else:
        sql = ("SELECT telemetry_type, code, enterprise_code, admin_code, id FROM device "
               "WHERE telemetry_type IS NOT NULL ORDER BY id LIMIT %s")
    return conn.execute(sql, (n,)).fetchall()


def _set(conn: psycopg.Connection, dev: tuple, status: int, last: datetime | None) -> None:
    table = "sentry" if dev[0] == "sentry" else "device"
    conn.execute(f"UPDATE {table} SET status = %s, last_reading_at = %s WHERE id = %s", (status, last, dev[4]))


def _status(conn: psycopg.Connection, dev: tuple) -> int:
    table = "sentry" if dev[0] == "sentry" else "device"
    return conn.execute(f"SELECT status FROM {table} WHERE id = %s", (dev[4],)).fetchone()[0]


def _marked(changes: list[StatusChange]) -> set[str]:
    return {c.device_code for c in changes}


def test_detect_offline(conn: psycopg.Connection) -> None:
    t2 = BASE + 600 * S
    conn.execute("DELETE FROM device_status_log")
    conn.execute("DELETE FROM outbox")
    # Everything reporting, and recent at every instant below, except the devices chosen next.
    conn.execute("UPDATE sentry SET status = 2, last_reading_at = %s", (t2,))
    conn.execute("UPDATE device SET status = 2, last_reading_at = %s WHERE telemetry_type IS NOT NULL", (t2,))
    a, b, c, d, e = _pick(conn, "sentry", 5)  # reporting_interval_s 300: offline after 900 s
    r, n = _pick(conn, "device", 2)           # RTUs, reporting_interval_s 60: offline after 180 s
    assert {x[0] for x in (r, n)} == {"rtu"}
    assert conn.execute("SELECT DISTINCT reporting_interval_s FROM sentry WHERE id = ANY(%s)",
                        ([x[4] for x in (a, b, c, d, e)],)).fetchall() == [(300,)]
    _set(conn, a, 2, BASE - 890 * S)        # silent 900 s exactly at BASE + 10 s
    _set(conn, b, 7, BASE - 2000 * S)       # faulty and long silent
    _set(conn, c, 8, BASE - timedelta(days=10))  # disabled: never marked
    _set(conn, d, 0, BASE - timedelta(days=10))  # already offline
    _set(conn, e, 2, None)                  # never reported
    _set(conn, r, 2, BASE - 100 * S)
    _set(conn, n, 2, None)                  # never reported

    assert _marked(detect_offline(conn, BASE)) == {b[1]}
    assert detect_offline(conn, BASE + 10 * S) == []  # a silent 3 × 300 s exactly is not yet offline
    assert _marked(detect_offline(conn, BASE + 10 * S + timedelta(microseconds=1))) == {a[1]}
    assert _marked(detect_offline(conn, t2)) == {r[1]}  # never-reported devices left alone
    since = BASE - 100 * S  # the ingest's start: n silent 700 s > 180 s, e 700 s < 900 s
    assert _marked(detect_offline(conn, t2, never_reported_since=since)) == {n[1]}
    assert detect_offline(conn, t2, never_reported_since=since) == []  # nothing new on a second run
    assert detect_offline(conn, t2 + timedelta(days=1), never_reported_since=since, after_intervals=1e4) == []

    assert [_status(conn, x) for x in (a, b, c, d, e, r, n)] == [0, 0, 8, 0, 2, 0, 0]
    expected = [(b, BASE, 7), (a, BASE + 10 * S + timedelta(microseconds=1), 2), (r, t2, 2), (n, t2, 2)]
    log = conn.execute("SELECT device_type, device_code, enterprise_code, admin_code, at, status_from, status_to "
                       "FROM device_status_log ORDER BY id").fetchall()
    assert log == [(x[0], x[1], x[2], x[3], at, old, 0) for x, at, old in expected]
    outbox = conn.execute("SELECT created_at, kind, payload, sent_at FROM outbox ORDER BY id").fetchall()
    assert outbox == [
        (at, "device_status", {"device_type": x[0], "device_code": x[1], "enterprise_code": x[2],
                               "admin_code": x[3], "at": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                               "status_from": old, "status_to": 0}, None)
        for x, at, old in expected]


def test_detect_offline_returns_changes(conn: psycopg.Connection) -> None:
    conn.execute("UPDATE sentry SET status = 2, last_reading_at = %s", (BASE,))
    conn.execute("UPDATE device SET status = 2, last_reading_at = %s WHERE telemetry_type IS NOT NULL", (BASE,))
    (s,), (r,) = _pick(conn, "sentry", 1), _pick(conn, "device", 1)
    _set(conn, s, 4, BASE - H)
    _set(conn, r, 5, BASE - H)
    now = BASE + 60 * S  # the rest silent 60 s: under 3 × 60 s
    changes = detect_offline(conn, now.astimezone(timezone(timedelta(hours=8))))  # any zone: the same instant
    assert sorted(changes, key=lambda c: c.device_type) == [
        StatusChange("rtu", r[1], r[2], r[3], now, 5, 0), StatusChange("sentry", s[1], s[2], s[3], now, 4, 0)]


def test_detect_offline_refuses(conn: psycopg.Connection) -> None:
    with pytest.raises(QiwangError):
        detect_offline(conn, datetime(2026, 3, 1, 8, 0))
    with pytest.raises(QiwangError):
        detect_offline(conn, BASE, after_intervals=0)


def test_offline_rate(conn: psycopg.Connection) -> None:
    t0, t1 = datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 3, tzinfo=UTC)
    window = (t1 - t0).total_seconds()
    conn.execute("DELETE FROM device_status_log")
    conn.execute("UPDATE sentry SET status = 2")
    conn.execute("UPDATE device SET status = 2 WHERE telemetry_type IS NOT NULL")
    s1, s2, s3, s4, s5, s6 = _pick(conn, "sentry", 6)
    r1, r2 = _pick(conn, "device", 2)
    history = {  # device → [(at, from, to)]
        s1: [(t0 + 2 * H, 2, 0), (t0 + 3 * H, 0, 2)],            # offline 1 h inside
        s2: [(t0 - H, 2, 0), (t0 + 0.5 * H, 0, 2)],              # offline before, back inside: 0.5 h
        s3: [(t0 + H, 0, 2), (t0 + 5 * H, 2, 7)],                # first row after start: offline 1 h
        s6: [(t0, 2, 0), (t0 + 6 * H, 0, 2), (t1, 2, 0)],        # at start exactly: 6 h; at end: next window
        r1: [(t0 + 23 * H, 2, 0), (t1 + 2 * H, 0, 2)],           # crosses the end: 1 h, offline at end
        r2: [(t0 - 48 * H, 2, 8), (t0 + 12 * H, 8, 2), (t0 + 13 * H, 2, 0), (t0 + 13 * H, 0, 2)],
    }
    for dev, rows in history.items():
        for at, old, new in rows:
            conn.execute("INSERT INTO device_status_log (device_type, device_code, enterprise_code, admin_code, "
                         "at, status_from, status_to) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                         (*dev[:4], at, old, new))
    _set(conn, s4, 0, None)  # no history: offline all window (current status)
    _set(conn, s5, 8, None)  # no history, disabled: not counted
    offline = {s1: 3600.0, s2: 1800.0, s3: 3600.0, s4: window, s6: 6 * 3600.0, r1: 3600.0}
    at_end = {s4, r1}

    registered = conn.execute("SELECT device_type, code, enterprise_code, admin_code FROM telemetry_device").fetchall()
    column = {"device_type": 0, "enterprise": 2, "district": 3}
    names = {"enterprise": dict(conn.execute("SELECT enterprise_code, name FROM enterprise").fetchall()),
             "district": dict(conn.execute("SELECT admin_code, name FROM admin_division").fetchall())}
    for by in ("device_type", "enterprise", "district", "all"):
        devices, seconds, ends, anys = (defaultdict(int) for _ in range(4))
        for row in registered:
            if tuple(row) == s5[:4]:
                continue
            key = "all" if by == "all" else row[column[by]]
            dev = next((d for d in offline if d[:4] == tuple(row)), None)
            devices[key] += 1
            seconds[key] += offline.get(dev, 0)
            ends[key] += dev in at_end
            anys[key] += dev in offline
        rates = offline_rate(conn, t0, t1, by)
        assert [r.key for r in rates] == sorted(devices)
        for r in rates:
            assert (r.devices, r.offline_s, r.offline_at_end, r.offline_in_window) == (
                devices[r.key], seconds[r.key], ends[r.key], anys[r.key]), (by, r)
            assert r.rate == pytest.approx(seconds[r.key] / (devices[r.key] * window), rel=1e-12)
            assert r.name == names.get(by, {}).get(r.key)

    n_sentries = conn.execute("SELECT count(*) FROM sentry").fetchone()[0] - 1  # s5 left out
    n_rtus = conn.execute("SELECT count(*) FROM device WHERE telemetry_type = 'rtu'").fetchone()[0]
    by_type = {r.key: r for r in offline_rate(conn, t0, t1, "device_type")}
    assert by_type["rtu"].devices == n_rtus and by_type["rtu"].offline_s == 3600.0
    assert by_type["rtu"].rate == pytest.approx(1 / (n_rtus * 24))  # 1 h of n × 24 h
    assert by_type["sentry"].devices == n_sentries
    assert by_type["sentry"].offline_s == 3600 + 1800 + 3600 + 86400 + 6 * 3600
    (everything,) = offline_rate(conn, t0, t1, "all")
    assert (everything.offline_at_end, everything.offline_in_window) == (2, 6)

    # A window wholly inside r2's disabled spell leaves it out; s5 is out of every window.
    (rtus,) = [r for r in offline_rate(conn, t0, t0 + 12 * H, "device_type") if r.key == "rtu"]
    assert (rtus.devices, rtus.offline_s, rtus.offline_in_window) == (n_rtus - 1, 0.0, 0)


def test_offline_rate_refuses(conn: psycopg.Connection) -> None:
    with pytest.raises(QiwangError):
        offline_rate(conn, BASE, BASE, "all")
    with pytest.raises(QiwangError):
        offline_rate(conn, BASE, BASE - H, "all")
    with pytest.raises(QiwangError):
        offline_rate(conn, BASE, BASE + H, "pipe")
    with pytest.raises(QiwangError):
        offline_rate(conn, datetime(2026, 3, 1), datetime(2026, 3, 2), "all")
