"""Road routing on a demo city of N pipes (default 100,000): graph build time, route latency.

    .venv/bin/python bench/bench_route.py [--pipes 100000] [--seed 42] [--pairs 200] [--keep]

Loads the demo city into a scratch database `qiwang_bench_route` (embedded cluster, or beside
DATABASE_URL's database; dropped at the end unless --keep), builds the road graph, then times
`route` between random points on pipes and `route_from_nearest_crew_base` to random points on pipes:
median and p95 in ms, each call end to end (cache check query, snapping, A* or Dijkstra, GeoJSON),
and once more with the graph handed in (no cache check).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_load_demo import Steps
from conftest import ThrowawayDatabases

from db import migrate
from demo.city import load_demo
from network_analysis.burst import AnalysisError
from network_analysis.routing import road_graphs, route, route_from_nearest_crew_base

DB = "qiwang_bench_route"


def latency(label: str, calls: list) -> None:
    """Run each call, print median and p95 wall time (ms) and how many failed."""
    times, failed = [], 0
    for call in calls:
        start = time.perf_counter()
        try:
            call()
        except AnalysisError:
            failed += 1
        times.append((time.perf_counter() - start) * 1000)
    print(f"{label:<44}{np.median(times):>9.1f}{np.percentile(times, 95):>9.1f}{len(calls):>7}{failed:>8}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipes", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()

    databases = ThrowawayDatabases()
    url = databases.create(DB)
    try:
        migrate.upgrade(url)
        engine = sa.create_engine(url)
        steps = Steps()
        steps.label = f"load demo city ({args.pipes:,} pipes)"
        load_demo(engine, pipes=args.pipes, seed=args.seed, echo=lambda _: None)
        steps.mark("build road graph (read + vertices + networkx)")
        graph = road_graphs.get(engine)
        steps.mark("end")
        steps.report()
        print(f"road graph: {len(graph.geom):,} roads, {graph.graph.number_of_nodes():,} vertices, "
              f"{graph.graph.number_of_edges():,} directed edges")

        with engine.connect() as conn:
            xy = np.array(conn.execute(sa.text(
                """SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_LineInterpolatePoint(ST_Force2D(geom), random()) AS p
                   FROM pipe ORDER BY random() LIMIT :n) s"""), {"n": 2 * args.pairs}).all())
            bases = conn.execute(sa.text("SELECT count(*) FROM crew_base")).scalar_one()
        pairs = [(tuple(a), tuple(b)) for a, b in zip(xy[: args.pairs], xy[args.pairs:])]
        print(f"\n{'latency over random pipe points':<44}{'median':>9}{'p95':>9}{'calls':>7}{'failed':>8}")
        latency("cache check, graph unchanged (ms)", [lambda: road_graphs.get(engine)] * 50)
        latency("route (ms)", [lambda a=a, b=b: route(engine, a, b) for a, b in pairs])
        latency("route, graph given (ms)", [lambda a=a, b=b: route(engine, a, b, graph=graph) for a, b in pairs])
        latency(f"nearest of {bases} crew bases + route (ms)",
                [lambda b=b: route_from_nearest_crew_base(engine, b) for _, b in pairs])
        engine.dispose()
    finally:
        if not args.keep:
            databases.drop(DB)


if __name__ == "__main__":
    main()
