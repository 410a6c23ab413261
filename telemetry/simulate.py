"""Realistic telemetry for the demo city, published over MQTT like the devices themselves would.

Sentries (管网哨兵) report methane (`ch4_lel`, %LEL), the pressure of the pipe they watch
(`pressure_kpa`, kPa; only with a pressure class), `temperature_c` (°C) and `battery_v` (V); station
RTUs report outlet `pressure_kpa`, `temperature_c` and `flow_m3h` (Nm³/h).

Episodes make the demo worth watching. Time is counted in *readings* (visits of one device), so an
episode looks the same at any rate. Every `Episodes.cycle` readings a fresh draw decides:
- which sentries leak (`leak_fraction`): methane ramps up to a peak of 30–70 %LEL, holds, and falls
  back below 5 %LEL — crossing the 10 / 25 / 50 %LEL alarm thresholds up and down;
- which devices go silent (`silent_fraction`) for a stretch, then report again (offline detection);
- one RTU whose outlet pressure leaves its band beyond the pre-alarm threshold of
  data/alarm_rules.yaml (usually over-pressure, sometimes under-pressure), then settles again.

Value generation (`Simulator.next_reading`, no I/O) is separate from publishing (`Simulator.run`).
Everything is deterministic given the seed and the device list: each device draws its noise from its
own random stream and each cycle's episodes from a stream of their own, so the values of one device
do not depend on the order in which devices are visited.
"""
from __future__ import annotations

import json
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import MQTTErrorCode

from core.errors import QiwangError
from telemetry.broker import BrokerAddress
from telemetry.payload import telemetry_topic
from telemetry.publisher import connected_publisher
from telemetry.registry import Device, load_devices
from telemetry.rules import Rules, load_rules

# Usual set points per dt_pipe_pressure_type (kPa): 0 低压, 1 中压, 2 次高压, 3 高压, 4 超高压.
NOMINAL_KPA: dict[int, float] = {0: 2.5, 1: 350.0, 2: 1200.0, 3: 3000.0, 4: 6000.0}
SENTRY_PRESSURE_NOISE = 0.01   # sentries: ±1 % of nominal
RTU_PRESSURE_NOISE = 0.006     # RTUs: regulated outlet, tighter (±0.6 %)
BACKGROUND_MAX_LEL = 1.5       # %LEL of a sensor in clean air (drift and noise)
LEAK_PEAK_LEL = (30.0, 70.0)
LEAK_TAIL_LEL = (2.0, 4.5)     # the last reading of a leak, before the background resumes
LOCAL_UTC_OFFSET = timedelta(hours=8)  # the city's clock for diurnal cycles (China Standard Time)
BATTERY_DRAIN_V = 2e-6         # per reading: months to years from 3.6 V to 3.3 V at real intervals
LOW_BATTERY_SHARE = 0.01       # sentries whose battery is already below the 3.3 V fault threshold


@dataclass(frozen=True)
class Episodes:
    """Lengths in readings (visits of one device), not seconds, so episodes survive any rate."""

    cycle: int = 240                          # a fresh draw of leaks, silences and one excursion
    leak: tuple[int, int, int] = (12, 8, 15)  # ramp up, plateau, fall back
    silent: tuple[int, int] = (10, 40)        # shortest and longest stretch without a message
    excursion: tuple[int, int, int] = (5, 6, 8)
    excursion_low_share: float = 0.25         # excursions that are under-pressure rather than over

    def __post_init__(self) -> None:
        longest = max(sum(self.leak), self.silent[1], sum(self.excursion))
        if min(*self.leak, *self.excursion, self.silent[0]) < 1 or self.silent[0] > self.silent[1]:
            raise ValueError("episode lengths must be ≥ 1 reading, silent as (shortest, longest)")
        if self.cycle <= longest + 1:
            raise ValueError(f"cycle of {self.cycle} readings cannot hold an episode of {longest}")


@dataclass(frozen=True)
class Event:
    """One planned episode of one device, in its visits: [start, start + length)."""

    kind: str       # 'leak', 'silent' or 'excursion'
    start: int      # visit index (absolute, counted from the device's first visit)
    length: int
    peak: float     # leak: %LEL; excursion: kPa; silent: nan
    tail: float = math.nan  # leak: %LEL of its last reading

    def step(self, visit: int) -> int | None:
        """Position of `visit` within the episode, None outside it."""
        return visit - self.start if self.start <= visit < self.start + self.length else None


@dataclass
class SimulationReport:
    published: int                   # acknowledged by the broker (QoS 1 PUBACK)
    leaks_started: list[str]         # device codes, in the order their leaks began
    silent: list[str]                # device codes that went silent during the run
    seconds: float                   # wall time, including waiting for the last acknowledgements
    excursions: list[str] = field(default_factory=list)   # RTU codes whose pressure left its band
    unacknowledged: int = 0          # published but not acknowledged when the run gave up waiting
    # Per silent device, (first, last) clock time of each stretch of silent visits (UTC).
    silences: dict[str, list[tuple[datetime, datetime]]] = field(default_factory=dict)


@dataclass
class _DeviceState:
    rng: random.Random
    visits: int
    zero_lel: float         # the sensor's offset in clean air, %LEL
    temperature_c: float    # daily mean, °C
    swing_c: float          # diurnal half-amplitude, °C
    battery_v: float        # V at the first visit
    flow_m3h: float         # RTU: mean flow, Nm³/h


def _count(fraction: float, n: int) -> int:
    """round(fraction · n), at least one when the fraction is positive (a demo without a leak is dull)."""
    if fraction <= 0 or n == 0:
        return 0
    return min(n, max(1, round(fraction * n)))


def format_ts(now: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and 'Z': 2026-11-23T08:00:00.000Z."""
    now = now.astimezone(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


class Simulator:
    """Round-robin over `devices`, `rate` messages per second for all of them together."""

    def __init__(self, devices: list[Device], broker: BrokerAddress, rate: float, seed: int = 1,
                 leak_fraction: float = 0.02, silent_fraction: float = 0.02,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 client_id: str = "qiwang-simulator", episodes: Episodes | None = None,
                 rules: Rules | None = None) -> None:
        if not devices:
            raise QiwangError("no devices to simulate")
        if not rate > 0:
            raise QiwangError(f"rate must be positive messages per second, not {rate!r}")
        self.devices = list(devices)
        self.broker, self.rate, self.seed = broker, float(rate), seed
        self.leak_fraction, self.silent_fraction = leak_fraction, silent_fraction
        self.clock, self.client_id = clock, client_id
        self.episodes = episodes or Episodes()
        self._bands = self._pressure_bands(rules or load_rules())
        self._state = {d.key: self._new_state(d) for d in self.devices}
        self._plans: dict[int, dict[tuple[str, str, str], Event]] = {}

    # ---- values -------------------------------------------------------------------------------

    def _new_state(self, device: Device) -> _DeviceState:
        # A string seed is hashed stably (unlike hash()), so the stream is the same in every process.
        rng = random.Random(f"qiwang-sim:{self.seed}:{':'.join(device.key)}")
        rtu = device.device_type == "rtu"
        low_battery = not rtu and rng.random() < LOW_BATTERY_SHARE
        return _DeviceState(
            rng=rng, visits=0, zero_lel=rng.uniform(0.0, 0.8),
            # Valve chambers and cabinets in a northern November; RTUs sit in heated station rooms.
            temperature_c=rng.uniform(12.0, 18.0) if rtu else rng.uniform(1.0, 6.0),
            swing_c=rng.uniform(0.5, 1.0) if rtu else rng.uniform(1.5, 3.0),
            battery_v=rng.uniform(3.22, 3.29) if low_battery else rng.uniform(3.55, 3.65),
            flow_m3h=rng.uniform(300.0, 3000.0),
        )

    @staticmethod
    def _pressure_bands(rules: Rules) -> dict[tuple[int, str], tuple[float, float]]:
        """(class, direction) → (pre-alarm threshold, deadband) of the RTU pressure rules, kPa."""
        bands = {}
        for pressure_class in NOMINAL_KPA:
            for rule in rules.for_device("rtu", pressure_class):
                if rule.measure == "pressure_kpa":
                    bands[(pressure_class, rule.direction)] = (rule.levels[0][1], rule.deadband)
        return bands

    def _plan(self, cycle: int) -> dict[tuple[str, str, str], Event]:
        """The episodes of one cycle, by device key (at most one per device)."""
        plan = self._plans.get(cycle)
        if plan is not None:
            return plan
        ep, base = self.episodes, cycle * self.episodes.cycle
        rng = random.Random(f"qiwang-sim:{self.seed}:cycle:{cycle}")
        plan = {}
        sentries = [d for d in self.devices if d.device_type == "sentry"]
        for device in rng.sample(sentries, _count(self.leak_fraction, len(sentries))):
            length = sum(ep.leak)
            plan[device.key] = Event("leak", base + rng.randrange(1, ep.cycle - length), length,
                                     rng.uniform(*LEAK_PEAK_LEL), rng.uniform(*LEAK_TAIL_LEL))
        # Disjoint from the leaks, so every leak is seen from start to end.
        quiet = [d for d in self.devices if d.key not in plan]
        for device in rng.sample(quiet, min(len(quiet), _count(self.silent_fraction, len(self.devices)))):
            length = rng.randint(*ep.silent)
            plan[device.key] = Event("silent", base + rng.randrange(1, ep.cycle - length), length, math.nan)
        rtus = [d for d in self.devices if d.device_type == "rtu" and d.key not in plan
                and d.pressure_class in NOMINAL_KPA]
        if rtus:
            device = rng.choice(rtus)
            length = sum(ep.excursion)
            assert device.pressure_class is not None  # chosen among the classes of NOMINAL_KPA
            plan[device.key] = Event("excursion", base + rng.randrange(1, ep.cycle - length), length,
                                     self._excursion_peak(rng, device.pressure_class))
        self._plans = {c: p for c, p in self._plans.items() if c >= cycle - 1}  # devices are ±1 visit apart
        self._plans[cycle] = plan
        return plan

    def _excursion_peak(self, rng: random.Random, pressure_class: int) -> float:
        """A pressure beyond the pre-alarm threshold by at least its deadband, kPa."""
        nominal = NOMINAL_KPA[pressure_class]
        direction = "low" if rng.random() < self.episodes.excursion_low_share else "high"
        band = self._bands.get((pressure_class, direction))
        if band is None:  # no rule for this class: 15–20 % off nominal
            return nominal * (1 + (-1 if direction == "low" else 1) * rng.uniform(0.15, 0.2))
        threshold, deadband = band
        beyond = (threshold - nominal) * rng.uniform(0.1, 0.4)  # how far past the threshold
        return threshold + beyond + (deadband if direction == "high" else -deadband)

    def event(self, device: Device, visit: int | None = None) -> Event | None:
        """The episode `device` is in at `visit` (default: its next visit), None in ordinary times."""
        if visit is None:
            visit = self._state[device.key].visits
        planned = self._plan(visit // self.episodes.cycle).get(device.key)
        return planned if planned is not None and planned.step(visit) is not None else None

    def next_reading(self, device: Device, now: datetime) -> dict[str, float] | None:
        """The values `device` reports at its next visit, by measure name (units in the name);
        None while it is silent. No I/O: it advances only this device's visit count and noise stream."""
        state = self._state[device.key]
        visit = state.visits
        state.visits += 1
        rng = state.rng
        # Draw the noise first, always the same draws, so an episode does not shift later values.
        noise = [rng.gauss(0.0, 1.0) for _ in range(4)]
        event = self.event(device, visit)
        if event is not None and event.kind == "silent":
            return None
        local = now.astimezone(UTC) + LOCAL_UTC_OFFSET
        hour = local.hour + local.minute / 60.0
        # Warmest mid-afternoon, coldest before dawn.
        temperature = state.temperature_c + state.swing_c * math.cos(2 * math.pi * (hour - 14.5) / 24.0)
        values: dict[str, float] = {}
        if device.device_type == "rtu":
            values["pressure_kpa"] = self._rtu_pressure(device, visit, event, noise[0])
            values["temperature_c"] = round(temperature + 0.1 * noise[1], 1)
            # Demand: a morning and a larger evening peak over a night-time base.
            demand = (0.55 + 0.35 * math.exp(-((hour - 7.5) / 1.5) ** 2)
                      + 0.5 * math.exp(-((hour - 18.5) / 2.0) ** 2))
            values["flow_m3h"] = round(max(0.0, state.flow_m3h * demand * (1 + 0.03 * noise[2])), 1)
            return values
        values["ch4_lel"] = round(self._methane(state, visit, event, noise[0]), 2)
        nominal = NOMINAL_KPA.get(device.pressure_class) if device.pressure_class is not None else None
        if nominal is not None:
            spread = max(-1.0, min(1.0, noise[1] / 2.5)) * SENTRY_PRESSURE_NOISE
            values["pressure_kpa"] = round(nominal * (1 + spread), 3 if nominal < 10 else 1)
        values["temperature_c"] = round(temperature + 0.2 * noise[2], 1)
        values["battery_v"] = round(state.battery_v - BATTERY_DRAIN_V * visit + 0.003 * noise[3], 3)
        return values

    def _methane(self, state: _DeviceState, visit: int, event: Event | None, noise: float) -> float:
        background = min(BACKGROUND_MAX_LEL, max(0.0, state.zero_lel + 0.25 * noise))
        if event is None or event.kind != "leak":
            return background
        ramp, plateau, fall = self.episodes.leak
        step = event.step(visit)
        assert step is not None  # the event passed in is the one running at this visit
        if step < ramp:
            value = background + (event.peak - background) * (step + 1) / ramp
        elif step < ramp + plateau:
            value = event.peak
        else:
            value = event.peak + (event.tail - event.peak) * (step - ramp - plateau + 1) / fall
        return min(100.0, max(0.0, value * (1 + 0.02 * max(-1.5, min(1.5, noise)))))

    def _rtu_pressure(self, device: Device, visit: int, event: Event | None, noise: float) -> float:
        nominal = NOMINAL_KPA.get(device.pressure_class or 1, NOMINAL_KPA[1])
        value = nominal * (1 + max(-1.0, min(1.0, noise / 2.5)) * RTU_PRESSURE_NOISE)
        if event is not None and event.kind == "excursion":
            ramp, plateau, fall = self.episodes.excursion
            step = event.step(visit)
            assert step is not None  # the event passed in is the one running at this visit
            if step < ramp:
                share = (step + 1) / ramp
            elif step < ramp + plateau:
                share = 1.0
            else:
                share = 1.0 - (step - ramp - plateau + 1) / fall  # back at nominal on its last reading
            value += (event.peak - nominal) * share
        return round(value, 3 if nominal < 10 else 1)

    # ---- publishing ---------------------------------------------------------------------------

    def run(self, duration_s: float | None = None, stop: threading.Event | None = None,
            drain_timeout_s: float = 30.0) -> SimulationReport:
        """Publish at `rate` until `duration_s` seconds have passed or `stop` is set (neither: until
        interrupted), then wait up to `drain_timeout_s` for the broker to acknowledge everything."""
        acked = 0
        lock = threading.Lock()

        def on_publish(_c: mqtt.Client, _u: object, _mid: int, _reason: object, _p: object) -> None:
            nonlocal acked
            with lock:
                acked += 1

        started = time.monotonic()
        # Enough in flight for a couple of seconds at the rate, so PUBACK round trips never throttle it.
        client = connected_publisher(self.broker, self.client_id, max(1000, int(2 * self.rate)), "the simulator",
                                     on_publish)
        try:
            report = self._publish_loop(client, duration_s, stop)
            # Wait for the outstanding acknowledgements (QoS 1): only then are the messages the broker's.
            deadline = time.monotonic() + drain_timeout_s
            while True:
                with lock:
                    done = acked
                if done >= report.published or time.monotonic() > deadline:
                    break
                time.sleep(0.01)
            report.unacknowledged = report.published - done
            report.published = done
        finally:
            client.disconnect()
            client.loop_stop()
        report.seconds = time.monotonic() - started
        return report

    def _publish_loop(self, client: mqtt.Client, duration_s: float | None,
                      stop: threading.Event | None) -> SimulationReport:
        report = SimulationReport(0, [], [], 0.0)
        interval = 1.0 / self.rate
        start = time.monotonic()
        previous_silent: dict[tuple[str, str, str], bool] = {}
        sent = 0   # visits so far, published or silent: the schedule counts visits
        index = 0
        while True:
            due = start + sent * interval
            now_m = time.monotonic()
            if duration_s is not None and now_m - start >= duration_s:
                break
            if stop is not None and stop.is_set():
                break
            if due > now_m:
                if stop is not None:
                    if stop.wait(due - now_m):
                        break
                else:
                    time.sleep(due - now_m)
            elif now_m - due > 1.0:
                # More than a second behind (a stall): start a new schedule rather than burst.
                start, sent = now_m, 0
            device = self.devices[index]
            index = (index + 1) % len(self.devices)
            sent += 1
            visit = self._state[device.key].visits
            event = self.event(device, visit)
            now = self.clock()
            values = self.next_reading(device, now)
            code = device.code
            if event is not None and visit == event.start:
                if event.kind == "leak":
                    report.leaks_started.append(code)
                elif event.kind == "excursion":
                    report.excursions.append(code)
            if values is None:
                windows = report.silences.setdefault(code, [])
                if previous_silent.get(device.key) and windows:
                    windows[-1] = (windows[-1][0], now)
                else:
                    windows.append((now, now))
                    if code not in report.silent:
                        report.silent.append(code)
                previous_silent[device.key] = True
                continue
            previous_silent[device.key] = False
            body = json.dumps({"ts": format_ts(now), "values": values}, separators=(",", ":"))
            info = client.publish(telemetry_topic(device.enterprise_code, device.device_type, code), body, qos=1)
            # Without a connection paho keeps a QoS 1 message and sends it on reconnection: still ours to count.
            if info.rc != MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
                report.published += 1
        return report


def load_simulated_devices(conninfo: str, limit: int | None = None) -> list[Device]:
    """Up to `limit` devices to simulate: every RTU first (by code), then sentries by code."""
    with psycopg.connect(conninfo) as conn:
        devices = list(load_devices(conn).values())
    rtus = sorted((d for d in devices if d.device_type == "rtu"), key=lambda d: (d.code, d.enterprise_code))
    sentries = sorted((d for d in devices if d.device_type == "sentry"), key=lambda d: (d.code, d.enterprise_code))
    chosen = rtus + sentries
    return chosen if limit is None else chosen[:max(0, limit)]
