"""Radius query latency: random points inside the network's extent, R = 200 m; median and p95 (ms).

    .venv/bin/python bench/bench_radius.py [--pipes 1000000] [--seed 42] [--queries 1000] [--radius 200]
                                           [--url URL] [--keep]

Without --url, loads a demo city of --pipes pipes into a scratch database `qiwang_bench_radius`
(embedded cluster, or beside DATABASE_URL's database) the way bench_load_demo.py does, and drops it
at the end unless --keep. With --url, queries that database as it is (it must hold a network).
Latency is wall time of one `network_analysis.radius.near` call (SQL round trip and Python), one
connection, after 50 warm-up queries. Target: p95 ≤ 20 ms.
"""
from __future__ import annotations

import argparse
import statistics
import time

import bench_load_demo as loader  # its path set-up, scratch databases, migrations and demo loader
import numpy as np
import sqlalchemy as sa

from network_analysis.radius import near  # importable once bench_load_demo has set sys.path

DATABASE = "qiwang_bench_radius"
WARM_UP = 50


def load(pipes: int, seed: int) -> tuple[loader.ThrowawayDatabases, str]:
    databases = loader.ThrowawayDatabases()
    url = databases.create(DATABASE)
    loader.migrate.upgrade(url)
    engine = sa.create_engine(url)
    start = time.perf_counter()
    loader.load_demo(engine, pipes=pipes, seed=seed, echo=lambda _: None)
    engine.dispose()
    print(f"loaded a demo city of {pipes:,} pipes (seed {seed}) in {time.perf_counter() - start:.1f} s")
    return databases, url


def run(url: str, queries: int, radius: float, seed: int) -> None:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        pipes = conn.execute(sa.text("SELECT count(*) FROM pipe")).scalar_one()
        x0, y0, x1, y1 = conn.execute(sa.text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(geom) e FROM pipe) s")).one()
        rng = np.random.default_rng(seed)
        points = np.column_stack([rng.uniform(x0, x1, queries + WARM_UP), rng.uniform(y0, y1, queries + WARM_UP)])
        latencies, features = [], []
        for i, (x, y) in enumerate(points):
            start = time.perf_counter()
            result = near(conn, float(x), float(y), radius)
            elapsed = time.perf_counter() - start
            if i >= WARM_UP:
                latencies.append(elapsed * 1000)
                features.append(sum(result["counts"].values()))
    engine.dispose()
    ms = np.array(latencies)
    print(f"network: {pipes:,} pipes, extent {x1 - x0:,.0f} × {y1 - y0:,.0f} m (EPSG:4550)")
    print(f"{queries:,} radius queries, R = {radius:g} m, random points in the extent:")
    print(f"  latency ms: median {np.median(ms):.2f}, p95 {np.percentile(ms, 95):.2f}, "
          f"p99 {np.percentile(ms, 99):.2f}, max {ms.max():.2f}   (target p95 ≤ 20 ms)")
    print(f"  features within R per query: mean {statistics.fmean(features):.1f}, "
          f"median {statistics.median(features):g}, max {max(features)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipes", type=int, default=1_000_000, help="size of the demo city to load")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--radius", type=float, default=200.0, help="metres")
    parser.add_argument("--url", help="query this database instead of loading a demo city")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()

    databases, url = (None, args.url) if args.url else load(args.pipes, args.seed)
    try:
        run(url, args.queries, args.radius, args.seed)
    finally:
        if databases and not args.keep:
            databases.drop(DATABASE)


if __name__ == "__main__":
    main()
