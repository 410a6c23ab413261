"""Helpers of the telemetry tests: a running ingest (real mosquitto + real PostgreSQL) and a publisher."""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy.engine import make_url

from demo.city import ENTERPRISES
from telemetry.broker import ANY_ENTERPRISE, BrokerAddress, LocalBroker
from telemetry.mqtt_process import MqttProcessSource
from telemetry.payload import Message, telemetry_topic
from telemetry.pipeline import Pipeline
from telemetry.rules import load_rules

TELEMETRY_TABLES = "reading, reading_quarantine, alarm_event, alarm, device_status_log, outbox"
# The tests' gateways: a head-end that may publish for any enterprise (hostile topics included) and
# one gateway per demo-city enterprise, limited to that enterprise's topics.
TEST_GATEWAY = "test-gateway"
TEST_GATEWAYS = {TEST_GATEWAY: [ANY_ENTERPRISE], **{f"gateway-{code}": [code] for code, _, _ in ENTERPRISES}}


def conninfo(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def reset_telemetry(info: str) -> None:
    """Empty the telemetry tables and forget every device's latest state."""
    with psycopg.connect(info) as conn:
        conn.execute(f"TRUNCATE {TELEMETRY_TABLES}")
        for table in ("sentry", "device"):
            conn.execute(f"UPDATE {table} SET last_reading_at = NULL, last_ch4_lel = NULL, last_pressure_kpa = NULL, "
                         f"last_temperature_c = NULL, last_battery_v = NULL, status = 2 "
                         f"WHERE {'true' if table == 'sentry' else 'telemetry_type IS NOT NULL'}")


def devices(info: str, device_type: str = "sentry", limit: int = 10, where: str = "true") -> list[tuple[str, str, str]]:
    with psycopg.connect(info) as conn:
        return conn.execute(
            f"SELECT enterprise_code, device_type, code FROM telemetry_device WHERE device_type = %s AND {where} "
            "ORDER BY code LIMIT %s", (device_type, limit)).fetchall()


@contextmanager
def local_broker() -> Iterator[LocalBroker]:
    """A running mosquitto whose data directory the 'mosquitto' user can write (pytest's tmp_path,
    below the root-only /tmp/pytest-of-root, is closed to it: LocalBroker refuses it), with the
    service accounts and TEST_GATEWAYS."""
    data_dir = Path(tempfile.mkdtemp(prefix="qiwang-test-mosquitto-"))
    try:
        with LocalBroker(data_dir, gateways=TEST_GATEWAYS) as broker:
            yield broker
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@dataclass
class Ingest:
    pipeline: Pipeline
    source: MqttProcessSource

    def stop(self) -> None:
        self.source.stop()
        self.pipeline.stop()


def start_ingest(info: str, broker: BrokerAddress, client_id: str = "qiwang-ingest-test", **options) -> Ingest:
    """The ingest on a persistent session. Tests of one broker share the default session: a session
    of another id would keep receiving (queueing) every later test's messages after its test ended."""
    pipeline = Pipeline(info, load_rules(), **options)
    source = MqttProcessSource(broker, pipeline.submit, client_id=client_id)
    pipeline.on_alarm = source.publish_alarm
    pipeline.start()
    source.start()
    assert source.connected.wait(10), "the ingest did not connect to mosquitto"
    return Ingest(pipeline, source)


@contextmanager
def ingest_with_publisher(info: str, broker: LocalBroker, publisher_id: str,
                          **options) -> Iterator[tuple[Ingest, mqtt.Client]]:
    """A running ingest (default session, service account) and a gateway-like publisher (the
    head-end TEST_GATEWAY); both stopped afterwards."""
    ingest = start_ingest(info, broker.ingest, **options)
    client = publisher(broker.account(TEST_GATEWAY), client_id=publisher_id)
    try:
        yield ingest, client
    finally:
        ingest.stop()
        client.loop_stop()


def raise_alarms(info: str, readings: list[tuple[tuple[str, str, str], datetime, dict]]) -> None:
    """Feed readings through the ingest pipeline (no broker: the source does not matter to the
    checks, rules and store) and wait until they are stored."""
    pipeline = Pipeline(info, load_rules(), offline_check=False).start()
    try:
        for device, ts, values in readings:
            pipeline.submit(Message("mqtt", telemetry_topic(*device), payload(ts, **values),
                                    datetime.now(UTC)))
        assert pipeline.wait_idle(30), "the pipeline did not finish"
        assert pipeline.stats.stored == len(readings) and pipeline.stats.quarantined == 0
    finally:
        pipeline.stop()


def publisher(broker: BrokerAddress, client_id: str = "test-publisher") -> mqtt.Client:
    """A connected paho client (QoS 1 session) with `broker`'s account."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    broker.authenticate(client)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.reconnect_delay_set(1, 2)
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def payload(ts: datetime, **values: float) -> bytes:
    return json.dumps({"ts": ts.isoformat().replace("+00:00", "Z"), "values": values}).encode()


def publish_readings(client: mqtt.Client, readings: Iterable[tuple[tuple[str, str, str], datetime, dict]],
                     wait: bool = True) -> list[mqtt.MQTTMessageInfo]:
    """Publish with QoS 1 as a device does: while the link is down, wait for it and send again
    (a copy paho may also resend is stored once: storage is idempotent)."""
    infos = []
    for device, ts, values in readings:
        topic, body = telemetry_topic(*device), payload(ts, **values)
        info = client.publish(topic, body, qos=1)
        while info.rc == mqtt.MQTT_ERR_NO_CONN:
            wait_until(client.is_connected, 60, "the publisher to reconnect")
            info = client.publish(topic, body, qos=1)
        infos.append(info)
    if wait:
        for info in infos:
            info.wait_for_publish(60)
    return infos


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str | Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            waited_for = what if isinstance(what, str) else what()
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {waited_for}")
        time.sleep(0.1)


def count(info: str, sql: str, *args) -> int:
    with psycopg.connect(info) as conn:
        return conn.execute(sql, args).fetchone()[0]


def base_time() -> datetime:
    """A recent whole minute in UTC (readings must not be in the future nor older than 90 days)."""
    return (datetime.now(UTC) - timedelta(hours=2)).replace(second=0, microsecond=0)
