"""OGC API at city scale: our feature pages against pygeoapi's stock PostgreSQL provider, deep paging, MVT tiles.

    .venv/bin/python bench/bench_ogc.py [--pipes 1000000] [--reuse] [--pages 30] [--tiles 50]

Loads the demo city of N pipes into the scratch database `qiwang_bench` (as bench_load_demo.py does;
--reuse keeps one already loaded with the same N), then serves, each with waitress in a background
thread of this process, over real HTTP on 127.0.0.1:
- OUR server: the Qiwang app (app.web.create_app), items from spatial/features.py (GeoJSON and
  reprojection in SQL, keyset paging by `next` links), tiles from spatial/tiles.py;
- a STOCK server: plain pygeoapi 0.21, one collection `pipes` over the same `pipe` table with
  pygeoapi.provider.sql.PostgreSQLProvider (psycopg2, count(*) per page, OFFSET paging, geometries
  converted row by row in Python by shapely/pyproj), items routed to
  pygeoapi.api.itemtypes.get_collection_items.
One client (requests, keep-alive) asks one request at a time, so latency = server time + HTTP.

It prints:
1. Pages of 1,000 pipes, CRS84 and EPSG:4490: the SAME pages (same rows, same order by id, checked
   by pipe code) from both servers: our page k reached by following `next` links (URL re-requested),
   stock page k as `offset=(k-1)*1000`, for random k in the first 100 pages; the two servers are
   asked alternately page by page. Median and p95 latency, pages/s and features/s, ratio ours/stock.
   Then the first vertex of one pipe from each server against PostGIS (ST_Transform), per CRS.
2. Deep paging on ours: page 1 vs page 400 (reached by 399 `next` links, limit=1000), each URL
   re-requested several times, medians and ratio; for reference stock offset=0 vs offset=399000.
3. MVT tiles on ours (WebMercatorQuad, gzip accepted, no If-None-Match: every request cuts its tile):
   random distinct tiles inside the pipes' extent per zoom, each fetched once; pipes at z12-16, valves
   and customers from their minimum zoom (spatial/tiles.py TILE_RULES); median, p95, max, mean size,
   count of 204s; for pipes, the PostgreSQL cost (EXPLAIN ANALYZE) of each zoom's largest tile.
4. Hostile requests of issue 16 (world bboxes, a world polygon of 10,000 positions, a tile with one
   collection 1,000 times, a tile of every collection), --hostile times each: status, latency,
   numberMatched, the server's RSS growth and the largest PostgreSQL client backend's peak RSS
   (VmHWM, which counts the shared buffers it read) and private memory (RssAnon).
Machine load (1-minute load average) at start and end.
"""
from __future__ import annotations

import functools
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import harness  # first: puts the checkout on sys.path
import numpy as np
import requests
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from app.background_server import BackgroundServer, LiveServer
from db.catalog import storage_srid
from spatial import tiles
from spatial.ogc_provider import collections_of

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG = "http://www.opengis.net/def/crs/EPSG/0/{}"
PAGE = 1000
DATABASE = "qiwang_bench"
TILE_TARGET_MS = 50
# Zooms sampled per collection: pipes as asked, the others from their minimum zoom (TILE_RULES).
TILE_ZOOMS = {"pipes": range(12, 17), "valves": range(14, 17), "customers": range(15, 17)}


# -- the stock pygeoapi server -------------------------------------------------------------------

def stock_config(url: str, base_url: str, srid: int) -> dict:
    """pygeoapi configuration: one collection `pipes` with the stock PostgreSQL provider."""
    u = make_url(url)
    host = u.host or u.query.get("host")  # the embedded cluster: Unix socket directory in ?host=
    return {
        "server": {"bind": {"host": "127.0.0.1", "port": 0}, "url": base_url,
                   "mimetype": "application/json; charset=UTF-8", "encoding": "utf-8", "gzip": False,
                   "languages": ["en-US"], "cors": False, "pretty_print": False,
                   "limits": {"default_items": 10, "max_items": 10_000},
                   "map": {"url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png", "attribution": ""}},
        "logging": {"level": "ERROR"},
        "metadata": {"identification": {"title": "stock", "description": "stock", "keywords": [],
                                        "keywords_type": "theme", "terms_of_service": "", "url": base_url},
                     "license": {"name": "x", "url": base_url}, "provider": {"name": "x", "url": base_url},
                     "contact": {"name": "x"}},
        "resources": {"pipes": {
            "type": "collection", "title": "pipes", "description": "pipes", "keywords": [], "links": [],
            "extents": {"spatial": {"bbox": [-180, -90, 180, 90], "crs": CRS84}},
            "providers": [{
                "type": "feature", "name": "PostgreSQL",
                "data": {"host": str(host), "port": u.port or 5432, "dbname": u.database,
                         "user": u.username, "password": u.password or ""},
                "id_field": "id", "table": "pipe", "geom_field": "geom",
                "storage_crs": EPSG.format(srid),
                "crs": [CRS84, EPSG.format(4490), EPSG.format(srid)],
            }],
        }},
    }


class StockServer(BackgroundServer):
    """pygeoapi's items path with the stock provider in a small Flask app (pygeoapi's flask_app
    module reads its configuration from the environment at import: not used)."""

    def __init__(self, url: str, srid: int) -> None:
        super().__init__(lambda base_url: stock_app(url, base_url, srid), threads=4)


def stock_app(url: str, base_url: str, srid: int) -> Any:
    """The Flask app serving pygeoapi's get_collection_items for the stock configuration."""
    import pygeoapi.api.itemtypes as itemtypes_api
    from flask import Flask, make_response, request
    from pygeoapi.api import API, APIRequest, apply_gzip

    api = API(stock_config(url, base_url, srid), {})
    app = Flask("stock_pygeoapi")

    @app.get("/collections/<collection_id>/items")
    def items(collection_id: str) -> Any:
        api_request = APIRequest.from_flask(request, api.locales)
        if not api_request.is_valid():
            headers, status, content = api.get_format_exception(api_request)
        else:
            headers, status, content = itemtypes_api.get_collection_items(api, api_request, collection_id)
            content = apply_gzip(headers, content)
        response = make_response(content, status)
        if headers:
            response.headers = headers
        return response

    return app


# -- helpers -------------------------------------------------------------------------------------

def ms_figures(seconds: list[float]) -> str:
    return harness.Summary.of(seconds).text(median="7.1f", p95="7.1f")


def get(session: requests.Session, url: str, params: dict | None = None, **headers: str
        ) -> tuple[float, requests.Response]:
    """One request, timed until the whole body is in."""
    t = time.perf_counter()
    r = session.get(url, params=params, headers=headers)
    r.content  # noqa: B018  (read the body inside the timing)
    elapsed = time.perf_counter() - t
    r.raise_for_status()
    return elapsed, r


def with_params(url: str, **params: str | None) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update({k: v for k, v in params.items() if v is not None})
    return f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(query)}"


def first_vertex(geometry: dict) -> tuple[float, float]:
    c = geometry["coordinates"]
    while isinstance(c[0], list):
        c = c[0]
    return float(c[0]), float(c[1])


def tile_range(bbox: list[float], z: int) -> tuple[int, int, int, int]:
    """Column and row ranges of the WebMercatorQuad tiles at zoom z covering a CRS84 bbox."""
    def col(lon: float) -> int:
        return min(2 ** z - 1, int((lon + 180) / 360 * 2 ** z))

    def row(lat: float) -> int:
        s = math.log(math.tan(math.radians(lat)) + 1 / math.cos(math.radians(lat)))
        return min(2 ** z - 1, int((1 - s / math.pi) / 2 * 2 ** z))
    return col(bbox[0]), col(bbox[2]), row(bbox[3]), row(bbox[1])


# -- the three parts -----------------------------------------------------------------------------

def walk_next_links(session: requests.Session, items_url: str, pages: int) -> list[str]:
    """URLs of our pages 1..pages (limit 1000), each from the previous page's `next` link."""
    urls = [with_params(items_url, limit=str(PAGE))]
    while len(urls) < pages:
        _, r = get(session, urls[-1], Accept="application/geo+json")
        nxt = [link["href"] for link in r.json()["links"] if link["rel"] == "next"]
        if not nxt:
            break
        urls.append(nxt[0])
    return urls


def pages_vs_stock(ours: requests.Session, stock: requests.Session, our_pages: list[str], stock_items: str,
                   sample: list[int], engine: sa.Engine, srid: int) -> None:
    print(f"\n1. Pages of {PAGE:,} pipes, ours vs pygeoapi 0.21 stock PostgreSQL provider, same `pipe` table")
    print(f"   the same {len(sample)} pages (random k in 1..{len(our_pages) if len(our_pages) < 100 else 100}, "
          f"rows ordered by id, pipe codes checked equal): ours = page k by `next` links (cursor URL "
          f"re-requested), stock = offset=(k-1)*{PAGE}; servers asked alternately, one request at a time")
    for label, crs in (("CRS84 (default)", None), ("EPSG:4490", EPSG.format(4490))):
        paired = harness.Paired()
        sizes: dict[str, list[int]] = {"ours": [], "stock": []}
        for i, k in enumerate(sample):
            our_url = with_params(our_pages[k - 1], crs=crs)
            stock_params = {"limit": str(PAGE), "offset": str((k - 1) * PAGE), **({"crs": crs} if crs else {})}
            (_, r_ours), (_, r_stock) = paired.time(
                functools.partial(get, ours, our_url, Accept="application/geo+json"),
                functools.partial(get, stock, stock_items, stock_params, Accept="application/geo+json"),
                swap=i % 2 == 1)
            sizes["ours"].append(len(r_ours.content))
            sizes["stock"].append(len(r_stock.content))
            our_codes = [f["id"] for f in r_ours.json()["features"]]
            stock_codes = [f["properties"]["code"] for f in r_stock.json()["features"]]
            assert our_codes == stock_codes and len(our_codes) == PAGE, f"page {k}: different rows"
        print(f"   {label}:")
        for who, times in (("ours", paired.ours), ("stock", paired.baseline)):
            rate = len(times) / sum(times)
            print(f"     {who:<6} {ms_figures(times)}   {rate:6.2f} pages/s = "
                  f"{rate * PAGE:8,.0f} features/s   {np.mean(sizes[who]) / 2**20:.2f} MB/page")
        print(f"     throughput ratio ours/stock: {paired.ratio('mean'):.1f}× (target ≥ 3×); "
              f"median latency ratio stock/ours {paired.ratio('median'):.1f}×")

    # Coordinates of one known pipe: the first row of the first sampled page.
    k = sample[0]
    _, r = get(ours, our_pages[k - 1], Accept="application/geo+json")
    code = r.json()["features"][0]["id"]
    with engine.connect() as conn:
        ref = conn.execute(sa.text(
            "SELECT id, ST_X(p84), ST_Y(p84), ST_X(p4490), ST_Y(p4490), ST_X(f84), ST_Y(f84) FROM (SELECT id, "
            "ST_Transform(ST_PointN(ST_GeometryN(geom, 1), 1), 4326) AS p84, "
            "ST_Transform(ST_PointN(ST_GeometryN(geom, 1), 1), 4490) AS p4490, "
            # the same vertex with easting and northing exchanged: what a reader gets that takes the
            # storage CRS's authority axis order (EPSG:4550: northing, easting) for the stored x, y
            "ST_Transform(ST_FlipCoordinates(ST_PointN(ST_GeometryN(geom, 1), 1)), 4326) AS f84 "
            "FROM pipe WHERE code = :c) s"), {"c": code}).one()
    pid = ref[0]
    expected = {"CRS84": (ref[1], ref[2]), "EPSG:4490": (ref[4], ref[3])}  # 4490: authority order lat, lon
    misread = {"CRS84": (ref[5], ref[6]), "EPSG:4490": (ref[6], ref[5])}
    print(f"   first vertex of pipe {code} (id {pid}) against PostGIS ST_Transform "
          f"(CRS84 = lon, lat; EPSG:4490 = lat, lon, the authority axis order):")
    for label, crs in (("CRS84", None), ("EPSG:4490", EPSG.format(4490))):
        _, r_ours = get(ours, with_params(our_pages[k - 1], crs=crs), Accept="application/geo+json")
        _, r_stock = get(stock, stock_items, {"limit": "1", "offset": str((k - 1) * PAGE),
                                               **({"crs": crs} if crs else {})}, Accept="application/geo+json")
        want = expected[label]
        for who, r in (("ours", r_ours), ("stock", r_stock)):
            got = first_vertex(r.json()["features"][0]["geometry"])
            error = max(abs(a - b) for a, b in zip(got, want, strict=True))
            swapped = max(abs(a - b) for a, b in zip(got, want[::-1], strict=True))
            misread_error = max(abs(a - b) for a, b in zip(got, misread[label], strict=True))
            verdict = ("correct" if error < 1e-6 else
                       "WRONG: output axes swapped" if swapped < 1e-6 else
                       f"WRONG by {error:.2f}°: stored easting/northing read as northing/easting"
                       if misread_error < 1e-6 else f"WRONG: off by {error:.6f}°")
            print(f"     {label:<10} {who:<6} [{got[0]:.8f}, {got[1]:.8f}]  expected [{want[0]:.8f}, "
                  f"{want[1]:.8f}]  {verdict}   Content-Crs {r.headers.get('Content-Crs', '-')}")
    # Where the stock provider's time goes: pygeoapi builds a pyproj Transformer on every request.
    import pyproj
    from pygeoapi.util import get_crs_from_uri, get_transform_from_crs
    for label, uri in (("CRS84", CRS84), ("EPSG:4490", EPSG.format(4490))):
        t = time.perf_counter()
        for _ in range(3):
            get_transform_from_crs(pyproj.CRS.from_wkt(get_crs_from_uri(EPSG.format(srid)).to_wkt()),
                                   pyproj.CRS.from_wkt(get_crs_from_uri(uri).to_wkt()))
        print(f"   note: stock builds a pyproj Transformer EPSG:{srid} -> {label} per request: "
              f"{(time.perf_counter() - t) / 3 * 1000:.0f} ms of each of its pages")


def deep_paging(ours: requests.Session, stock: requests.Session, our_pages: list[str], stock_items: str,
                samples: int) -> None:
    deep = len(our_pages)
    print(f"\n2. Deep paging, limit={PAGE}: page 1 vs page {deep} reached by {deep - 1} `next` links "
          f"({samples} requests of each URL, alternately)")
    first, last = [], []
    for _ in range(samples):
        first.append(get(ours, our_pages[0], Accept="application/geo+json")[0])
        elapsed, r = get(ours, our_pages[-1], Accept="application/geo+json")
        last.append(elapsed)
    deep_code = r.json()["features"][0]["id"]
    print(f"   ours   page 1: {ms_figures(first)}   page {deep}: {ms_figures(last)}   "
          f"ratio page {deep} / page 1 (medians) {median_ratio(last, first):.2f}× (target ≤ 1.5×)")
    offset = (deep - 1) * PAGE
    s_first, s_last = [], []
    for _ in range(max(3, samples // 2)):
        s_first.append(get(stock, stock_items, {"limit": str(PAGE), "offset": "0"},
                           Accept="application/geo+json")[0])
        elapsed, r = get(stock, stock_items, {"limit": str(PAGE), "offset": str(offset)},
                         Accept="application/geo+json")
        s_last.append(elapsed)
    same = r.json()["features"][0]["properties"]["code"] == deep_code
    print(f"   stock  offset=0: {ms_figures(s_first)}   offset={offset}: {ms_figures(s_last)}   "
          f"ratio {median_ratio(s_last, s_first):.2f}×  (same first pipe as our page {deep}: {same})")


def tile_bench(ours: requests.Session, base: str, engine: sa.Engine, url: str, per_zoom: int,
               rng: np.random.Generator) -> None:
    _, r = get(ours, f"{base}/ogc/collections/pipes")
    bbox = r.json()["extent"]["spatial"]["bbox"][0]
    print(f"\n3. MVT tiles (WebMercatorQuad) on ours: up to {per_zoom} random distinct tiles per zoom inside "
          f"the pipes' extent {[round(v, 4) for v in bbox]}, each fetched once (no If-None-Match), gzip accepted")
    print(f"   {'collection':<10}{'z':>3}{'tiles':>7}{'in bbox':>9}{'median ms':>11}{'p95 ms':>9}{'max ms':>9}"
          f"{'204s':>6}{'mean MVT kB':>13}{'mean gzip kB':>14}")
    collections = collections_of(url)
    # Warm up on a zoom-17 tile (outside the sample): PostGIS sets up its EPSG:3857 <-> storage CRS
    # transformations once per backend connection (~0.1 s), which is not the cost of a tile.
    centre = [(bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2] * 2
    x17, _, y17, _ = tile_range(centre, 17)
    for collection in TILE_ZOOMS:
        for _ in range(3):
            get(ours, f"{base}/ogc/collections/{collection}/tiles/WebMercatorQuad/17/{y17}/{x17}")
    largest: dict[tuple[str, int], tuple[int, float, int, int]] = {}
    for collection, zooms in TILE_ZOOMS.items():
        for z in zooms:
            x0, x1, y0, y1 = tile_range(bbox, z)
            n = (x1 - x0 + 1) * (y1 - y0 + 1)
            picks = rng.choice(n, min(per_zoom, n), replace=False)
            times, sizes, gz, empty = [], [], [], 0
            for p in picks.tolist():
                x, y = x0 + p % (x1 - x0 + 1), y0 + p // (x1 - x0 + 1)
                elapsed, r = get(ours, f"{base}/ogc/collections/{collection}/tiles/WebMercatorQuad/{z}/{y}/{x}")
                times.append(elapsed)
                if r.status_code == 204:
                    empty += 1
                else:
                    sizes.append(len(r.content))
                    gz.append(int(r.headers.get("Content-Length", len(r.content))))
                if len(r.content) >= largest.get((collection, z), (-1,))[0]:
                    largest[(collection, z)] = (len(r.content), elapsed, x, y)
            ms = harness.Summary.of(times)
            flag = "  > target" if collection == "pipes" and ms.p95 > TILE_TARGET_MS else ""
            print(f"   {collection:<10}{z:>3}{len(picks):>7}{n:>9}{ms.median:>11.1f}{ms.p95:>9.1f}"
                  f"{ms.max:>9.1f}{empty:>6}{(np.mean(sizes) if sizes else 0) / 1000:>13.1f}"
                  f"{(np.mean(gz) if gz else 0) / 1000:>14.1f}{flag}")
    print(f"   target: pipes p95 ≤ {TILE_TARGET_MS} ms at z12-16")
    print("   PostgreSQL cost of the largest sampled pipes tile per zoom (EXPLAIN ANALYZE of spatial/tiles.py's SQL):")
    c = collections["pipes"]
    with engine.connect() as conn:
        for z in TILE_ZOOMS["pipes"]:
            size, elapsed, x, y = largest[("pipes", z)]
            sql = tiles.tile_sql(c, z)
            assert sql is not None, f"pipes have tiles at z{z}"
            for _ in range(2):  # the second run: planner caches warm, as in the server
                plan = conn.execute(sa.text("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql),
                                    {"z": z, "x": x, "y": y}).scalar_one()[0]
            scan = _scan_node(plan["Plan"])
            jit = plan.get("JIT")  # PostgreSQL compiles expensive-looking plans with LLVM first
            jit_note = (f"; JIT compilation {jit['Timing']['Total']:.0f} ms of it (+ in each parallel worker)"
                        if jit else "; no JIT")
            print(f"     z{z} tile {z}/{y}/{x} ({size / 1000:.0f} kB): HTTP {elapsed * 1000:.1f} ms; SQL execution "
                  f"{plan['Execution Time']:.1f} ms (planning {plan['Planning Time']:.1f} ms, plan cost "
                  f"{plan['Plan']['Total Cost']:,.0f}{jit_note}); "
                  f"{scan.get('Node Type')} on {scan.get('Relation Name')} ({scan.get('Index Name', '-')}): "
                  f"{scan.get('Actual Rows', 0):,} rows kept, {scan.get('Rows Removed by Filter', 0):,} "
                  f"removed by filter; shared buffers hit {plan['Plan'].get('Shared Hit Blocks', 0):,} "
                  f"read {plan['Plan'].get('Shared Read Blocks', 0):,}")


def hostile_requests(ours: requests.Session, base: str, engine: sa.Engine, repeat: int,
                     postmaster: int | None) -> None:
    """The requests of issue 16 that used to hurt (world boxes and polygons, a collection repeated in
    one tile): time, answer, and the peak resident set of the server and of each PostgreSQL backend."""
    import psutil

    from spatial.cql2 import MAX_POSITIONS

    print(f"\n4. Hostile requests (issue 16), each asked {repeat} times")
    with engine.connect() as conn:
        lon, lat = conn.execute(sa.text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_Transform(ST_SetSRID(ST_Centroid(ST_Extent(geom)::geometry), "
            "Find_SRID('public', 'pipe', 'geom')), 4326) AS p FROM pipe) c")).one()
    n = 2 ** 14
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    ring = [(round(123 + 170 * math.cos(2 * math.pi * i / (MAX_POSITIONS - 1)), 3),
             round(41 + 80 * math.sin(2 * math.pi * i / (MAX_POSITIONS - 1)), 3)) for i in range(MAX_POSITIONS - 1)]
    world = "POLYGON((" + ", ".join(f"{a} {b}" for a, b in ring + ring[:1]) + "))"
    items = f"{base}/ogc/collections/pipes/items"
    kinds = {
        "bbox=-180,-90,180,90": (items, {"bbox": "-180,-90,180,90"}),
        "bbox in EPSG:4490, world": (items, {"bbox": "-90,-180,90,180", "bbox-crs": EPSG.format(4490)}),
        f"S_INTERSECTS world polygon, {MAX_POSITIONS:,} positions": (items,
                                                                   {"filter": f"S_INTERSECTS(geometry, {world})"}),
        "tile z14, collections=pipes ×1000": (f"{base}/ogc/tiles/WebMercatorQuad/14/{y}/{x}",
                                              {"collections": ",".join(["pipes"] * 1000)}),
        "tile z14, every collection": (f"{base}/ogc/tiles/WebMercatorQuad/14/{y}/{x}", {}),
    }
    server = psutil.Process()
    rss_before = server.memory_info().rss
    for label, (url, params) in kinds.items():
        times, status, matched = [], None, None
        for _ in range(repeat):
            elapsed, r = harness.timed(functools.partial(ours.get, url, params=params, timeout=600))
            times.append(elapsed)
            status = r.status_code
            if r.headers.get("Content-Type", "").startswith("application/geo+json"):
                matched = r.json().get("numberMatched", "omitted (> 50,000 estimated)")
        print(f"   {label:<48} HTTP {status}  {ms_figures(times)}"
              + (f"  numberMatched {matched}" if matched is not None else ""))
    print(f"   server RSS growth over these requests: {(server.memory_info().rss - rss_before) / 1e6:.1f} MB")
    # Client backends only: the checkpointer and background writer touch all of shared_buffers, which
    # a process's resident set counts. VmHWM (peak) counts the shared buffers a backend read as well,
    # RssAnon (now) only its private memory.
    with engine.connect() as conn:
        clients = set(conn.execute(sa.text(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' AND datname = current_database()"
        )).scalars())
    peaks, private = [], []
    for proc in psutil.Process(postmaster).children() if postmaster else []:  # the bench cluster's backends
        if proc.pid not in clients:
            continue
        try:
            status_text = Path(f"/proc/{proc.pid}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status_text.splitlines() if ":" in line)
        peaks.append(int(fields["VmHWM"].split()[0]) * 1024)
        private.append(int(fields["RssAnon"].split()[0]) * 1024)
    if peaks:
        print(f"   largest PostgreSQL client backend ({len(peaks)}): peak RSS (VmHWM, with the shared buffers it "
              f"read) {max(peaks) / 1e6:.0f} MB, private memory now (RssAnon) {max(private) / 1e6:.0f} MB")


def _scan_node(node: dict) -> dict:
    """The scan of the pipe table in a plan."""
    if node.get("Relation Name") == "pipe":
        return node
    for child in node.get("Plans", []):
        found = _scan_node(child)
        if found:
            return found
    return {}


def median_ratio(numerator: list[float], denominator: list[float]) -> float:
    return harness.Summary.of(numerator).median / harness.Summary.of(denominator).median


def main() -> None:
    parser = harness.bench_arguments(__doc__, pipes=1_000_000, seed=42, reuse=DATABASE)
    parser.add_argument("--pages", type=int, default=30, help="pages sampled for ours vs stock, per CRS")
    parser.add_argument("--deep", type=int, default=400, help="deep page reached by next links")
    parser.add_argument("--deep-samples", type=int, default=10)
    parser.add_argument("--tiles", type=int, default=50, help="random tiles per zoom")
    parser.add_argument("--hostile", type=int, default=5, help="times each hostile request is asked")
    args = parser.parse_args()
    print(f"start: {harness.load_average()}, {os.cpu_count()} CPUs")

    databases = harness.ThrowawayDatabases()
    with harness.demo_city(databases, DATABASE, args.pipes, args.seed, reuse=args.reuse) as url:
        engine = sa.create_engine(url)
        try:
            serve_and_measure(engine, url, args, databases.cluster.running_pid() if databases.cluster else None)
        finally:
            engine.dispose()
    print(f"\nend: {harness.load_average()}")


def serve_and_measure(engine: sa.Engine, url: str, args: Any, postmaster: int | None) -> None:
    """Both servers on the database at `url`, then the four parts of the bench as `args` ask."""
    with engine.connect() as conn:
        srid = storage_srid(conn)
        n = conn.execute(sa.text("SELECT count(*) FROM pipe")).scalar_one()
    print(f"database {DATABASE}: {n:,} pipes, storage CRS EPSG:{srid}")

    jobs = tempfile.TemporaryDirectory(prefix="bench_ogc_jobs_")
    our_server = LiveServer(url, Path(jobs.name))
    stock_server = StockServer(url, srid)
    try:
        ours, stock = requests.Session(), requests.Session()
        # ours is signed in as the city's regulator: the whole demo city, through row-level security
        ours.headers["Authorization"] = f"Bearer {harness.bench_account(url, 'bench_ogc_regulator')[1]}"
        our_items = f"{our_server.url}/ogc/collections/pipes/items"
        stock_items = f"{stock_server.url}/collections/pipes/items"
        for _ in range(2):  # warm up both (providers, pyproj transformers, connection pools)
            get(ours, our_items, {"limit": "10"}, Accept="application/geo+json")
            get(stock, stock_items, {"limit": "10"}, Accept="application/geo+json")
            get(stock, stock_items, {"limit": "10", "crs": EPSG.format(4490)}, Accept="application/geo+json")

        seconds, our_pages = harness.timed(lambda: walk_next_links(ours, our_items, args.deep))
        print(f"walked {len(our_pages)} pages of {PAGE:,} by next links in {seconds:.1f} s")
        rng = np.random.default_rng(args.seed)
        first_hundred = min(100, len(our_pages))
        sample = [1, *sorted(rng.choice(np.arange(2, first_hundred + 1), min(args.pages, first_hundred) - 1,
                                        replace=False).tolist())]
        pages_vs_stock(ours, stock, our_pages, stock_items, sample, engine, srid)
        deep_paging(ours, stock, our_pages, stock_items, args.deep_samples)
        tile_bench(ours, our_server.url, engine, url, args.tiles, rng)
        hostile_requests(ours, our_server.url, engine, args.hostile, postmaster)
    finally:
        our_server.close()
        stock_server.close()
        jobs.cleanup()

if __name__ == "__main__":
    main()
