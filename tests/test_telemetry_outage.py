"""The database stopped for 30 s in the middle of a telemetry stream: nothing is lost.

The test runs a PostgreSQL cluster of its own (the shared one must stay up for the other tests),
streams readings through a real mosquitto into the ingest, stops the cluster (fast shutdown: open
transactions are rolled back) for 30 s, starts it again, and checks every reading is stored once.
"""
from __future__ import annotations

import shutil
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool
from telemetry_support import (
    TEST_GATEWAY,
    base_time,
    conninfo,
    count,
    devices,
    local_broker,
    publish_readings,
    publisher,
    start_ingest,
    wait_until,
)

from db import migrate
from db.cluster import EmbeddedCluster
from demo.city import load_demo

OUTAGE_S = 30.0


@pytest.fixture(scope="module")
def own_cluster():
    root = Path(tempfile.mkdtemp(prefix="qiwang-outage-"))
    root.chmod(0o755)  # the postgres user must reach ./var under it
    cluster = EmbeddedCluster(root)
    cluster.up()
    url = cluster.url()
    migrate.upgrade(url)
    engine = sa.create_engine(url, poolclass=NullPool)
    load_demo(engine, pipes=300, seed=3, echo=lambda _: None)
    engine.dispose()
    yield cluster, conninfo(url)
    cluster.down()
    shutil.rmtree(cluster.base_dir, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)


def test_database_stopped_for_30_s_loses_nothing(own_cluster):
    cluster, info = own_cluster
    sentries = devices(info, limit=10)
    t0 = base_time()
    seconds = 60
    readings = [(device, t0 + timedelta(seconds=i), {"ch4_lel": 0.1 * (i % 7), "battery_v": 3.6})
                for i in range(seconds) for device in sentries]

    with local_broker() as broker:
        ingest = start_ingest(info, broker.ingest, client_id="outage-ingest")
        client = publisher(broker.account(TEST_GATEWAY), client_id="outage-publisher")
        published = threading.Event()

        def stream() -> None:
            # 10 readings every 0.75 s: the stream runs on through the outage (≈ 45 s in all)
            for second in range(seconds):
                publish_readings(client, readings[second * 10:(second + 1) * 10])
                time.sleep(0.75)
            published.set()

        sender = threading.Thread(target=stream, daemon=True)
        sender.start()
        try:
            wait_until(lambda: count(info, "SELECT count(*) FROM reading") >= 50, 30, "the first readings")
            cluster.down()
            stopped_at = time.monotonic()
            time.sleep(OUTAGE_S)
            retries_during_outage = ingest.pipeline.stats.database_retries
            cluster.up()
            outage = time.monotonic() - stopped_at
            assert published.wait(120), "the publisher did not finish"
            wait_until(lambda: count(info, "SELECT count(*) FROM reading") == len(readings), 120,
                       lambda: f"{len(readings)} readings: {count(info, 'SELECT count(*) FROM reading')} stored")
            ingest.pipeline.wait_idle(30)
        finally:
            ingest.stop()
            client.loop_stop()

    assert outage >= OUTAGE_S
    assert retries_during_outage >= 10            # the writer kept the batch and tried again meanwhile
    with psycopg.connect(info) as conn:
        stored = conn.execute("SELECT device_code, ts FROM reading ORDER BY 1, 2").fetchall()
        assert conn.execute("SELECT count(*) FROM reading_quarantine").fetchone()[0] == 0
    assert stored == sorted((device[2], ts) for device, ts, _ in readings)
