"""The telemetry ingest end to end: real mosquitto → MqttSource → Pipeline → real PostgreSQL.

Exactly-once storage under duplicates and reconnects, a broker restarted mid-stream, 10,000
hostile payloads of 65 kinds, the poison pills of issue 16, a store refusal bisected out, the
broker's accounts and ACL, supervision reported at /health, alarm raise / hysteresis / lifecycle
with the MQTT alarm feed, offline detection with a simulated clock.
"""
from __future__ import annotations

import codecs
import json
import os
import random
import signal
import threading
import time
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
import psycopg
import pytest
import sqlalchemy as sa
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy.pool import NullPool
from telemetry_support import (
    TEST_GATEWAY,
    TEST_GATEWAYS,
    base_time,
    conninfo,
    count,
    devices,
    ingest_with_publisher,
    local_broker,
    publish_readings,
    publisher,
    reset_telemetry,
    start_ingest,
    wait_until,
)

from core.errors import QiwangError
from db import migrate
from demo.city import ENTERPRISES
from telemetry import alarms, offline
from telemetry.broker import DISPATCH_USER, INGEST_USER, REPLAY_USER, LocalBroker
from telemetry.measures import MEASURES
from telemetry.payload import Message, telemetry_topic


@pytest.fixture(scope="module")
def telemetry_db(databases) -> str:
    """A database of its own (the smallest demo city), so that alarms and statuses stay here."""
    from demo.city import load_demo

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
                           f"{count(db, 'SELECT count(*) FROM reading_quarantine')} quarantined, "
                           f"{ingest.pipeline.stats}, "
                           f"{ingest.source.connections} connections")
        ingest.pipeline.wait_idle(30)
        assert ingest.source.connections >= 2
    assert count(db, "SELECT count(*) FROM reading") == 3000
    assert count(db, "SELECT count(DISTINCT (device_code, ts)) FROM reading") == 3000


def hostile_kinds(known: tuple[str, str, str], now: datetime) -> list[tuple[str, bytes, str | None, str]]:
    """(topic, payload, expected quarantine field, words the reason must hold) of each kind of bad
    input: malformed JSON, encodings other than UTF-8, NUL and lone surrogates in any string,
    timestamps out of any sane window (the OverflowError of issue 16), values, topics outside the
    scheme or of devices that do not exist."""
    ent, dtype, code = known
    topic = telemetry_topic(ent, dtype, code)
    ts = now.isoformat()
    good = json.dumps({"ts": ts, "values": {"ch4_lel": 1}})

    def body(**fields) -> bytes:
        return json.dumps({"ts": ts, "values": {"ch4_lel": 1}, **fields}).encode()

    def raw(text: str) -> bytes:     # JSON text written by hand: escapes json.dumps would not write
        return text.replace("TS", ts).encode()

    between = "is not between 2000 and 2100"
    kinds = [
        (topic, b"{not json", "payload", "not JSON"),
        (topic, b"\xff\xfe\x00garbage", "payload", "UTF-16 (byte order mark), not UTF-8"),
        (topic, b"[1, 2, 3]", "payload", "a JSON list, not an object"),
        (topic, b'"just a string"', "payload", "a JSON str, not an object"),
        (topic, b"9" * 5000, "payload", "not JSON"),                          # int longer than Python parses
        (topic, b"[" * 100_000 + b"]" * 100_000, "payload", "200,000 bytes, more than 16,384"),  # deep, and too large
        (topic, b"x" * 20_000, "payload", "20,000 bytes, more than 16,384"),
        (topic, json.dumps({"values": {"ch4_lel": 1}}).encode(), "ts", "missing"),
        (topic, body(ts="yesterday"), "ts", "is not ISO 8601"),
        (topic, body(ts="2026-11-23T08:00:00"), "ts", "has no UTC offset"),
        (topic, body(ts=(now + timedelta(days=30)).isoformat()), "ts", "is in the future"),
        (topic, body(ts=(now - timedelta(days=400)).isoformat()), "ts", "more than 90 days old"),
        (topic, body(ts=True), "ts", "a bool, not an ISO 8601 string or Unix seconds"),
        (topic, json.dumps({"ts": ts}).encode(), "values", "missing"),
        (topic, body(values={}), "values", "empty"),
        (topic, body(values=[1, 2]), "values", "a list, not an object"),
        (topic, body(values={"ch4_lel": "3.2"}), "values.ch4_lel", "a str, not a number"),
        (topic, body(values={"ch4_lel": True}), "values.ch4_lel", "a bool, not a number"),
        (topic, body(values={"ch4_lel": None}), "values.ch4_lel", "a NoneType, not a number"),
        (topic, body(values={"ch4_lel": 1e308}), "values.ch4_lel", "is outside 0…100 %LEL"),
        (topic, raw('{"ts": "TS", "values": {"pressure_kpa": NaN}}'), "values.pressure_kpa", "nan kPa is outside"),
        (topic, raw('{"ts": "TS", "values": {"pressure_kpa": Infinity}}'), "values.pressure_kpa", "inf kPa is outside"),
        (topic, body(values={"ch4_lel": -5}), "values.ch4_lel", "-5 %LEL is outside 0…100 %LEL"),
        (topic, body(values={"ch4_lel": 10**30}), "values.ch4_lel", "is outside 0…100 %LEL"),
        (topic, body(values={"'; DROP TABLE reading; --": 1}), "values.'; DROP TABLE reading; --", "unknown measure"),
        (topic, body(values={f"m{i}": 1 for i in range(100)}), "values", "100 values, more than 32"),
        (telemetry_topic(ent, dtype, "NO-SUCH-DEVICE"), good.encode(), "topic", "unknown device"),
        (telemetry_topic("9999999999", dtype, code), good.encode(), "topic", "unknown device"),
        (telemetry_topic(ent, "toaster", code), good.encode(), "topic", "device type 'toaster' is not one of"),
        (telemetry_topic("12345", dtype, code), good.encode(), "topic", "enterprise code '12345' is not 10 digits"),
        (telemetry_topic(ent, dtype, "bad code with spaces"), good.encode(), "topic", "is not 1-64 letters"),
        (telemetry_topic(ent, "rtu", code), good.encode(), "topic", "unknown device"),
        # issue 16: timestamps whose shift to UTC overflowed, wherever the offset takes them
        (topic, body(ts="0001-01-01T00:00:00+14:00"), "ts", between),
        (topic, body(ts="0001-01-01T00:00:00-14:00"), "ts", between),
        (topic, body(ts="9999-12-31T23:59:59-14:00"), "ts", between),
        (topic, body(ts="9999-12-31T23:59:59.999999+00:00"), "ts", between),
        (topic, body(ts="2100-01-01T00:00:00+08:00"), "ts", between),
        (topic, body(ts="1999-12-31T23:59:59Z"), "ts", between),
        (topic, body(ts="2026-11-23T08:00:00+25:00"), "ts", "is not ISO 8601"),
        (topic, body(ts=-1e20), "ts", "is not Unix seconds between 2000 and 2100"),
        (topic, raw('{"ts": 1e400, "values": {"ch4_lel": 1}}'), "ts", "inf is not Unix seconds"),
        (topic, body(ts=ts + " " * 40), "ts", "characters, more than an ISO 8601 timestamp's 40"),
        # issue 16: lone surrogates and NUL, in names and in any string, written as JSON escapes
        (topic, raw('{"ts": "TS", "values": {"\\ud800": 1}}'), "values", "a name holds a lone surrogate (\\ud800)"),
        (topic, raw('{"ts": "TS", "values": {"ch4_lel\\udfff": 1}}'), "values", "a lone surrogate (\\udfff)"),
        (topic, raw('{"ts": "TS", "values": {"ch4_lel\\u0000": 1}}'), "values", "a name holds NUL (\\u0000)"),
        (topic, raw('{"ts": "TS\\u0000", "values": {"ch4_lel": 1}}'), "ts", "a string holds NUL (\\u0000)"),
        (topic, raw('{"ts": "\\ud83dTS", "values": {"ch4_lel": 1}}'), "ts", "a lone surrogate (\\ud83d)"),
        (topic, raw('{"ts": "TS", "values": {"ch4_lel": 1}, "note": "\\udc00"}'), "note", "a lone surrogate (\\udc00)"),
        (topic, raw('{"ts": "TS", "values": {"ch4_lel": 1}, "tags": ["ok", "\\ud800x"]}'), "tags", "lone surrogate"),
        (topic, raw('{"\\u0000ts": "TS", "values": {"ch4_lel": 1}}'), "payload", "a name holds NUL"),
        # issue 16: encodings other than UTF-8 (json.loads of bytes would have accepted the first four)
        (topic, good.encode("utf-16"), "payload", "UTF-16 (byte order mark), not UTF-8"),
        (topic, codecs.BOM_UTF16_BE + good.encode("utf-16-be"), "payload", "UTF-16 (byte order mark), not UTF-8"),
        (topic, good.encode("utf-16-le"), "payload", "NUL bytes: UTF-16 or UTF-32 without a byte order mark"),
        (topic, good.encode("utf-32"), "payload", "UTF-32 (byte order mark), not UTF-8"),
        (topic, good.encode("utf-32-be"), "payload", "NUL bytes"),
        (topic, good.encode("utf-8-sig"), "payload", "UTF-8 with a byte order mark"),
        (topic, body(note="x")[:-2] + b'\xed\xa0\x80"}', "payload", "not UTF-8"),   # an encoded surrogate
        (topic, body(note="x")[:-2] + b'\xc0\xaf"}', "payload", "not UTF-8"),       # an overlong '/'
        (topic, body(note="x")[:-2] + b'\xb0C"}', "payload", "not UTF-8"),          # Latin-1 '°'
        # issue 16: topics outside the scheme, which the ingest used not to subscribe to
        (f"qiwang/{ent}/{dtype}/{code}/status", good.encode(), "topic", "not qiwang/{enterprise_code}/"),
        (f"qiwang/{ent}/{dtype}/{code}/telemetry/extra", good.encode(), "topic", "not qiwang/{enterprise_code}/"),
        (f"qiwang/{ent}/{dtype}/{code}", good.encode(), "topic", "not qiwang/{enterprise_code}/"),
        (f"qiwang/{ent}", good.encode(), "topic", "not qiwang/{enterprise_code}/"),
        ("qiwang/١٢٣٤٥٦٧٨٩٠/sentry/SB-1/telemetry", good.encode(), "topic", "is not 10 digits"),
        (telemetry_topic(ent, dtype, "传感器-1"), good.encode(), "topic", "is not 1-64 letters"),
    ]
    assert len({(topic, payload) for topic, payload, _, _ in kinds}) == len(kinds), "each kind tells itself apart"
    return kinds


def test_ten_thousand_hostile_payloads_are_quarantined_and_the_ingest_keeps_running(db, broker):
    """10,000 hostile messages of 65 kinds, shuffled among 600 good readings: exactly the 600 are
    stored, each hostile one is quarantined with its raw bytes, the field and the reason of its
    kind, and the ingest still stores a good reading afterwards."""
    sentries = devices(db, limit=6)
    now = datetime.now(UTC)
    kinds = hostile_kinds(sentries[0], now)
    assert len(kinds) >= 50
    bad = [kinds[i % len(kinds)] for i in range(10_000)]
    t0 = base_time()
    good = [(device, t0 + timedelta(seconds=i), {"ch4_lel": 1.0}) for i in range(100) for device in sentries]
    ingest = start_ingest(db, broker.ingest)
    client = publisher(broker.account(TEST_GATEWAY), client_id="hostile-publisher")
    try:
        stream = [(topic, body) for topic, body, _, _ in bad]
        goods = [(telemetry_topic(*device), json.dumps({"ts": ts.isoformat(), "values": v}).encode())
                 for device, ts, v in good]
        random.Random(5).shuffle(mixed := stream + goods)
        infos = [client.publish(topic, body, qos=1) for topic, body in mixed]
        for info in infos:
            info.wait_for_publish(120)
        wait_until(lambda: count(db, "SELECT count(*) FROM reading_quarantine") == 10_000, 120,
                   lambda: f"10,000 quarantined messages: {count(db, 'SELECT count(*) FROM reading_quarantine')}")
        ingest.pipeline.wait_idle(30)
        # still running: a good reading after the storm is stored
        late = base_time() + timedelta(minutes=30)
        publish_readings(client, [(sentries[0], late, {"ch4_lel": 2.0})])
        wait_until(lambda: count(db, "SELECT count(*) FROM reading WHERE ts = %s", late) == 1, 30, "the late reading")
        assert ingest.pipeline.running() and ingest.pipeline.health.restarts == 0
    finally:
        ingest.stop()
        client.loop_stop()
    assert count(db, "SELECT count(*) FROM reading") == 601
    assert count(db, "SELECT count(*) FROM reading WHERE ts <> %s", late) == 600
    with psycopg.connect(db) as conn:
        rows = conn.execute("SELECT topic, payload, array_agg(DISTINCT field), array_agg(DISTINCT reason), count(*) "
                            "FROM reading_quarantine GROUP BY topic, payload").fetchall()
    found = {(topic, bytes(payload)): (fields, reasons, n) for topic, payload, fields, reasons, n in rows}
    assert len(found) == len(kinds)
    for topic, payload, field, words in kinds:
        fields, reasons, n = found[(topic, payload)]       # a reason may quote the time it was received
        assert (fields, n) == ([field], sum(1 for k in bad if k[:2] == (topic, payload))), (topic, payload[:80])
        assert all(words in reason for reason in reasons), (payload[:80], reasons)
    assert ingest.pipeline.stats.quarantined == 10_000


def test_the_poison_pills_of_issue_16_are_quarantined_and_the_writer_goes_on(db, broker):
    """The two messages that killed the writer for good (an overflowing timestamp, a lone surrogate
    in a measure name), each followed by a good reading: both quarantined, both readings stored."""
    sentry = devices(db, limit=1)[0]
    t0 = base_time()
    poison = [b'{"ts":"0001-01-01T00:00:00+14:00","values":{"ch4_lel":1}}',
              f'{{"ts":"{t0.isoformat()}","values":{{"\\ud800":1}}}}'.encode()]
    with ingest_with_publisher(db, broker, "poison-publisher") as (ingest, client):
        for i, body in enumerate(poison):
            client.publish(telemetry_topic(*sentry), body, qos=1).wait_for_publish(10)
            publish_readings(client, [(sentry, t0 + timedelta(seconds=i), {"ch4_lel": 1.0})])
        wait_until(lambda: count(db, "SELECT count(*) FROM reading") == 2, 30, "the two good readings")
        assert ingest.pipeline.running() and ingest.pipeline.health.restarts == 0
    with psycopg.connect(db) as conn:
        quarantined = conn.execute("SELECT payload, field, reason FROM reading_quarantine ORDER BY id").fetchall()
    assert [(bytes(p), f, r) for p, f, r in quarantined] == [
        (poison[0], "ts", "'0001-01-01T00:00:00+14:00' is not between 2000 and 2100"),
        (poison[1], "values", "a name holds a lone surrogate (\\ud800)")]


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
    at = datetime.now(UTC)
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
        publish_readings(client, [(sentry, datetime.now(UTC) - timedelta(seconds=5), {"ch4_lel": 30.0})])
        wait_until(lambda: count(db, "SELECT count(*) FROM alarm") == 1, 30, "the alarm")
    finally:
        ingest.stop()
    with psycopg.connect(db) as conn:
        code = conn.execute("SELECT code FROM alarm").fetchone()[0]
        at = datetime.now(UTC)
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
    from telemetry.registry import RELOAD_ON_MISS_AFTER_S
    from telemetry.replay import ReplayReport, replay, waiting

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
            # wait for the 20 to arrive (the ingest may still be idle from before when replay returns:
            # waiting for idle alone raced them, and left them queued for the next test's session)
            wait_until(lambda: ingest.pipeline.stats.received >= 121, 30,
                       lambda: f"the 20 replayed again: {ingest.pipeline.stats}")
            ingest.pipeline.wait_idle(30)
            assert ingest.pipeline.stats.received == 121 and ingest.pipeline.stats.duplicates >= 20
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


def test_a_batch_the_database_keeps_refusing_is_held_and_health_says_so(db):
    """A table locked by someone else: the writer's statements give up after lock_timeout (instead of
    hanging silently), the batch is held and retried, unacknowledged; past `stalled_after_s` the
    writer is reported not alive (/health: failing). Once the lock goes, the batch is stored and the
    writer is alive again."""
    from telemetry.pipeline import Pipeline
    from telemetry.rules import load_rules

    sentry = devices(db, limit=1)[0]
    message = Message("mqtt", telemetry_topic(*sentry), json.dumps(
        {"ts": base_time().isoformat(), "values": {"ch4_lel": 0.5}}).encode(), datetime.now(UTC))
    pipeline = Pipeline(db, load_rules(), offline_check=False, retry_s=0.1, stalled_after_s=1.0,
                        lock_timeout="100ms")
    with psycopg.connect(db) as locker:
        locker.execute("LOCK TABLE reading IN ACCESS EXCLUSIVE MODE")
        pipeline.start()
        try:
            pipeline.submit(message)
            wait_until(lambda: pipeline.stats.database_retries >= 3, 30, lambda: f"retries: {pipeline.stats}")
            wait_until(lambda: not pipeline.health.report()["alive"], 30, "the writer reported stalled")
            assert pipeline.running() and pipeline.stats.stored == 0 and pipeline.stats.quarantined == 0
            locker.rollback()                                      # the lock goes
            wait_until(lambda: pipeline.stats.stored == 1, 30, lambda: f"stored after the lock: {pipeline.stats}")
            assert pipeline.health.report()["alive"] and pipeline.stats.quarantined == 0
        finally:
            pipeline.stop()
    assert count(db, "SELECT count(*) FROM reading") == 1


def test_a_message_the_store_refuses_is_bisected_out_and_the_others_are_stored(db, monkeypatch):
    """Defence in depth: with the payload's string check and the store's text cleaning switched off
    (the lone surrogate of issue 16 reaching the store, as it did), the batch write fails; the
    writer splits the batch until the message at fault is alone, quarantines it (raw bytes, the
    error in ASCII) and stores the 300 good readings of the same batch."""
    from telemetry import payload as payload_module
    from telemetry import store
    from telemetry.pipeline import Pipeline
    from telemetry.rules import load_rules

    monkeypatch.setattr(payload_module, "_storable", lambda value, where: None)
    monkeypatch.setattr(store, "_clean", lambda text: text)
    sentries = devices(db, limit=3)
    t0 = base_time()
    poison = f'{{"ts": "{t0.isoformat()}", "values": {{"\\ud800": 1}}}}'.encode()
    messages = [Message("mqtt", telemetry_topic(*device), json.dumps(
        {"ts": (t0 + timedelta(seconds=i)).isoformat(), "values": {"ch4_lel": 0.5}}).encode(), now)
        for now in [datetime.now(UTC)] for i in range(100) for device in sentries]
    messages.insert(150, Message("mqtt", telemetry_topic(*sentries[0]), poison, datetime.now(UTC)))
    pipeline = Pipeline(db, load_rules(), offline_check=False)
    for message in messages:            # queued before the writer starts: one batch of 301
        pipeline.submit(message)
    pipeline.start()
    try:
        wait_until(lambda: pipeline.stats.received == 301, 30, lambda: f"the batch: {pipeline.stats}")
        assert pipeline.stats.batches == 1 and pipeline.running() and pipeline.health.restarts == 0
    finally:
        pipeline.stop()
    assert (pipeline.stats.stored, pipeline.stats.quarantined) == (300, 1)
    assert count(db, "SELECT count(*) FROM reading") == 300
    with psycopg.connect(db) as conn:
        rows = conn.execute("SELECT payload, field, reason FROM reading_quarantine").fetchall()
    assert [(bytes(p), f) for p, f, _ in rows] == [(poison, None)]
    assert rows[0][2].startswith("could not be quarantined as checked (UnicodeEncodeError: 'utf-8' codec can't "
                                 "encode character '\\ud800'"), rows[0][2]
    assert rows[0][2].endswith("it was refused for: unknown measure (known: " + ", ".join(MEASURES) + ")")


def connect_reason(address, client_id: str) -> str:
    """What the broker answers a connection with `address`'s account (paho's reason code text)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    address.authenticate(client)
    reasons: list[str] = []
    answered = threading.Event()
    client.on_connect = lambda c, u, f, reason, p: (reasons.append(str(reason)), answered.set())
    client.connect(address.host, address.port)
    client.loop_start()
    try:
        assert answered.wait(10), "no CONNACK"
    finally:
        client.disconnect()
        client.loop_stop()
    return reasons[0]


def test_the_broker_refuses_anonymous_clients_and_topics_of_other_enterprises(db, broker):
    """mosquitto with accounts (issue 16, 5): no anonymous client, no wrong password; a gateway
    publishes only under its enterprise's prefix — another enterprise's device topic and the alarm
    feed are dropped by the broker, its own device's reading is stored."""
    from dataclasses import replace

    (own, _, _), (other, _, _) = ENTERPRISES[:2]
    mine = devices(db, where=f"enterprise_code = '{own}'", limit=1)[0]
    theirs = devices(db, where=f"enterprise_code = '{other}'", limit=1)[0]
    gateway = broker.account(f"gateway-{own}")
    assert connect_reason(broker.address, "anonymous-device") == "Not authorized"
    assert connect_reason(replace(gateway, password="guessed"), "guessing-device") == "Not authorized"
    assert connect_reason(gateway, "own-gateway") == "Success"
    with broker.credentials_file.open() as handle:
        assert set(json.load(handle)) == {INGEST_USER, REPLAY_USER, DISPATCH_USER, *TEST_GATEWAYS}
    assert broker.credentials_file.stat().st_mode & 0o777 == 0o600
    assert "allow_anonymous false" in (broker.data_dir / "mosquitto.conf").read_text()

    forged: list[bytes] = []
    listener = publisher(broker.account(DISPATCH_USER), client_id="forgery-listener")
    listener.on_message = lambda c, u, m: forged.append(m.payload)
    listener.subscribe("qiwang/+/alarms/#", qos=1)
    t0 = base_time()
    ingest = start_ingest(db, broker.ingest)
    client = publisher(gateway, client_id="own-gateway")
    try:
        publish_readings(client, [(theirs, t0, {"ch4_lel": 99.0})])       # the broker acknowledges, and drops it
        client.publish(f"qiwang/{own}/alarms/sentry/{mine[2]}", b'{"code": "BJ-FORGED"}', qos=1).wait_for_publish(10)
        publish_readings(client, [(mine, t0, {"ch4_lel": 1.0})])
        wait_until(lambda: count(db, "SELECT count(*) FROM reading") == 1, 30, "the gateway's own reading")
        ingest.pipeline.wait_idle(30)
    finally:
        ingest.stop()
        client.loop_stop()
        listener.loop_stop()
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT enterprise_code, device_code FROM reading").fetchall() == [(own, mine[2])]
    assert count(db, "SELECT count(*) FROM reading_quarantine") == 0 and count(db, "SELECT count(*) FROM alarm") == 0
    assert forged == []


def test_the_supervisor_restarts_what_dies_and_health_reports_it(db, monkeypatch, tmp_path):
    """The MQTT client process killed, mosquitto killed (reaped: no zombie), the writer's loop
    failing: each is restarted and counted with its last failure in /health; the batch the writer
    failed on is quarantined with the error; a reading sent afterwards is stored."""
    from sqlalchemy.engine import make_url

    from app.web import create_app
    from telemetry.service import TelemetryService

    sentry = devices(db, limit=1)[0]
    t0 = base_time()
    with local_broker() as own:
        service = TelemetryService(db, broker=own.ingest, client_id="health-ingest", local_broker=own,
                                   watch_every_s=0.2).start()
        web = create_app(make_url(db).set(drivername="postgresql+psycopg").render_as_string(hide_password=False),
                         jobs_dir=tmp_path).test_client()
        client = publisher(own.account(TEST_GATEWAY), client_id="health-publisher")
        try:
            wait_until(service.mqtt.connected.is_set, 10, "the ingest's MQTT connection")
            body = web.get("/health").get_json()
            quiet = {"alive": True, "restarts": 0, "last_failure": None, "last_failure_at": None}
            assert body["ingest"] == {"status": "running", "failing": [], "writer": quiet,
                                      "mqtt": {**quiet, "connected": True}, "mosquitto": quiet}

            child = service.mqtt.pid
            os.kill(child, signal.SIGKILL)
            wait_until(lambda: service.mqtt.health.restarts == 1 and service.mqtt.connected.is_set(), 30,
                       "the MQTT client process restarted")

            mosquitto = own.process.pid
            os.kill(mosquitto, signal.SIGKILL)
            wait_until(lambda: own.health.restarts == 1 and service.mqtt.connected.is_set(), 30,
                       "mosquitto restarted and the ingest reconnected")
            assert own.process.pid != mosquitto and not os.path.exists(f"/proc/{mosquitto}")   # reaped

            registry, failures = service.pipeline.registry, []

            def failing_reload() -> None:      # a fault inside the writer's loop, once
                if not failures:
                    failures.append(1)
                    raise RuntimeError("injected fault")
            monkeypatch.setattr(registry, "maybe_reload", failing_reload)
            publish_readings(client, [(sentry, t0, {"ch4_lel": 1.0})])
            wait_until(lambda: service.pipeline.health.restarts == 1, 30, "the writer restarted")
            publish_readings(client, [(sentry, t0 + timedelta(seconds=1), {"ch4_lel": 1.0})])
            wait_until(lambda: count(db, "SELECT count(*) FROM reading") == 1, 30, "the reading after the restarts")
            response = web.get("/health")
        finally:
            client.loop_stop()
            service.stop()
    body = response.get_json()
    assert response.status_code == 200 and body["status"] == "ok"
    ingest = body["ingest"]
    assert (ingest["status"], ingest["failing"]) == ("running", [])
    parts = {name: part for name, part in ingest.items() if name not in ("status", "failing")}
    assert {name: (part["alive"], part["restarts"]) for name, part in parts.items()} \
        == {"writer": (True, 1), "mqtt": (True, 1), "mosquitto": (True, 1)}
    assert ingest["writer"]["last_failure"] == "RuntimeError: injected fault"
    assert ingest["mqtt"]["last_failure"] == (f"the MQTT client process {child} ended (exit code -9); "
                                              "starting another on the same session")
    assert ingest["mosquitto"]["last_failure"] == "mosquitto exited with status -9"
    assert all(ingest[name]["last_failure_at"] for name in ("writer", "mqtt", "mosquitto"))
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT ts FROM reading").fetchall() == [(t0 + timedelta(seconds=1),)]
        assert conn.execute("SELECT field, reason FROM reading_quarantine").fetchall() == [
            (None, "the ingest writer failed on its batch: RuntimeError: injected fault")]
        # ... and each failure is a system alarm for every enterprise: raised, cleared by the restart.
        enterprises = [code for (code,) in conn.execute("SELECT enterprise_code FROM enterprise ORDER BY 1")]
        alarms = conn.execute(
            "SELECT enterprise_code, measure, level, state, value, cleared_at IS NOT NULL, geom IS NULL FROM alarm "
            "WHERE device_type = 'system' AND device_code = 'qiwang-ingest' ORDER BY 1, 2").fetchall()
        assert len(enterprises) == 2 and alarms == [
            (enterprise, part, 7, "raised", 1.0, True, True)
            for enterprise in enterprises for part in ("mosquitto", "mqtt", "writer")]
        events = conn.execute(
            "SELECT a.measure, e.action, e.actor, e.note FROM alarm_event e JOIN alarm a ON a.id = e.alarm_id "
            "WHERE a.device_type = 'system' AND a.enterprise_code = %s ORDER BY a.measure, e.id",
            (enterprises[0],)).fetchall()
        assert events == [
            ("mosquitto", "raised", "ingest", "ingest mosquitto failed: mosquitto exited with status -9"),
            ("mosquitto", "cleared", "ingest", "ingest mosquitto restarted"),
            ("mqtt", "raised", "ingest", f"ingest mqtt failed: the MQTT client process {child} ended (exit code -9); "
                                         "starting another on the same session"),
            ("mqtt", "cleared", "ingest", "ingest mqtt restarted"),
            ("writer", "raised", "ingest", "ingest writer failed: RuntimeError: injected fault"),
            ("writer", "cleared", "ingest", "ingest writer restarted"),
        ]
    assert web.get("/health").get_json().get("ingest") is None     # stopped: no ingest in this process


def test_mqtt_urls_carry_accounts_and_never_show_the_password():
    from telemetry.broker import BrokerAddress, parse_mqtt_url

    address = parse_mqtt_url("mqtt://gateway-1:p%3As%40ss@broker.example:1884")
    assert address == BrokerAddress("broker.example", 1884, "gateway-1", "p:s@ss")
    assert address.url == "mqtt://gateway-1@broker.example:1884" and "p:s@ss" not in repr(address)
    assert parse_mqtt_url("mqtt://127.0.0.1") == BrokerAddress("127.0.0.1", 1883)
    with pytest.raises(QiwangError) as refused:
        parse_mqtt_url("http://gateway-1:secret@broker.example")
    assert str(refused.value) == ("MQTT URL 'http://broker.example' is not mqtt://[user:password@]host[:port]")
