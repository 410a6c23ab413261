"""No feature of another enterprise reaches an account: items, tiles, processes (issue 18).

On the session's demo city, as a viewer of enterprise A: every collection's items (all pages),
every vector tile covering the city at z12-16 (decoded), every process answer and the statistics
hold zero features of enterprise B. The regulator of the district where both operate sees both
there. What the database holds is read as the owner (no row-level security) to know the answer.
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import mapbox_vector_tile
import pytest
import requests
import sqlalchemy as sa
from signed_in import DISTRICT_OF_BOTH, ENTERPRISE_A, ENTERPRISE_B, TestAccount

from spatial.collections import LAYERS

TIMEOUT = 60


@pytest.fixture(scope="module")
def a_viewer(users: dict[str, TestAccount]) -> requests.Session:
    return users["a_viewer"].session()


def owner_rows(engine: sa.Engine, query: str, **params: object) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(query), params)]


def has_enterprise(engine: sa.Engine, table: str) -> bool:
    """Whether the table's rows belong to enterprises (the others are directories, e.g. divisions)."""
    return bool(owner_rows(engine, "SELECT 1 FROM information_schema.columns WHERE table_schema = 'public' "
                                   "AND table_name = :t AND column_name = 'enterprise_code'", t=table))


def pages(http: requests.Session, url: str) -> Iterator[dict]:
    """Every feature of an items URL, following the `next` links."""
    while url:
        body = http.get(url, timeout=TIMEOUT).json()
        yield from body["features"]
        url = next((link["href"] for link in body["links"] if link["rel"] == "next"), None)


def test_every_collection_holds_only_the_accounts_enterprise(live_server, a_viewer, engine: sa.Engine) -> None:
    collections = {c["id"] for c in a_viewer.get(f"{live_server.url}/ogc/collections?f=json",
                                                 timeout=TIMEOUT).json()["collections"]}
    checked = 0
    for collection in sorted(collections):
        table = LAYERS[collection].table
        if not has_enterprise(engine, table):
            continue
        features = list(pages(a_viewer, f"{live_server.url}/ogc/collections/{collection}/items?f=json&limit=1000"))
        [(in_a, total)] = owner_rows(engine, f'SELECT count(*) FILTER (WHERE enterprise_code = :a), count(*) '
                                             f'FROM "{table}"', a=ENTERPRISE_A)
        assert len(features) == in_a, collection
        assert {f["properties"]["enterprise_code"] for f in features} <= {ENTERPRISE_A}, collection
        checked += total > in_a   # a collection where B has features that were kept away
    assert checked >= 10


def tile_range(engine: sa.Engine, z: int) -> Iterator[tuple[int, int]]:
    """(x, y) of the WebMercatorQuad tiles at zoom z covering the demo city's pipes."""
    [(west, south, east, north)] = owner_rows(engine, "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
                                                      "(SELECT ST_Extent(ST_Transform(geom, 4326)) e FROM pipe) s")
    n = 2 ** z

    def tx(lon: float) -> int:
        return int((lon + 180) / 360 * n)

    def ty(lat: float) -> int:
        return int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)

    for x in range(tx(west), tx(east) + 1):
        for y in range(ty(north), ty(south) + 1):
            yield x, y


def test_every_tile_of_the_city_at_z12_to_16_holds_only_the_accounts_features(live_server, a_viewer,
                                                                             engine: sa.Engine) -> None:
    b_ids: dict[str, set[int]] = {}
    a_seen: dict[str, set[int]] = {}
    tiles = 0
    for z in range(12, 17):
        for x, y in tile_range(engine, z):
            answer = a_viewer.get(f"{live_server.url}/ogc/tiles/WebMercatorQuad/{z}/{y}/{x}", timeout=TIMEOUT)
            assert answer.status_code in (200, 204), (z, x, y, answer.status_code)
            assert {"Authorization", "Cookie"} <= {v.strip() for v in answer.headers["Vary"].split(",")}
            assert "private" in answer.headers["Cache-Control"]
            tiles += 1
            if answer.status_code == 204:
                continue
            for layer, content in mapbox_vector_tile.decode(answer.content).items():
                a_seen.setdefault(layer, set()).update(f["id"] for f in content["features"] if f.get("id"))
                # where a tile carries the owner's code (enterprises' own layer), it is A's
                assert {f["properties"].get("enterprise_code", ENTERPRISE_A)
                        for f in content["features"]} <= {ENTERPRISE_A}, layer
    assert tiles >= 40
    for layer, ids in a_seen.items():
        table = LAYERS[layer].table
        if not ids or not has_enterprise(engine, table):
            continue
        if layer not in b_ids:
            b_ids[layer] = {i for (i,) in owner_rows(engine, f'SELECT id FROM "{table}" WHERE enterprise_code = :b',
                                                     b=ENTERPRISE_B)}
        assert ids.isdisjoint(b_ids[layer]), layer
    assert {"pipes", "valves", "customers"} <= set(a_seen)


def test_process_answers_list_only_the_accounts_features(live_server, a_viewer, users, engine: sa.Engine) -> None:
    base = f"{live_server.url}/ogc/processes"
    everyone = users["city_regulator"].session()
    b_pipes = {c for (c,) in owner_rows(engine, "SELECT code FROM pipe WHERE enterprise_code = :b", b=ENTERPRISE_B)}
    b_valves = {c for (c,) in owner_rows(engine, "SELECT code FROM valve WHERE enterprise_code = :b", b=ENTERPRISE_B)}
    b_customers = {c for (c,) in owner_rows(engine, "SELECT code FROM customer WHERE enterprise_code = :b",
                                            b=ENTERPRISE_B)}
    # The demo's two networks do not touch; the district's regulator sees the part of A's network
    # inside 千山区: a burst there reaches pipes of A outside it, which it is told of as counts only.
    inside = [c for (c,) in owner_rows(engine, "SELECT code FROM pipe WHERE enterprise_code = :a AND admin_code = :d "
                                              "AND status = 'in_service' ORDER BY diameter_mm DESC, code LIMIT 4",
                                       a=ENTERPRISE_A, d=DISTRICT_OF_BOTH)]
    outside_d = {c for (c,) in owner_rows(engine, "SELECT code FROM pipe WHERE admin_code <> :d", d=DISTRICT_OF_BOTH)}
    a_sites = {c for (c,) in owner_rows(engine, "SELECT code FROM sensitive_site WHERE enterprise_code = :a",
                                        a=ENTERPRISE_A)}
    d_sites = {c for (c,) in owner_rows(engine, "SELECT code FROM sensitive_site WHERE admin_code = :d",
                                        d=DISTRICT_OF_BOTH)}
    cases = [(a_viewer, pipe, b_pipes, b_valves, b_customers, a_sites) for pipe in inside] + [
        (users["district_regulator"].session(), pipe, outside_d, set(), set(), d_sites) for pipe in inside]
    counted = sites = 0
    for http, pipe, hidden_pipes, hidden_valves, hidden_customers, allowed_sites in cases:
        mine = http.post(f"{base}/burst-analysis/execution", json={"inputs": {"pipe": pipe, "geometry": True}},
                         timeout=TIMEOUT).json()
        whole = everyone.post(f"{base}/burst-analysis/execution", json={"inputs": {"pipe": pipe}},
                              timeout=TIMEOUT).json()
        assert not (set(mine["isolated_pipes"]) | set(mine["dry_pipes"])) & hidden_pipes
        assert not {v["code"] for v in mine["valves_to_close"]} & hidden_valves
        assert not set(mine["affected_customers"]["list"]) & hidden_customers
        drawn = {f["id"] for kind in ("isolated_pipes", "dry_pipes") for f in mine["features"][kind]["features"]}
        assert not drawn & hidden_pipes
        # what lies outside is counted: with it, the lists are the whole city regulator's
        outside = mine["outside_scope"]
        for key in ("isolated_pipes", "dry_pipes", "valves_to_close"):
            assert len(mine[key]) + outside[key] == len(whole[key]), key
        assert len(mine["affected_customers"]["list"]) + outside["customers"] == whole["affected_customers"]["count"]
        assert mine["affected_customers"]["count"] == whole["affected_customers"]["count"]
        assert len(mine["sensitive_sites"]) + outside["sensitive_sites"] == len(whole["sensitive_sites"])
        assert {site["code"] for site in mine["sensitive_sites"]} <= allowed_sites
        sites += len(whole["sensitive_sites"])
        assert whole["outside_scope"] == dict.fromkeys(outside, 0)
        counted += outside["isolated_pipes"] + outside["dry_pipes"]
    assert counted > 0, "no burst in the district reached past it: the outside counts were never exercised"
    assert sites > 0, "no burst concerned a sensitive site: their scope was never exercised"
    # a pipe of B named by code is as unknown to A as one that does not exist
    b_pipe = sorted(b_pipes)[0]
    refused = a_viewer.post(f"{base}/burst-analysis/execution", json={"inputs": {"pipe": b_pipe}}, timeout=TIMEOUT)
    assert refused.status_code == 400 and f"unknown pipe code {b_pipe!r}" in refused.json()["description"]

    stats = a_viewer.post(f"{base}/network-statistics/execution", json={"inputs": {}}, timeout=TIMEOUT).json()
    assert [row["enterprise_code"] for row in stats["by_enterprise"]] == [ENTERPRISE_A]
    [(count_a,)] = owner_rows(engine, "SELECT count(*) FROM pipe WHERE enterprise_code = :a "
                                      "AND status <> 'abandoned'", a=ENTERPRISE_A)
    assert stats["total"]["count"] == count_a

    critical = a_viewer.post(f"{base}/criticality/execution", json={"inputs": {"top": 30}}, timeout=TIMEOUT).json()
    assert len(critical["top_segments"]) == 30 and len(critical["top_valves"]) == 30
    assert not {s["example_pipe"] for s in critical["top_segments"]} & b_pipes
    assert not {v["valve"] for v in critical["top_valves"]} & b_valves

    [(x, y)] = owner_rows(engine, "SELECT ST_X(ST_Transform(ST_Centroid(geom), 4326)), "
                                  "ST_Y(ST_Transform(ST_Centroid(geom), 4326)) FROM pipe WHERE code = :c",
                          c=inside[0])
    near = a_viewer.post(f"{base}/radius-query/execution", json={"inputs": {"point": [x, y], "radius_m": 300}},
                         timeout=TIMEOUT).json()
    assert near["features"] and not {f["code"] for f in near["features"] if f["layer"] == "pipes"} & b_pipes


def test_the_district_regulator_sees_both_enterprises_there(live_server, users, engine: sa.Engine) -> None:
    regulator = users["district_regulator"].session()
    features = list(pages(regulator, f"{live_server.url}/ogc/collections/pipes/items?f=json&limit=1000"))
    rows = owner_rows(engine, "SELECT enterprise_code, count(*) FROM pipe WHERE admin_code = :d GROUP BY 1 ORDER BY 1",
                      d=DISTRICT_OF_BOTH)
    assert [r[0] for r in rows] == [ENTERPRISE_A, ENTERPRISE_B]
    seen: dict[str, int] = {}
    for f in features:
        assert f["properties"]["admin_code"] == DISTRICT_OF_BOTH
        seen[f["properties"]["enterprise_code"]] = seen.get(f["properties"]["enterprise_code"], 0) + 1
    assert sorted(seen.items()) == rows


def scope_bbox(engine: sa.Engine, table: str, where: str, **params: object) -> list[float] | None:
    """The CRS84 bbox the server states for the rows of `table` matching `where` (padded by 1e-3°)."""
    [(box,)] = owner_rows(engine, f"SELECT ST_Transform(ST_SetSRID(ST_Extent(geom)::geometry, ST_SRID(min(geom))), "
                                  f"4326)::box2d::text FROM \"{table}\" WHERE {where}", **params)
    if box is None:
        return None
    (x1, y1), (x2, y2) = (map(float, corner.split()) for corner in box[4:-1].split(","))
    return [round(x1 - 1e-3, 6), round(y1 - 1e-3, 6), round(x2 + 1e-3, 6), round(y2 + 1e-3, 6)]


def test_collection_extents_and_landing_counts_are_the_accounts_scope(live_server, a_viewer, users,
                                                                      engine: sa.Engine) -> None:
    documents = {c["id"]: c for c in a_viewer.get(f"{live_server.url}/ogc/collections?f=json",
                                                  timeout=TIMEOUT).json()["collections"]}
    narrower = 0
    for collection, doc in sorted(documents.items()):
        table = LAYERS[collection].table
        if not has_enterprise(engine, table):
            continue
        mine = scope_bbox(engine, table, "enterprise_code = :a", a=ENTERPRISE_A)
        assert doc["extent"]["spatial"]["bbox"] == [mine or [-180.0, -90.0, 180.0, 90.0]], collection
        narrower += mine is not None and mine != scope_bbox(engine, table, "true")
    assert narrower >= 5   # collections whose whole extent would have shown where B's features lie
    one = a_viewer.get(f"{live_server.url}/ogc/collections/pipes?f=json", timeout=TIMEOUT).json()
    assert one["extent"]["spatial"]["bbox"] == [scope_bbox(engine, "pipe", "enterprise_code = :a", a=ENTERPRISE_A)]
    regulator = users["district_regulator"].session()
    whole = regulator.get(f"{live_server.url}/ogc/collections/pipes?f=json", timeout=TIMEOUT).json()
    assert whole["extent"]["spatial"]["bbox"] == [scope_bbox(engine, "pipe", "admin_code = :d", d=DISTRICT_OF_BOTH)]

    page = a_viewer.get(f"{live_server.url}/", timeout=TIMEOUT).text
    [(pipes_of_a, pipes)] = owner_rows(
        engine, "SELECT count(*) FILTER (WHERE enterprise_code = :a), count(*) FROM pipe", a=ENTERPRISE_A)
    assert f'<td class="n">{pipes_of_a:,}</td>' in page and f"{pipes:,}" not in page


def test_visibility_is_asked_of_each_kind_under_the_role(users: dict[str, TestAccount], app_url: str,
                                                         engine: sa.Engine) -> None:
    """network_analysis.scope.visible: per kind, exactly the ids and codes the role reads; kinds
    with nothing to ask about are not queried (an empty answer, not an error)."""
    from db.acting import acting_as
    from db.engine import get_engine
    from network_analysis.scope import Visible, visible

    def two_of_each(table: str, key: str) -> list:
        return [v for (v,) in owner_rows(engine, f"(SELECT {key} FROM {table} WHERE enterprise_code = :a LIMIT 2) "
                                                 f"UNION ALL (SELECT {key} FROM {table} WHERE enterprise_code = :b "
                                                 f"LIMIT 2)", a=ENTERPRISE_A, b=ENTERPRISE_B)]

    def of_a(table: str, key: str, values: list) -> set:
        return {v for (v,) in owner_rows(engine, f"SELECT {key} FROM {table} WHERE {key} = ANY(:v) "
                                                 f"AND enterprise_code = :a", v=values, a=ENTERPRISE_A)}

    pipes, valves, customers = two_of_each("pipe", "id"), two_of_each("valve", "id"), two_of_each("customer", "id")
    sources = two_of_each("station", "code") + two_of_each("regulator", "code")
    with acting_as(users["a_viewer"].db_role), get_engine(app_url).connect() as conn:
        seen = visible(conn, pipes, valves, customers, sources)
        nothing = visible(conn, [], [], [], [])
        only_valves = visible(conn, [], valves, [], [])
    assert len(pipes) == len(valves) == len(customers) == 4
    assert seen.pipes == of_a("pipe", "id", pipes) and len(seen.pipes) == 2
    assert seen.valves == of_a("valve", "id", valves) and len(seen.valves) == 2
    assert seen.customers == of_a("customer", "id", customers) and len(seen.customers) == 2
    assert seen.sources == of_a("station", "code", sources) | of_a("regulator", "code", sources)
    assert len(seen.sources) == len(sources) // 2 and seen.sites == set()
    assert nothing == Visible(set(), set(), set(), set(), set())
    assert (only_valves.valves, only_valves.pipes) == (seen.valves, set())
