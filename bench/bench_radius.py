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

import functools
import statistics
from contextlib import nullcontext

import harness  # first: puts the checkout on sys.path
import numpy as np
import sqlalchemy as sa

from db.catalog import storage_srid
from network_analysis.radius import near

DATABASE = "qiwang_bench_radius"
WARM_UP = 50


def run(url: str, queries: int, radius: float, seed: int) -> None:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        srid = storage_srid(conn)
        pipes = conn.execute(sa.text("SELECT count(*) FROM pipe")).scalar_one()
        x0, y0, x1, y1 = conn.execute(sa.text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(geom) e FROM pipe) s")).one()
        rng = np.random.default_rng(seed)
        points = np.column_stack([rng.uniform(x0, x1, queries + WARM_UP), rng.uniform(y0, y1, queries + WARM_UP)])
        latencies, features = [], []
        for i, (x, y) in enumerate(points):
            elapsed, result = harness.timed(functools.partial(near, conn, float(x), float(y), radius))
            if i >= WARM_UP:
                latencies.append(elapsed)
                features.append(sum(result["counts"].values()))
    engine.dispose()
    ms = harness.Summary.of(latencies)
    print(f"network: {pipes:,} pipes, extent {x1 - x0:,.0f} × {y1 - y0:,.0f} m (EPSG:{srid})")
    print(f"{queries:,} radius queries, R = {radius:g} m, random points in the extent:")
    print(f"  latency ms: median {ms.median:.2f}, p95 {ms.p95:.2f}, p99 {ms.p99:.2f}, max {ms.max:.2f}   "
          "(target p95 ≤ 20 ms)")
    print(f"  features within R per query: mean {statistics.fmean(features):.1f}, "
          f"median {statistics.median(features):g}, max {max(features)}")


def main() -> None:
    parser = harness.bench_arguments(__doc__, pipes=1_000_000, seed=42, keep="keep the scratch database",
                                     pipes_help="size of the demo city to load")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--radius", type=float, default=200.0, help="metres")
    parser.add_argument("--url", help="query this database instead of loading a demo city")
    args = parser.parse_args()

    with (nullcontext(args.url) if args.url else
          harness.demo_city(harness.ThrowawayDatabases(), DATABASE, args.pipes, args.seed, keep=args.keep)) as url:
        run(url, args.queries, args.radius, args.seed)

if __name__ == "__main__":
    main()
