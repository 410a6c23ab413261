"""Radius query: exact features and distances on a hand-made network, the demo city against plain SQL."""
from __future__ import annotations

import json
import math

import pytest
import sqlalchemy as sa
from networks import DIVISION, ENTERPRISE, ORIGIN, Network, load, sealed
from pyproj import Transformer

from core.errors import InvalidInput
from network_analysis.radius import LAYERS, near

#                 d (c2 shop)
#                 |
#                 p3      ▢ MG1 (130..170, 20..60)
#         s1 ·    |  ✕ centre (100, 20)
# S/G1 --p1-- a (c3) @v1--p2-- b/R1 --p4-- f (c1)        R1: regulator b > e, e = (200, 50)
#           d1 · (90, -30)
NET = Network(
    nodes={"S": (0, 0), "a": (100, 0), "b": (200, 0), "d": (100, 100), "f": (300, 0), "e": (200, 50, 0)},
    pipes={"p1": "S-a", "p2": "a-b", "p3": "a-d", "p4": "b-f"},
    valves={"v1": "p2@a"},  # 5 m along p2 from a: (105, 0)
    sources={"G1": "S"},
    regulators={"R1": "b>e"},  # placed at its inlet b
    customers={"c1": "f", "c2": "d shop", "c3": "a"},
)
CENTRE = (ORIGIN[0] + 100, ORIGIN[1] + 20)
SECRETS = ("210302199001011234", "王小明", "13812345678", "13987654321", "13911112222")  # personal data, phones
MASKS = ("2103**********1234", "138****5678", "139****4321", "139****2222")  # as the tables hold them (sealed)

EXPECTED = [  # (layer, code, name, distance_m) within 150 m of CENTRE, nearest first
    ("pipe", "p3", None, 0.0),
    ("customer", "c3", None, 20.0),  # a resident: no name
    ("pipe", "p1", None, 20.0),
    ("pipe", "p2", None, 20.0),
    ("valve", "v1", "阀门", round(math.hypot(5, 20), 2)),
    ("sentry", "s1", "管网哨兵", round(math.hypot(20, 10), 2)),
    ("sensitive_site", "MG1", "育才学校", 30.0),
    ("device", "d1", "阴极保护测试桩", round(math.hypot(10, 50), 2)),
    ("customer", "c2", "c2", 80.0),  # a shop: its name is shown
    ("pipe", "p4", None, round(math.hypot(100, 20), 2)),
    ("regulator", "R1", "调压柜", round(math.hypot(100, 20), 2)),
    ("station", "G1", "G1", round(math.hypot(100, 20), 2)),
]  # c1 at (300, 0) is 201 m away


@pytest.fixture(scope="module")
def net(net_engine: sa.Engine) -> sa.Engine:
    load(net_engine, NET)
    biz = {"e": ENTERPRISE, "d": DIVISION, "x0": ORIGIN[0], "y0": ORIGIN[1],
           **sealed("sentry", responsible_phone=SECRETS[4])}
    with net_engine.begin() as conn:
        conn.execute(sa.text(
            """INSERT INTO sentry (code, location_kind, name, model, manufacturer, responsible_person,
                   responsible_phone, responsible_phone_sealed, responsible_phone_index, commissioned_on, geom,
                   enterprise_code, admin_code)
               VALUES ('s1', 'adjacent_space', '管网哨兵', 'GS-1', '厂家', '周七', :responsible_phone,
                       :responsible_phone_sealed, :responsible_phone_index, '2024-01-01',
                       ST_SetSRID(ST_MakePoint(:x0 + 120, :y0 + 10, 10), 4550), :e, :d)"""), biz)
        conn.execute(sa.text(
            """INSERT INTO device (code, device_type, name, model, manufacturer, responsible_person,
                   responsible_phone, responsible_phone_sealed, responsible_phone_index, commissioned_on, geom,
                   enterprise_code, admin_code)
               VALUES ('d1', '阴极保护测试桩', '阴极保护测试桩', 'CP', '厂家', '周七', :responsible_phone,
                       :responsible_phone_sealed, :responsible_phone_index, '2024-01-01',
                       ST_SetSRID(ST_MakePoint(:x0 + 90, :y0 - 30, 10), 4550), :e, :d)"""),
            biz | sealed("device", responsible_phone=SECRETS[4]))
        conn.execute(sa.text(
            """INSERT INTO sensitive_site (code, name, site_type, address, occupancy, geom, enterprise_code, admin_code)
               VALUES ('MG1', '育才学校', 10, '测试路2号', 1500,
                       ST_Translate(ST_MakeEnvelope(130, 20, 170, 60, 4550), :x0, :y0), :e, :d)"""), biz)
        personal = sealed("customer_personal", id_number=SECRETS[0], contact_phone=SECRETS[2],
                          meter_reader_phone=SECRETS[3])
        conn.execute(sa.text(
            """INSERT INTO customer_personal (customer_id, id_number, id_number_sealed, id_number_index,
                   contact_person, contact_phone, contact_phone_sealed, contact_phone_index, meter_reader_phone,
                   meter_reader_phone_sealed, meter_reader_phone_index)
               SELECT id, :id_number, CAST(:id_number_sealed AS bytea), CAST(:id_number_index AS bytea), :person,
                      :contact_phone, CAST(:contact_phone_sealed AS bytea), CAST(:contact_phone_index AS bytea),
                      :meter_reader_phone, CAST(:meter_reader_phone_sealed AS bytea),
                      CAST(:meter_reader_phone_index AS bytea)
               FROM customer"""), personal | {"person": SECRETS[1]})
        assert personal["id_number"] == MASKS[0]
    return net_engine


def query(engine: sa.Engine, *args, **kwargs) -> dict:
    with engine.connect() as conn:
        return near(conn, *args, **kwargs)


def listed(result: dict) -> list[tuple]:
    return [(f["layer"], f["code"], f["name"], f["distance_m"]) for f in result["features"]]


def test_every_layer_within_the_radius_nearest_first(net: sa.Engine) -> None:
    result = query(net, *CENTRE, 150)
    assert listed(result) == EXPECTED
    assert result["center"] == list(CENTRE) and result["radius_m"] == 150.0
    assert result["counts"] == {"pipe": 4, "valve": 1, "regulator": 1, "station": 1, "sentry": 1, "device": 1,
                                "customer": 2, "sensitive_site": 1}
    with net.connect() as conn:  # ids are the layers' own
        ids = {(layer, code): id_ for layer in LAYERS
               for id_, code in conn.execute(sa.text(f"SELECT id, code FROM {layer}"))}
    assert all(f["id"] == ids[f["layer"], f["code"]] for f in result["features"])


def test_the_radius_is_inclusive_and_2d(net: sa.Engine) -> None:
    # the network lies at Z = 10 m, the query point has no height: a 3D distance would push 20 m out
    assert listed(query(net, *CENTRE, 20)) == EXPECTED[:4]
    assert listed(query(net, *CENTRE, 19.99)) == EXPECTED[:1]


def test_limit_per_layer_keeps_the_nearest_and_counts_all(net: sa.Engine) -> None:
    result = query(net, *CENTRE, 150, limit_per_layer=1)
    assert [f for f in listed(result) if f[0] == "pipe"] == [EXPECTED[0]]
    assert [f[1] for f in listed(result) if f[0] == "customer"] == ["c3"]
    assert result["counts"]["pipe"] == 4 and result["counts"]["customer"] == 2


def test_point_in_another_crs_is_longitude_first(net: sa.Engine) -> None:
    lon, lat = Transformer.from_crs("EPSG:4550", "EPSG:4490", always_xy=True).transform(*CENTRE)
    result = query(net, lon, lat, 150, crs="EPSG:4490")
    assert result["center"] == pytest.approx(list(CENTRE), abs=0.001)
    assert listed(result) == EXPECTED


def test_no_personal_data_in_the_answer(net: sa.Engine) -> None:
    result = query(net, *CENTRE, 5000)
    text = json.dumps(result, ensure_ascii=False)
    assert [f["code"] for f in result["features"] if f["layer"] == "customer"] == ["c3", "c2", "c1"]
    assert not [secret for secret in (*SECRETS, *MASKS) if secret in text]
    assert all(set(f) == {"layer", "id", "code", "name", "distance_m"} for f in result["features"])
    assert not any(word in text for word in ("phone", "id_number", "contact", "person"))


def test_nothing_near_is_an_empty_answer_not_an_error(net: sa.Engine) -> None:
    result = query(net, CENTRE[0] + 10_000, CENTRE[1], 100)  # 10 km off: still the deployment area
    assert result["features"] == [] and set(result["counts"].values()) == {0}


@pytest.mark.parametrize(
    ("args", "kwargs", "field", "reason"),
    [
        ((*CENTRE, 0), {}, "radius_m", "must be more than 0 and at most 5000 m, not 0"),
        ((*CENTRE, -5), {}, "radius_m", "must be more than 0 and at most 5000 m, not -5"),
        ((*CENTRE, 5000.5), {}, "radius_m", "must be more than 0 and at most 5000 m, not 5000.5"),
        ((*CENTRE, float("nan")), {}, "radius_m", "must be more than 0 and at most 5000 m, not nan"),
        ((*CENTRE, "far"), {}, "radius_m", "must be a number of metres, not 'far'"),
        ((*CENTRE, 100), {"limit_per_layer": 0}, "limit_per_layer", "must be a whole number ≥ 1, not 0"),
        (("x", 1.0, 100), {}, "point", "must be two finite numbers, not ('x', 1.0)"),
        ((float("inf"), 1.0, 100), {}, "point", "must be two finite numbers, not (inf, 1.0)"),
        ((*CENTRE, 100), {"crs": "EPSG:999999"}, "crs", "unknown CRS 'EPSG:999999'"),
        ((41.08, 123.0, 100), {"crs": "EPSG:4490"}, "point", "(41.08, 123.0) cannot be placed in EPSG:4550 from "
                                                             "EPSG:4490 (x is the easting or longitude)"),
        ((CENTRE[0] + 60_000, CENTRE[1], 100), {}, "point",
         "(560100.0, 4550020.0) in EPSG:4550 is outside the deployment area: the nearest pipe is 60 km away "
         "(limit 50 km)"),
    ],
)
def test_bad_input_names_the_parameter(net: sa.Engine, args: tuple, kwargs: dict, field: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as error:
        query(net, *args, **kwargs)
    assert (error.value.field, error.value.reason) == (field, reason)
    assert str(error.value) == f"{field}: {reason}"


def test_demo_city_matches_plain_sql(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        x, y = conn.execute(sa.text(
            "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(ST_Extent(geom)::geometry) c FROM pipe) s")).one()
        result = near(conn, x, y, 300, limit_per_layer=50)
        point = "ST_SetSRID(ST_MakePoint(:x, :y), 4550)"
        expected = {layer: conn.execute(sa.text(
            f"SELECT count(*) FROM {layer} WHERE ST_Distance(geom, {point}) <= 300"), {"x": x, "y": y}).scalar_one()
            for layer in LAYERS}
    assert result["counts"] == expected
    assert expected["pipe"] > 0 and expected["customer"] > 50  # a real crowd, cut at 50
    distances = [f["distance_m"] for f in result["features"]]
    assert distances == sorted(distances) and distances[-1] <= 300
    for layer, n in expected.items():
        assert sum(f["layer"] == layer for f in result["features"]) == min(n, 50)
