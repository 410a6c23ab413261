"""The telemetry ingest end to end: real mosquitto → MqttSource → Pipeline → real PostgreSQL.

Exactly-once storage under duplicates and reconnects, a broker restarted mid-stream, 10,000
hostile payloads, alarm raise / hysteresis / lifecycle with the MQTT alarm feed, offline detection
with a simulated clock.
"""
from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from ingest.telemetry import alarms, offline
from app.errors import QiwangError
from ingest.telemetry.broker import DISPATCH_USER, REPLAY_USER, LocalBroker
from ingest.telemetry.payload import telemetry_topic
from spatial import migrate
from telemetry_support import (
    base_time, conninfo, count, devices, ingest_with_publisher, local_broker, publish_readings, publisher, reset_telemetry, start_ingest, wait_until, TEST_GATEWAY,
)


@pytest.fixture(scope="module")
def telemetry_db(databases) -> str:
    """A database of its own (the smallest demo city), so that alarms and statuses stay here."""
    from ingest.demo_city import load_demo

    name = f"qiwang_telemetry_{os.getpid()}"
    url = databases.create(name)
    migrate.upgrade(url)
    engine = sa.create_engine(url, poolclass=NullPool)
    load_demo(engine, pipes=300, seed=3, echo=lambda _: None)
    engine.dispose()
    yield conninfo(url)
    databases.drop(name)


@pytest.fixture(scope="module")
def broker():
    with local_broker() as running:
        yield running


@pytest.fixture
def db(telemetry_db: str) -> str:
    reset_telemetry(telemetry_db)
    return telemetry_db


def stored_set(info: str) -> set[tuple[str, datetime, float]]:
    """(device, ts, CH4 to 0.1 %LEL) of every stored reading (stored as real: rounded back)."""
    with psycopg.connect(info) as conn:
        return set(conn.execute("SELECT device_code, ts, round(ch4_lel::numeric, 1)::float8 FROM reading").fetchall())


def test_exactly_once_under_duplicates_and_reconnects(db, broker):
    sentries = devices(db, limit=20)
    t0 = base_time()
    readings = [(device, t0 + timedelta(seconds=i), {"ch4_lel": round(0.1 * (i % 9), 1), "battery_v": 3.6})
                for i in range(100) for device in sentries]
    ingest = start_ingest(db, broker.ingest)
    client = publisher(broker.account(TEST_GATEWAY))
    try:
        publish_readings(client, readings[:1000])
        publish_readings(client, readings[:500])                    # duplicates, a while later
        ingest.pipeline.wait_idle(30)
        ingest.stop()                                               # the ingest goes away …
        publish_readings(client, readings[1000:1500])               # … the broker keeps its session's messages
        ingest = start_ingest(db, broker.ingest)                   # same client id: session resumed
        publish_readings(client, readings[1500:] + readings[1200:1300])
        wait_until(lambda: count(db, "SELECT count(*) FROM reading") == 2000, 60, "2,000 readings")
        ingest.pipeline.wait_idle(30)
    finally:
        ingest.stop()
        client.loop_stop()
    expected = {(device[2], ts, values["ch4_lel"]) for device, ts, values in readings}
    assert stored_set(db) == expected
    assert count(db, "SELECT count(*) FROM reading") == 2000
    assert count(db, "SELECT count(*) FROM reading_quarantine") == 0
    # the latest state on each sentry is its newest reading
    with psycopg.connect(db) as conn:
        latest = dict(conn.execute("SELECT code, last_reading_at FROM sentry WHERE code = ANY(%s)",
                                   ([d[2] for d in sentries],)).fetchall())
    assert latest == {d[2]: t0 + timedelta(seconds=99) for d in sentries}


def steady_stream(db: str, seconds: int, sentries: int = 10) -> list:
    """A reading a second from each of the first `sentries` sentries (CH4 0.5 %LEL: no alarm)."""
    t0, chosen = base_time(), devices(db, limit=sentries)
    return [(device, t0 + timedelta(seconds=i), {"ch4_lel": 0.5}) for i in range(seconds) for device in chosen]


def test_mqtt_client_process_killed_mid_stream_loses_nothing(db, broker):
    readings = steady_stream(db, seconds=200)
    with ingest_with_publisher(db, broker, "kill-publisher") as (ingest, client):
        publish_readings(client, readings[:1000])
        first = ingest.source.pid
        os.kill(first, signal.SIGKILL)                  # unacknowledged messages stay with the broker
        publish_readings(client, readings[1000:])
        wait_until(lambda: count(db, "SELECT count(*) FROM reading") == 2000, 30,
                   lambda: f"2,000 readings: {count(db, 'SELECT count(*) FROM reading')} stored")
        assert ingest.source.pid != first and ingest.source.connections >= 2
    assert count(db, "SELECT count(DISTINCT (device_code, ts)) FROM reading") == 2000
    assert count(db, "SELECT count(*) FROM reading_quarantine") == 0


def test_every_measure_lands_in_its_column_or_in_extra(db, broker):
    ent, dtype, code = devices(db, limit=1)[0]
    ts = base_time()
    values = {"ch4_lel": 12.5, "pressure_kpa": -0.25, "temperature_c": -7.125, "battery_v": 3.6,
              "flow_m3h": 1234.5, "signal_dbm": -87.0, "co_ppm": 0.001}
    with ingest_with_publisher(db, broker, "measures-publisher") as (ingest, client):
        publish_readings(client, [((ent, dtype, code), ts, values)])
        wait_until(lambda: count(db, "SELECT count(*) FROM reading") == 1, 10,
                   lambda: f"the reading: {ingest.pipeline.stats}, "
                           f"{count(db, 'SELECT count(*) FROM reading_quarantine')} quarantined")
    with psycopg.connect(db) as conn:
        row = conn.execute("SELECT r.enterprise_code, r.device_type, r.device_code, r.ts, r.admin_code = s.admin_code, "
                           "ch4_lel, pressure_kpa, temperature_c, battery_v, flow_m3h, extra "
                           "FROM reading r JOIN sentry s ON s.code = r.device_code").fetchone()
    assert row[:9] == (ent, dtype, code, ts, True, 12.5, -0.25, -7.125, pytest.approx(3.6, rel=1e-6))
    assert row[9:] == (1234.5, {"signal_dbm": -87.0, "co_ppm": 0.001})


@pytest.mark.skipif(os.geteuid() != 0, reason="mosquitto drops to its own user only when started as root")
def test_broker_refuses_a_directory_where_its_sessions_would_not_survive(tmp_path):
    # pytest's tmp_path is below /tmp/pytest-of-root (mode 700): the 'mosquitto' user cannot reach it,
    # mosquitto would start anyway and lose every held message at its next restart.
    with pytest.raises(QiwangError, match=r"mosquitto cannot write its sessions to .*a restarted broker would lose"):
        LocalBroker(tmp_path / "mosquitto").start()


def test_broker_restart_mid_stream_loses_nothing(db, broker):
    readings = steady_stream(db, seconds=300)
    with ingest_with_publisher(db, broker, "restart-publisher") as (ingest, client):
        publish_readings(client, readings[:1000])
        infos = publish_readings(client, readings[1000:2000], wait=False)
        broker.restart()                                            # SIGTERM: mosquitto saves its sessions
        assert broker.persistence_file.stat().st_size > 0           # ... and they were written
        infos += publish_readings(client, readings[2000:], wait=False)
        for info in infos:
            info.wait_for_publish(60)                               # paho resends what the broker did not confirm
        wait_until(lambda: count(db, "SELECT count(*) FROM reading") == 3000, 30,
                   lambda: f"3,000 readings after the restart: {count(db, 'SELECT count(*) FROM reading')} stored, "
                           f"{count(db, 'SELECT count(*) FROM reading_quarantine')} quarantined, {ingest.pipeline.stats}, "
                           f"{ingest.source.connections} connections")
        ingest.pipeline.wait_idle(30)
        assert ingest.source.connections >= 2
    assert count(db, "SELECT count(*) FROM reading") == 3000
    assert count(db, "SELECT count(DISTINCT (device_code, ts)) FROM reading") == 3000


def hostile_payloads(known: tuple[str, str, str], now: datetime, n: int) -> list[tuple[str, bytes, str]]:
    """n (topic, payload, expected quarantine field) triples of every kind of bad input."""
    ent, dtype, code = known
    topic = telemetry_topic(ent, dtype, code)
    ts = now.isoformat()
    kinds = [
        (topic, b"{not json", "payload"),
        (topic, b"\xff\xfe\x00garbage", "payload"),
        (topic, b"[1, 2, 3]", "payload"),
        (topic, b'"just a string"', "payload"),
        (topic, b"9" * 5000, "payload"),                                       # int longer than Python parses
        (topic, b"[" * 100_000 + b"]" * 100_000, "payload"),                   # deeper than the parser goes
        (topic, b"x" * 20_000, "payload"),                                      # larger than 16 KiB
        (topic, json.dumps({"values": {"ch4_lel": 1}}).encode(), "ts"),
        (topic, json.dumps({"ts": "yesterday", "values": {"ch4_lel": 1}}).encode(), "ts"),
        (topic, json.dumps({"ts": "2026-11-23T08:00:00", "values": {"ch4_lel": 1}}).encode(), "ts"),
        (topic, json.dumps({"ts": (now + timedelta(days=30)).isoformat(), "values": {"ch4_lel": 1}}).encode(), "ts"),
        (topic, json.dumps({"ts": (now - timedelta(days=400)).isoformat(), "values": {"ch4_lel": 1}}).encode(), "ts"),
        (topic, json.dumps({"ts": True, "values": {"ch4_lel": 1}}).encode(), "ts"),
        (topic, json.dumps({"ts": ts}).encode(), "values"),
        (topic, json.dumps({"ts": ts, "values": {}}).encode(), "values"),
        (topic, json.dumps({"ts": ts, "values": [1, 2]}).encode(), "values"),
        (topic, json.dumps({"ts": ts, "values": {"ch4_lel": "3.2"}}).encode(), "values.ch4_lel"),
        (topic, json.dumps({"ts": ts, "values": {"ch4_lel": True}}).encode(), "values.ch4_lel"),
        (topic, json.dumps({"ts": ts, "values": {"ch4_lel": None}}).encode(), "values.ch4_lel"),
        (topic, json.dumps({"ts": ts, "values": {"ch4_lel": 1e308}}).encode(), "values.ch4_lel"),
        (topic, b'{"ts": "%s", "values": {"pressure_kpa": NaN}}' % ts.encode(), "values.pressure_kpa"),
        (topic, b'{"ts": "%s", "values": {"pressure_kpa": Infinity}}' % ts.encode(), "values.pressure_kpa"),
        (topic, json.dumps({"ts": ts, "values": {"ch4_lel": -5}}).encode(), "values.ch4_lel"),
        (topic, json.dumps({"ts": ts, "values": {"ch4_lel": 10**30}}).encode(), "values.ch4_lel"),
        (topic, json.dumps({"ts": ts, "values": {"'; DROP TABLE reading; --": 1}}).encode(),
         "values.'; DROP TABLE reading; --"),
        (topic, json.dumps({"ts": ts, "values": {f"m{i}": 1 for i in range(100)}}).encode(), "values"),
        (telemetry_topic(ent, dtype, "NO-SUCH-DEVICE"), json.dumps({"ts": ts, "values": {"ch4_lel": 1}}).encode(), "topic"),
        (telemetry_topic("9999999999", dtype, code), json.dumps({"ts": ts, "values": {"ch4_lel": 1}}).encode(), "topic"),
        (telemetry_topic(ent, "toaster", code), json.dumps({"ts": ts, "values": {"ch4_lel": 1}}).encode(), "topic"),
        (telemetry_topic("12345", dtype, code), json.dumps({"ts": ts, "values": {"ch4_lel": 1}}).encode(), "topic"),
        (telemetry_topic(ent, dtype, "bad code with spaces"), json.dumps({"ts": ts, "values": {"ch4_lel": 1}}).encode(), "topic"),
        (telemetry_topic(ent, "rtu", code), json.dumps({"ts": ts, "values": {"ch4_lel": 1}}).encode(), "topic"),
    ]
    return [kinds[i % len(kinds)] for i in range(n)]


def test_ten_thousand_hostile_payloads_are_quarantined_and_the_ingest_keeps_running(db, broker):
    sentries = devices(db, limit=5)
    now = datetime.now(timezone.utc)
    bad = hostile_payloads(sentries[0], now, 10_000)
    t0 = base_time()
    good = [(device, t0 + timedelta(seconds=i), {"ch4_lel": 1.0}) for i in range(100) for device in sentries]
    ingest = start_ingest(db, broker.ingest)
    client = publisher(broker.account(TEST_GATEWAY), client_id="hostile-publisher")
    try:
        stream = [(topic, body) for topic, body, _ in bad]
        goods = [(telemetry_topic(*device), json.dumps({"ts": ts.isoformat(), "values": v}).encode())
                 for device, ts, v in good]
        random.Random(5).shuffle(mixed := stream + goods)
        infos = [client.publish(topic, body, qos=1) for topic, body in mixed]
        for info in infos:
            info.wait_for_publish(120)
        wait_until(lambda: count(db, "SELECT count(*) FROM reading_quarantine") == 10_000, 120,
                   "10,000 quarantined messages")
        ingest.pipeline.wait_idle(30)
        # still running: a good reading after the storm is stored
        late = base_time() + timedelta(minutes=30)
        publish_readings(client, [(sentries[0], late, {"ch4_lel": 2.0})])
        wait_until(lambda: count(db, "SELECT count(*) FROM reading WHERE ts = %s", late) == 1, 30, "the late reading")
    finally:
        ingest.stop()
        client.loop_stop()
    assert count(db, "SELECT count(*) FROM reading") == 501
    assert count(db, "SELECT count(*) FROM reading_quarantine") == 10_000
    with psycopg.connect(db) as conn:
        by_field = dict(conn.execute("SELECT field, count(*) FROM reading_quarantine GROUP BY field").fetchall())
        expected: dict[str, int] = {}
        for _, _, field in bad:
            expected[field] = expected.get(field, 0) + 1
        assert by_field == expected
        # every row keeps the raw bytes and a reason
        raws = {bytes(p) for (p,) in conn.execute("SELECT payload FROM reading_quarantine")}
        assert raws == {body for _, body, _ in bad}
        assert conn.execute("SELECT count(*) FROM reading_quarantine WHERE reason = ''").fetchone()[0] == 0
        reasons = dict(conn.execute(
            "SELECT DISTINCT ON (field) field, reason FROM reading_quarantine ORDER BY field, id").fetchall())
    assert reasons["ts"]
    assert "unknown device" in " ".join(
        r for (r,) in psycopg.connect(db).execute("SELECT DISTINCT reason FROM reading_quarantine WHERE field = 'topic'"))
    assert ingest.pipeline.stats.quarantined == 10_000


LEAK = [5, 11, 9, 8.5, 7.9, 12, 26, 24, 22.9, 51, 49, 47.9, 30, 5]
# (action, level) expected from data/alarm_rules.yaml: 10/25/50 %LEL, deadband 2
LEAK_TRANSITIONS = [("raised", 4), ("cleared", 4), ("raised", 4), ("escalated", 5), ("eased", 4),
                    ("escalated", 6), ("eased", 5), ("cleared", 5)]


def test_alarm_raise_hysteresis_lifecycle_and_feed(db, broker):
    sentry = devices(db, limit=1)[0]
    rtu = devices(db, "rtu", limit=1, where="pressure_class = 1")[0]     # medium pressure: low alarm at 250 kPa
    t0 = base_time()
    feed: list[dict] = []
    got_feed = threading.Event()
    listener = publisher(broker.account(DISPATCH_USER), client_id="alarm-listener")
    listener.on_message = lambda c, u, m: (feed.append(json.loads(m.payload)), got_feed.set())
    listener.subscribe("qiwang/+/alarms/#", qos=1)
    ingest = start_ingest(db, broker.ingest)
    client = publisher(broker.account(TEST_GATEWAY), client_id="alarm-publisher")
    try:
        publish_readings(client, [(sentry, t0 + timedelta(minutes=i), {"ch4_lel": v}) for i, v in enumerate(LEAK)])
        publish_readings(client, [(rtu, t0 + timedelta(minutes=i), {"pressure_kpa": v})
                                  for i, v in enumerate([350, 240, 255, 190, 262, 350])])
        wait_until(lambda: len(feed) >= len(LEAK_TRANSITIONS) + 3, 30, "the alarm feed")
        ingest.pipeline.wait_idle(30)
    finally:
        ingest.stop()
    with psycopg.connect(db) as conn:
        events = conn.execute(
            "SELECT e.action, e.level FROM alarm_event e JOIN alarm a ON a.id = e.alarm_id "
            "WHERE a.device_code = %s ORDER BY e.id", (sentry[2],)).fetchall()
        alarms_rows = conn.execute(
            "SELECT code, level, peak_value, threshold, cleared_at IS NOT NULL, state FROM alarm "
            "WHERE device_code = %s ORDER BY id", (sentry[2],)).fetchall()
        rtu_events = conn.execute(
            "SELECT a.direction, e.action, e.level FROM alarm_event e JOIN alarm a ON a.id = e.alarm_id "
            "WHERE a.device_code = %s ORDER BY e.id", (rtu[2],)).fetchall()
        statuses = conn.execute("SELECT status_from, status_to FROM device_status_log WHERE device_code = %s "
                                "ORDER BY id", (sentry[2],)).fetchall()
    assert [tuple(e) for e in events] == LEAK_TRANSITIONS
    # two episodes → two alarms, never one per reading; the second reached level 2 (6) at 51 %LEL
    assert [(lvl, peak, thr, cleared) for _, lvl, peak, thr, cleared, _ in alarms_rows] == [
        (4, 11.0, 10.0, True), (6, 51.0, 50.0, True)]
    # pressure below 250 then 200 kPa (255 kPa held by the 10 kPa deadband), cleared at 262 kPa (> 250 + 10)
    assert [tuple(e) for e in rtu_events] == [("low", "raised", 4), ("low", "escalated", 5), ("low", "cleared", 5)]
    assert statuses == [] or all(a != b for a, b in statuses)
    sentry_feed = [(m["action"], m["level"]) for m in feed if m["device_code"] == sentry[2]]
    assert sentry_feed == LEAK_TRANSITIONS

    code = alarms_rows[1][0]
    at = datetime.now(timezone.utc)
    with psycopg.connect(db) as conn:
        with pytest.raises(alarms.AlarmStepRefused, match="needs it acknowledged"):
            alarms.advance(conn, code, "dispatch", "王调度", None, at)
        conn.rollback()
        for step, person in [("acknowledge", "王调度"), ("dispatch", "王调度"), ("resolve", "李抢修"),
                             ("close", "王调度")]:
            alarms.advance(conn, code, step, person, f"{step} note", at)
        conn.commit()
        with pytest.raises(alarms.AlarmStepRefused, match="is closed"):
            alarms.advance(conn, code, "close", "王调度", None, at)
        conn.rollback()
        record = alarms.record(conn, code)
        assert [e.action for e in record] == ["raised", "escalated", "eased", "escalated", "eased", "cleared",
                                              "acknowledged", "dispatched", "resolved", "closed"]
        assert [e.actor for e in record][-4:] == ["王调度", "王调度", "李抢修", "王调度"]
        assert alarms.verify_record(conn, code)
        # the record is immutable
        for statement in ("UPDATE alarm_event SET note = 'edited'", "DELETE FROM alarm_event"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="immutable"):
                conn.execute(statement)
            conn.rollback()
        assert conn.execute("SELECT state FROM alarm WHERE code = %s", (code,)).fetchone()[0] == "closed"


def test_active_alarm_cannot_be_closed(db, broker):
    sentry = devices(db, limit=2)[1]
    ingest = start_ingest(db, broker.ingest)
    client = publisher(broker.account(TEST_GATEWAY), client_id="active-publisher")
    try:
        publish_readings(client, [(sentry, datetime.now(timezone.utc) - timedelta(seconds=5), {"ch4_lel": 30.0})])
        wait_until(lambda: count(db, "SELECT count(*) FROM alarm") == 1, 30, "the alarm")
    finally:
        ingest.stop()
    with psycopg.connect(db) as conn:
        code = conn.execute("SELECT code FROM alarm").fetchone()[0]
        at = datetime.now(timezone.utc)
        for step in ("acknowledge", "dispatch", "resolve"):
            alarms.advance(conn, code, step, "王调度", None, at)
        with pytest.raises(alarms.AlarmStepRefused, match="still active"):
            alarms.advance(conn, code, "close", "王调度", None, at)
        conn.rollback()
        assert conn.execute("SELECT level, state FROM alarm").fetchone() == (5, "raised")
        assert conn.execute("SELECT status FROM sentry WHERE code = %s", (sentry[2],)).fetchone()[0] == 5


def test_offline_detection_and_rate_with_a_simulated_clock(db, broker):
    """Devices report, fall silent past 3 intervals (3 × 300 s), are marked offline, come back."""
    sentries = devices(db, limit=4)
    start = base_time()
    clock = {"now": start}
    ingest = start_ingest(db, broker.ingest, clock=lambda: clock["now"], offline_check=False)
    client = publisher(broker.account(TEST_GATEWAY), client_id="offline-publisher")
    try:
        publish_readings(client, [(device, start, {"ch4_lel": 0.5}) for device in sentries])
        ingest.pipeline.wait_idle(30)
        wait_until(lambda: count(db, "SELECT count(*) FROM reading") == 4, 30, "4 readings")
        ingest.pipeline.wait_idle(30)
        info = ingest.pipeline.conninfo
        with psycopg.connect(info) as conn:
            # 15 min later: exactly 3 intervals, not yet; sentries 0 and 1 report again at +10 min
            publish_readings(client, [(device, start + timedelta(minutes=10), {"ch4_lel": 0.4})
                                      for device in sentries[:2]])
            clock["now"] = start + timedelta(minutes=10)
            wait_until(lambda: count(db, "SELECT count(*) FROM reading") == 6, 30, "6 readings")
            ingest.pipeline.wait_idle(30)
            changes = offline.detect_offline(conn, start + timedelta(minutes=15), 3)
            conn.commit()
            assert [c.device_code for c in changes] == []
            later = start + timedelta(minutes=15, seconds=1)
            changes = offline.detect_offline(conn, later, 3, never_reported_since=start)
            conn.commit()
        assert {c.device_code for c in changes if c.device_code in {d[2] for d in sentries}} == {
            sentries[2][2], sentries[3][2]}
        # sentry 2 comes back: offline → normal, logged at its reading's time
        back = start + timedelta(minutes=20)
        clock["now"] = back
        publish_readings(client, [(sentries[2], back, {"ch4_lel": 0.3})])
        wait_until(lambda: count(db, "SELECT status FROM sentry WHERE code = %s", sentries[2][2]) == 2, 30,
                   "sentry back online")
    finally:
        ingest.stop()
    with psycopg.connect(db) as conn:
        log = conn.execute("SELECT device_code, at, status_from, status_to FROM device_status_log "
                           "WHERE device_code = ANY(%s) ORDER BY id", ([d[2] for d in sentries],)).fetchall()
        assert log == [(sentries[2][2], later, 2, 0), (sentries[3][2], later, 2, 0), (sentries[2][2], back, 0, 2)]
        rates = {r.key: r for r in offline.offline_rate(conn, start, start + timedelta(minutes=30), "all")}
    total = count(db, "SELECT count(*) FROM telemetry_device")
    # sentry 2 offline 15:01 → 20:00 (299 s), sentry 3 from 15:01 to the end (899 s), and so is every
    # device that never reported; sentries 0 and 1 never
    rate = rates["all"]
    assert (rate.devices, rate.offline_in_window, rate.offline_at_end) == (total, total - 2, total - 3)
    assert rate.offline_s == pytest.approx(299 + 899 * (total - 3))
    assert rate.rate == pytest.approx((299 + 899 * (total - 3)) / (total * 1800))


def test_quarantined_messages_of_a_device_registered_later_are_replayed_once(db, broker):
    from ingest.telemetry.registry import RELOAD_ON_MISS_AFTER_S
    from ingest.telemetry.replay import ReplayReport, replay, waiting

    late, unknown = devices(db, limit=2)
    stranger = (unknown[0], "sentry", "SB-NEVER-REGISTERED")
    t0 = base_time()
    # 5, 5, … 30 (leak) … 2 (cleared): an alarm episode hides in the quarantined messages
    ch4 = [5.0] * 10 + [30.0] * 10 + [2.0] * 30
    late_readings = [(late, t0 + timedelta(minutes=i), {"ch4_lel": v}) for i, v in enumerate(ch4)]
    with psycopg.connect(db) as conn:       # the device is not registered yet: it reports under a new code
        conn.execute("UPDATE sentry SET code = code || '-OLD' WHERE code = %s", (late[2],))
    try:
        with ingest_with_publisher(db, broker, "replay-publisher") as (ingest, client):
            publish_readings(client, late_readings + [(stranger, t0, {"ch4_lel": 1.0})] * 1)
            wait_until(lambda: count(db, "SELECT count(*) FROM reading_quarantine") == 51, 30, "51 quarantined")
            assert count(db, "SELECT count(*) FROM reading") == 0
            with psycopg.connect(db) as conn:
                assert waiting(conn) == (0, 0)              # nothing to replay while the device is unknown
                conn.execute("UPDATE sentry SET code = %s WHERE code = %s", (late[2], late[2] + "-OLD"))
                conn.commit()                               # … now it is registered
                assert waiting(conn) == (50, 1)
                assert waiting(conn, device=stranger[2]) == (0, 0)
            time.sleep(RELOAD_ON_MISS_AFTER_S + 0.5)       # the running ingest sees a new device within 5 s

            assert replay(db, broker.account(REPLAY_USER)) == ReplayReport(50, 1)
            wait_until(lambda: count(db, "SELECT count(*) FROM reading") == 50, 30, "the 50 replayed readings")
            assert replay(db, broker.account(REPLAY_USER)) == ReplayReport(0, 0)          # each message once …
            with psycopg.connect(db) as conn:                                  # … unless a replay is cut short
                conn.execute("UPDATE reading_quarantine SET replayed_at = NULL WHERE id IN "
                             "(SELECT id FROM reading_quarantine WHERE device_code = %s ORDER BY id LIMIT 20)",
                             (late[2],))
            assert replay(db, broker.account(REPLAY_USER)) == ReplayReport(20, 1)
            ingest.pipeline.wait_idle(30)
            assert ingest.pipeline.stats.duplicates >= 20
    finally:
        with psycopg.connect(db) as conn:
            conn.execute("UPDATE sentry SET code = %s WHERE code = %s", (late[2], late[2] + "-OLD"))
    assert stored_set(db) == {(late[2], ts, values["ch4_lel"]) for _, ts, values in late_readings}
    with psycopg.connect(db) as conn:
        rows = conn.execute("SELECT device_code, replayed_at IS NOT NULL, count(*) FROM reading_quarantine "
                            "GROUP BY 1, 2 ORDER BY 1").fetchall()
        events = conn.execute("SELECT e.action, e.level, e.at FROM alarm_event e JOIN alarm a ON a.id = e.alarm_id "
                              "WHERE a.device_code = %s ORDER BY e.id", (late[2],)).fetchall()
    # the quarantine keeps every row (nothing was refused again); the stranger's still waits
    assert rows == sorted([(late[2], True, 50), (stranger[2], False, 1)])
    # the alarm episode in the replayed messages, at the readings' own times
    assert events == [("raised", 5, t0 + timedelta(minutes=10)), ("cleared", 5, t0 + timedelta(minutes=20))]
