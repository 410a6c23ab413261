"""Personal data is masked in every public collection: items, filters and vector tiles (issue 16, defect 5).

Staff names and mobile numbers on valves, regulators, sentries, hazards, inspections and crew bases
show as 罗** / 138****0624, residents' addresses stop before the house number, credit codes of
individuals (个体工商户, 92…) keep their first and last 4 characters. The values below are those of
the test city (DEMO_PIPES, DEMO_SEED); the raw values are checked too, so a change of the generator
cannot make these tests pass by accident: names as the table holds them, phone numbers as their
sealed values open (the tables hold phone numbers masked already, migration 0017).

The HTTP reads are signed in as the city's regulator (the `http` fixture), who sees every feature
of the test city; masks are the same for every account. In the database, the published views mask
for an account's role too, and customer_personal is readable only with the `pii` duty.
"""
from __future__ import annotations

import math

import mapbox_vector_tile
import pytest
import requests
import sqlalchemy as sa
from conftest import LiveServer, scalar
from signed_in import ENTERPRISE_A, ensure_account

from accounts.personal_data import PERSONAL_COLUMNS, companion_columns, decrypt, load_keyring, sealed_column

# collection, feature, {property: (raw value in the table, value served)}
MASKED = [
    ("valves", "FM0000001", {"responsible_person": ("罗福", "罗**"),
                             "responsible_phone": ("13844310624", "138****0624")}),
    ("regulators", "TY000001", {"responsible_person": (None, "彭**"), "responsible_phone": (None, "133****9389")}),
    ("sentries", "SB000001", {"responsible_person": (None, "覃**"), "responsible_phone": (None, "138****2155")}),
    ("hazards", "YH-00001", {"inspector": ("郝伟凤", "郝**"), "inspector_phone": ("18682132670", "186****2670")}),
    ("inspections", "XJ-00001", {"inspector": ("郝伟凤", "郝**"), "inspector_phone": ("18682132670", "186****2670")}),
    ("crew_bases", "QX001", {"phone": ("15229268512", "152****8512"), "name": (None, "鞍山气网示范燃气1号抢修站")}),
    # a resident: address to the compound; a school (non-resident): address kept, 92… credit code masked
    ("customers", "YH00000001", {"address": ("铁西区建国路山南小区1号楼1单元201室", "铁西区建国路山南小区"),
                                 "credit_code": (None, None), "name": (None, "付**"), "user_type": (None, 1)}),
    ("customers", "YH00000012", {"address": ("铁西区五一路祥和佳苑1号楼1单元102室",
                                             "铁西区五一路祥和佳苑1号楼1单元102室"),
                                 "credit_code": ("92210303774519268K", "9221**********268K")}),
]
TABLES = {"valves": "valve", "regulators": "regulator", "sentries": "sentry", "hazards": "hazard",
          "inspections": "inspection", "crew_bases": "crew_base", "customers": "customer"}


def opened(engine: sa.Engine, table: str, column: str, code: str) -> str:
    """The clear value of a sealed column of feature `code` (read as the owner, opened with the keyring)."""
    blob = scalar(engine, f"SELECT {sealed_column(column)} FROM {table} WHERE code = :c", c=code)
    assert isinstance(blob, bytes)
    return decrypt(load_keyring(create=False), blob, associated=f"{table}.{column}")


def item(server: LiveServer, http: requests.Session, collection: str, code: str) -> dict:
    r = http.get(f"{server.url}/ogc/collections/{collection}/items/{code}", timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("collection, code, values", MASKED, ids=[f"{c}-{f}" for c, f, _ in MASKED])
def test_items_show_masked_values(live_server: LiveServer, http: requests.Session, engine: sa.Engine,
                                  collection: str, code: str, values: dict) -> None:
    properties = item(live_server, http, collection, code)["properties"]
    table = TABLES[collection]
    for name, (raw, served) in values.items():
        stored = scalar(engine, f"SELECT {name} FROM {table} WHERE code = :c", c=code)  # as the owner
        if name in PERSONAL_COLUMNS.get(table, {}):  # stored masked; its sealed value is the raw one
            assert stored == served
            if raw is not None:
                assert opened(engine, table, name, code) == raw
        elif raw is not None:  # what the database holds, so the mask did something
            assert stored == raw
        assert properties[name] == served, name


def test_filters_see_only_masked_values(live_server: LiveServer, http: requests.Session) -> None:
    """A filter on a raw phone number must not tell whether it exists (no guessing by filter)."""
    def matched(flt: str) -> int:
        r = http.get(f"{live_server.url}/ogc/collections/valves/items",
                     params={"filter": flt, "limit": 10}, timeout=30)
        assert r.status_code == 200, r.text
        return len(r.json()["features"])

    assert matched("responsible_phone = '13844310624'") == 0
    assert matched("responsible_phone LIKE '1384431%'") == 0
    assert matched("responsible_person = '罗福'") == 0
    assert matched("code = 'FM0000001' AND responsible_phone = '138****0624'") == 1


def _tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2 ** z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


@pytest.mark.parametrize("collection, code, name, served", [
    ("valves", "FM0000001", "responsible_phone", "138****0624"),
    ("customers", "YH00000001", "address", "铁西区建国路山南小区"),
    ("crew_bases", "QX001", "phone", "152****8512"),
])
def test_vector_tiles_carry_masked_values(live_server: LiveServer, http: requests.Session, collection: str,
                                          code: str, name: str, served: str) -> None:
    lon, lat = item(live_server, http, collection, code)["geometry"]["coordinates"][:2]
    x, y = _tile_of(lon, lat, 17)
    r = http.get(f"{live_server.url}/ogc/collections/{collection}/tiles/WebMercatorQuad/17/{y}/{x}", timeout=30)
    assert r.status_code == 200, r.text
    layer = mapbox_vector_tile.decode(r.content)[collection]
    feature = next(f for f in layer["features"] if f["properties"]["code"] == code)
    assert feature["properties"][name] == served


def test_published_views_keep_their_tables_columns(engine: sa.Engine) -> None:
    """A view is frozen to its table's columns: a migration that adds a column to a published table
    must remake the view (migrations.fragments.published_view), or this fails. The sealed values
    and blind indexes of personal columns (x_sealed, x_index of migration 0017) are the exception:
    never published, so no view has them."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text("""
            SELECT c.relname,
                   array(SELECT attname FROM pg_attribute WHERE attrelid = c.oid AND attnum > 0
                         AND NOT attisdropped ORDER BY attnum) AS view_columns,
                   array(SELECT attname FROM pg_attribute WHERE attrelid = format('public.%I', c.relname)::regclass
                         AND attnum > 0 AND NOT attisdropped ORDER BY attnum) AS table_columns
            FROM pg_class c WHERE c.relnamespace = 'published'::regnamespace AND c.relkind = 'v'
            ORDER BY c.relname
        """)).all()
    assert [r.relname for r in rows] == sorted(TABLES.values())
    for r in rows:
        companions = companion_columns(r.relname)
        assert companions <= set(r.table_columns) and not companions & set(r.view_columns), r.relname
        assert r.view_columns == [c for c in r.table_columns if c not in companions], r.relname
    assert sum(bool(companion_columns(r.relname)) for r in rows) == 6  # all but customer: personal columns


@pytest.mark.parametrize("function, given, masked", [
    ("mask_phone", "13844310624", "138****0624"),
    ("mask_phone", "0412-5550001", "041****0001"),
    ("mask_phone", "110", "***"),
    ("mask_name", "欧阳修", "欧**"),
    ("mask_address", "辽宁省鞍山市铁东区建国路88号", "辽宁省鞍山市铁东区建国路"),
    ("mask_address", "立山区五一路百货大楼3栋2单元", "立山区五一路百货大楼"),
    ("mask_address", "千山区幸福社区", "千山区幸福社区"),
    ("mask_credit_code", "92210303774519268K", "9221**********268K"),
])
def test_mask_functions(engine: sa.Engine, function: str, given: str, masked: str) -> None:
    assert scalar(engine, f"SELECT published.{function}(:v)", v=given) == masked
    assert scalar(engine, f"SELECT published.{function}(NULL)") is None


@pytest.mark.parametrize("address, masked", [
    ("铁西区建国路山南小区1号楼1单元201室", "铁西区建国路山南小区"),   # the house number cut: trusted
    ("铁西区建国路幸福小区5-2-301", "建国路祥和社区"),                # forms the cut does not know: street and
    ("铁西区幸福里3#楼2门302", "建国路祥和社区"),                     # community only (fail closed)
    ("铁西区园林路A座1201", "建国路祥和社区"),
    ("铁西区胜利路８８－１", "建国路祥和社区"),
    ("铁西区建国路幸福小区", "铁西区建国路幸福小区"),
])
def test_residents_addresses_are_masked_fail_closed(engine: sa.Engine, address: str, masked: str) -> None:
    assert scalar(engine, "SELECT published.mask_address(:a, '建国路', '祥和社区')", a=address) == masked
    assert scalar(engine, "SELECT published.mask_address(NULL, '建国路', '祥和社区')") is None


def test_route_process_gives_the_crew_base_phone_masked(live_server: LiveServer, http: requests.Session,
                                                        engine: sa.Engine) -> None:
    lon, lat = item(live_server, http, "crew_bases", "QX001")["geometry"]["coordinates"][:2]
    r = http.post(f"{live_server.url}/ogc/processes/route/execution",
                      json={"inputs": {"to": {"type": "Point", "coordinates": [lon, lat]}}}, timeout=120)
    assert r.status_code == 200, r.text
    base = r.json()["crew_base"]
    raw = opened(engine, "crew_base", "phone", base["code"])
    assert base["phone"] == raw[:3] + "****" + raw[-4:] and base["phone"] != raw


def rows_as(engine: sa.Engine, role: str, query: str, **params: object) -> list[sa.Row]:
    """`query` read as database role `role` (an account's: the owner sets the role for one
    transaction, as the web app does per request), so its grants and row-level security apply."""
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT set_config('role', :role, true)"), {"role": role})
        return list(conn.execute(sa.text(query), params))


@pytest.mark.parametrize("collection, code, values", MASKED, ids=[f"{c}-{f}" for c, f, _ in MASKED])
def test_published_views_mask_for_an_accounts_role(engine: sa.Engine, users, collection: str, code: str,
                                                   values: dict) -> None:
    """What a direct PostgreSQL login of an account reads in the published views: the masked values."""
    names = list(values)
    found = rows_as(engine, users["city_regulator"].db_role,
                    f"SELECT {', '.join(names)} FROM published.{TABLES[collection]} WHERE code = :c", c=code)
    assert [dict(zip(names, row, strict=True)) for row in found] == [
        {name: served for name, (_, served) in values.items()}]


def test_customer_personal_is_readable_only_with_the_pii_duty(engine: sa.Engine, db_url: str, users) -> None:
    for name in ("a_viewer", "a_dispatcher", "city_regulator", "auditor"):
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied for table customer_personal"):
            rows_as(engine, users[name].db_role, "SELECT count(*) FROM customer_personal")
    pii = ensure_account(db_url, "pii_viewer_a", ("viewer", "pii"), enterprise=ENTERPRISE_A)
    expected = scalar(engine, "SELECT count(*) FROM customer_personal p JOIN customer c ON c.id = p.customer_id "
                              "WHERE c.enterprise_code = :e", e=ENTERPRISE_A)
    assert isinstance(expected, int) and expected > 0
    assert rows_as(engine, pii.db_role, "SELECT count(*) FROM customer_personal")[0][0] == expected


def test_the_pii_duty_alone_reads_its_enterprises_customer_personal(engine: sa.Engine, db_url: str) -> None:
    pii = ensure_account(db_url, "pii_only_a", ("pii",), enterprise=ENTERPRISE_A)
    expected = scalar(engine, "SELECT count(*) FROM customer_personal p JOIN customer c ON c.id = p.customer_id "
                              "WHERE c.enterprise_code = :e", e=ENTERPRISE_A)
    assert rows_as(engine, pii.db_role, "SELECT count(*) FROM customer_personal")[0][0] == expected
