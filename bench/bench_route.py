"""Road routing on a demo city of N pipes (default 100,000): graph build time, route latency.

    .venv/bin/python bench/bench_route.py [--pipes 100000] [--seed 42] [--pairs 200] [--keep]

Loads the demo city into a scratch database `qiwang_bench_route` (embedded cluster, or beside
DATABASE_URL's database; dropped at the end unless --keep), builds the road graph, then times
`route` between random points on pipes and `route_from_nearest_crew_base` to random points on pipes:
median and p95 in ms, each call end to end (cache check query, snapping, A* or Dijkstra, GeoJSON),
and once more with the graph handed in (no cache check).
"""
from __future__ import annotations

import functools
import time
from collections.abc import Callable

import harness  # first: puts the checkout on sys.path
import sqlalchemy as sa

from core.errors import QiwangError
from network_analysis.routing import road_graphs, route, route_from_nearest_crew_base

DB = "qiwang_bench_route"


def latency(label: str, calls: list[Callable[[], object]]) -> None:
    """Run each call, print median and p95 wall time (ms) and how many failed."""
    times, failed = [], 0
    for call in calls:
        start = time.perf_counter()
        try:
            call()
        except QiwangError:  # no road within reach, no path: counted, not timed away
            failed += 1
        times.append(time.perf_counter() - start)
    ms = harness.Summary.of(times)
    print(f"{label:<44}{ms.median:>9.1f}{ms.p95:>9.1f}{len(calls):>7}{failed:>8}")


def main() -> None:
    parser = harness.bench_arguments(__doc__, pipes=100_000, seed=42, keep="keep the scratch database")
    parser.add_argument("--pairs", type=int, default=200)
    args = parser.parse_args()

    steps = harness.Steps()
    steps.label = f"schema + load demo city ({args.pipes:,} pipes)"
    with harness.demo_city(harness.ThrowawayDatabases(), DB, args.pipes, args.seed, keep=args.keep,
                           echo=lambda _: None) as url:
        engine = sa.create_engine(url)
        try:
            run(engine, steps, args.pairs)
        finally:
            engine.dispose()


def run(engine: sa.Engine, steps: harness.Steps, pairs: int) -> None:
    """Build the road graph (the last of `steps`), then time `pairs` routes each way."""
    steps.mark("build road graph (read + vertices + networkx)")
    graph = road_graphs.get(engine)
    steps.mark("end")
    steps.report()
    print(f"road graph: {len(graph.geom):,} roads, {graph.graph.number_of_nodes():,} vertices, "
          f"{graph.graph.number_of_edges():,} directed edges")

    with engine.connect() as conn:
        xy: list[tuple[float, float]] = [(x, y) for x, y in conn.execute(sa.text(
            """SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_LineInterpolatePoint(ST_Force2D(geom), random()) AS p
               FROM pipe ORDER BY random() LIMIT :n) s"""), {"n": 2 * pairs})]
        bases = conn.execute(sa.text("SELECT count(*) FROM crew_base")).scalar_one()
    ends = list(zip(xy[:pairs], xy[pairs:], strict=False))
    print(f"\n{'latency over random pipe points':<44}{'median':>9}{'p95':>9}{'calls':>7}{'failed':>8}")
    latency("cache check, graph unchanged (ms)", [lambda: road_graphs.get(engine)] * 50)
    latency("route (ms)", [functools.partial(route, engine, a, b) for a, b in ends])
    latency("route, graph given (ms)", [functools.partial(route, engine, a, b, graph=graph) for a, b in ends])
    latency(f"nearest of {bases} crew bases + route (ms)",
            [functools.partial(route_from_nearest_crew_base, engine, b) for _, b in ends])

if __name__ == "__main__":
    main()
