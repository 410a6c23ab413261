"""Telemetry ingest benchmark: sustained end-to-end throughput and alarm latency.

    .venv/bin/python bench/bench_ingest.py [--readings 200000] [--devices 40] [--rounds 3] [--alarms 100]

Real mosquitto, real PostgreSQL (a scratch database `qiwang_bench_ingest` with the demo city, in the
embedded cluster or beside DATABASE_URL's database, dropped at the end), the ingest as
`./qiwang ingest mqtt` runs it (MqttProcessSource + Pipeline: the MQTT client in a process of its
own, acknowledgements after commit).

1. Throughput: devices (one mosquitto_pub each, QoS 1) send readings as fast as the broker takes
   them; the figure is readings stored per second, from the first publish to the last reading
   committed; the median over --rounds rounds. Baseline in the same rounds: the same publishers to
   mosquitto_sub, which only counts (what the broker carries on this machine), so the ratio says
   what the ingest costs.
2. Alarm latency: while a background stream runs, a leak reading (30 %LEL) is published for one
   sentry at a time; latency = publish → the alarm message arriving on the alarm topic (which the
   ingest publishes only after the alarm row has committed). Median and p95.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import harness  # first: puts the checkout on sys.path
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy.engine import make_url

from telemetry.broker import ANY_ENTERPRISE, DISPATCH_USER, BrokerAddress, LocalBroker
from telemetry.mqtt_process import MqttProcessSource
from telemetry.payload import telemetry_topic
from telemetry.pipeline import Pipeline
from telemetry.rules import load_rules

BENCH_GATEWAY = "bench-gateway"   # one head-end account for every simulated device
DB_NAME = "qiwang_bench_ingest"
DEMO_SEED = 11


def write_streams(devices, n: int, n_devices: int, start: datetime, folder: Path) -> list[tuple[str, Path]]:
    """One file of JSON lines per device (n_devices devices share n readings, 1 ms apart)."""
    streams = []
    per_device = n // n_devices
    for d, device in enumerate(devices[:n_devices]):
        path = folder / f"stream-{d}.jsonl"
        with open(path, "w") as out:
            for k in range(per_device):
                ts = start + timedelta(milliseconds=k)
                out.write(json.dumps({"ts": ts.isoformat().replace("+00:00", "Z"),
                                      "values": {"ch4_lel": 0.5 + (k % 10) / 10, "battery_v": 3.6,
                                                 "temperature_c": 8.5}}) + "\n")
        streams.append((telemetry_topic(*device), path))
    return streams


def account_options(address: BrokerAddress) -> list[str]:
    """mosquitto_pub/_sub options for an account: host, port, user and password (anonymous is refused)."""
    return ["-h", address.host, "-p", str(address.port), "-u", address.username or "", "-P", address.password or ""]


def run_publishers(broker: LocalBroker, streams: list[tuple[str, Path]]) -> tuple[float, list[subprocess.Popen]]:
    """One mosquitto_pub per device (a C client, QoS 1, a message per line), all started together:
    the load is what independent devices send, not what one Python client can produce."""
    began = time.time()
    gateway = account_options(broker.account(BENCH_GATEWAY))
    procs = [subprocess.Popen(["mosquitto_pub", *gateway, "-q", "1", "-t", topic,
                               "-i", f"bench-device-{i}", "-l"], stdin=open(path, "rb"))
             for i, (topic, path) in enumerate(streams)]
    return began, procs


def baseline(broker: LocalBroker, streams) -> float:
    """Messages per second through mosquitto to mosquitto_sub (QoS 1), which only counts them."""
    n = sum(1 for _, path in streams for _ in open(path))
    sub = subprocess.Popen(["mosquitto_sub", *account_options(broker.ingest), "-q", "1",
                            "-t", "qiwang/+/+/+/telemetry", "-C", str(n)], stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    began, procs = run_publishers(broker, streams)
    sub.wait(600)
    elapsed = time.time() - began
    for proc in procs:
        proc.wait(60)
    return n / elapsed


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process (/proc/PID/stat, clock ticks)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[int, int]:
    """(busy, total) CPU jiffies of the whole machine since boot, from /proc/stat."""
    fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    idle = fields[3] + fields[4]            # idle + iowait
    return sum(fields) - idle, sum(fields)


def discard_session(broker: LocalBroker, client_id: str) -> None:
    """End the persistent session of `client_id`: otherwise the broker keeps queueing every later
    round's messages for it (a clean-session connection under the same id discards it)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    broker.ingest.authenticate(client)
    client.connect("127.0.0.1", broker.port)
    client.disconnect()


def throughput(info: str, broker: LocalBroker, streams, client_id: str) -> tuple[float, Pipeline, MqttProcessSource]:
    n = sum(1 for _, path in streams for _ in open(path))
    pipeline = Pipeline(info, load_rules(), offline_check=False).start()
    source = MqttProcessSource(broker.ingest, pipeline.submit, client_id=client_id).start()
    pipeline.on_alarm = source.publish_alarm
    source.connected.wait(10)
    time.sleep(0.5)
    child = source.pid
    assert child is not None, "the MQTT process has started"
    cpu_before, child_before, machine_before = os.times(), process_cpu_s(child), machine_busy()
    began, procs = run_publishers(broker, streams)
    while pipeline.stats.stored + pipeline.stats.duplicates < n:
        time.sleep(0.02)
    elapsed = time.time() - began
    cpu_after, child_after, machine_after = os.times(), process_cpu_s(child), machine_busy()
    writer_cpu = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    mqtt_cpu = child_after - child_before
    cpu = writer_cpu + mqtt_cpu
    for proc in procs:
        proc.wait(60)
    busy = (machine_after[0] - machine_before[0]) / (machine_after[1] - machine_before[1])
    print(f"          ingest CPU: {cpu:.1f} s in {elapsed:.1f} s (writer process {writer_cpu:.1f} s, MQTT process "
          f"{mqtt_cpu:.1f} s; {cpu / elapsed:.2f} cores; "
          f"{1e6 * cpu / n:.0f} µs per reading); whole machine {busy:.0%} busy over {os.cpu_count()} cores")
    return pipeline.stats.stored / elapsed, pipeline, source


def alarm_latency(pipeline: Pipeline, source: MqttProcessSource, broker: LocalBroker, sentries, alarms: int,
                  background_rate: float) -> list[float]:
    """Publish → alarm message on qiwang/+/alarms/#, one leak at a time, under a background stream."""
    arrived: dict[str, float] = {}
    event = threading.Event()

    def on_alarm(client, userdata, msg) -> None:
        body = json.loads(msg.payload)
        if body["action"] == "raised":
            arrived[body["device_code"]] = time.perf_counter()
            event.set()

    listener = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-alarm-listener")
    broker.account(DISPATCH_USER).authenticate(listener)
    listener.on_message = on_alarm
    listener.connect("127.0.0.1", broker.port)
    listener.subscribe("qiwang/+/alarms/#", qos=1)
    listener.loop_start()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-leaks")
    pub.max_inflight_messages_set(5000)
    broker.account(BENCH_GATEWAY).authenticate(pub)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    background = sentries[alarms:]
    stop = threading.Event()

    def stream() -> None:
        k, t_next = 0, time.perf_counter()
        base = datetime.now(UTC) - timedelta(hours=1)
        while not stop.is_set():
            device = background[k % len(background)]
            ts = base + timedelta(milliseconds=k)
            pub.publish(telemetry_topic(*device), json.dumps(
                {"ts": ts.isoformat(), "values": {"ch4_lel": 0.4, "battery_v": 3.6}}), qos=1)
            k += 1
            t_next += 1 / background_rate
            delay = t_next - time.perf_counter()
            if delay > 0:
                time.sleep(delay)

    streamer = threading.Thread(target=stream, daemon=True)
    streamer.start()
    time.sleep(2)
    latencies = []
    for device in sentries[:alarms]:
        event.clear()
        sent = time.perf_counter()
        pub.publish(telemetry_topic(*device), json.dumps(
            {"ts": datetime.now(UTC).isoformat(), "values": {"ch4_lel": 30.0}}), qos=1)
        if event.wait(10) and device[2] in arrived:
            latencies.append(arrived[device[2]] - sent)
        time.sleep(0.05)
    stop.set()
    streamer.join(5)
    listener.loop_stop()
    pub.loop_stop()
    return latencies


def main() -> None:
    parser = harness.bench_arguments(__doc__, pipes=20_000,
                                     pipes_help="demo city size (devices to spread readings over)")
    parser.add_argument("--readings", type=int, default=200_000)
    parser.add_argument("--devices", type=int, default=40, help="devices publishing at once (one mosquitto_pub each)")
    parser.add_argument("--alarms", type=int, default=100)
    parser.add_argument("--background-rate", type=float, default=2000.0, help="readings/s during the alarm test")
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds (baseline and ingest each round)")
    args = parser.parse_args()

    with harness.demo_city(harness.ThrowawayDatabases(), DB_NAME, args.pipes, DEMO_SEED) as url:
        measure(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False), args)


def measure(info: str, args: Any) -> None:
    """The throughput rounds and the alarm latency on the database at `info` (a libpq URL)."""
    with psycopg.connect(info) as conn:
        devices = conn.execute("SELECT enterprise_code, device_type, code FROM telemetry_device "
                               "WHERE device_type = 'sentry' ORDER BY code").fetchall()
    print(f"scratch database {DB_NAME}: {len(devices):,} sentries; {args.readings:,} readings from "
          f"{args.devices} devices at once (mosquitto_pub, QoS 1)")
    folder = Path(tempfile.mkdtemp(prefix="qiwang-bench-streams-"))
    bases, rates = [], []
    with LocalBroker(Path(tempfile.mkdtemp(prefix="qiwang-bench-mqtt-")),
                     gateways={BENCH_GATEWAY: [ANY_ENTERPRISE]}) as broker:
        for round_ in range(1, args.rounds + 1):
            # Fresh timestamps every time: each round stores new readings, none is a duplicate.
            start = datetime.now(UTC) - timedelta(hours=6 * round_)
            bases.append(baseline(broker, write_streams(devices, args.readings, args.devices,
                                                        start - timedelta(hours=3), folder)))
            client_id = f"bench-ingest-{round_}"
            rate, pipeline, source = throughput(info, broker, write_streams(devices, args.readings, args.devices,
                                                                            start, folder), client_id)
            rates.append(rate)
            stats = pipeline.stats
            print(f"round {round_}: baseline mosquitto_pub → mosquitto → mosquitto_sub {bases[-1]:,.0f} messages/s; "
                  f"ingest publish → stored (committed) {rate:,.0f} readings/s ({rate / bases[-1]:.2f} ×; "
                  f"{stats.batches} batches of {stats.stored / max(stats.batches, 1):,.0f} on average; "
                  f"stored {stats.stored:,}, duplicates {stats.duplicates:,})")
            if round_ < args.rounds:
                source.stop()
                pipeline.stop()
                discard_session(broker, client_id)
        print(f"baseline  mosquitto_pub → mosquitto → mosquitto_sub: median {statistics.median(bases):,.0f} "
              f"messages/s over {args.rounds} rounds (min {min(bases):,.0f}, max {max(bases):,.0f})")
        print(f"ingest    publish → stored (committed):   median {statistics.median(rates):,.0f} readings/s "
              f"(min {min(rates):,.0f}, max {max(rates):,.0f}; "
              f"{statistics.median(rates) / statistics.median(bases):.2f} × the baseline median)")
        latencies = alarm_latency(pipeline, source, broker, devices, args.alarms, args.background_rate)
        source.stop()
        pipeline.stop()
    if latencies:
        ms = harness.Summary.of(latencies)
        print(f"alarm     publish → alarm on MQTT (row committed), {ms.n} leaks under "
              f"{args.background_rate:,.0f} readings/s: median {ms.median:.0f} ms, p95 {ms.p95:.0f} ms, "
              f"max {ms.max:.0f} ms")
    else:
        print("alarm     no alarm arrived")


if __name__ == "__main__":
    main()
