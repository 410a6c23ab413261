"""The telemetry simulator against a real mosquitto: what it publishes is what the ingest accepts."""
from __future__ import annotations

import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy.engine import make_url
from telemetry_support import TEST_GATEWAY, local_broker

from telemetry.broker import MOSQUITTO, BrokerAddress, LocalBroker
from telemetry.payload import Message, Reading, parse
from telemetry.registry import DeviceRegistry
from telemetry.rules import load_rules
from telemetry.simulate import NOMINAL_KPA, Episodes, Simulator, load_simulated_devices

pytestmark = pytest.mark.skipif(not Path(MOSQUITTO).exists(), reason="mosquitto is not installed")

# Short episodes so that leaks, silences and an excursion all begin and end within a few seconds.
EPISODES = Episodes(cycle=20, leak=(3, 2, 3), silent=(3, 6), excursion=(2, 2, 2))
VISITS = 22  # readings per device before the run stops: more than one whole cycle
SEED = 11


@pytest.fixture(scope="module")
def conninfo(db_url: str) -> str:
    return make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def broker():
    with local_broker() as running:
        yield running


class Collector:
    """A QoS 1 subscriber on every telemetry topic, keeping what it receives in order."""

    def __init__(self, broker: LocalBroker, enough: int, stop: threading.Event) -> None:
        self.messages: list[Message] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.enough, self.stop = enough, stop
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-collector", clean_session=True)
        broker.ingest.authenticate(self.client)     # the service account: it may read telemetry
        self.client.on_connect = lambda c, *_: c.subscribe("qiwang/+/+/+/telemetry", qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.address.host, broker.address.port)
        self.client.loop_start()
        assert self.subscribed.wait(10)

    def _on_message(self, _client, _userdata, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append(Message("mqtt", msg.topic, bytes(msg.payload), datetime.now(UTC)))
            if len(self.messages) >= self.enough:
                self.stop.set()  # stop on readings seen, not on time: the test does not depend on speed

    def wait_for(self, count: int, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # anything beyond `count` (a duplicate) would arrive now

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_simulated_telemetry_is_accepted_and_tells_stories(conninfo: str, broker: LocalBroker) -> None:
    devices = load_simulated_devices(conninfo, limit=40)
    rtus = [d for d in devices if d.device_type == "rtu"]
    assert rtus and devices[:len(rtus)] == rtus and len(devices) == 40
    assert load_simulated_devices(conninfo, limit=40) == devices  # a deterministic choice

    stop = threading.Event()
    collector = Collector(broker, enough=len(devices) * VISITS, stop=stop)
    try:
        simulator = Simulator(devices, broker.account(TEST_GATEWAY), rate=200, seed=SEED, leak_fraction=0.25,
                              silent_fraction=0.1, episodes=EPISODES, client_id="test-simulator")
        report = simulator.run(duration_s=15, stop=stop)
        collector.wait_for(report.published)
    finally:
        collector.close()

    assert report.unacknowledged == 0 and report.published > 0
    assert len(collector.messages) == report.published

    registry = DeviceRegistry(lambda: psycopg.connect(conninfo))
    now = datetime.now(UTC)
    parsed = [parse(message, registry, now) for message in collector.messages]
    rejected = [p for p in parsed if not isinstance(p, Reading)]
    assert not rejected, rejected[:3]
    simulated = {d.key for d in devices}
    assert all(r.device.key in simulated for r in parsed)
    assert all(now - timedelta(minutes=1) < r.ts <= now for r in parsed)

    by_code: dict[str, list[Reading]] = defaultdict(list)
    for reading in sorted(parsed, key=lambda r: r.ts):
        by_code[reading.device.code].append(reading)

    # Leaks: up through 25 %LEL, then back below 10; sentries without a leak stay in the background.
    assert report.leaks_started
    recovered = [code for code in report.leaks_started
                 if any(a.values["ch4_lel"] >= 25 and any(b.values["ch4_lel"] < 10 for b in by_code[code][i + 1:])
                        for i, a in enumerate(by_code[code]))]
    assert recovered, report.leaks_started
    for device in devices:
        if device.device_type == "sentry" and device.code not in report.leaks_started:
            assert max(r.values["ch4_lel"] for r in by_code[device.code]) <= 1.5
            assert {"ch4_lel", "temperature_c", "battery_v"} <= set(by_code[device.code][0].values)
            assert ("pressure_kpa" in by_code[device.code][0].values) == (device.pressure_class is not None)

    # Silences: nothing while silent, and back afterwards (a silence of the first cycle has surely
    # ended: every device had at least VISITS - 1 > cycle readings).
    assert report.silent and set(report.silent) == set(report.silences)
    plan = Simulator(devices, broker.account(TEST_GATEWAY), rate=200, seed=SEED, leak_fraction=0.25,
                     silent_fraction=0.1, episodes=EPISODES)
    first_cycle = {d.code for d in devices for visit in range(EPISODES.cycle)
                   if (e := plan.event(d, visit)) is not None and e.kind == "silent"}
    assert first_cycle and first_cycle <= set(report.silent)
    for code, windows in report.silences.items():
        for first, last in windows:
            assert not [r.ts for r in by_code[code] if first <= r.ts <= last]
        if code in first_cycle:
            assert any(r.ts > windows[0][1] for r in by_code[code]), code

    # RTUs: at their class's set point, except while an excursion takes one beyond its pre-alarm
    # threshold (an excursion starting in the last readings may not have got there yet).
    pressure_rules = [rule for rule in load_rules().rules if rule.measure == "pressure_kpa"]
    assert report.excursions
    came_back = []
    for rtu in rtus:
        pressures = [r.values["pressure_kpa"] for r in by_code[rtu.code]]
        assert pressures and all("flow_m3h" in r.values for r in by_code[rtu.code])
        nominal = NOMINAL_KPA[rtu.pressure_class]
        if rtu.code not in report.excursions:
            assert all(abs(p / nominal - 1) <= 0.01 for p in pressures), (rtu.code, nominal, pressures)
            continue
        beyond = [i for i, p in enumerate(pressures) for rule in pressure_rules
                  if rule.applies_to("rtu", rtu.pressure_class) and rule.crossed(p, rule.levels[0][1])]
        if beyond and any(abs(p / nominal - 1) <= 0.01 for p in pressures[beyond[0]:]):
            came_back.append(rtu.code)
    assert came_back, report.excursions


def test_next_reading_is_deterministic(conninfo: str) -> None:
    devices = load_simulated_devices(conninfo, limit=30)
    start = datetime(2026, 11, 23, 8, tzinfo=UTC)

    def sequence(seed: int) -> list[dict | None]:
        simulator = Simulator(devices, BrokerAddress("127.0.0.1", 1), rate=10, seed=seed, leak_fraction=0.2,
                              silent_fraction=0.1, episodes=EPISODES)
        return [simulator.next_reading(d, start + timedelta(seconds=visit))
                for visit in range(45) for d in devices]

    first = sequence(5)
    assert first == sequence(5)
    assert first != sequence(6)
    assert any(r is None for r in first) and any(r and r.get("ch4_lel", 0) >= 25 for r in first)
