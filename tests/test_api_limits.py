"""Issue 16, defects 2–5 (server side): what one hostile or careless request can do to the server.

Over real HTTP (waitress) against the demo city: world and huge bounding boxes and polygons answer
every feature or a 400 naming the parameter, never a 500 or a wrong empty answer; malformed limits,
offsets, cursors, ids, process and alarm bodies are 400s naming the parameter; bodies are bounded
(413); repeated tile collections are refused; statement_timeout answers 503; CORS only for the
configured origins. Requests are signed in: as the city's regulator (the `http` fixture, who reads
every row of the demo city), and as an enterprise's dispatcher where alarm steps must reach their
handler.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import requests
import signed_in
import sqlalchemy as sa
from conftest import ROOT, LiveServer
from signed_in import CITY
from sqlalchemy.engine import make_url

from core.crs import MAX_DENSIFIED_SEGMENTS, densify_step, storage_domain
from db.cluster import EmbeddedCluster
from spatial import features
from spatial.cql2 import MAX_DEPTH, MAX_POSITIONS

WORLD = "-180,-90,180,90"
WORLD_RING = [[-180, -90], [180, -90], [180, 90], [-180, 90], [-180, -90]]
EPSG4490 = "http://www.opengis.net/def/crs/EPSG/0/4490"


@pytest.fixture(scope="module")
def ogc(live_server) -> str:
    return f"{live_server.url}/ogc"


def get(http: requests.Session, url: str, **params) -> requests.Response:
    return http.get(url, params=params, timeout=120)


# The rows the city's regulator (the `http` fixture) may read: those whose admin_code lies in the
# city's division or below (migration 0016, policy division_staff), counted as the owner.
IN_THE_CITY = ("admin_code IN (WITH RECURSIVE d AS (SELECT CAST(:city AS text) AS admin_code UNION "
               "SELECT c.admin_code FROM admin_division c JOIN d ON c.parent_code = d.admin_code) "
               "SELECT admin_code FROM d)")


def count(engine: sa.Engine, table: str) -> int:
    """The rows of `table` the city's regulator reads (every one of the demo city)."""
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table} WHERE {IN_THE_CITY}"), {"city": CITY}).scalar_one()


def assert_400(r: requests.Response, parameter: str) -> str:
    assert r.status_code == 400, r.text[:500]
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body["code"] == "InvalidParameterValue", body
    assert body["description"].startswith(f"{parameter}:"), body
    return body["description"]


@contextmanager
def server_with(db_url: str, tmp_path: Path, name: str, **env: str) -> Iterator[LiveServer]:
    """A second server with settings from `env`, on an engine of its own (another application_name,
    so the session's server keeps its own limits)."""
    url = make_url(db_url).update_query_dict({"application_name": name}).render_as_string(hide_password=False)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        server = LiveServer(url, tmp_path / "jobs")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    try:
        yield server
    finally:
        server.close()


def proj_noise() -> int:
    log = EmbeddedCluster(ROOT).log_file
    return log.read_text(errors="replace").count("Invalid latitude") if log.exists() else 0


# -- defect 3: spatial filters in geographic coordinates --------------------------------------------

def test_world_bbox_answers_every_feature(http: requests.Session, ogc: str, engine: sa.Engine) -> None:
    pipes = count(engine, "pipe")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM pipe")).scalar_one() == pipes  # the city sees every pipe
    noise = proj_noise()
    for params in ({"bbox": WORLD}, {"bbox": "-90,-180,90,180", "bbox-crs": EPSG4490},
                   {"bbox": "-1e308,-1e308,1e308,1e308"}, {"bbox": "-180,-90,0,180,90,9000"}):
        body = get(http, f"{ogc}/collections/pipes/items", limit=features.MAX_LIMIT, skipGeometry="true",
                   **params).json()
        assert (body["numberReturned"], body["numberMatched"]) == (pipes, pipes), params
        assert len({f["id"] for f in body["features"]}) == pipes
    # a box where the storage CRS (EPSG:4550, 121.5°–124.5°E) is not defined holds nothing
    body = get(http, f"{ogc}/collections/pipes/items", bbox="0,0,1,1").json()
    assert (body["numberReturned"], body["numberMatched"], body["features"]) == (0, 0, [])
    assert proj_noise() == noise  # PROJ saw no point it cannot project


def test_world_polygon_in_cql2_answers_every_feature(http: requests.Session, ogc: str, engine: sa.Engine) -> None:
    pipes = count(engine, "pipe")
    world = {"type": "Polygon", "coordinates": [WORLD_RING]}
    noise = proj_noise()
    for op in ("s_intersects", "s_within"):
        cql = json.dumps({"op": op, "args": [{"property": "geometry"}, world]})
        body = get(http, f"{ogc}/collections/pipes/items", limit=features.MAX_LIMIT, skipGeometry="true",
                   filter=cql, **{"filter-lang": "cql2-json"}).json()
        assert (body["numberReturned"], body["numberMatched"]) == (pipes, pipes), op
    text = get(http, f"{ogc}/collections/pipes/items", limit=1,
               filter="S_INTERSECTS(geometry, POLYGON((-180 -90, 180 -90, 180 90, -180 90, -180 -90)))").json()
    assert text["numberMatched"] == pipes
    disjoint = get(http, f"{ogc}/collections/pipes/items", filter="S_DISJOINT(geometry, BBOX(-180,-90,180,90))").json()
    assert (disjoint["numberReturned"], disjoint["numberMatched"]) == (0, 0)
    # where clipping would change the answer, a geometry reaching outside the CRS's domain is refused
    description = assert_400(get(http, f"{ogc}/collections/pipes/items",
                                 filter="S_TOUCHES(geometry, BBOX(-180,-90,180,90))"), "filter")
    assert "where EPSG:4550 is defined" in description
    assert proj_noise() == noise


@pytest.mark.parametrize("bbox, message", [
    ("nan,0,1,1", "bbox: NaN and infinity are not coordinates"),
    ("0,0,inf,1", "bbox: NaN and infinity are not coordinates"),
    ("124,41,123,42", "bbox: the lower corner comes first: minimum values, then maximum values, on every axis"),
    ("123,42,124,41", "bbox: the lower corner comes first: minimum values, then maximum values, on every axis"),
    ("1,2,3,4,5", "bbox: needs 4 or 6 numbers, got 5"),
    (",".join(["1"] * 5000), "bbox: needs 4 or 6 numbers, got 5000"),
])
def test_bad_bboxes_are_400(http: requests.Session, ogc: str, bbox: str, message: str) -> None:
    r = get(http, f"{ogc}/collections/pipes/items", bbox=bbox)
    assert_400(r, "bbox")
    assert r.json()["description"] == message


def ring(points: int) -> list[tuple[float, float]]:
    """A closed ring of `points` positions around the demo city (the last repeats the first), 3 decimals
    (so that 10,000 positions fit in a URL)."""
    import math
    out = [(round(123.0 + math.cos(2 * math.pi * i / (points - 1)), 3),
            round(41.1 + math.sin(2 * math.pi * i / (points - 1)), 3)) for i in range(points - 1)]
    return [*out, out[0]]


def wkt_polygon(points: int) -> str:
    return "POLYGON((" + ", ".join(f"{x} {y}" for x, y in ring(points)) + "))"


def test_too_many_positions_are_400(http: requests.Session, ogc: str) -> None:
    description = assert_400(get(http, f"{ogc}/collections/pipes/items",
                                 filter=f"S_INTERSECTS(geometry, {wkt_polygon(MAX_POSITIONS + 1)})"), "filter")
    assert description == f"filter: more than {MAX_POSITIONS:,} positions in the filter's geometries"


@pytest.mark.parametrize("geometry, message", [
    ({"type": "Polygon", "coordinates": [[[123, 41], [124, 41]]]}, "not a valid geometry"),
    ({"type": "Point", "coordinates": [float("nan"), 41]}, "a geometry needs finite coordinates"),
    ({"type": "Point", "coordinates": [1e400, 41]}, "a geometry needs finite coordinates"),
    ({"type": "Blob", "coordinates": [1, 2]}, "not a valid geometry"),
])
def test_bad_filter_geometries_are_400(http: requests.Session, ogc: str, geometry: dict, message: str) -> None:
    cql = json.dumps({"op": "s_intersects", "args": [{"property": "geometry"}, geometry]})
    description = assert_400(get(http, f"{ogc}/collections/pipes/items", filter=cql, **{"filter-lang": "cql2-json"}),
                             "filter")
    assert description.startswith(f"filter: {message}"), description


def test_large_polygon_within_the_cap_answers(http: requests.Session, ogc: str, engine: sa.Engine) -> None:
    polygon = wkt_polygon(MAX_POSITIONS)
    body = get(http, f"{ogc}/collections/stations/items", filter=f"S_INTERSECTS(geometry, {polygon})").json()
    with engine.connect() as conn:
        expected = conn.execute(sa.text(
            f"SELECT count(*) FROM station WHERE {IN_THE_CITY} AND ST_Intersects(geom, ST_Transform("
            "ST_Segmentize(ST_GeomFromText(:g, 4326), 0.001), 4550))"), {"g": polygon, "city": CITY}).scalar_one()
    assert body["numberMatched"] == expected > 0


def test_a_zigzag_literal_is_densified_to_a_bounded_size(http: requests.Session, ogc: str,
                                                         engine: sa.Engine) -> None:
    """1,500 positions zig-zagging across the storage CRS's area of use: densified at a 256th of the
    box they would be 385,000 vertices in the query's plan; the step grows so that they stay within
    MAX_DENSIFIED_SEGMENTS, and the answer is the one PostGIS gives for that step."""
    import shapely

    line = "LINESTRING(" + ", ".join(f"{124.4 if i % 2 else 121.6} {round(40.8 + i * 0.0005, 4)}"
                                     for i in range(1500)) + ")"
    geometry = shapely.from_wkt(line)
    edges = np.hypot(*np.diff(shapely.get_coordinates(geometry), axis=0).T)
    step = densify_step(geometry.bounds, length=geometry.length)
    assert np.ceil(edges / densify_step(geometry.bounds)).sum() > 3 * MAX_DENSIFIED_SEGMENTS   # unbounded
    assert np.ceil(edges / step).sum() <= MAX_DENSIFIED_SEGMENTS + len(edges)
    with engine.connect() as conn:
        expected = conn.execute(sa.text(
            f"SELECT count(*) FROM pipe WHERE {IN_THE_CITY} AND ST_Intersects(geom, ST_Transform("
            "ST_Segmentize(ST_GeomFromText(:g, 4326), :s), 4550))"), {"g": line, "s": step, "city": CITY}).scalar_one()
    answer = get(http, f"{ogc}/collections/pipes/items", filter=f"S_INTERSECTS(geometry, {line})", limit=1)
    assert answer.status_code == 200, answer.text[:300]
    assert answer.json()["numberMatched"] == expected > 0


# -- defect 4: 500 instead of 400 -------------------------------------------------------------------

def test_long_and_or_chains_are_400_and_short_ones_answer(http: requests.Session, ogc: str, engine: sa.Engine) -> None:
    url = f"{ogc}/collections/pipes/items"
    for joiner in (" AND ", " OR "):
        description = assert_400(get(http, url, filter=joiner.join(["diameter_mm > 0"] * 600)), "filter")
        assert description.startswith("filter: nested too deeply")
    nested = '{"op": "not", "args": [' * 2000 + '{"op": "=", "args": [{"property": "code"}, "x"]}' + "]}" * 2000
    assert_400(get(http, url, filter=nested, **{"filter-lang": "cql2-json"}), "filter")
    ok = get(http, url, filter=" OR ".join([f"diameter_mm = {d}" for d in range(MAX_DEPTH // 2)]), limit=1)
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("params, parameter", [
    ({"offset": "9" * 5000}, "offset"),
    ({"offset": str(features.MAX_OFFSET + 1)}, "offset"),
    ({"offset": "١٢٣"}, "offset"),
    ({"limit": "١٢٣"}, "limit"),
    ({"cursor": "W1sxLCAyXV0"}, "cursor"),            # [[1, 2]]: a list where a key value belongs
    ({"cursor": "WyJcdTAwMDAiXQ"}, "cursor"),          # ["\u0000"]
    ({"cursor": "WzFlOTk5XQ"}, "cursor"),              # [1e999]
    ({"cursor": "Wzk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5XQ"}, "cursor"),  # beyond bigint
    ({"cursor": "WyJcdWQ4MDAiXQ"}, "cursor"),          # ["\ud800"]: a lone surrogate psycopg cannot encode
    ({"code": "GX\x00"}, "code"),
    ({"filter": "code = 'a\x00b'"}, "filter"),
    ({"filter": '{"op": "=", "args": [{"property": "code"}, "\\ud800"]}', "filter-lang": "cql2-json"}, "filter"),
    ({"filter": '{"op": "in", "args": [{"property": "code"}, ["GX1", "\\udfff"]]}', "filter-lang": "cql2-json"},
     "filter"),
])
def test_malformed_paging_and_values_are_400(http: requests.Session, ogc: str, params: dict, parameter: str) -> None:
    assert_400(get(http, f"{ogc}/collections/pipes/items", **params), parameter)


def test_limit_of_thousands_of_digits_is_clipped(http: requests.Session, ogc: str) -> None:
    body = get(http, f"{ogc}/collections/pipes/items", limit="9" * 5000, skipGeometry="true").json()
    assert body["numberReturned"] == min(features.MAX_LIMIT, body["numberMatched"])


def test_malformed_ids_are_400_and_unknown_ones_404(http: requests.Session, ogc: str) -> None:
    for path in ("topology_issues/items/99999999999999999999", "topology_issues/items/١٢٣",
                 "pipes/items/GX%00", "topology_issues/items/1%00"):
        assert_400(http.get(f"{ogc}/collections/{path}", timeout=30), "featureId")
        assert_400(http.get(f"{ogc}/collections/{path}", params={"f": "html"}, timeout=30), "featureId")
    for path in ("topology_issues/items/abc", "topology_issues/items/9223372036854775807", "pipes/items/NOPE"):
        r = http.get(f"{ogc}/collections/{path}", timeout=30)
        assert (r.status_code, r.json()["code"]) == (404, "NotFound"), path


@pytest.mark.parametrize("body, description", [
    (b"null", 'body: a JSON object is expected, e.g. {"inputs": {...}}'),
    (b"5", 'body: a JSON object is expected, e.g. {"inputs": {...}}'),
    (b"[]", 'body: a JSON object is expected, e.g. {"inputs": {...}}'),
    (b"", 'body: a JSON object is expected, e.g. {"inputs": {...}}'),
    (b"\xff\xfe{\x00}", "body: not UTF-8"),
    (b"{", 'body: not JSON; send {"inputs": {...}}'),
    (b"[" * 100_000, "body: JSON nested too deeply"),
    (b'{"inputs": 5}', "inputs: a JSON object is expected"),
    (b'{"inputs": {"pipe": "GX\\u0000"}}', "inputs.pipe: contains a NUL character"),
    (b'{"inputs": {"pipe": "\\ud800"}}', "inputs.pipe: contains a lone UTF-16 surrogate (not valid Unicode)"),
    (b'{"inputs": {"pipe": "GX0000001"}, "response": 5}', "response: raw or document"),
])
def test_process_bodies_that_are_not_json_objects_are_400(http: requests.Session, ogc: str, body: bytes,
                                                          description: str) -> None:
    r = http.post(f"{ogc}/processes/burst-analysis/execution", data=body,
                  headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 400, r.text[:300]
    assert r.json() == {"code": "InvalidParameterValue", "description": description}


def test_request_bodies_are_bounded(live_server, ogc: str, users: dict[str, signed_in.TestAccount]) -> None:
    big = b"{" + b" " * (2 * 1024 * 1024) + b"}"
    dispatcher = users["a_dispatcher"]   # may read, run processes and take alarm steps
    for method, url in (("post", f"{ogc}/processes/burst-analysis/execution"), ("get", f"{ogc}/collections"),
                        ("post", f"{live_server.url}/api/alarms/BJ1/acknowledge")):
        for headers in (dispatcher.headers, {}):   # refused before the credentials are even looked at
            r = requests.request(method, url, data=big, headers={"Content-Type": "application/json", **headers},
                                 timeout=60)
            assert r.status_code == 413, (url, headers)
            assert r.json() == {"code": "PayloadTooLarge", "description": "body: larger than 1,048,576 bytes"}

    def chunks() -> Iterator[bytes]:  # no Content-Length: found too large while read
        for _ in range(40):
            yield b" " * 65536
    r = requests.post(f"{ogc}/processes/burst-analysis/execution", data=chunks(),
                      headers={"Content-Type": "application/json", **dispatcher.headers}, timeout=60)
    assert (r.status_code, r.json()["code"]) == (413, "PayloadTooLarge")


# -- defect 2: one tile request with a collection repeated ----------------------------------------

def test_layered_tile_refuses_repeated_and_empty_collections(http: requests.Session, ogc: str) -> None:
    url = f"{ogc}/tiles/WebMercatorQuad/14/6052/13791"
    r = get(http, url, collections=",".join(["pipes"] * 1000))
    assert assert_400(r, "collections") == "collections: pipes given more than once"
    r = get(http, url, collections="valves,pipes,valves,pipes")
    assert r.json()["description"] == "collections: pipes, valves given more than once"
    assert assert_400(get(http, url, collections=""), "collections").startswith("collections: an empty name")
    assert_400(get(http, url, collections="pipes,,valves"), "collections")


def test_tiles_far_from_the_storage_crs_are_empty_without_proj_noise(http: requests.Session, ogc: str) -> None:
    noise = proj_noise()
    for z, y, x in ((10, 512, 512), (8, 0, 0), (14, 8191, 16383)):  # null island, the Arctic, the antipodes
        r = get(http, f"{ogc}/tiles/WebMercatorQuad/{z}/{y}/{x}")
        assert r.status_code == 204, (z, y, x)
        assert get(http, f"{ogc}/collections/pipes/tiles/WebMercatorQuad/{z}/{y}/{x}").status_code == 204
    assert proj_noise() == noise


# -- statement_timeout, CORS -----------------------------------------------------------------------

def test_statement_timeout_answers_503(db_url: str, tmp_path: Path, http: requests.Session) -> None:
    with server_with(db_url, tmp_path, "qiwang_timeout_test", QIWANG_STATEMENT_TIMEOUT="1",
                     QIWANG_PROCESS_STATEMENT_TIMEOUT="1") as server:
        # 1 ms: assembling 3,000 pipes' GeoJSON, or their statistics, takes far longer
        r = http.get(f"{server.url}/ogc/collections/pipes/items", params={"limit": "10000", "crs": EPSG4490},
                     timeout=60)
        assert r.status_code == 503
        assert r.json()["code"] == "ServiceUnavailable"
        assert r.json()["description"].startswith("statement_timeout:")
        r = http.post(f"{server.url}/ogc/processes/network-statistics/execution", json={"inputs": {}}, timeout=60)
        assert r.status_code == 503, r.text[:300]
        assert r.json()["code"] == "ServiceUnavailable"
        assert r.json()["description"].startswith("statement_timeout:")


def test_bad_limit_settings_stop_the_app(db_url: str, tmp_path: Path) -> None:
    """A value PostgreSQL refuses is named by where it came from: the variable, or the file and key."""
    from core.errors import InvalidInput
    with pytest.raises(InvalidInput) as raised:
        with server_with(db_url, tmp_path, "qiwang_bad_settings", QIWANG_WORK_MEM="lots"):
            pass
    assert str(raised.value) == 'QIWANG_WORK_MEM: invalid value for parameter "work_mem": "lots"'
    settings_file = tmp_path / "qiwang.toml"
    settings_file.write_text('process_statement_timeout = "2 fortnights"\n', encoding="utf-8")
    with pytest.raises(InvalidInput) as raised:
        with server_with(db_url, tmp_path, "qiwang_bad_settings", QIWANG_SETTINGS_FILE=str(settings_file)):
            pass
    assert str(raised.value) == (f'{settings_file}: process_statement_timeout: invalid value for parameter '
                                 '"statement_timeout": "2 fortnights"')
    with pytest.raises(InvalidInput) as raised:
        with server_with(db_url, tmp_path, "qiwang_bad_settings", QIWANG_CORS_ORIGINS="*"):
            pass
    assert str(raised.value) == "QIWANG_CORS_ORIGINS: '*' is not an origin (scheme://host[:port], no wildcard)"


def cors(dispatcher: signed_in.TestAccount, url: str, origin: str, method: str = "get") -> str | None:
    """The Access-Control-Allow-Origin answered to `origin`; requests other than preflights are signed
    as `dispatcher`, who may read and take alarm steps (so that they reach the handler)."""
    if method == "preflight":   # a browser's preflight carries no credentials
        r = requests.options(url, headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                           "Access-Control-Request-Headers": "authorization, content-type"},
                             timeout=30)
    else:
        r = requests.request(method, url, headers={"Origin": origin, **dispatcher.headers}, json={}, timeout=30)
        assert r.status_code != 401, r.text[:200]
    return r.headers.get("Access-Control-Allow-Origin")


def test_cors_only_for_configured_origins(live_server, db_url: str, tmp_path: Path,
                                          users: dict[str, signed_in.TestAccount]) -> None:
    dispatcher = users["a_dispatcher"]
    evil = "http://evil.example"
    alarm = "/api/alarms/BJ19000101999999/acknowledge"
    for path, method in (("/ogc/collections", "get"), (alarm, "post"), (alarm, "preflight"),
                         ("/styles/maplibre.json", "get")):
        assert cors(dispatcher, live_server.url + path, evil, method) is None, path  # the default: same origin only
    web_map = "https://map.example:8443"
    with server_with(db_url, tmp_path, "qiwang_cors_test", QIWANG_CORS_ORIGINS=web_map) as server:
        assert cors(dispatcher, f"{server.url}/ogc/collections", web_map) == web_map
        assert cors(dispatcher, f"{server.url}/ogc/collections/pipes/tiles/WebMercatorQuad/0/0/0", web_map) == web_map
        assert cors(dispatcher, f"{server.url}/ogc/collections", evil) is None
        for method in ("post", "preflight"):  # reading allowed is not acting on alarms allowed
            assert cors(dispatcher, server.url + alarm, web_map, method) is None
    control_room = "https://control.example"
    with server_with(db_url, tmp_path, "qiwang_cors_api_test", QIWANG_CORS_API_ORIGINS=control_room) as server:
        assert cors(dispatcher, server.url + alarm, control_room, "preflight") == control_room
        assert cors(dispatcher, server.url + alarm, control_room, "post") == control_room
        assert cors(dispatcher, server.url + alarm, evil, "preflight") is None
        assert cors(dispatcher, f"{server.url}/ogc/collections", control_room) is None


def test_pages_of_other_sites_cannot_take_steps(live_server, db_url: str, tmp_path: Path,
                                                users: dict[str, signed_in.TestAccount]) -> None:
    """CSRF: a browser sends a "simple" cross-site POST (text/plain, a form, fetch no-cors) without a
    preflight, whatever CORS says; such writes are refused by their Origin before any handler runs,
    even when the browser holds credentials that would be allowed the step."""
    dispatcher = users["a_dispatcher"]
    alarm = "/api/alarms/BJ19000101999999/acknowledge"
    body = '{"by": "攻击者", "note": "'   # a text/plain form field whose value closes the JSON: "}
    for origin in ("http://evil.example", "null", live_server.url + ".evil.example"):
        r = requests.post(live_server.url + alarm, data=(body + '"}').encode(), timeout=30,
                          headers={"Origin": origin, "Content-Type": "text/plain", **dispatcher.headers})
        assert r.status_code == 403, (origin, r.text[:200])
        assert r.json()["code"] == "Forbidden" and r.json()["description"].startswith("Origin: ")
    r = requests.post(f"{live_server.url}/ogc/processes/network-statistics/execution", json={"inputs": {}},
                      headers={"Origin": "http://evil.example", **dispatcher.headers}, timeout=60)
    assert r.status_code == 403 and r.json()["description"].startswith("Origin: ")
    # the map's own page (same origin), and clients that are no browser (no Origin), reach the handler
    for headers in ({"Origin": live_server.url}, {}):
        r = requests.post(live_server.url + alarm, json={"by": dispatcher.name},
                          headers={**headers, **dispatcher.headers}, timeout=30)
        assert r.status_code == 404 and r.json()["code"] == "NotFound", r.text[:200]
    assert requests.get(f"{live_server.url}/ogc/collections", headers={"Origin": "http://evil.example",
                                                                       **dispatcher.headers},
                        timeout=30).status_code == 200      # reading is not refused, only not shared
    control_room = "https://control.example"
    with server_with(db_url, tmp_path, "qiwang_csrf_api_test", QIWANG_CORS_API_ORIGINS=control_room) as server:
        r = requests.post(server.url + alarm, json={"by": dispatcher.name},
                          headers={"Origin": control_room, **dispatcher.headers}, timeout=30)
        assert r.status_code == 404 and r.json()["code"] == "NotFound", r.text[:200]
        r = requests.post(server.url + alarm, json={"by": dispatcher.name},
                          headers={"Origin": "http://evil.example", **dispatcher.headers}, timeout=30)
        assert r.status_code == 403 and r.json()["description"].startswith("Origin: ")


def test_storage_domain_holds_the_demo_city(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        box = conn.execute(sa.text("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
                                   "(SELECT ST_Extent(ST_Transform(geom, 4326)) AS e FROM pipe) x")).one()
    w, s, e, n = storage_domain(4550, None)
    assert (w, s, e, n) == (121.5, 28.22, 124.5, 53.56)
    assert w < box[0] and s < box[1] and box[2] < e and box[3] < n


def test_proj_only_sees_points_inside_the_storage_crs_domain(db_url: str, engine: sa.Engine) -> None:
    """PROJ (older versions log "tmerc: Invalid latitude" once per point; this one projects silently)
    is handed only coordinates inside the storage CRS's domain: the bbox is clipped in Python, CQL2
    geometries by ST_ClipByBox2D before ST_Transform, and a tile outside it runs no SQL at all."""
    from core.crs import served_crs
    from spatial import cql2, tiles
    from spatial.ogc_provider import collections_of

    pipes = collections_of(db_url)["pipes"]
    domain = storage_domain(pipes.srid, pipes.extent_crs84)
    params: dict = {}
    features.where_clause(features.parse_items_request(pipes, {"bbox": WORLD}), params)
    assert (params["bx1"], params["by1"], params["bx2"], params["by2"]) == domain
    condition = cql2.to_sql("S_INTERSECTS(geometry, BBOX(-180,-90,180,90))", "cql2-text", pipes, served_crs("CRS84"))
    assert condition.sql.startswith("ST_Intersects(t.\"geom\", ST_Transform(ST_Segmentize(ST_ClipByBox2D(")
    assert f"ST_MakeEnvelope({', '.join(map(repr, domain))}, 4326)" in condition.sql

    statements: list[str] = []

    def record(conn, cursor, statement, *args) -> None:
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        with engine.connect() as conn:
            assert tiles.layered_tile(conn, list(collections_of(db_url).values()), 10, 512, 512) == b""
            x, y = 6894, 3068  # z13 at 123°E, 41.1°N (the demo city): inside the domain, so queried
            tiles.layered_tile(conn, [pipes], 13, x, y)
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    assert len(statements) == 2 and "ST_ClipByBox2D(ST_TileEnvelope" in statements[-1]  # SET LOCAL, the tile
