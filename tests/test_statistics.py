"""Network statistics: exact figures on a hand-made network, sums on the demo city."""
from __future__ import annotations

import pytest
import sqlalchemy as sa
from networks import Network, load

from core.errors import InvalidInput
from network_analysis.statistics import network_statistics

GROUPINGS = ("by_pressure_class", "by_material", "by_diameter_band", "by_age_band", "by_district", "by_enterprise")


# S --p1 100 m-- a --p2 200-- b --p3 300-- c --p4 400-- d --p5 500-- e --p6 600-- f --p7 250-- g
# (x in metres). p6 is abandoned. 西区燃气 (210303) owns p5 and p7; p4, p5, p7 lie in 铁西区.
#
# pipe  class  material      DN   built  age in 2026
# p1    0      20 聚乙烯      50   2020    6
# p2    0      20 聚乙烯     100   2006   20  (not old: old is more than 20)
# p3    1       1 钢制管道   150   2000   26
# p4    1      10 灰口铸铁   300   1990   36
# p5    2       1 钢制管道   600   1985   41
# p6    1      10 灰口铸铁   400   1970   abandoned: left out everywhere
# p7    2       1 钢制管道   200   2016   10
LINE = Network(
    nodes={"S": (0, 0), "a": (100, 0), "b": (300, 0), "c": (600, 0), "d": (1000, 0), "e": (1500, 0),
           "f": (2100, 0), "g": (2350, 0)},
    pipes={"p1": "S-a", "p2": "a-b", "p3": "b-c", "p4": "c-d", "p5": "d-e", "p6": "e-f", "p7": "f-g"},
    sources={"G1": "S"},
)
MIX = {  # pipe: (pressure class, material, DN, build year)
    "p1": (0, 20, 50, 2020), "p2": (0, 20, 100, 2006), "p3": (1, 1, 150, 2000), "p4": (1, 10, 300, 1990),
    "p5": (2, 1, 600, 1985), "p6": (1, 10, 400, 1970), "p7": (2, 1, 200, 2016),
}


@pytest.fixture(scope="module")
def line(net_engine: sa.Engine) -> sa.Engine:
    load(net_engine, LINE)
    with net_engine.begin() as conn:
        for code, (pclass, material, dn, year) in MIX.items():
            conn.execute(sa.text("UPDATE pipe SET pressure_class = :pc, material = :m, diameter_mm = :dn, "
                                 "build_year = :y WHERE code = :code"),
                         {"pc": pclass, "m": material, "dn": dn, "y": year, "code": code})
        conn.execute(sa.text("UPDATE pipe SET status = 'abandoned' WHERE code = 'p6'"))
        conn.execute(sa.text("""
            INSERT INTO admin_division (admin_code, name, level, parent_code)
            VALUES ('210300', '鞍山市', 'city', NULL), ('210303', '铁西区', 'county', '210300');
            UPDATE admin_division SET parent_code = '210300' WHERE admin_code = '210302';
            INSERT INTO enterprise (enterprise_code, name, admin_code, address, legal_representative,
                business_license_type, credit_code, gas_license_no, gas_license_issued_on, gas_license_expires_on,
                operating_area)
            VALUES ('2103030001', '西区燃气', '210303', '西区路1号', '李四', '有限责任公司', '91210303MA0000000X',
                    'T-2', '2020-01-01', '2030-01-01', '铁西区');
            UPDATE pipe SET admin_code = '210303' WHERE code IN ('p4', 'p5', 'p7');
            UPDATE pipe SET enterprise_code = '2103030001' WHERE code IN ('p5', 'p7');
            """))
    return net_engine


def stats(engine: sa.Engine, **kwargs) -> dict:
    with engine.connect() as conn:
        return network_statistics(conn, as_of_year=kwargs.pop("as_of_year", 2026), **kwargs)


def figures(groups: list[dict], key: str) -> dict:
    """{group key: (km, count)}"""
    return {g[key]: (g["length_km"], g["count"]) for g in groups}


def test_exact_figures_by_every_grouping(line: sa.Engine) -> None:
    s = stats(line)
    assert s["total"] == {"length_km": 1.75, "count": 6}
    assert s["by_pressure_class"] == [
        {"code": 0, "label": "低压", "length_km": 0.3, "count": 2},
        {"code": 1, "label": "中压", "length_km": 0.7, "count": 2},
        {"code": 2, "label": "次高压", "length_km": 0.75, "count": 2},
    ]
    assert s["by_material"] == [
        {"code": 1, "label": "钢制管道", "length_km": 1.05, "count": 3},
        {"code": 10, "label": "灰口铸铁", "length_km": 0.4, "count": 1},
        {"code": 20, "label": "聚乙烯", "length_km": 0.3, "count": 2},
    ]
    # DN on a bound belongs to the band below it (≤ 50, 51–100 …); 301–500 only had the abandoned p6
    assert [(b["band"], b["min_mm"], b["max_mm"], b["length_km"], b["count"]) for b in s["by_diameter_band"]] == [
        ("DN ≤ 50", None, 50, 0.1, 1), ("DN 51–100", 51, 100, 0.2, 1), ("DN 101–200", 101, 200, 0.55, 2),
        ("DN 201–300", 201, 300, 0.4, 1), ("DN 301–500", 301, 500, 0.0, 0), ("DN > 500", 501, None, 0.5, 1),
    ]
    assert [(b["band"], b["min_years"], b["max_years"], b["length_km"], b["count"]) for b in s["by_age_band"]] == [
        ("≤ 10", None, 10, 0.35, 2), ("11–20", 11, 20, 0.2, 1), ("21–30", 21, 30, 0.3, 1), ("> 30", 31, None, 0.9, 2),
    ]
    assert s["by_district"] == [
        {"admin_code": "210302", "name": "铁东区", "length_km": 0.6, "count": 3},
        {"admin_code": "210303", "name": "铁西区", "length_km": 1.15, "count": 3},
    ]
    assert s["by_enterprise"] == [
        {"enterprise_code": "2103020001", "name": "测试燃气", "length_km": 1.0, "count": 4},
        {"enterprise_code": "2103030001", "name": "西区燃气", "length_km": 0.75, "count": 2},
    ]


def test_old_pipes_by_material_with_shares_of_each_material(line: sa.Engine) -> None:
    old = stats(line)["old_pipes"]
    # p3, p4, p5 are more than 20 years old; p2 (exactly 20) is not
    assert old == {
        "older_than_years": 20, "length_km": 1.2, "count": 3, "share": round(1200 / 1750, 4),
        "by_material": [
            {"code": 1, "label": "钢制管道", "length_km": 0.8, "count": 2, "share": round(800 / 1050, 4)},
            {"code": 10, "label": "灰口铸铁", "length_km": 0.4, "count": 1, "share": 1.0},
            {"code": 20, "label": "聚乙烯", "length_km": 0.0, "count": 0, "share": 0.0},
        ],
    }


def test_as_of_year_sets_ages_and_leaves_out_pipes_not_yet_built(line: sa.Engine) -> None:
    s = stats(line, as_of_year=2000)  # only p3 (age 0), p4 (10), p5 (15) existed
    assert s["as_of_year"] == 2000
    assert s["total"] == {"length_km": 1.2, "count": 3}
    assert figures(s["by_age_band"], "band") == {"≤ 10": (0.7, 2), "11–20": (0.5, 1), "21–30": (0.0, 0),
                                                 "> 30": (0.0, 0)}
    assert s["old_pipes"]["count"] == 0


@pytest.mark.parametrize(
    ("kwargs", "total", "districts", "enterprises"),
    [
        ({"enterprise_code": "2103030001"}, (0.75, 2), {"210303": (0.75, 2)}, {"2103030001": (0.75, 2)}),
        ({"admin_code": "210303"}, (1.15, 3), {"210303": (1.15, 3)}, {"2103020001": (0.4, 1), "2103030001": (0.75, 2)}),
        # a city takes in its counties
        ({"admin_code": "210300"}, (1.75, 6), {"210302": (0.6, 3), "210303": (1.15, 3)},
         {"2103020001": (1.0, 4), "2103030001": (0.75, 2)}),
        ({"admin_code": "210302", "enterprise_code": "2103030001"}, (0.0, 0), {}, {}),
    ],
)
def test_filters_apply_to_every_figure(line: sa.Engine, kwargs: dict, total: tuple, districts: dict,
                                       enterprises: dict) -> None:
    s = stats(line, **kwargs)
    assert (s["enterprise_code"], s["admin_code"]) == (kwargs.get("enterprise_code"), kwargs.get("admin_code"))
    assert (s["total"]["length_km"], s["total"]["count"]) == total
    assert figures(s["by_district"], "admin_code") == districts
    assert figures(s["by_enterprise"], "enterprise_code") == enterprises
    for key in GROUPINGS:
        assert round(sum(g["length_km"] for g in s[key]), 3) == total[0], key
        assert sum(g["count"] for g in s[key]) == total[1], key


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"enterprise_code": "2103029999"}, "unknown enterprise code '2103029999'"),
        ({"admin_code": "999999"}, "unknown admin code '999999'"),
        ({"as_of_year": 1800}, "must be between 1900 and 2100, not 1800"),
    ],
)
def test_bad_input_is_a_clear_error_naming_the_parameter(line: sa.Engine, kwargs: dict, reason: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        stats(line, **kwargs)
    (field,) = kwargs
    assert (caught.value.field, caught.value.reason) == (field, reason)
    assert str(caught.value) == f"{field}: {reason}"


def test_demo_city_every_grouping_sums_to_the_total_length(engine: sa.Engine) -> None:
    with engine.connect() as conn, conn.begin() as transaction:
        # a tenth of the city abandoned, for this test only: the shared demo city is not changed
        conn.execute(sa.text("UPDATE pipe SET status = 'abandoned' WHERE id % 10 = 0"))
        length_m, count = conn.execute(sa.text(
            "SELECT sum(length_m), count(*) FROM pipe WHERE status <> 'abandoned'")).one()
        s = network_statistics(conn)
        by_enterprise = network_statistics(conn, enterprise_code="2103110001")
        transaction.rollback()
    assert count == 2700
    assert s["total"]["count"] == count
    assert s["total"]["length_km"] == pytest.approx(length_m / 1000, abs=0.0005)
    for result in (s, by_enterprise):
        total = result["total"]
        for key in GROUPINGS:
            groups = result[key]
            # every figure, the total too, is rounded to the metre: half a metre each may be lost
            assert sum(g["length_km"] for g in groups) == pytest.approx(
                total["length_km"], abs=0.0005 * (len(groups) + 1)), key
            assert sum(g["count"] for g in groups) == total["count"], key
        old = result["old_pipes"]
        assert sum(g["count"] for g in old["by_material"]) == old["count"]
        assert [g["code"] for g in old["by_material"]] == [g["code"] for g in result["by_material"]]
    assert len(s["by_district"]) == 4 and len(s["by_enterprise"]) == 2
    assert by_enterprise["by_enterprise"] == [{"enterprise_code": "2103110001", "name": "千山示范燃气有限公司",
                                               **by_enterprise["total"]}]
