"""Telemetry ingest benchmark: sustained end-to-end throughput and alarm latency.

    .venv/bin/python bench/bench_ingest.py [--readings 200000] [--publishers 2] [--alarms 100]

Real mosquitto, real PostgreSQL (a scratch database with the demo city in the embedded cluster),
the ingest as `./qiwang ingest mqtt` runs it (MqttSource + Pipeline, acknowledgements after commit).

1. Throughput: publisher processes send QoS 1 readings as fast as the broker takes them; the
   figure is readings stored per second, from the first publish to the last reading committed.
   Baseline in the same run: the same publishers to a bare subscriber that only counts (what
   mosquitto + paho carry on this machine), so the ratio says what storing costs.
2. Alarm latency: while a background stream runs, a leak reading (30 %LEL) is published for one
   sentry at a time; latency = publish → the alarm message arriving on the alarm topic (which the
   ingest publishes only after the alarm row has committed). Median and p95.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import paho.mqtt.client as mqtt  # noqa: E402
import psycopg  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

from ingest.telemetry.broker import LocalBroker  # noqa: E402
from ingest.telemetry.mqtt import MqttSource  # noqa: E402
from ingest.telemetry.payload import telemetry_topic  # noqa: E402
from ingest.telemetry.pipeline import Pipeline  # noqa: E402
from ingest.telemetry.rules import load_rules  # noqa: E402

DB_NAME = "qiwang_bench_ingest"


def scratch_database(pipes: int) -> str:
    from ingest.demo_city import load_demo
    from spatial import migrate
    from spatial.cluster import EmbeddedCluster

    cluster = EmbeddedCluster(Path(__file__).resolve().parent.parent)
    cluster.up()
    cluster.drop_database(DB_NAME)
    url = cluster.create_database(DB_NAME)
    migrate.upgrade(url)
    engine = sa.create_engine(url, poolclass=NullPool)
    load_demo(engine, pipes=pipes, seed=11, echo=lambda _: None)
    engine.dispose()
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def publish_process(port: int, devices: list[tuple[str, str, str]], start: str, offset: int, count: int,
                    stride: int, ready: mp.Event, go: mp.Event, done: mp.Queue) -> None:
    """Publish `count` readings (QoS 1): device i gets ts = start + k ms, k = offset, offset+stride, …"""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{offset}")
    client.max_inflight_messages_set(5000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    t0 = datetime.fromisoformat(start)
    messages = []
    for n in range(count):
        k = offset + n * stride
        device = devices[k % len(devices)]
        ts = t0 + timedelta(milliseconds=k // len(devices))
        body = json.dumps({"ts": ts.isoformat().replace("+00:00", "Z"),
                           "values": {"ch4_lel": 0.5 + (k % 10) / 10, "battery_v": 3.6, "temperature_c": 8.5}})
        messages.append((telemetry_topic(*device), body.encode()))
    ready.set()
    go.wait()
    infos = [client.publish(topic, body, qos=1) for topic, body in messages]
    for info in infos:
        info.wait_for_publish(300)
    done.put(time.time())
    client.disconnect()
    client.loop_stop()


def run_publishers(port: int, devices, n: int, publishers: int, start: datetime) -> float:
    """Start the publisher processes, release them together; returns the wall-clock start (time.time())."""
    ctx = mp.get_context("spawn")
    go, done = ctx.Event(), ctx.Queue()
    readies, procs = [], []
    for p in range(publishers):
        ready = ctx.Event()
        proc = ctx.Process(target=publish_process, args=(port, devices, start.isoformat(), p, n // publishers,
                                                         publishers, ready, go, done), daemon=True)
        proc.start()
        readies.append(ready)
        procs.append(proc)
    for ready in readies:
        ready.wait(120)
    began = time.time()
    go.set()
    run_publishers.procs = procs  # joined by the caller's wait
    return began


def baseline(broker: LocalBroker, devices, n: int, publishers: int) -> float:
    """Readings per second through mosquitto to a subscriber that only counts (QoS 1, auto ack)."""
    received = 0
    finished = threading.Event()

    def on_message(client, userdata, msg) -> None:
        nonlocal received
        received += 1
        if received >= n:
            finished.set()

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-baseline", clean_session=True)
    sub.on_message = on_message
    sub.connect("127.0.0.1", broker.port)
    sub.subscribe("qiwang/+/+/+/telemetry", qos=1)
    sub.loop_start()
    time.sleep(0.5)
    began = run_publishers(broker.port, devices, n, publishers, datetime.now(timezone.utc) - timedelta(days=1))
    finished.wait(600)
    elapsed = time.time() - began
    sub.disconnect()
    sub.loop_stop()
    for proc in run_publishers.procs:
        proc.join(60)
    return received / elapsed


def throughput(info: str, broker: LocalBroker, devices, n: int, publishers: int) -> tuple[float, Pipeline, MqttSource]:
    pipeline = Pipeline(info, load_rules(), offline_check=False).start()
    source = MqttSource(broker.address, pipeline.submit, client_id="bench-ingest").start()
    pipeline.on_alarm = source.publish_alarm
    source.connected.wait(10)
    time.sleep(0.5)
    began = run_publishers(broker.port, devices, n, publishers, datetime.now(timezone.utc) - timedelta(hours=6))
    while pipeline.stats.stored + pipeline.stats.duplicates < n:
        time.sleep(0.05)
    elapsed = time.time() - began
    for proc in run_publishers.procs:
        proc.join(60)
    return pipeline.stats.stored / elapsed, pipeline, source


def alarm_latency(pipeline: Pipeline, source: MqttSource, broker: LocalBroker, sentries, alarms: int,
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
    listener.on_message = on_alarm
    listener.connect("127.0.0.1", broker.port)
    listener.subscribe("qiwang/+/alarms/#", qos=1)
    listener.loop_start()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-leaks")
    pub.max_inflight_messages_set(5000)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    background = sentries[alarms:]
    stop = threading.Event()

    def stream() -> None:
        k, t_next = 0, time.perf_counter()
        base = datetime.now(timezone.utc) - timedelta(hours=1)
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
            {"ts": datetime.now(timezone.utc).isoformat(), "values": {"ch4_lel": 30.0}}), qos=1)
        if event.wait(10) and device[2] in arrived:
            latencies.append(arrived[device[2]] - sent)
        time.sleep(0.05)
    stop.set()
    streamer.join(5)
    listener.loop_stop()
    pub.loop_stop()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=200_000)
    parser.add_argument("--publishers", type=int, default=2)
    parser.add_argument("--alarms", type=int, default=100)
    parser.add_argument("--background-rate", type=float, default=2000.0, help="readings/s during the alarm test")
    parser.add_argument("--pipes", type=int, default=20_000, help="demo city size (devices to spread readings over)")
    args = parser.parse_args()

    info = scratch_database(args.pipes)
    with psycopg.connect(info) as conn:
        devices = conn.execute("SELECT enterprise_code, device_type, code FROM telemetry_device "
                               "WHERE device_type = 'sentry' ORDER BY code").fetchall()
    print(f"scratch database {DB_NAME}: {len(devices):,} sentries; {args.readings:,} readings, "
          f"{args.publishers} publisher processes, QoS 1")
    with LocalBroker(Path(tempfile.mkdtemp(prefix="qiwang-bench-mqtt-"))) as broker:
        base = baseline(broker, devices, args.readings, args.publishers)
        print(f"baseline  mosquitto → counting subscriber: {base:,.0f} messages/s")
        rate, pipeline, source = throughput(info, broker, devices, args.readings, args.publishers)
        stats = pipeline.stats
        print(f"ingest    publish → stored (committed):   {rate:,.0f} readings/s "
              f"({rate / base:.2f} × baseline; {stats.batches} batches, mean {stats.stored / max(stats.batches, 1):,.0f}"
              f" readings per batch; stored {stats.stored:,}, duplicates {stats.duplicates:,})")
        latencies = alarm_latency(pipeline, source, broker, devices, args.alarms, args.background_rate)
        source.stop()
        pipeline.stop()
    if latencies:
        ms = sorted(1000 * x for x in latencies)
        p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
        print(f"alarm     publish → alarm on MQTT (row committed), {len(ms)} leaks under "
              f"{args.background_rate:,.0f} readings/s: median {statistics.median(ms):.0f} ms, p95 {p95:.0f} ms, "
              f"max {ms[-1]:.0f} ms")
    else:
        print("alarm     no alarm arrived")


if __name__ == "__main__":
    main()
