"""OGC API Features (Parts 1–3) against a running server, with real clients: GDAL's ogrinfo/ogr2ogr
(OAPIF driver), OWSLib and plain HTTP. Expected values come from PostGIS on the same database.

Every client signs in (issue 18): plain HTTP with the city regulator's token (the regulator of the
whole demo city sees every row, so the owner's queries give the expected answers), GDAL with
GDAL_HTTP_AUTH=BASIC and GDAL_HTTP_USERPWD, OWSLib with owslib.util.Authentication. Each client
also reads as an enterprise's viewer, who sees exactly that enterprise's rows, and is refused with
a wrong password."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests
import sqlalchemy as sa
from openapi_spec_validator import validate as validate_openapi
from owslib.ogcapi.features import Features
from owslib.util import Authentication
from signed_in import ENTERPRISE_A, ensure_account

from app.ogc.documents import CONFORMANCE
from spatial import features
from spatial.collections import LAYERS

if TYPE_CHECKING:
    from signed_in import TestAccount  # not imported at run time: pytest would try to collect it

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG4490 = "http://www.opengis.net/def/crs/EPSG/0/4490"
EPSG4550 = "http://www.opengis.net/def/crs/EPSG/0/4550"

# Every conformance class the server declares, and the test that exercises it (test names in tests/).
EXERCISED_BY = {
    "ogcapi-common-1/1.0/conf/core": "test_landing_page_links",
    "ogcapi-common-1/1.0/conf/landing-page": "test_landing_page_links",
    "ogcapi-common-1/1.0/conf/json": "test_landing_page_links",
    "ogcapi-common-1/1.0/conf/html": "test_html_pages",
    "ogcapi-common-1/1.0/conf/oas30": "test_openapi_document_validates",
    "ogcapi-common-2/1.0/conf/collections": "test_ogrinfo_lists_every_collection",
    "ogcapi-features-1/1.0/conf/core": "test_paging_by_next_links_returns_each_feature_once",
    "ogcapi-features-1/1.0/conf/oas30": "test_openapi_document_validates",
    "ogcapi-features-1/1.0/conf/geojson": "test_ogr2ogr_copies_pipes_with_every_attribute",
    "ogcapi-features-1/1.0/conf/html": "test_html_pages",
    "ogcapi-features-2/1.0/conf/crs": "test_station_coordinates_and_axis_order",
    "ogcapi-features-3/1.0/conf/queryables": "test_queryables_are_json_schema",
    "ogcapi-features-3/1.0/conf/queryables-query-parameters": "test_queryable_as_query_parameter",
    "ogcapi-features-3/1.0/conf/filter": "test_owslib_reads_items_with_cql2_filter",
    "ogcapi-features-3/1.0/conf/features-filter": "test_owslib_reads_items_with_cql2_filter",
    "cql2/1.0/conf/cql2-text": "test_cql2_operators",
    "cql2/1.0/conf/cql2-json": "test_cql2_json_equals_text",
    "cql2/1.0/conf/basic-cql2": "test_cql2_operators",
    "cql2/1.0/conf/advanced-comparison-operators": "test_cql2_operators",
    "cql2/1.0/conf/basic-spatial-functions": "test_cql2_spatial_functions",
    "cql2/1.0/conf/basic-spatial-functions-plus": "test_cql2_spatial_functions",
    "cql2/1.0/conf/spatial-functions": "test_cql2_spatial_functions",
    "ogcapi-tiles-1/1.0/conf/core": "test_tile_features_match_postgis",
    "ogcapi-tiles-1/1.0/conf/tileset": "test_tileset_documents",
    "ogcapi-tiles-1/1.0/conf/tilesets-list": "test_tileset_documents",
    "ogcapi-tiles-1/1.0/conf/geodata-tilesets": "test_tileset_documents",
    "ogcapi-tiles-1/1.0/conf/mvt": "test_tile_features_match_postgis",
    "ogcapi-processes-1/1.0/conf/core": "test_burst_analysis_sync_and_async_with_owslib",
    "ogcapi-processes-1/1.0/conf/ogc-process-description": "test_process_descriptions",
    "ogcapi-processes-1/1.0/conf/json": "test_burst_analysis_sync_and_async_with_owslib",
    "ogcapi-processes-1/1.0/conf/job-list": "test_burst_analysis_sync_and_async_with_owslib",
}
QGIS_FILTER_URIS = {
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
}


# Plain HTTP of this module, signed in as the city's regulator by the `ogc` fixture.
SIGNED = requests.Session()
CHALLENGE = 'Basic realm="Qiwang", charset="UTF-8"'


@pytest.fixture(scope="module")
def ogc(live_server, http: requests.Session) -> str:
    SIGNED.headers.update(http.headers)
    return f"{live_server.url}/ogc"


@pytest.fixture(scope="module")
def regulator(users: dict[str, TestAccount]) -> TestAccount:
    return users["city_regulator"]


@pytest.fixture(scope="module")
def mistyped(db_url: str) -> TestAccount:
    """A viewer of enterprise A whose password the wrong-password cases get wrong: its own account,
    since failed logins count towards a lockout (5 in 15 minutes) and the shared ones must stay usable."""
    return ensure_account(db_url, "ogc_features_mistyped", ("viewer",), enterprise=ENTERPRISE_A)


def get(url: str, **params) -> requests.Response:
    return SIGNED.get(url, params=params, timeout=60)


def gdal(*args: str, account: TestAccount, password: str | None = None, check: bool = True
         ) -> subprocess.CompletedProcess[str]:
    """A GDAL command signed in with HTTP Basic: the account's name and password (or `password`)."""
    env = {**os.environ, "GDAL_HTTP_AUTH": "BASIC",
           "GDAL_HTTP_USERPWD": f"{account.name}:{password or account.password}"}
    return subprocess.run(args, capture_output=True, text=True, check=check, env=env)


def all_pages(url: str, **params) -> list[dict]:
    """Every feature, following next links (and checking each next link keeps the parameters)."""
    out: list[dict] = []
    page = get(url, **params)
    while True:
        assert page.status_code == 200, page.text
        body = page.json()
        out += body["features"]
        nxt = [link["href"] for link in body["links"] if link["rel"] == "next"]
        if not nxt:
            return out
        for key in params:
            assert f"{key}=" in nxt[0], f"next link lost {key}: {nxt[0]}"
        page = SIGNED.get(nxt[0], timeout=60)


def codes(items: list[dict]) -> list[str]:
    return [f["id"] for f in items]


def sql_codes(engine: sa.Engine, table: str, where: str = "true", **params) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.text(f"SELECT code FROM {table} t WHERE {where}"), params).scalars())


def test_every_declared_conformance_class_is_exercised(ogc: str) -> None:
    declared = get(f"{ogc}/conformance").json()["conformsTo"]
    assert declared == CONFORMANCE
    names = {uri.split("/spec/", 1)[1] for uri in declared}
    assert names == set(EXERCISED_BY)
    source = "".join(p.read_text() for p in Path(__file__).parent.glob("test_ogc*.py"))
    for test in set(EXERCISED_BY.values()):
        assert f"def {test}(" in source, test
    assert QGIS_FILTER_URIS <= set(declared)
    assert "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs" in declared


def test_landing_page_links(ogc: str) -> None:
    body = get(f"{ogc}/", f="json").json()
    rels = {link["rel"]: link for link in body["links"]}
    assert {"self", "service-desc", "service-doc", "conformance", "data"} <= set(rels)
    assert rels["service-desc"]["type"] == "application/vnd.oai.openapi+json;version=3.0"
    assert rels["data"]["href"] == f"{ogc}/collections"


def test_html_pages(ogc: str) -> None:
    for path in ("/", "/collections", "/collections/stations", "/collections/stations/items"):
        r = get(f"{ogc}{path}", f="html")
        assert r.status_code == 200, path
        assert r.headers["Content-Type"].startswith("text/html")
    assert "CZ0001" in get(f"{ogc}/collections/stations/items", f="html").text


def test_openapi_document_validates(ogc: str) -> None:
    r = get(f"{ogc}/openapi", f="json")
    assert r.status_code == 200
    doc = r.json()
    validate_openapi(doc)
    params = doc["paths"]["/collections/pipes/items"]["get"]["parameters"]
    names = {p.get("name") or p.get("$ref", "").rsplit("/", 1)[-1] for p in params}
    assert {"limit", "bbox", "crs", "bbox-crs", "filter", "filter-lang", "cursor"} <= names
    limit = next(p for p in params if p.get("name") == "limit")["schema"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, features.MAX_LIMIT, features.DEFAULT_LIMIT)


def test_anonymous_requests_get_401_with_a_basic_challenge(ogc: str) -> None:
    for path in ("/", "/collections", "/collections/pipes/items", "/collections/pipes/items/NO-SUCH-PIPE",
                 "/collections/pipes/queryables", "/openapi"):
        r = requests.get(f"{ogc}{path}", timeout=30)
        assert r.status_code == 401, path
        assert r.headers["WWW-Authenticate"] == CHALLENGE and r.json()["code"] == "Unauthorized", path
        assert "features" not in r.json(), path


def test_ogrinfo_lists_every_collection(ogc: str, regulator: TestAccount) -> None:
    out = gdal("ogrinfo", "-ro", "-q", f"OAPIF:{ogc}", account=regulator).stdout
    listed = re.findall(r"^\d+: (\w+) \(title", out, re.MULTILINE)
    assert listed == list(LAYERS)
    doc = get(f"{ogc}/collections/pipes").json()
    assert doc["itemType"] == "feature"
    assert doc["crs"] == [CRS84, EPSG4490, EPSG4550] and doc["storageCrs"] == EPSG4550
    x1, y1, x2, y2 = doc["extent"]["spatial"]["bbox"][0]
    assert 122.8 < x1 < x2 < 123.2 and 41.0 < y1 < y2 < 41.2  # Anshan, CRS84 lon/lat
    assert {"items", "http://www.opengis.net/def/rel/ogc/1.0/queryables", "describedby"} <= \
        {link["rel"] for link in doc["links"]}


def _ogrinfo_point(url: str, fid: int, account: TestAccount) -> tuple[float, float]:
    out = gdal("ogrinfo", "-ro", "-al", "-fid", str(fid), f"OAPIF:{url}", account=account).stdout
    m = re.search(r"POINT Z \(([-\d.]+) ([-\d.]+) ([-\d.]+)\)", out)
    assert m, out
    return float(m.group(1)), float(m.group(2))


def test_station_coordinates_and_axis_order(ogc: str, engine: sa.Engine, regulator: TestAccount) -> None:
    with engine.connect() as conn:
        lon, lat, east, north = conn.execute(sa.text(
            "SELECT ST_X(ST_Transform(geom, 4490)), ST_Y(ST_Transform(geom, 4490)), ST_X(geom), ST_Y(geom) "
            "FROM station WHERE code = 'CZ0001'")).one()
        fid = conn.execute(sa.text("SELECT count(*) FROM station WHERE id <= (SELECT id FROM station "
                                   "WHERE code = 'CZ0001')")).scalar_one()
    # GDAL (3.6: no CRS option) keeps the query of the dataset URL on every request.
    x, y = _ogrinfo_point(f"{ogc}/collections/stations", fid, regulator)
    assert (x, y) == pytest.approx((lon, lat), abs=1e-8)       # CRS84: lon, lat
    x, y = _ogrinfo_point(f"{ogc}/collections/stations?crs={EPSG4490}", fid, regulator)
    assert (x, y) == pytest.approx((lat, lon), abs=1e-8)       # EPSG:4490 authority order: lat, lon
    r = get(f"{ogc}/collections/stations/items/CZ0001", crs=EPSG4550)
    assert r.headers["Content-Crs"] == f"<{EPSG4550}>"
    assert r.json()["geometry"]["coordinates"][:2] == pytest.approx([north, east], abs=1e-3)  # northing first
    r = get(f"{ogc}/collections/stations/items/CZ0001")
    assert r.headers["Content-Crs"] == f"<{CRS84}>" and r.headers["Content-Type"] == "application/geo+json"
    # bbox in each CRS, in that CRS's axis order, finds the station
    d = 1e-5
    for crs, box in ((None, (lon - d, lat - d, lon + d, lat + d)), (EPSG4490, (lat - d, lon - d, lat + d, lon + d)),
                     (EPSG4550, (north - 1, east - 1, north + 1, east + 1))):
        params = {"bbox": ",".join(map(str, box))} | ({"bbox-crs": crs} if crs else {})
        assert codes(get(f"{ogc}/collections/stations/items", **params).json()["features"]) == ["CZ0001"], crs


def ogr2ogr_pipes(ogc: str, out: Path, account: TestAccount) -> None:
    gdal("ogr2ogr", "-f", "GPKG", str(out), f"OAPIF:{ogc}", "pipes", "-oo", "PAGE_SIZE=1000", account=account)


def test_ogr2ogr_copies_pipes_with_every_attribute(ogc: str, engine: sa.Engine, tmp_path: Path,
                                                   regulator: TestAccount) -> None:
    out = tmp_path / "pipes.gpkg"
    ogr2ogr_pipes(ogc, out, regulator)
    import pyogrio

    info = pyogrio.read_info(out, layer="pipes")
    with engine.connect() as conn:
        columns = conn.execute(sa.text("SELECT column_name FROM information_schema.columns WHERE table_name = 'pipe' "
                                       "AND column_name NOT IN ('id', 'geom') ORDER BY ordinal_position")).scalars()
        expected = conn.execute(sa.text("SELECT count(*), sum(length_m), max(diameter_mm)::float FROM pipe")).one()
    assert set(columns) <= set(info["fields"])
    assert info["features"] == expected[0]
    frame = pyogrio.read_dataframe(out, layer="pipes")
    assert frame["code"].is_unique
    assert frame["length_m"].sum() == pytest.approx(expected[1], rel=1e-9)
    assert frame["diameter_mm"].max() == expected[2]
    assert str(frame["survey_date"].dtype).startswith(("datetime", "object"))


def test_gdal_sees_the_accounts_scope_and_refuses_a_wrong_password(ogc: str, engine: sa.Engine, tmp_path: Path,
                                                                    users: dict[str, TestAccount],
                                                                    mistyped: TestAccount) -> None:
    import pyogrio

    viewer = users["a_viewer"]
    out = tmp_path / "a_pipes.gpkg"
    ogr2ogr_pipes(ogc, out, viewer)
    expected = sql_codes(engine, "pipe", "enterprise_code = :e", e=ENTERPRISE_A)
    assert 0 < len(expected) < len(sql_codes(engine, "pipe"))
    frame = pyogrio.read_dataframe(out, layer="pipes", read_geometry=False)
    assert len(frame) == len(expected) and set(frame["code"]) == expected
    assert set(frame["enterprise_code"]) == {ENTERPRISE_A}
    summary = gdal("ogrinfo", "-ro", "-so", f"OAPIF:{ogc}", "pipes", account=viewer).stdout
    assert f"Feature Count: {len(expected)}\n" in summary
    wrong = gdal("ogrinfo", "-ro", "-q", f"OAPIF:{ogc}", account=mistyped, password="not-the-password", check=False)
    assert wrong.returncode != 0 and "HTTP error code : 401" in wrong.stderr, wrong.stderr
    assert "pipes" not in wrong.stdout


def test_paging_by_next_links_returns_each_feature_once(ogc: str, engine: sa.Engine) -> None:
    got = all_pages(f"{ogc}/collections/pipes/items", limit=700, filter="pressure_class = 0")
    assert len(got) == len(set(codes(got)))
    assert set(codes(got)) == sql_codes(engine, "pipe", "pressure_class = 0")
    # sorted by a column with NULLs, descending: order kept across pages, ties broken by id
    got = all_pages(f"{ogc}/collections/customers/items", limit=333, sortby="-alarm_installed_on,code")
    with engine.connect() as conn:
        expected = conn.execute(sa.text(
            "SELECT code FROM customer ORDER BY alarm_installed_on DESC NULLS FIRST, code, id")).scalars().all()
    assert codes(got) == expected
    first = get(f"{ogc}/collections/pipes/items", limit=5).json()
    assert first["numberReturned"] == 5 and first["numberMatched"] == len(sql_codes(engine, "pipe"))


def test_number_matched_omitted_when_not_cheap(ogc: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(features, "COUNT_BELOW", 10)
    body = get(f"{ogc}/collections/pipes/items", limit=2).json()
    assert "numberMatched" not in body and body["numberReturned"] == 2
    body = get(f"{ogc}/collections/stations/items", filter="code = 'CZ0001'").json()
    assert body["numberMatched"] == 1  # one row estimated: still counted


def test_number_matched_on_a_table_never_analysed(ogc: str, engine: sa.Engine) -> None:
    """A table before its first ANALYZE (reltuples -1: alarms, incidents in a new deployment) is
    still counted; QGIS 3.22 shows 0 features for a layer without numberMatched."""
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE pg_class SET reltuples = -1 WHERE oid = 'station'::regclass"))
    try:
        body = get(f"{ogc}/collections/stations/items", limit=2).json()
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("ANALYZE station"))
    assert body["numberReturned"] == 2 and body["numberMatched"] == len(sql_codes(engine, "station"))


def test_limit_is_clipped_and_validated(ogc: str) -> None:
    body = get(f"{ogc}/collections/pipes/items", limit=features.MAX_LIMIT + 5000).json()
    assert body["numberReturned"] == min(features.MAX_LIMIT, body.get("numberMatched", 10**9))
    for bad in ("0", "-3", "ten"):
        r = get(f"{ogc}/collections/pipes/items", limit=bad)
        assert r.status_code == 400 and "limit" in r.json()["description"]


def test_owslib_reads_items_with_cql2_filter(ogc: str, engine: sa.Engine, users: dict[str, TestAccount],
                                            mistyped: TestAccount) -> None:
    where = "pressure_class = 1 AND diameter_mm >= 200"
    for name, scope in (("city_regulator", "true"), ("a_viewer", "enterprise_code = :e")):
        w = Features(ogc, auth=Authentication(*users[name].basic))
        assert {c["id"] for c in w.collections()["collections"]} == set(LAYERS)
        body = w.collection_items("pipes", limit=1000, filter=where, **{"filter-lang": "cql2-text"})
        expected = sql_codes(engine, "pipe", f"{where} AND {scope}", e=ENTERPRISE_A)
        assert set(codes(body["features"])) == expected and expected, name
        assert body["numberMatched"] == body["numberReturned"] == len(expected), name
    assert len(sql_codes(engine, "pipe", f"{where} AND enterprise_code <> :e", e=ENTERPRISE_A)) > 0
    wrong = Features(ogc, auth=Authentication(mistyped.name, "not-the-password"))
    with pytest.raises(RuntimeError) as refused:
        wrong.collection_items("pipes", limit=10)
    assert json.loads(str(refused.value))["code"] == "Unauthorized"


def test_cql2_operators(ogc: str, engine: sa.Engine) -> None:
    url = f"{ogc}/collections/pipes/items"
    cases = {
        "material IN (1, 2) AND NOT (pipe_type = 'service')": "material IN (1, 2) AND NOT pipe_type = 'service'",
        "build_year BETWEEN 1990 AND 2000 OR diameter_mm > 300":
            "build_year BETWEEN 1990 AND 2000 OR diameter_mm > 300",
        "code LIKE '%1_' AND remarks IS NULL": "code LIKE '%1_' AND remarks IS NULL",
        "survey_date >= DATE('2020-01-01')": "survey_date >= '2020-01-01'",
        "road_name IS NOT NULL AND length_m < 30.5": "road_name IS NOT NULL AND length_m < 30.5",
    }
    for cql, where in cases.items():
        expected = sql_codes(engine, "pipe", where)
        assert expected, where  # a case matching nothing would prove little
        assert set(codes(all_pages(url, limit=5000, filter=cql))) == expected, cql


def test_cql2_json_equals_text(ogc: str, engine: sa.Engine) -> None:
    text = "pressure_class = 2 AND diameter_mm > 150"
    as_json = {"op": "and", "args": [{"op": "=", "args": [{"property": "pressure_class"}, 2]},
                                     {"op": ">", "args": [{"property": "diameter_mm"}, 150]}]}
    url = f"{ogc}/collections/pipes/items"
    a = codes(all_pages(url, limit=5000, filter=text))
    b = codes(all_pages(url, limit=5000, filter=json.dumps(as_json), **{"filter-lang": "cql2-json"}))
    assert a == b and set(a) == sql_codes(engine, "pipe", text)


def test_cql2_spatial_functions(ogc: str, engine: sa.Engine) -> None:
    with engine.connect() as conn:
        lon, lat = conn.execute(sa.text("SELECT ST_X(g), ST_Y(g) FROM (SELECT ST_Transform(geom, 4326) g FROM station "
                                        "WHERE code = 'CZ0001') s")).one()
    box = (lon - 0.004, lat - 0.003, lon + 0.004, lat + 0.003)
    envelope = (f"ST_Transform(ST_Segmentize(ST_MakeEnvelope({box[0]}, {box[1]}, {box[2]}, {box[3]}, 4326), 0.001), "
                "4550)")
    url = f"{ogc}/collections/pipes/items"
    expected = sql_codes(engine, "pipe", f"ST_Intersects(geom, {envelope})")
    assert len(expected) > 10
    cql = f"S_INTERSECTS(geometry, BBOX({box[0]}, {box[1]}, {box[2]}, {box[3]}))"
    assert set(codes(all_pages(url, limit=5000, filter=cql))) == expected
    as_json = {"op": "s_intersects", "args": [{"property": "geometry"}, {"bbox": list(box)}]}
    as_json_pages = all_pages(url, limit=5000, filter=json.dumps(as_json), **{"filter-lang": "cql2-json"})
    assert set(codes(as_json_pages)) == expected
    # the same box as a polygon in EPSG:4490 (lat, lon order) with filter-crs
    poly = (f"POLYGON(({box[1]} {box[0]}, {box[1]} {box[2]}, {box[3]} {box[2]}, {box[3]} {box[0]}, "
            f"{box[1]} {box[0]}))")
    got = all_pages(url, limit=5000, filter=f"S_INTERSECTS(geometry, {poly})", **{"filter-crs": EPSG4490})
    assert set(codes(got)) == expected
    within = sql_codes(engine, "pipe", f"ST_Within(geom, {envelope})")
    assert set(codes(all_pages(url, limit=5000, filter=f"S_WITHIN(geometry, {poly.replace(' ', ' ')})",
                               **{"filter-crs": EPSG4490}))) == within
    assert within < expected
    disjoint = all_pages(f"{ogc}/collections/stations/items", filter=f"S_DISJOINT(geometry, {poly})",
                         **{"filter-crs": EPSG4490})
    assert "CZ0001" not in codes(disjoint) and len(disjoint) == len(sql_codes(engine, "station")) - 1


def test_queryables_are_json_schema(ogc: str) -> None:
    r = get(f"{ogc}/collections/pipes/queryables")
    assert r.headers["Content-Type"] == "application/schema+json"
    schema = r.json()
    assert schema["type"] == "object" and schema["$id"] == f"{ogc}/collections/pipes/queryables"
    props = schema["properties"]
    assert props["geometry"] == {"format": "geometry-linestring", "x-ogc-role": "primary-geometry"}
    assert props["diameter_mm"]["type"] == "number" and props["pressure_class"]["type"] == "integer"
    assert props["survey_date"] == {"title": props["survey_date"]["title"], "type": "string", "format": "date",
                                    "x-ogc-role": "primary-instant"}
    assert props["code"]["x-ogc-role"] == "id" and props["code"]["title"] == "管道编码"
    assert "id_number" not in get(f"{ogc}/collections/customers/queryables").json()["properties"]


def test_queryable_as_query_parameter(ogc: str, engine: sa.Engine) -> None:
    got = all_pages(f"{ogc}/collections/pipes/items", limit=5000, pipe_type="trunk", pressure_class="3")
    assert set(codes(got)) == sql_codes(engine, "pipe", "pipe_type = 'trunk' AND pressure_class = 3")


def test_properties_skip_geometry_and_datetime(ogc: str, engine: sa.Engine) -> None:
    body = get(f"{ogc}/collections/valves/items", limit=3, properties="code,normal_state", skipGeometry="true").json()
    assert all(set(f["properties"]) == {"code", "normal_state"} and f["geometry"] is None for f in body["features"])
    got = all_pages(f"{ogc}/collections/hazards/items", datetime="2000-01-01T00:00:00Z/..")
    assert set(codes(got)) == sql_codes(engine, "hazard", "found_at >= '2000-01-01T00:00:00Z'")
    with engine.connect() as conn:
        day = conn.execute(sa.text("SELECT min(survey_date) FROM pipe")).scalar_one()
    got = all_pages(f"{ogc}/collections/pipes/items", limit=5000, datetime=f"../{day.isoformat()}")
    assert set(codes(got)) == sql_codes(engine, "pipe", "survey_date <= :d", d=day)
    customers = get(f"{ogc}/collections/customers/items", limit=1).json()["features"][0]["properties"]
    assert not {"id_number", "contact_phone", "contact_person"} & set(customers)


@pytest.mark.parametrize("params, field", [
    ({"colour": "red"}, "colour"),
    ({"crs": "http://www.opengis.net/def/crs/EPSG/0/3857"}, "crs"),
    ({"crs": "EPSG:4547"}, "crs"),
    ({"bbox": "1,2,3"}, "bbox"),
    ({"bbox": "1,2,3,4", "bbox-crs": "EPSG:9999"}, "bbox-crs"),
    ({"filter": "diameter_mm >"}, "filter"),
    ({"filter": "nonexistent = 3"}, "filter"),
    ({"filter": "diameter_mm = 'wide'"}, "filter"),
    ({"filter": "{\"op\": \"=\"", "filter-lang": "cql2-json"}, "filter"),
    ({"filter-lang": "sql"}, "filter-lang"),
    ({"sortby": "diameter_mm;DROP TABLE pipe"}, "sortby"),
    ({"properties": "code,\"x"}, "properties"),
    ({"datetime": "yesterday"}, "datetime"),
    ({"cursor": "bm90LWEtY3Vyc29y"}, "cursor"),
    ({"f": "xml"}, "f"),
])
def test_bad_parameters_give_400_naming_the_field(ogc: str, params: dict, field: str) -> None:
    r = get(f"{ogc}/collections/pipes/items", **params)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["code"] == "InvalidParameterValue"
    assert body["description"].startswith(f"{field}:"), body


def test_unknown_collection_and_item_give_404(ogc: str) -> None:
    for url in (f"{ogc}/collections/gasworks", f"{ogc}/collections/gasworks/items",
                f"{ogc}/collections/pipes/items/NO-SUCH-PIPE", f"{ogc}/collections/topology_issues/items/abc",
                f"{ogc}/collections/pipes/tiles/WorldCRS84Quad/3/1/1"):
        r = get(url)
        assert r.status_code == 404, url
        assert r.json()["code"] == "NotFound"


def test_injection_attempts_change_nothing(ogc: str, engine: sa.Engine) -> None:
    before = sql_codes(engine, "pipe")
    url = f"{ogc}/collections/pipes/items"
    for cql in ("code = 'x''; DROP TABLE pipe; --'", "remarks LIKE '%'' OR ''1''=''1'",
                "code = 'x' OR code = (SELECT max(code) FROM pipe)", "code = 'x'; DELETE FROM pipe"):
        r = get(url, filter=cql)
        assert r.status_code in (200, 400), cql
        if r.status_code == 200:
            assert r.json()["features"] == [], cql
    for params in ({"pipe_type": "trunk' OR '1'='1"}, {"bbox": "1,2,3,4); DROP TABLE pipe; --"},
                   {"datetime": "2020-01-01'; DELETE FROM pipe; --"}):
        r = get(url, **params)
        assert r.status_code == 400 or r.json()["features"] == [], params
    r = get(url, filter='"code; DROP TABLE pipe" = 1')
    assert r.status_code == 400
    assert sql_codes(engine, "pipe") == before
