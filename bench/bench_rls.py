"""Row-level security's cost: the same requests as an enterprise's account and unrestricted.

On the demo city (default 1,000,000 pipes), one Qiwang server, two accounts signed in with API
tokens:

- SCOPED: a viewer of enterprise A (2103020001): every query filtered by the policies of
  migration 0016 (`enterprise_code IN (SELECT … FROM auth.me)`);
- UNRESTRICTED: an account whose database role the bench marks BYPASSRLS on its own scratch
  database (the product has no such account): the same code path, no policy.

Interleaved, the order of the two alternating from one request to the next (the second of a pair
reads what the first brought into PostgreSQL's buffers), so that the machine's noise and the
caches fall on both alike:
1. pages of 1,000 pipes, walked by `next` links (keyset paging) through enterprise A's pipes;
2. MVT tiles of pipes at z12-16, random tiles inside enterprise A's extent;
3. bursts through the API (burst_analysis in this process) as A's role, as the BYPASSRLS account
   (the same code path: role switch, cut to scope, no policy) and as the owner (none of it).
Prints medians, p95 and the ratio of medians scoped / unrestricted. Targets (issue 18): ratio ≤
1.15 for pages and tiles, tile p95 ≤ 50 ms, burst p95 unchanged within noise.
"""
from __future__ import annotations

import contextlib
import math
import os
import tempfile
import time
from pathlib import Path
from typing import TypeVar

import harness  # first: puts the checkout on sys.path
import numpy as np
import requests
import sqlalchemy as sa

from app.background_server import LiveServer
from db.acting import acting_as
from db.engine import get_engine
from network_analysis.api import burst_analysis
from network_analysis.topology import topologies

DATABASE = "qiwang_bench"   # the 1M-pipe city the other benches keep with --reuse
ENTERPRISE_A = "2103020001"
RATIO_TARGET, TILE_TARGET_MS = 1.15, 50.0
T = TypeVar("T")


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2 ** z
    return int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)


def alternating(i: int, first: T, second: T) -> tuple[T, T]:
    """The pair in turn order for the i-th round: (first, second) when i is even, else reversed."""
    return (first, second) if i % 2 == 0 else (second, first)


def timed_get(http: requests.Session, url: str) -> tuple[float, requests.Response]:
    start = time.perf_counter()
    answer = http.get(url, timeout=120)
    elapsed = time.perf_counter() - start
    answer.raise_for_status()
    return elapsed, answer


def report(label: str, scoped: list[float], free: list[float], target: float | None = None) -> float:
    s, f = harness.Summary.of(scoped), harness.Summary.of(free)
    ratio = s.median / f.median
    print(f"   {label:<26} scoped median {s.median:7.2f} ms p95 {s.p95:7.2f}   unrestricted median "
          f"{f.median:7.2f} ms p95 {f.p95:7.2f}   ratio of medians {ratio:.3f}"
          + (f"  (target ≤ {target})" if target else ""))
    return ratio


def main() -> None:
    parser = harness.bench_arguments(__doc__, pipes=1_000_000, seed=42, reuse=DATABASE)
    parser.add_argument("--pages", type=int, default=60, help="pages of 1,000 pipes walked by each account")
    parser.add_argument("--tiles", type=int, default=40, help="random tiles per zoom")
    parser.add_argument("--bursts", type=int, default=200)
    args = parser.parse_args()
    print(f"start: {harness.load_average()}, {os.cpu_count()} CPUs")
    databases = harness.ThrowawayDatabases()
    with harness.demo_city(databases, DATABASE, args.pipes, args.seed, reuse=args.reuse) as url:
        measure(url, databases.app_url(DATABASE), args)
    print(f"\nend: {harness.load_average()}")


def measure(url: str, app_url: str, args) -> None:
    scoped_role, scoped_token = harness.bench_account(url, "bench_rls_a", ("viewer",), enterprise=ENTERPRISE_A)
    free_role, free_token = harness.bench_account(url, "bench_rls_free", ("viewer",), enterprise=ENTERPRISE_A)
    owner = sa.create_engine(url)
    with owner.begin() as conn:   # the bench's own database only: its "unrestricted" twin
        conn.execute(sa.text(f'ALTER ROLE "{free_role}" BYPASSRLS'))
        n, in_a = conn.execute(sa.text("SELECT count(*), count(*) FILTER (WHERE enterprise_code = :a) FROM pipe"),
                               {"a": ENTERPRISE_A}).one()
        west, south, east, north = conn.execute(sa.text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(ST_Transform(geom, 4326)) e "
            "FROM pipe WHERE enterprise_code = :a) s"), {"a": ENTERPRISE_A}).one()
    print(f"database {DATABASE}: {n:,} pipes, {in_a:,} of enterprise A ({in_a / n:.0%})")
    jobs = tempfile.TemporaryDirectory(prefix="bench_rls_jobs_")
    server = LiveServer(app_url, Path(jobs.name))   # as the product runs: the authenticator's login
    scoped, free = requests.Session(), requests.Session()
    scoped.headers["Authorization"], free.headers["Authorization"] = f"Bearer {scoped_token}", f"Bearer {free_token}"
    try:
        base = f"{server.url}/ogc/collections/pipes"
        for http in (scoped, free):   # warm up: pools, PROJ transformations, the planner
            for _ in range(3):
                timed_get(http, f"{base}/items?limit=1000&filter=enterprise_code='{ENTERPRISE_A}'")
        print(f"\n1. pages of 1,000 of A's pipes by next links, {args.pages} each, interleaved")
        s_times: list[float] = []
        f_times: list[float] = []
        s_url = f_url = f"{base}/items?limit=1000&filter=enterprise_code='{ENTERPRISE_A}'"
        for i in range(args.pages):
            for http, times, which in alternating(i, (scoped, s_times, "s"), (free, f_times, "f")):
                elapsed, answer = timed_get(http, s_url if which == "s" else f_url)
                times.append(elapsed)
                nxt = next((link["href"] for link in answer.json()["links"] if link["rel"] == "next"), None)
                if which == "s":
                    s_url = nxt or s_url
                else:
                    f_url = nxt or f_url
        page_ratio = report("page of 1,000 pipes", s_times, f_times, RATIO_TARGET)

        print(f"\n2. pipes tiles inside A's extent, {args.tiles} random tiles per zoom, interleaved")
        rng = np.random.default_rng(args.seed)
        all_s: list[float] = []
        all_f: list[float] = []
        worst_p95 = 0.0
        for z in range(12, 17):
            x0, y0 = tile_of(west, north, z)
            x1, y1 = tile_of(east, south, z)
            cells = [(x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]
            picks = rng.choice(len(cells), min(args.tiles, len(cells)), replace=False)
            zs: list[float] = []
            zf: list[float] = []
            for x, y in cells[:2]:   # warm-up: PostGIS sets up its transformations once per backend
                for http in (scoped, free):
                    timed_get(http, f"{base}/tiles/WebMercatorQuad/{z}/{y}/{x}")
            for i, k in enumerate(picks.tolist()):
                x, y = cells[k]
                for http, times in alternating(i, (scoped, zs), (free, zf)):
                    times.append(timed_get(http, f"{base}/tiles/WebMercatorQuad/{z}/{y}/{x}")[0])
            report(f"tiles z{z} ({len(picks)})", zs, zf)
            worst_p95 = max(worst_p95, harness.Summary.of(zs).p95)
            all_s += zs
            all_f += zf
        tile_ratio = report("tiles z12-16 together", all_s, all_f, RATIO_TARGET)
        print(f"   scoped tile p95, worst zoom: {worst_p95:.1f} ms (target ≤ {TILE_TARGET_MS:.0f} ms)")
    finally:
        server.close()
        jobs.cleanup()

    print(f"\n3. burst_analysis in this process, {args.bursts} random pipes of A: as A's role, as the "
          f"BYPASSRLS account (the same path, no policy) and as the owner (no role, no cut to scope)")
    engine = get_engine(app_url)
    unrestricted = get_engine(url)   # the owner through the same pool settings as the app's engine
    topo = topologies.get(unrestricted)
    codes = topo.model.pipe_code
    with owner.connect() as conn:
        pipes = conn.execute(sa.text("SELECT code FROM pipe WHERE enterprise_code = :a AND status = 'in_service' "
                                     "ORDER BY random() LIMIT :n"),
                             {"a": ENTERPRISE_A, "n": args.bursts}).scalars().all()
    pipes = [p for p in pipes if (codes == p).sum() == 1]
    ways = {"scoped": (engine, scoped_role), "bypassrls": (engine, free_role), "owner": (unrestricted, None)}
    burst_times: dict[str, list[float]] = {way: [] for way in ways}
    for i, code in enumerate(pipes):
        order = list(ways)[i % 3:] + list(ways)[:i % 3]   # each way first, second and third in turn
        for way in order:
            bind, role = ways[way]
            start = time.perf_counter()
            with acting_as(role) if role else contextlib.nullcontext():
                burst_analysis(bind, pipe=code, topology=topo)
            burst_times[way].append(time.perf_counter() - start)
    report(f"burst vs owner ({len(pipes)})", burst_times["scoped"], burst_times["owner"])
    report(f"burst vs BYPASSRLS ({len(pipes)})", burst_times["scoped"], burst_times["bypassrls"])
    burst_p95 = {way: harness.Summary.of(t).p95 for way, t in burst_times.items()}
    print(f"   burst p95: scoped {burst_p95['scoped']:.1f} ms, BYPASSRLS {burst_p95['bypassrls']:.1f} ms, "
          f"owner {burst_p95['owner']:.1f} ms")
    owner.dispose()
    ok = page_ratio <= RATIO_TARGET and tile_ratio <= RATIO_TARGET and worst_p95 <= TILE_TARGET_MS
    print(f"\ntargets {'met' if ok else 'NOT met'}: pages {page_ratio:.3f}, tiles {tile_ratio:.3f} (≤ {RATIO_TARGET}), "
          f"tile p95 {worst_p95:.1f} ms (≤ {TILE_TARGET_MS:.0f})")


if __name__ == "__main__":
    main()
