"""The web map in the browser: time to first render of the demo city and the burst round trip.

    .venv/bin/python bench/bench_map.py [--pipes 5000] [--loads 9] [--bursts 30] [--reuse]

Loads the demo city of N pipes (default: the size `./qiwang demo` makes) into the scratch database
`qiwang_bench_map` (--reuse keeps one already loaded with the same N), serves the Qiwang app with the
map (waitress in a background thread, real HTTP on 127.0.0.1) and drives Debian's Chromium
(headless, Playwright) on /map. It prints:
- time to first render: navigation start → the map's first 'idle' (style, every visible layer's
  tiles loaded and drawn), each load in a fresh browser context (empty HTTP cache), after one
  warm-up load; median, min, max over --loads loads;
- burst round trip: with a random pipe in service in view (zoom 16, untimed), the burst tool
  started on it as a click does → burst-analysis executed over HTTP (geometry) → report panel drawn
  → the map 'idle' with the outage drawn; median and p95 over --bursts pipes, after one warm-up
  burst (which builds the in-memory topology).
Targets: first render ≤ 2 s, burst round trip ≤ 300 ms.
"""
from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import harness  # first: puts the checkout on sys.path
import numpy as np
import sqlalchemy as sa

from app.background_server import LiveServer

if TYPE_CHECKING:
    from playwright.sync_api import ViewportSize

DATABASE = "qiwang_bench_map"
FIRST_RENDER_TARGET_S = 2.0
BURST_TARGET_MS = 300.0
CHROMIUM = "/usr/bin/chromium"   # Debian's, as the browser tests use (never a downloaded build)
VIEWPORT: ViewportSize = {"width": 1400, "height": 900}

# In the page: show the pipe (untimed), then start a burst as a click does (the view kept unless the
# result reaches beyond it), and time (a) the result on screen: report panel written and the next
# frame painted with the outage, (b) the map 'idle' again, which includes the tiles of a new view
# when the result did not fit; milliseconds.
BURST_ROUND_TRIP = """async ([pipe, center]) => {
    const map = window.qiwangMap;
    await new Promise(resolve => { map.once('idle', resolve); map.jumpTo({center, zoom: 16}); });
    const t0 = performance.now();
    const result = await window.qiwang.burst.start({pipe}, {fit: false});
    await new Promise(resolve => { map.once('render', resolve); map.triggerRepaint(); });
    const drawn = performance.now() - t0;
    await new Promise(resolve => { if (map.loaded()) resolve(); else map.once('idle', resolve); });
    return [drawn, performance.now() - t0, result ? result.valves_to_close.length : -1];
}"""


def summary(values_ms: list[float]) -> str:
    figures = harness.Summary.of(values_ms, scale=1)
    return figures.text(median="7.1f", p95="7.1f", min="7.1f", max="7.1f") + f"   (n = {figures.n})"


def drive(url: str, loads: int, bursts: int, seed: int) -> None:
    """Serve the app on `url`'s database and time `loads` first renders and `bursts` burst round trips."""
    from playwright.sync_api import sync_playwright

    with sa.create_engine(url).connect() as conn:
        pipes = [(code, [x, y]) for code, x, y in conn.execute(sa.text(
            "SELECT code, ST_X(m), ST_Y(m) FROM (SELECT code, "
            "ST_Transform(ST_LineInterpolatePoint(ST_Force2D(geom), 0.5), 4326) m "
            "FROM pipe WHERE status = 'in_service' ORDER BY code) p"))]
    jobs = tempfile.TemporaryDirectory(prefix="bench_map_jobs_")
    server = LiveServer(url, Path(jobs.name))
    _, token = harness.bench_account(url, "bench_map_regulator")   # the page signs every request with it
    signed = {"Authorization": f"Bearer {token}"}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            print(f"Chromium {browser.version}, {len(pipes):,} pipes in service, server {server.url}")

            # 1. time to first render, fresh context (empty cache) per load, after a warm-up load
            renders = []
            for k in range(loads + 1):
                context = browser.new_context(viewport=VIEWPORT, extra_http_headers=signed)
                page = context.new_page()
                page.goto(f"{server.url}/map")
                page.wait_for_function("window.qiwangReady === true", timeout=60_000)
                if k:
                    renders.append(page.evaluate("window.qiwangReadyAt"))
                else:
                    print(f"warm-up load: {page.evaluate('window.qiwangReadyAt'):.0f} ms")
                context.close()
            print(f"time to first render (navigation → map idle, tiles drawn): {summary(renders)}   "
                  f"target ≤ {FIRST_RENDER_TARGET_S * 1000:.0f} ms")

            # 2. burst round trip in one page, random pipes, after a warm-up burst
            context = browser.new_context(viewport=VIEWPORT, extra_http_headers=signed)
            page = context.new_page()
            page.goto(f"{server.url}/map")
            page.wait_for_function("window.qiwangReady === true", timeout=60_000)
            page.click("#tool-burst")
            rng = random.Random(seed)
            sample = rng.sample(pipes, min(bursts + 1, len(pipes)))
            warm_ms, _, _ = page.evaluate(BURST_ROUND_TRIP, sample[0])
            print(f"warm-up burst (builds the topology): {warm_ms:.0f} ms")
            trips, idles, valves = [], [], []
            for code in sample[1:]:
                drawn, idle, n = page.evaluate(BURST_ROUND_TRIP, code)
                trips.append(drawn)
                idles.append(idle)
                valves.append(n)
            print(f"burst round trip (start → report and outage drawn on screen): {summary(trips)}   "
                  f"target ≤ {BURST_TARGET_MS:.0f} ms; valves to close per burst: median {np.median(valves):.0f}")
            print(f"  … until the map is idle again (tiles of the new view when the result did not fit): "
                  f"{summary(idles)}")
            context.close()
            browser.close()
    finally:
        server.close()
        jobs.cleanup()


def main() -> None:
    parser = harness.bench_arguments(__doc__, pipes=5000, seed=7, reuse=DATABASE)
    parser.add_argument("--loads", type=int, default=9, help="page loads for the time to first render")
    parser.add_argument("--bursts", type=int, default=30, help="random pipes for the burst round trip")
    args = parser.parse_args()
    print(f"start: {harness.load_average()}, {os.cpu_count()} CPUs")

    with harness.demo_city(harness.ThrowawayDatabases(), DATABASE, args.pipes, args.seed, reuse=args.reuse) as url:
        drive(url, args.loads, args.bursts, args.seed)
    print(f"end: {harness.load_average()}")


if __name__ == "__main__":
    main()
