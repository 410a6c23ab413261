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

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_load_demo import Steps, ThrowawayDatabases

from db import migrate
from demo.city import load_demo
from network_analysis.api import burst_analysis, report
from network_analysis.burst import analyse_burst, isolate
from network_analysis.criticality import criticality
from network_analysis.model import load_model
from network_analysis.topology import Topology


def percentiles(seconds: list[float]) -> str:
    ms = np.array(seconds) * 1000
    return f"median {np.median(ms):8.2f} ms   p95 {np.percentile(ms, 95):8.2f} ms   max {ms.max():8.1f} ms"


def naive_burst(topo: Topology, pipe: int) -> np.ndarray:
    """What a straightforward tool does: isolate by walking to the valves, then flood the whole
    network from the sources to see what is still fed. Returns the dry pipes."""
    iso = isolate(topo, pipe)
    pipes = np.fromiter(iso.pieces, np.int64, len(iso.pieces))
    nodes = np.fromiter(iso.nodes, np.int64, len(iso.nodes))
    _, lost_pipes = topo.pipe_level_unsupplied(nodes, pipes)
    return lost_pipes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipes", type=int, default=1_000_000)
    parser.add_argument("--bursts", type=int, default=1000)
    parser.add_argument("--geometry-bursts", type=int, default=200, help="bursts for the full API call")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--reuse", action="store_true", help="keep/reuse qiwang_bench when it holds N pipes")
    args = parser.parse_args()

    databases = ThrowawayDatabases()
    url = databases.cluster.url("qiwang_bench") if databases.cluster else None
    engine = sa.create_engine(url) if url else None
    loaded = 0
    if args.reuse and engine is not None:
        try:
            with engine.connect() as conn:
                loaded = conn.execute(sa.text("SELECT count(*) FROM pipe")).scalar_one()
        except sa.exc.SQLAlchemyError:
            loaded = 0
    if loaded != args.pipes:
        url = databases.create("qiwang_bench")
        migrate.upgrade(url)
        engine = sa.create_engine(url)
        t = time.perf_counter()
        load_demo(engine, pipes=args.pipes, seed=args.seed, echo=lambda _: None)
        print(f"demo city of {args.pipes:,} pipes loaded in {time.perf_counter() - t:.1f} s")

    steps = Steps()
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
    sample = rng.choice(model.n_pipes, args.bursts, replace=False)
    ours, naive, methods = [], [], {}
    for pipe in sample.tolist():
        t = time.perf_counter()
        result = analyse_burst(topo, pipe)
        report(topo, result)
        ours.append(time.perf_counter() - t)
        methods[result.dry_method] = methods.get(result.dry_method, 0) + 1
        t = time.perf_counter()
        naive_dry = naive_burst(topo, pipe)
        naive.append(time.perf_counter() - t)
        assert np.array_equal(naive_dry, result.dry_pipes), f"dry pipes differ on pipe {pipe}"
    print(f"burst, no geometry ({args.bursts} random pipes):   {percentiles(ours)}   dry area by {methods}")
    print(f"naive flood baseline (same bursts): {percentiles(naive)}")
    print(f"speed ratio naive / ours: median {np.median(naive) / np.median(ours):,.0f}×, "
          f"p95 {np.percentile(naive, 95) / np.percentile(ours, 95):,.0f}×  (dry pipes identical in every burst)")

    codes = model.pipe_code[sample[: args.geometry_bursts]]
    full = []
    for code in codes.tolist():
        t = time.perf_counter()
        burst_analysis(engine, pipe=code, topology=topo, geometry=True)
        full.append(time.perf_counter() - t)
    print(f"burst API with sensitive sites, outage area, GeoJSON ({len(codes)} pipes): {percentiles(full)}")

    c = criticality(topo)
    worst = int(c.segment_example_pipe[np.argmax(c.segment_customers_cut)])
    t = time.perf_counter()
    out = burst_analysis(engine, pipe=model.pipe_code[worst], topology=topo, geometry=True)
    print(f"worst burst (pipe {model.pipe_code[worst]}: {len(out['dry_pipes']):,} dry pipes, "
          f"{out['affected_customers']['count']:,} customers), API with geometry: {time.perf_counter() - t:.1f} s")

    t = time.perf_counter()
    c = criticality(topo)
    print(f"criticality of {len(c.segment):,} segments and {len(model.valve_id):,} valves: "
          f"{time.perf_counter() - t:.1f} s ({c.analysed_segments} segments by full analysis)")
    if not args.reuse:
        engine.dispose()
        databases.drop("qiwang_bench")


if __name__ == "__main__":
    main()
