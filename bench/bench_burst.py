"""Burst analysis at city scale: topology build, 1,000 random bursts against a naive flood, criticality.

    .venv/bin/python bench/bench_burst.py [--pipes 1000000] [--bursts 1000] [--reuse]

Loads the demo city of N pipes into the scratch database `qiwang_bench` (as bench_load_demo.py does;
--reuse keeps one already loaded with the same N), then prints:
- topology + segment build time and peak memory of this process;
- burst latency, median and p95, over random pipes: the analysis on indices with the JSON report
  (no geometry), and the full API call with sensitive sites, outage area and GeoJSON;
- the same bursts with a naive flood (dry pipes by flooding the whole pipe graph from the sources
  once the isolation is cut out) as the baseline, and the speed ratio;
- criticality of every segment and valve.
"""
from __future__ import annotations

import functools

import harness  # first: puts the checkout on sys.path
import numpy as np
import psutil
import sqlalchemy as sa

from network_analysis.api import burst_analysis, report
from network_analysis.burst import BurstResult, analyse_burst, isolate
from network_analysis.criticality import criticality
from network_analysis.model import load_model
from network_analysis.topology import Topology

DATABASE = "qiwang_bench"


def percentiles(seconds: list[float]) -> str:
    return harness.Summary.of(seconds).text(median="8.2f", p95="8.2f", max="8.1f")


def analyse_and_report(topo: Topology, pipe: int) -> BurstResult:
    """Ours: the burst on indices and its JSON report (no geometry)."""
    result = analyse_burst(topo, pipe)
    report(topo, result)
    return result


def naive_burst(topo: Topology, pipe: int) -> np.ndarray:
    """What a straightforward tool does: isolate by walking to the valves, then flood the whole
    network from the sources to see what is still fed. Returns the dry pipes."""
    iso = isolate(topo, pipe)
    pipes = np.fromiter(iso.pieces, np.int64, len(iso.pieces))
    nodes = np.fromiter(iso.nodes, np.int64, len(iso.nodes))
    _, lost_pipes = topo.pipe_level_unsupplied(nodes, pipes)
    return lost_pipes


def main() -> None:
    parser = harness.bench_arguments(__doc__, pipes=1_000_000, seed=42, reuse=DATABASE)
    parser.add_argument("--bursts", type=int, default=1000)
    parser.add_argument("--geometry-bursts", type=int, default=200, help="bursts for the full API call")
    args = parser.parse_args()

    with harness.demo_city(harness.ThrowawayDatabases(), DATABASE, args.pipes, args.seed, reuse=args.reuse) as url:
        engine = sa.create_engine(url)
        try:
            run(engine, args.bursts, args.geometry_bursts)
        finally:
            engine.dispose()


def run(engine: sa.Engine, bursts: int, geometry_bursts: int) -> None:
    """Topology build, `bursts` random bursts against the naive flood, `geometry_bursts` API calls,
    the worst burst and criticality, on the network in `engine`'s database."""
    steps = harness.Steps()
    steps.label = "read the network (COPY from PostGIS)"
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
        model = load_model(conn)
    steps.mark("build topology, segments, dominator tree")
    topo = Topology(model)
    steps.mark("end")
    steps.report()
    rss = psutil.Process().memory_info().rss / 2**30
    print(f"{model.n_pipes:,} pipes, {model.n_nodes:,} nodes, {len(model.valve_id):,} valves, "
          f"{topo.n_segments:,} segments; resident memory now {rss:.2f} GB")

    rng = np.random.default_rng(7)
    sample = rng.choice(model.n_pipes, bursts, replace=False)
    paired = harness.Paired()
    methods: dict[str, int] = {}
    for pipe in sample.tolist():
        result, naive_dry = paired.time(functools.partial(analyse_and_report, topo, pipe),
                                        functools.partial(naive_burst, topo, pipe))
        methods[result.dry_method] = methods.get(result.dry_method, 0) + 1
        assert np.array_equal(naive_dry, result.dry_pipes), f"dry pipes differ on pipe {pipe}"
    print(f"burst, no geometry ({bursts} random pipes):   {percentiles(paired.ours)}   dry area by {methods}")
    print(f"naive flood baseline (same bursts): {percentiles(paired.baseline)}")
    print(f"speed ratio naive / ours: median {paired.ratio('median'):,.0f}×, "
          f"p95 {paired.ratio('p95'):,.0f}×  (dry pipes identical in every burst)")

    codes = model.pipe_code[sample[:geometry_bursts]]
    full = [harness.timed(functools.partial(burst_analysis, engine, pipe=code, topology=topo, geometry=True))[0]
            for code in codes.tolist()]
    print(f"burst API with sensitive sites, outage area, GeoJSON ({len(codes)} pipes): {percentiles(full)}")

    c = criticality(topo)
    worst = int(c.segment_example_pipe[np.argmax(c.segment_customers_cut)])
    seconds, out = harness.timed(lambda: burst_analysis(engine, pipe=model.pipe_code[worst], topology=topo,
                                                        geometry=True))
    print(f"worst burst (pipe {model.pipe_code[worst]}: {len(out['dry_pipes']):,} dry pipes, "
          f"{out['affected_customers']['count']:,} customers), API with geometry: {seconds:.1f} s")

    seconds, c = harness.timed(lambda: criticality(topo))
    print(f"criticality of {len(c.segment):,} segments and {len(model.valve_id):,} valves: "
          f"{seconds:.1f} s ({c.analysed_segments} segments by full analysis)")

if __name__ == "__main__":
    main()
