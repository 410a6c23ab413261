"""Routing over the road layer: exact paths on a hand-made grid, the demo city, errors.

The grid, in metres from networks.ORIGIN (EPSG:4550), speeds in km/h:

    D(0,400) ===== 快路 60 ===== E(600,400) ===== 快路 60 ===== F(1200,400)
      |                            ^                              |
    西街 40                   中街 40 one-way E→B              东街 30 (digitised C→F)
      |                            |                              |
    A(0,0) ------ 慢街 20 ------ B(600,0) ------ 慢街 20 ------ C(1200,0) -- 支路 30 -- G(1500,0)

支路 starts 5 mm off C (merged into C). 断路 starts 5 cm off G (not merged: unreachable).
Apart, 1.6 km north: 弯路 (0,2000) → (300,2000) → (300,2300), 36 km/h, one road with a bend.
Travel times: 慢街 600 m 108 s, 快路 600 m 36 s, 西街/中街 400 m 36 s, 东街 400 m 48 s.
"""
from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import shapely
import sqlalchemy as sa
from networks import DIVISION, ENTERPRISE, ORIGIN, Network, load, sealed
from pyproj import Transformer
from sqlalchemy.pool import NullPool

from core.errors import Conflict, InvalidInput
from db import migrate
from network_analysis.routing import road_graphs, route, route_from_nearest_crew_base

X0, Y0 = ORIGIN

# name: (code, [(x, y), …] in local metres, speed km/h, one-way)
GRID = {
    "慢街": [("R1", [(0, 0), (600, 0)], 20, False), ("R2", [(600, 0), (1200, 0)], 20, False)],
    "快路": [("R3", [(0, 400), (600, 400)], 60, False), ("R4", [(600, 400), (1200, 400)], 60, False)],
    "西街": [("R5", [(0, 0), (0, 400)], 40, False)],
    "中街": [("R6", [(600, 400), (600, 0)], 40, True)],
    "东街": [("R7", [(1200, 0), (1200, 400)], 30, False)],
    "支路": [("R8", [(1200.005, 0), (1500, 0)], 30, False)],
    "断路": [("R9", [(1500.05, 0), (1800, 0)], 30, False)],
    "弯路": [("R10", [(0, 2000), (300, 2000), (300, 2300)], 36, False)],  # an island of its own
}
# crew bases: code: (x, y) local metres
BASES = {"K1": (60, -25), "K2": (1250, 200), "K3": (5000, 5000)}


def at(x: float, y: float) -> tuple[float, float]:
    """Local metres → EPSG:4550."""
    return X0 + x, Y0 + y


def local(coords: list[list[float]]) -> list[tuple[float, float]]:
    return [(round(x - X0, 3), round(y - Y0, 3)) for x, y in coords]


def load_roads(engine: sa.Engine, roads: dict = GRID, bases: dict = BASES) -> None:
    """Write roads and crew bases (plus the division and enterprise they belong to)."""
    load(engine, Network(nodes={}, pipes={}))  # the division and enterprise rows, no network
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM crew_base; DELETE FROM road"))
        for name, parts in roads.items():
            for code, points, speed, oneway in parts:
                wkt = "LINESTRING(" + ", ".join(f"{X0 + x} {Y0 + y}" for x, y in points) + ")"
                conn.execute(sa.text(
                    """INSERT INTO road (code, name, road_class, speed_kmh, oneway, geom, enterprise_code, admin_code)
                       VALUES (:code, :name, 'branch', :speed, :oneway, ST_GeomFromText(:wkt, 4550), :e, :d)"""),
                    {"code": code, "name": name, "speed": speed, "oneway": oneway, "wkt": wkt,
                     "e": ENTERPRISE, "d": DIVISION})
        for code, (x, y) in bases.items():
            conn.execute(sa.text(
                """INSERT INTO crew_base (code, name, address, phone, phone_sealed, phone_index, crew_count, geom,
                                         enterprise_code, admin_code)
                   VALUES (:code, :code || '号抢修站', '测试路', :phone, :phone_sealed, :phone_index, 3,
                           ST_SetSRID(ST_MakePoint(:x, :y), 4550), :e, :d)"""),
                {"code": code, "x": X0 + x, "y": Y0 + y, "e": ENTERPRISE, "d": DIVISION,
                 **sealed("crew_base", phone="13900000009")})


@pytest.fixture(scope="module")
def grid(databases) -> Iterator[sa.Engine]:
    name = f"qiwang_routing_{os.getpid()}"
    url = databases.create(name)
    migrate.upgrade(url)
    engine = sa.create_engine(url, poolclass=NullPool)
    load_roads(engine)
    yield engine
    engine.dispose()
    databases.drop(name)


def test_faster_detour_beats_shorter_slow_road(grid):
    r = route(grid, at(0, 0), at(1200, 0))
    assert r["roads"] == ["西街", "快路", "东街"]
    assert r["length_m"] == 2000.0  # 慢街 would be 1200 m but 216 s
    assert r["minutes"] == 2.6  # 36 + 72 + 48 s
    assert local(r["geometry"]["coordinates"]) == [(0, 0), (0, 400), (600, 400), (1200, 400), (1200, 0)]
    assert r["access_m"] == {"start": 0.0, "end": 0.0}


def test_one_way_street_is_respected(grid):
    with_it = route(grid, at(600, 400), at(600, 0))
    assert (with_it["roads"], with_it["length_m"], with_it["minutes"]) == (["中街"], 400.0, 0.6)
    against = route(grid, at(600, 0), at(600, 400))  # round by the west: 108 + 36 + 36 s (east: 192 s)
    assert against["roads"] == ["慢街", "西街", "快路"]
    assert (against["length_m"], against["minutes"]) == (1600.0, 3.0)


def test_mid_segment_snapping_gives_partial_lengths(grid):
    r = route(grid, at(120, -30), at(900, 430))
    # 120 m of 慢街 back to A (21.6 s), 西街 (36 s), 快路 to E (36 s) and on 300 m (18 s)
    assert r["roads"] == ["慢街", "西街", "快路"]
    assert (r["length_m"], r["minutes"]) == (1420.0, 1.9)
    assert local([r["start"], r["end"]]) == [(120, 0), (900, 400)]
    assert r["access_m"] == {"start": 30.0, "end": 30.0}
    assert local(r["geometry"]["coordinates"]) == [(120, 0), (0, 0), (0, 400), (600, 400), (900, 400)]


def test_both_points_on_one_road(grid):
    r = route(grid, at(100, -10), at(400, 10))
    assert (r["roads"], r["length_m"], r["minutes"]) == (["慢街"], 300.0, 0.9)
    assert local(r["geometry"]["coordinates"]) == [(100, 0), (400, 0)]
    # on the one-way 中街, driving from y=100 up to y=300 is forbidden: down to B, round by the
    # west and down again from E: 9 + 108 + 36 + 36 + 9 s
    up = route(grid, at(610, 100), at(610, 300))
    assert (up["length_m"], up["minutes"]) == (1800.0, 3.3)
    assert up["roads"] == ["中街", "慢街", "西街", "快路", "中街"]
    down = route(grid, at(610, 300), at(610, 100))
    assert (down["roads"], down["length_m"], down["minutes"]) == (["中街"], 200.0, 0.3)
    same = route(grid, at(300, 5), at(300, -5))
    assert (same["length_m"], same["minutes"], same["roads"]) == (0.0, 0.0, ["慢街"])
    assert local(same["geometry"]["coordinates"]) == [(300, 0), (300, 0)]


def test_partial_stretches_of_a_bent_road(grid):
    r = route(grid, at(100, 1990), at(310, 2200))
    assert (r["roads"], r["length_m"], r["minutes"]) == (["弯路"], 400.0, 0.7)  # 40 s
    assert local(r["geometry"]["coordinates"]) == [(100, 2000), (300, 2000), (300, 2200)]
    back = route(grid, at(310, 2200), at(100, 1990))
    assert local(back["geometry"]["coordinates"]) == [(300, 2200), (300, 2000), (100, 2000)]


def test_ends_within_a_centimetre_are_merged(grid):
    r = route(grid, at(1000, 0), at(1400, 0))  # 慢街 to C (36 s), 支路 200 m… but via its 5 mm gap
    assert r["roads"] == ["慢街", "支路"]
    assert r["length_m"] == pytest.approx(399.995, abs=0.01)
    with pytest.raises(InvalidInput, match=r"^end: no road path from "):
        route(grid, at(1000, 0), at(1700, 0))  # 断路 starts 5 cm off G: another island


def test_points_in_another_crs(grid):
    to_4490 = Transformer.from_crs("EPSG:4550", "EPSG:4490", always_xy=True)
    start, end = to_4490.transform(*at(120, -30)), to_4490.transform(*at(900, 430))
    r = route(grid, start, end, crs="EPSG:4490")
    assert (r["length_m"], r["minutes"]) == pytest.approx((1420.0, 1.9), abs=0.01)


def test_nearest_crew_base(grid):
    r = route_from_nearest_crew_base(grid, at(900, 430))
    # K2: 200 m up 东街 (24 s), 300 m back along 快路 (18 s); K1: 10.8 + 36 + 36 + 18 s
    assert r["crew_base"]["code"] == "K2"
    assert r["crew_base"]["point"] == [X0 + 1250, Y0 + 200]
    assert (r["route"]["length_m"], r["route"]["minutes"]) == (500.0, 0.7)
    assert r["route"]["roads"] == ["东街", "快路"]
    assert r["route"]["access_m"] == {"start": 50.0, "end": 30.0}
    assert local(r["route"]["geometry"]["coordinates"]) == [(1200, 200), (1200, 400), (900, 400)]
    assert [(o["code"], o["minutes"]) for o in r["others"]] == [("K1", 1.7)]
    assert r["unreachable"] == ["K3"]  # 5 km from any road


def test_graph_is_cached_until_the_roads_change(databases):
    name = f"qiwang_routing_cache_{os.getpid()}"
    url = databases.create(name)
    try:
        migrate.upgrade(url)
        engine = sa.create_engine(url, poolclass=NullPool)
        load_roads(engine)
        first = road_graphs.get(engine)
        assert road_graphs.get(engine) is first
        assert route(engine, at(0, 0), at(1200, 0))["length_m"] == 2000.0
        with engine.begin() as conn:  # an edit that does not touch updated_at still counts
            conn.execute(sa.text("UPDATE road SET speed_kmh = 80 WHERE code IN ('R1', 'R2')"))
        assert road_graphs.get(engine) is not first
        assert route(engine, at(0, 0), at(1200, 0))["roads"] == ["慢街"]
        engine.dispose()
    finally:
        databases.drop(name)


def test_errors(grid, databases):
    # each error names the parameter at fault (`end`, `crs`), or is a Conflict with what the database holds
    with pytest.raises(InvalidInput, match=r"^end: no road within 500 m of \(500600\.0, 4551000\.0\) \(EPSG:4550\)$"):
        route(grid, at(0, 0), at(600, 1000))
    with pytest.raises(InvalidInput, match=r"^start: no road within 500 m of \(500600\.0, 4551000\.0\)"):
        route(grid, at(600, 1000), at(0, 0))
    with pytest.raises(InvalidInput, match=r"^crs: unknown CRS 'EPSG:999999'$"):
        route(grid, (1, 2), (3, 4), crs="EPSG:999999")
    with pytest.raises(InvalidInput, match=r"^end: no road within 500 m"):
        route_from_nearest_crew_base(grid, at(5000, 5000))
    name = f"qiwang_routing_empty_{os.getpid()}"
    url = databases.create(name)
    try:
        migrate.upgrade(url)
        engine = sa.create_engine(url, poolclass=NullPool)
        with pytest.raises(Conflict, match=r"^the road table is empty: nothing to route on$"):
            route(engine, at(0, 0), at(10, 0))
        load_roads(engine, bases={})
        with pytest.raises(Conflict, match=r"^no crew base in the database: nothing to route from$"):
            route_from_nearest_crew_base(engine, at(900, 430))
        load_roads(engine, bases={"K9": (1700, 10)})  # on 断路: no path to the rest of the grid
        with pytest.raises(InvalidInput, match=r"^end: no crew base can reach \(500900\.0, 4550430\.0\) by road$"):
            route_from_nearest_crew_base(engine, at(900, 430))
        engine.dispose()
    finally:
        databases.drop(name)


def test_demo_city_route_from_nearest_crew_base(engine):
    with engine.connect() as conn:
        pipes = conn.execute(sa.text(
            """SELECT ST_X(p), ST_Y(p) FROM (
                   SELECT ST_LineInterpolatePoint(ST_Force2D(geom), 0.5) AS p FROM pipe ORDER BY id LIMIT 5 OFFSET 100
               ) s""")).all()
        n_bases = conn.execute(sa.text("SELECT count(*) FROM crew_base")).scalar_one()
    for x, y in pipes:
        r = route_from_nearest_crew_base(engine, (x, y))
        leg = r["route"]
        (sx, sy), (ex, ey) = leg["start"], leg["end"]
        assert leg["length_m"] >= ((ex - sx) ** 2 + (ey - sy) ** 2) ** 0.5 - 0.01
        assert leg["minutes"] >= 0 and leg["roads"]
        assert leg["geometry"]["coordinates"][0] == leg["start"]
        assert leg["geometry"]["coordinates"][-1] == leg["end"]
        assert shapely.LineString(leg["geometry"]["coordinates"]).length == pytest.approx(leg["length_m"], abs=0.05)
        assert leg["access_m"]["end"] <= 60  # pipes run along the streets
        assert all(o["minutes"] >= leg["minutes"] for o in r["others"])
        assert len(r["others"]) + len(r["unreachable"]) == n_bases - 1
        assert r["unreachable"] == []  # bases stand 25 m off a street corner
        # the chosen base's route agrees with a direct route from it
        again = route(engine, tuple(r["crew_base"]["point"]), (x, y))
        assert again["minutes"] == leg["minutes"]
