"""Vector tiles and processes of the OGC API against a running server: tiles decoded and compared with
PostGIS, processes run with OWSLib (synchronously, and asynchronously through the jobs kept in
PostgreSQL).

Every request signs in (issue 18): plain HTTP with the city regulator's token (who sees the whole
demo city, so PostGIS on the owner's connection gives the expected answers), OWSLib with the
regulator's name and password (HTTP Basic). Tiles are cut in the caller's scope and may be cached
by that caller only; jobs are their account's; storing an incident needs a dispatcher of the burst
pipe's enterprise."""

from __future__ import annotations

import math
import re
import time

import mapbox_vector_tile
import pytest
import requests
import sqlalchemy as sa
from owslib.ogcapi.processes import Processes
from owslib.util import Authentication
from signed_in import ENTERPRISE_A

from app.processes import PROCESSES
from network_analysis.api import burst_analysis
from spatial import tiles

MVT = "application/vnd.mapbox-vector-tile"
CHALLENGE = 'Basic realm="Qiwang", charset="UTF-8"'


@pytest.fixture(scope="module")
def ogc(live_server) -> str:
    return f"{live_server.url}/ogc"


@pytest.fixture(scope="module")
def processes(ogc: str, users) -> Processes:
    """OWSLib signed in with HTTP Basic as the city's regulator (not with `headers=`: OWSLib 0.35
    adds those to its module-wide REQUEST_HEADERS, so every later client would send them too)."""
    return Processes(ogc, auth=Authentication(*users["city_regulator"].basic))


def directives(header: str) -> set[str]:
    """The comma-separated values of a header (Cache-Control, Vary), in any order."""
    return {part.strip() for part in header.split(",")}


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    """(x, y) of the WebMercatorQuad tile holding a CRS84 point."""
    n = 2 ** z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def station_lonlat(engine: sa.Engine, code: str = "CZ0001") -> tuple[float, float]:
    with engine.connect() as conn:
        return tuple(conn.execute(sa.text(
            "SELECT ST_X(g), ST_Y(g) FROM (SELECT ST_Transform(geom, 4326) g FROM station WHERE code = :c) s"),
            {"c": code}).one())


def decode(data: bytes) -> dict:
    return mapbox_vector_tile.decode(data, default_options={"y_coord_down": True})


def test_tile_features_match_postgis(ogc: str, engine: sa.Engine, http: requests.Session) -> None:
    lon, lat = station_lonlat(engine)
    z = 16
    x, y = tile_of(lon, lat, z)
    url = f"{ogc}/collections/pipes/tiles/WebMercatorQuad/{z}/{y}/{x}"
    r = http.get(url, timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"] == MVT
    assert r.headers["Content-Encoding"] == "gzip"  # requests sent Accept-Encoding: gzip and undid it
    # cut in the caller's scope: cached by that caller only
    assert directives(r.headers["Cache-Control"]) == {"private", "max-age=60"} and r.headers["ETag"]
    assert directives(r.headers["Vary"]) == {"Accept-Encoding", "Authorization", "Cookie"}
    layer = decode(r.content)["pipes"]
    margin = tiles.BUFFER / tiles.EXTENT
    with engine.connect() as conn:
        expected = set(conn.execute(sa.text(
            "SELECT code FROM pipe WHERE ST_Intersects(ST_Transform(geom, 3857), "
            "ST_TileEnvelope(:z, :x, :y, margin => :m))"), {"z": z, "x": x, "y": y, "m": margin}).scalars())
    got = [f["properties"]["code"] for f in layer["features"]]
    assert len(got) == len(set(got)) and set(got) == expected and expected
    assert layer["extent"] == tiles.EXTENT
    one = layer["features"][0]["properties"]
    assert {"pressure_class", "status", "diameter_mm", "pipe_type"} <= set(one)
    # the station symbol sits at its Web Mercator position within the tile (to one tile unit)
    st = http.get(f"{ogc}/collections/stations/tiles/WebMercatorQuad/{z}/{y}/{x}", timeout=30)
    feature = next(f for f in decode(st.content)["stations"]["features"] if f["properties"]["code"] == "CZ0001")
    n = 2 ** z
    fx = ((lon + 180) / 360 * n - x) * tiles.EXTENT
    fy = ((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n - y) * tiles.EXTENT
    px, py = feature["geometry"]["coordinates"]
    assert abs(px - fx) <= 1 and abs(py - fy) <= 1
    # conditional request: unchanged tile → 304
    again = http.get(url, headers={"If-None-Match": r.headers["ETag"]}, timeout=30)
    assert again.status_code == 304
    assert directives(again.headers["Cache-Control"]) == {"private", "max-age=60"}


def test_tiles_hold_the_callers_scope_only(ogc: str, engine: sa.Engine, http: requests.Session, users) -> None:
    """An enterprise's viewer gets the tile with its own enterprise's pipes: the city regulator's tile
    less every other enterprise's pipe; the regulator's ETag is not this tile's; no account, 401."""
    lon, lat = station_lonlat(engine)
    z = 12
    x, y = tile_of(lon, lat, z)
    url = f"{ogc}/collections/pipes/tiles/WebMercatorQuad/{z}/{y}/{x}"
    city = http.get(url, timeout=30)
    viewer = requests.get(url, headers=users["a_viewer"].headers, timeout=30)
    assert city.status_code == viewer.status_code == 200
    everything = {f["properties"]["code"] for f in decode(city.content)["pipes"]["features"]}
    with engine.connect() as conn:
        of_a = set(conn.execute(sa.text("SELECT code FROM pipe WHERE enterprise_code = :e"),
                                {"e": ENTERPRISE_A}).scalars())
    assert everything & of_a and everything - of_a  # the tile holds both enterprises' pipes
    assert sorted(f["properties"]["code"] for f in decode(viewer.content)["pipes"]["features"]) == \
        sorted(everything & of_a)
    assert viewer.headers["ETag"] != city.headers["ETag"]
    held = requests.get(url, headers={**users["a_viewer"].headers, "If-None-Match": city.headers["ETag"]}, timeout=30)
    assert held.status_code == 200 and held.content == viewer.content
    anonymous = requests.get(url, timeout=30)
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"] == CHALLENGE
    assert anonymous.json()["code"] == "Unauthorized"


def test_tiles_thin_out_at_small_zooms_and_empty_tiles_are_204(ogc: str, engine: sa.Engine,
                                                              http: requests.Session) -> None:
    lon, lat = station_lonlat(engine)
    x, y = tile_of(lon, lat, 12)
    r = http.get(f"{ogc}/collections/pipes/tiles/WebMercatorQuad/12/{y}/{x}", timeout=30)
    assert r.status_code == 200
    small = decode(r.content)["pipes"]["features"]
    assert small and {f["properties"]["pipe_type"] for f in small} == {"trunk"}
    # small zooms carry only what the styles need; the full attributes come with a click (/items/{code})
    assert {key for f in small for key in f["properties"]} <= set(tiles.rule("pipes").light)
    # customers are not drawn below zoom 15; the sea off Antarctica has no pipes
    assert http.get(f"{ogc}/collections/customers/tiles/WebMercatorQuad/12/{y}/{x}", timeout=30).status_code == 204
    empty = http.get(f"{ogc}/collections/pipes/tiles/WebMercatorQuad/16/65000/100", timeout=30)
    assert empty.status_code == 204 and empty.content == b""
    for path, status in (("pipes/tiles/WebMercatorQuad/3/8/1", 404), ("pipes/tiles/WebMercatorQuad/3/1/1?z=1", 400),
                         ("gasworks/tiles/WebMercatorQuad/3/1/1", 404)):
        bad = http.get(f"{ogc}/collections/{path}", timeout=30)
        assert bad.status_code == status and bad.json()["code"], path


def test_tileset_documents(ogc: str, http: requests.Session) -> None:
    tilesets = http.get(f"{ogc}/collections/valves/tiles", timeout=30).json()["tilesets"]
    assert len(tilesets) == 1 and tilesets[0]["dataType"] == "vector"
    assert tilesets[0]["tileMatrixSetURI"] == "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
    template = next(link["href"] for link in tilesets[0]["links"] if link["rel"] == "item")
    assert template.endswith("/collections/valves/tiles/WebMercatorQuad/{tileMatrix}/{tileRow}/{tileCol}?f=mvt")
    tileset = http.get(f"{ogc}/collections/valves/tiles/WebMercatorQuad", timeout=30).json()
    assert tileset["layers"][0]["id"] == "valves" and tileset["layers"][0]["minTileMatrix"] == "14"
    tilejson = http.get(f"{ogc}/collections/valves/tiles/WebMercatorQuad", params={"f": "tilejson"},
                            timeout=30).json()
    assert tilejson["tiles"] == [f"{ogc}/collections/valves/tiles/WebMercatorQuad/{{z}}/{{y}}/{{x}}?f=mvt"]
    assert tilejson["minzoom"] == 14 and tilejson["vector_layers"][0]["id"] == "valves"
    assert "normal_state" in tilejson["vector_layers"][0]["fields"]
    links = {link["rel"] for link in http.get(f"{ogc}/collections/valves", timeout=30).json()["links"]}
    assert "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector" in links and "items" in links
    assert http.get(f"{ogc}/TileMatrixSets/WebMercatorQuad", timeout=30).json()["id"] == "WebMercatorQuad"
    # No CORS unless origins are configured (tests/test_api_limits.py checks configured ones)
    r = http.get(f"{ogc}/collections/valves/tiles", headers={"Origin": "http://example.org"}, timeout=30)
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers


def test_process_descriptions(ogc: str, processes: Processes, http: requests.Session) -> None:
    p = processes
    assert [d["id"] for d in p.processes()] == list(PROCESSES)
    burst = p.process("burst-analysis")
    assert {"pipe", "point", "failed_valves"} <= set(burst["inputs"])
    assert set(burst["jobControlOptions"]) == {"sync-execute", "async-execute"}
    r = http.get(f"{ogc}/processes/no-such-process", timeout=30)
    assert r.status_code == 404
    for anonymous in (requests.get(f"{ogc}/processes", timeout=30),
                      requests.post(f"{ogc}/processes/burst-analysis/execution", json={"inputs": {"pipe": "x"}},
                                    timeout=30)):
        assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"] == CHALLENGE


def unwrap(document: dict) -> dict:
    """The report out of a `response: document` answer ({"outputs": [report]}), as OWSLib asks for."""
    outputs = document["outputs"]
    return outputs[0] if isinstance(outputs, list) else outputs


def test_burst_analysis_sync_and_async_with_owslib(ogc: str, engine: sa.Engine, processes: Processes,
                                                   http: requests.Session, users) -> None:
    with engine.connect() as conn:
        pipe = conn.execute(sa.text("SELECT code FROM pipe WHERE pipe_type = 'main' ORDER BY code LIMIT 1")).scalar()
    expected = burst_analysis(engine, pipe=pipe)
    p = processes
    report = unwrap(p.execute("burst-analysis", {"pipe": pipe}))
    assert [v["code"] for v in report["valves_to_close"]] == [v["code"] for v in expected["valves_to_close"]]
    assert report["isolated_pipes"] == expected["isolated_pipes"]

    accepted = p.execute("burst-analysis", {"pipe": pipe}, async_=True)
    location = p.response_headers["Location"]
    job_id = location.rsplit("/", 1)[1]
    assert accepted["jobID"] == job_id and accepted["status"] in ("accepted", "running", "successful")
    deadline = time.monotonic() + 60
    while (status := http.get(location, timeout=30).json())["status"] in ("accepted", "running"):
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    assert status["status"] == "successful"
    result = unwrap(http.get(f"{location}/results", timeout=30).json())
    assert [v["code"] for v in result["valves_to_close"]] == [v["code"] for v in expected["valves_to_close"]]
    with engine.connect() as conn:  # the job is kept in PostgreSQL
        assert conn.execute(sa.text("SELECT status, process_id FROM jobs WHERE identifier = :j"),
                            {"j": job_id}).one() == ("successful", "burst-analysis")
    listed = http.get(f"{ogc}/jobs", timeout=30).json()["jobs"]
    assert job_id in {j["jobID"] for j in listed}
    # the job is its account's: another account neither lists, reads nor deletes it
    other = users["a_viewer"].session()
    assert job_id not in {j["jobID"] for j in other.get(f"{ogc}/jobs", timeout=30).json()["jobs"]}
    for answer in (other.get(location, timeout=30), other.get(f"{location}/results", timeout=30),
                   other.delete(location, timeout=30)):
        assert answer.status_code == 404, answer.request.method
    assert http.get(location, timeout=30).json()["status"] == "successful"

    bad = http.post(f"{ogc}/processes/burst-analysis/execution", json={"inputs": {"pipe": "NO-SUCH-PIPE"}},
                        timeout=30)
    assert bad.status_code == 400 and "pipe" in bad.json()["description"]
    # a synchronous execution is not kept as a job, so it links to none
    sync = http.post(f"{ogc}/processes/burst-analysis/execution", json={"inputs": {"pipe": pipe}}, timeout=30)
    assert sync.status_code == 200 and "Location" not in sync.headers


def test_layered_tile_holds_each_collection_tile(ogc: str, engine: sa.Engine, http: requests.Session) -> None:
    lon, lat = station_lonlat(engine)
    z = 16
    x, y = tile_of(lon, lat, z)
    r = http.get(f"{ogc}/tiles/WebMercatorQuad/{z}/{y}/{x}", params={"collections": "pipes,stations,customers"},
                     timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"] == MVT
    layered = decode(r.content)
    assert set(layered) <= {"pipes", "stations", "customers"} and {"pipes", "stations"} <= set(layered)
    for cid, layer in layered.items():
        alone = decode(http.get(f"{ogc}/collections/{cid}/tiles/WebMercatorQuad/{z}/{y}/{x}", timeout=30).content)
        assert sorted(f["properties"]["code"] for f in layer["features"]) == \
            sorted(f["properties"]["code"] for f in alone[cid]["features"])
    bad = http.get(f"{ogc}/tiles/WebMercatorQuad/{z}/{y}/{x}", params={"collections": "pipes,gasworks"}, timeout=30)
    assert bad.status_code == 400 and bad.json()["description"].startswith("collections:")


def main_pipe_of(engine: sa.Engine, enterprise: str) -> str:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT code FROM pipe WHERE pipe_type = 'main' AND enterprise_code = :e "
                                    "ORDER BY code LIMIT 1"), {"e": enterprise}).scalar_one()


def incident_count(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM incident")).scalar_one()


def test_a_dispatcher_of_the_pipes_enterprise_stores_the_burst_as_an_incident(ogc: str, engine: sa.Engine,
                                                                              users) -> None:
    pipe = main_pipe_of(engine, ENTERPRISE_A)
    dispatcher = users["a_dispatcher"].session()
    r = dispatcher.post(f"{ogc}/processes/burst-analysis/execution",
                        json={"inputs": {"pipe": pipe, "save_as": "planned", "title": "爆管演练 drill"}}, timeout=60)
    assert r.status_code == 200, r.text
    report = r.json()
    code = report["incident"]
    try:
        assert re.fullmatch(r"SG\d{6}", code)
        assert report["valves_to_close"] == burst_analysis(engine, pipe=pipe)["valves_to_close"]
        with engine.connect() as conn:
            row = conn.execute(sa.text("SELECT state, title, enterprise_code, request->>'pipe' FROM incident "
                                       "WHERE code = :c"), {"c": code}).one()
        assert tuple(row) == ("planned", "爆管演练 drill", ENTERPRISE_A, pipe)
        # the incident is enterprise A's: its staff read it, enterprise B's do not
        item = f"{ogc}/collections/incidents/items/{code}"
        assert dispatcher.get(item, timeout=30).json()["properties"]["state"] == "planned"
        assert requests.get(item, headers=users["b_dispatcher"].headers, timeout=30).status_code == 404
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM incident WHERE code = :c"), {"c": code})


def test_a_viewer_may_not_store_an_incident(ogc: str, engine: sa.Engine, users) -> None:
    pipe = main_pipe_of(engine, ENTERPRISE_A)
    viewer = users["a_viewer"].session()
    before = incident_count(engine)
    execution = f"{ogc}/processes/burst-analysis/execution"
    r = viewer.post(execution, json={"inputs": {"pipe": pipe, "save_as": "planned"}}, timeout=60)
    assert r.status_code == 403 and r.json()["code"] == "Forbidden", r.text[:300]
    accepted = viewer.post(execution, json={"inputs": {"pipe": pipe, "save_as": "planned"}},
                           headers={"Prefer": "respond-async"}, timeout=60)
    deadline = time.monotonic() + 60
    while (job := viewer.get(accepted.headers["Location"], timeout=30).json())["status"] in ("accepted", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    assert job["status"] == "failed" and "incident" in job["message"] and "SQL" not in job["message"], job
    assert incident_count(engine) == before


def strings_in(value: object) -> set[str]:
    """Every string anywhere in a JSON value."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set().union(*map(strings_in, value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*map(strings_in, value)) if value else set()
    return set()


def test_a_burst_answers_no_feature_outside_the_callers_scope(ogc: str, engine: sa.Engine, users) -> None:
    pipe = main_pipe_of(engine, ENTERPRISE_A)
    r = users["b_viewer"].session().post(f"{ogc}/processes/burst-analysis/execution",
                                         json={"inputs": {"pipe": pipe}}, timeout=60)
    with engine.connect() as conn:
        of_a = set(conn.execute(sa.text(
            "SELECT code FROM pipe WHERE enterprise_code = :e UNION SELECT code FROM valve WHERE enterprise_code = :e "
            "UNION SELECT code FROM customer WHERE enterprise_code = :e"), {"e": ENTERPRISE_A}).scalars())
    assert r.status_code in (200, 400), r.text[:300]
    assert strings_in(r.json()) & of_a == set()
