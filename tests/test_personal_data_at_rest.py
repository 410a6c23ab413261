"""ID numbers and phone numbers are encrypted at rest (issue 18, item 6 and its Done-when).

"No ID number or phone number appears in clear in the database (checked by a query over every
text column), the API, tiles, exports or logs; the pii endpoint returns it and audits the read."

- The schema: the personal columns are exactly accounts.personal_data.PERSONAL_COLUMNS (every
  column named like a phone or an ID number), each with its sealed value, blind index, CHECKs
  that no clear number can be stored and an index; the GB 11643 CHECK is gone.
- The database of the session's demo city holds none in clear: every text, varchar, jsonb and text
  array column of every table and view of public, dict, published and auth, against the patterns
  of a mainland mobile number and an 18-character ID number and against the clear values
  themselves (opened from the sealed columns, which do hold them).
- Items, vector tiles, HTTP exports and the CLI exporter carry masks only; the logs this checkout
  wrote since the run began (var/log/*.log) carry no clear value.
- GET /api/pii/<collection>/<code> gives the clear values the generator made, for an account with
  the `pii` duty in the feature's scope; 403 without the duty, 404 for another enterprise's
  feature, 401 anonymous.
- `qiwang keys rotate` re-encrypts every sealed value under a new key and drops the old ones,
  values and blind indexes unchanged (a database and a copy of the keyring of its own).

Each read is in the audit log (action pii_read, the account, the feature).
"""
from __future__ import annotations

import importlib
import io
import json
import math
import re
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import mapbox_vector_tile
import pandas as pd
import pyogrio
import pytest
import requests
import sqlalchemy as sa
from click.testing import CliRunner
from conftest import DEMO_PIPES, DEMO_SEED, ROOT, ThrowawayDatabases, demo_city_database, scalar
from signed_in import ENTERPRISE_A, ENTERPRISE_B, TestAccount, ensure_account
from sqlalchemy.pool import NullPool

from accounts.personal_data import (
    PERSONAL_COLUMNS,
    Keyring,
    associated_with,
    decrypt,
    index_column,
    key_id_of,
    load_keyring,
    row_key,
    sealed_column,
)
from app.background_server import LiveServer

TIMEOUT = 60
# As the issue words them, with boundaries so that longer digit runs (ids, coordinates) do not count.
MOBILE = r"1[3-9][0-9]{9}"
ID_NUMBER = r"[1-9][0-9]{16}[0-9Xx]"
CLEAR = re.compile(rf"(?<![0-9.])(?:{MOBILE}|{ID_NUMBER})(?![0-9])")
SQL_CLEAR = rf"(^|[^0-9.])({MOBILE}|{ID_NUMBER})([^0-9]|$)"
MASKED_PHONE = re.compile(r"[0-9]{3}\*{4}[0-9]{4}|\**")
SCHEMAS = ("public", "dict", "published", "auth")
LOGS = ROOT / "var" / "log"
# What the logs held when this module was collected, before the session's tests ran: the test
# checks only what this run wrote after (the files are appended to across runs).
LOG_OFFSETS = {path.name: path.stat().st_size for path in LOGS.glob("*.log")} if LOGS.is_dir() else {}
PII_TABLES = {"valves": "valve", "regulators": "regulator", "sentries": "sentry", "hazards": "hazard",
              "inspections": "inspection", "crew_bases": "crew_base", "devices": "device",
              "customers": "customer_personal"}


def rows(engine: sa.Engine, query: str, **params: object) -> list[sa.Row]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(query), params))


def clear_values(engine: sa.Engine, keyring: Keyring | None = None) -> dict[tuple[str, str], dict[object, str]]:
    """(table, column) → {row key: clear value} of every sealed value, opened with the keyring."""
    keyring = keyring or load_keyring(create=False)
    out: dict[tuple[str, str], dict[object, str]] = {}
    for table, columns in PERSONAL_COLUMNS.items():
        for column in columns:
            found = rows(engine, f"SELECT {row_key(table)}, {sealed_column(column)} FROM {table} "
                                 f"WHERE {sealed_column(column)} IS NOT NULL")
            out[table, column] = {key: decrypt(keyring, blob, associated=associated_with(table, column))
                                  for key, blob in found}
    return out


@pytest.fixture(scope="module")
def secrets(engine: sa.Engine) -> set[str]:
    """Every clear ID number and phone number of the demo city, opened from the sealed columns."""
    values = {value for opened in clear_values(engine).values() for value in opened.values()}
    assert len(values) > 1000
    return values


def leaks(text: str, secrets: set[str]) -> list[str]:
    """Clear numbers in `text`: any of the demo city's, and anything shaped like a mobile or ID number
    but a unified social credit code (18 characters too; an enterprise's may be all digits)."""
    from core.codes import is_valid_credit_code

    shaped = {token for token in CLEAR.findall(text) if re.fullmatch(MOBILE, token) or not is_valid_credit_code(token)}
    return sorted(shaped | {s for s in secrets if s in text})


# ---- the schema

def test_the_personal_columns_are_every_phone_and_id_number_column(engine: sa.Engine) -> None:
    found: dict[str, dict[str, str]] = {}
    for table, column in rows(engine, """
            SELECT table_name, column_name FROM information_schema.columns
             WHERE table_schema = 'public' AND column_name ~ 'phone|id_number'
               AND column_name !~ '_(sealed|index)$' AND table_name IN (
                   SELECT tablename FROM pg_tables WHERE schemaname = 'public')
             ORDER BY 1, 2"""):
        found.setdefault(table, {})[column] = "id_number" if column == "id_number" else "phone"
    assert found == PERSONAL_COLUMNS
    frozen = importlib.import_module("migrations.versions.0018_personal_data_sealed").COLUMNS
    assert frozen == PERSONAL_COLUMNS   # until a later migration adds a column of its own


def test_each_column_is_masked_sealed_indexed_and_checked(engine: sa.Engine) -> None:
    for table, columns in PERSONAL_COLUMNS.items():
        types = dict(rows(engine, "SELECT column_name, data_type FROM information_schema.columns "
                                  "WHERE table_schema = 'public' AND table_name = :t", t=table))
        checks = dict(rows(engine, "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                                   "WHERE conrelid = CAST(:t AS regclass) AND contype = 'c'", t=table))
        indexed = {r[0] for r in rows(engine, "SELECT a.attname FROM pg_index i JOIN pg_attribute a "
                                              "ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
                                              "WHERE i.indrelid = CAST(:t AS regclass)", t=table)}
        for column in columns:
            assert (types[column], types[sealed_column(column)], types[index_column(column)]) == (
                "text", "bytea", "bytea"), (table, column)
            assert checks[f"{column}_is_masked"] == f"CHECK ((({column} IS NULL) OR ({column} !~ '[0-9]{{5}}'::text)))"
            assert checks[f"{column}_is_sealed"] == (f"CHECK ((({column} IS NULL) = "
                                                     f"({sealed_column(column)} IS NULL)))")
            assert index_column(column) in indexed, (table, column)
    assert scalar(engine, "SELECT count(*) FROM pg_constraint WHERE conname = 'id_number_is_gb11643'") == 0


@pytest.mark.parametrize("assignment, constraint", [
    ("responsible_phone = '12345'", "responsible_phone_is_masked"),        # five digits: no clear number
    ("responsible_phone_sealed = NULL", "responsible_phone_is_sealed"),   # a mask without its sealed value
])
def test_no_path_can_store_a_clear_number(engine: sa.Engine, assignment: str, constraint: str) -> None:
    with engine.connect() as conn, pytest.raises(sa.exc.IntegrityError, match=constraint):
        conn.execute(sa.text(f"UPDATE valve SET {assignment} WHERE id = (SELECT min(id) FROM valve)"))


# ---- (a) the database

def text_columns(engine: sa.Engine) -> list[tuple[str, str, str]]:
    """(schema, relation, column) of every text-like column of our tables and views (not PostGIS's)."""
    return [tuple(r) for r in rows(engine, """
        SELECT n.nspname, c.relname, a.attname
          FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
          JOIN pg_type t ON t.oid = a.atttypid
         WHERE n.nspname = ANY (:schemas) AND c.relkind IN ('r', 'p', 'v', 'm') AND NOT c.relispartition
           AND a.attnum > 0 AND NOT a.attisdropped
           AND format_type(coalesce(nullif(t.typbasetype, 0), a.atttypid), NULL)
               IN ('text', 'character varying', 'character', 'jsonb', 'json', 'text[]', 'character varying[]')
           AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                           AND d.deptype = 'e')   -- spatial_ref_sys, geometry_columns: PostGIS's
         ORDER BY 1, 2, 3""", schemas=list(SCHEMAS))]


def credit_code_columns(engine: sa.Engine) -> set[tuple[str, str]]:
    """(relation, column) of unified social credit codes (GB 32100, CHECK credit_code_is_gb32100), in
    the tables and their published views: 18 characters that can look like an ID number."""
    return {tuple(r) for r in rows(engine, """
        SELECT c.relname, a.attname FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
          JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
         WHERE k.conname = 'credit_code_is_gb32100'""")}


def test_the_database_holds_no_clear_number(engine: sa.Engine, secrets: set[str]) -> None:
    from core.codes import is_valid_credit_code

    columns = text_columns(engine)
    assert len({(s, r) for s, r, _ in columns}) > 40 and {s for s, _, _ in columns} == set(SCHEMAS)
    assert ("public", "customer_personal", "id_number") in columns and ("auth", "account", "name") in columns
    credit_codes = credit_code_columns(engine)
    assert credit_codes == {("enterprise", "credit_code"), ("customer", "credit_code")}
    found, credit_code_hits = {}, 0
    with engine.connect() as conn:
        for schema, relation, column in columns:
            value = f'CAST("{column}" AS text)'
            hits = set(conn.execute(sa.text(
                f'SELECT DISTINCT {value} FROM "{schema}"."{relation}" WHERE {value} ~ :pattern '
                f'OR {value} IN (SELECT unnest(CAST(:secrets AS text[])))'),   # a hashed subplan
                {"pattern": SQL_CLEAR, "secrets": sorted(secrets)}).scalars())
            if (relation, column) in credit_codes and schema in ("public", "published"):
                # an enterprise's code may be all digits, like an ID number; it is a valid GB 32100 code, no secret
                credit_code_hits += len(hits)
                hits = {v for v in hits if not is_valid_credit_code(v) or v in secrets}
            if hits:
                found[schema, relation, column] = sorted(hits)[:5]
    assert found == {}
    assert credit_code_hits > 0   # the patterns would have caught an 18-digit number: they did look


def test_the_demo_city_holds_them_sealed(engine: sa.Engine) -> None:
    opened = clear_values(engine)
    for (table, column), values in opened.items():
        stored = dict(rows(engine, f"SELECT {row_key(table)}, {column} FROM {table} WHERE {column} IS NOT NULL"))
        assert len(values) == len(stored) > 0, (table, column)
        for key, clear in values.items():
            kind = PERSONAL_COLUMNS[table][column]
            mask = clear[:4] + "*" * (len(clear) - 8) + clear[-4:] if kind == "id_number" else \
                clear[:3] + "****" + clear[-4:]
            assert stored[key] == mask, (table, column, key)
    mobiles = [v for (table, column), values in opened.items() if column != "id_number" and table != "device"
               for v in values.values()]
    assert mobiles and all(re.fullmatch(MOBILE, v) for v in mobiles)   # what the patterns above look for
    ids = list(opened["customer_personal", "id_number"].values())
    assert ids and all(re.fullmatch(ID_NUMBER, v) for v in ids)
    # staff phones of the stations' RTUs are landlines: sealed all the same
    assert all(re.fullmatch(r"0412-555[0-9]{4}", v) for v in opened["device", "responsible_phone"].values()
               if not re.fullmatch(MOBILE, v))


# ---- (b) what leaves: items, tiles, exports

def pages(http: requests.Session, url: str) -> Iterator[dict]:
    while url:
        r = http.get(url, timeout=TIMEOUT)
        assert r.status_code == 200, r.text
        body = r.json()
        yield from body["features"]
        url = next((link["href"] for link in body["links"] if link["rel"] == "next"), None)


def assert_masked(features: list[dict], columns: dict[str, str], where: str) -> None:
    for feature in features:
        for column in columns:
            value = feature["properties"].get(column)
            assert value is None or MASKED_PHONE.fullmatch(value), (where, column, value)


@pytest.mark.parametrize("collection", ["valves", "regulators", "sentries", "hazards", "inspections", "crew_bases",
                                        "customers"])
def test_items_carry_masks_only(live_server: LiveServer, http: requests.Session, engine: sa.Engine,
                                secrets: set[str], collection: str) -> None:
    features = list(pages(http, f"{live_server.url}/ogc/collections/{collection}/items?f=json&limit=1000"))
    table = PII_TABLES[collection]
    assert len(features) == scalar(engine, f"SELECT count(*) FROM {'customer' if collection == 'customers' else table}")
    assert leaks(json.dumps(features, ensure_ascii=False), secrets) == []
    if collection != "customers":
        assert_masked(features, PERSONAL_COLUMNS[table], collection)
        assert not {sealed_column(c) for c in PERSONAL_COLUMNS[table]} & set(features[0]["properties"])


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2 ** z
    return int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)


@pytest.mark.parametrize("collection", ["valves", "hazards", "crew_bases", "sentries"])
def test_tiles_carry_masks_only(live_server: LiveServer, http: requests.Session, secrets: set[str],
                                collection: str) -> None:
    first = next(pages(http, f"{live_server.url}/ogc/collections/{collection}/items?f=json&limit=1"))
    x, y = tile_of(*first["geometry"]["coordinates"][:2], 14)
    r = http.get(f"{live_server.url}/ogc/collections/{collection}/tiles/WebMercatorQuad/14/{y}/{x}", timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    features = mapbox_vector_tile.decode(r.content)[collection]["features"]
    assert first["id"] in {f["properties"]["code"] for f in features}
    assert leaks(json.dumps(features, ensure_ascii=False), secrets) == []
    assert_masked(features, PERSONAL_COLUMNS[PII_TABLES[collection]], collection)


def test_the_http_export_carries_masks_only(live_server: LiveServer, http: requests.Session, engine: sa.Engine,
                                            secrets: set[str]) -> None:
    r = http.get(f"{live_server.url}/api/exports/geojson", params={"layers": "valve,crew_base"}, timeout=120)
    assert r.status_code == 200, r.text
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        files = {name: z.read(name).decode("utf-8") for name in z.namelist()}
    assert sorted(files) == ["crew_base.geojson", "valve.geojson"]
    for name, text in files.items():
        table = name.removesuffix(".geojson")
        features = json.loads(text)["features"]
        assert len(features) == scalar(engine, f"SELECT count(*) FROM {table}")
        assert leaks(text, secrets) == []
        assert_masked(features, PERSONAL_COLUMNS[table], name)
        assert not {sealed_column(c) for c in PERSONAL_COLUMNS[table]} & set(features[0]["properties"])


def test_the_cli_export_carries_masks_only(db_url: str, engine: sa.Engine, secrets: set[str], tmp_path: Path) -> None:
    from app.cli import files  # noqa: F401  (adds `export` to the root group)
    from app.cli.root import cli

    out = tmp_path / "city.gpkg"
    layers = ["valve", "regulator", "sentry", "device", "hazard", "crew_base", "customer"]
    done = CliRunner().invoke(cli, ["export", "--layers", ",".join(layers), str(out)], env={"DATABASE_URL": db_url})
    assert done.exit_code == 0, done.output
    for layer in layers:
        frame = pyogrio.read_dataframe(out, layer=layer)
        assert len(frame) == scalar(engine, f"SELECT count(*) FROM {layer}")
        assert leaks(frame.drop(columns="geometry").to_json(force_ascii=False), secrets) == []
        for column in PERSONAL_COLUMNS.get(layer, {}):
            assert frame[column].str.fullmatch(MASKED_PHONE.pattern).all(), (layer, column)
            assert sealed_column(column) not in frame.columns and index_column(column) not in frame.columns
    # staff names, residents' addresses, credit codes of individuals: as the published views mask them
    masked = 0
    for layer in layers:
        frame = pyogrio.read_dataframe(out, layer=layer)
        columns = [c for (c,) in rows(engine, """
            SELECT a.attname FROM pg_attribute a
             WHERE a.attrelid = to_regclass('published.' || :t) AND a.attnum > 0 AND a.attname IN (
                   SELECT column_name FROM information_schema.columns
                    WHERE table_schema = 'public' AND table_name = :t AND data_type = 'text')""", t=layer)]
        for column in columns:
            seen = [v for (v,) in rows(engine, f'SELECT "{column}" FROM published."{layer}" ORDER BY id')]
            clear = [v for (v,) in rows(engine, f'SELECT "{column}" FROM public."{layer}" ORDER BY id')]
            if seen != clear:
                masked += 1
                assert [None if pd.isna(v) else v for v in frame[column]] == seen, (layer, column)
    assert masked >= 4


def test_an_unmasked_cli_export_is_the_tables_and_is_audited(db_url: str, engine: sa.Engine, secrets: set[str],
                                                             tmp_path: Path) -> None:
    """`export --unmasked` (backups, moves): names and credit codes as the tables hold them, phone
    numbers still masked, and one pii_read row naming the operator, the format and the layers."""
    from app.cli import files  # noqa: F401  (adds `export` to the root group)
    from app.cli.root import cli

    out = tmp_path / "backup.gpkg"
    before = scalar(engine, "SELECT coalesce(max(id), 0) FROM audit.log")
    command = ["--as", "backup-op", "export", "--unmasked", "--layers", "customer,valve", str(out)]
    done = CliRunner().invoke(cli, command, env={"DATABASE_URL": db_url})
    assert done.exit_code == 0, done.output
    customer = pyogrio.read_dataframe(out, layer="customer")
    assert [None if pd.isna(v) else v for v in customer["credit_code"]] == [
        v for (v,) in rows(engine, "SELECT credit_code FROM public.customer ORDER BY id")]
    assert customer["credit_code"].dropna().str.contains(r"\*").sum() == 0
    valve = pyogrio.read_dataframe(out, layer="valve")
    assert valve["responsible_phone"].dropna().str.fullmatch(MASKED_PHONE.pattern).all()
    assert leaks(valve.drop(columns="geometry").to_json(force_ascii=False), secrets) == []
    logged = rows(engine, "SELECT actor, action, detail FROM audit.log WHERE id > :b ORDER BY id", b=before)
    assert [(actor, action, detail["export"], detail["layers"]) for actor, action, detail in logged] == [
        ("operator:backup-op", "pii_read", "gpkg", ["customer", "valve"])]


# ---- (d) the one endpoint that opens them

@pytest.fixture(scope="module")
def pii_server(live_server: LiveServer) -> LiveServer:
    """The web app, which serves /api/pii (app/web.py)."""
    return live_server


@pytest.fixture(scope="module")
def generated() -> dict[str, pd.DataFrame]:
    """The demo city's tables as the generator made them (clear values), same pipes and seed."""
    from demo.city import generate

    return {table: frame for table, (frame, _) in generate(DEMO_PIPES, DEMO_SEED, srid=4550).tables.items()}


def first_code(engine: sa.Engine, table: str, enterprise: str) -> str:
    code = scalar(engine, f"SELECT code FROM {table} WHERE enterprise_code = :e ORDER BY id LIMIT 1", e=enterprise)
    assert isinstance(code, str)
    return code


def expected(generated: dict[str, pd.DataFrame], collection: str, code: str) -> dict[str, str | None]:
    table = PII_TABLES[collection]
    if table == "customer_personal":
        customers = generated["customer"]
        customer_id = customers.loc[customers["code"] == code, "id"].item()
        row = generated[table].loc[generated[table]["customer_id"] == customer_id].iloc[0]
    else:
        row = generated[table].loc[generated[table]["code"] == code].iloc[0]
    return {column: None if pd.isna(row[column]) else row[column] for column in PERSONAL_COLUMNS[table]}


@pytest.fixture(scope="module")
def pii_a(db_url: str) -> TestAccount:
    return ensure_account(db_url, "pii_viewer_a", ("viewer", "pii"), enterprise=ENTERPRISE_A)


@pytest.mark.parametrize("collection", list(PII_TABLES))
def test_the_pii_endpoint_opens_what_the_generator_made(pii_server: LiveServer, pii_a: TestAccount,
                                                        engine: sa.Engine, generated: dict[str, pd.DataFrame],
                                                        collection: str) -> None:
    table = "customer" if collection == "customers" else PII_TABLES[collection]
    code = first_code(engine, table, ENTERPRISE_A)
    reads_before = scalar(engine, "SELECT count(*) FROM audit.log WHERE action = 'pii_read' AND actor = :a "
                                  "AND detail->>'code' = :c", a=pii_a.name, c=code)
    r = requests.get(f"{pii_server.url}/api/pii/{collection}/{code}", headers=pii_a.headers, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    # every read is in the audit log: the account, what it opened
    assert scalar(engine, "SELECT count(*) FROM audit.log WHERE action = 'pii_read' AND actor = :a "
                          "AND detail->>'code' = :c AND detail->>'collection' = :k",
                  a=pii_a.name, c=code, k=collection) == reads_before + 1
    assert r.json() == {"collection": collection, "code": code, "values": expected(generated, collection, code)}
    assert r.headers["Cache-Control"] == "no-store"
    if collection == "customers":   # a resident: an ID number in clear, where everything else shows 2103**…
        resident = scalar(engine, "SELECT user_type = 1 FROM customer WHERE code = :c", c=code)
        assert not resident or re.fullmatch(ID_NUMBER, r.json()["values"]["id_number"])


def test_the_pii_duty_alone_opens_its_scope(pii_server: LiveServer, db_url: str, engine: sa.Engine,
                                            generated: dict[str, pd.DataFrame]) -> None:
    """No business duty: the account reads the sealed columns and codes (migration 0018's grants),
    row-level security all the same."""
    only = ensure_account(db_url, "pii_only_a", ("pii",), enterprise=ENTERPRISE_A)
    for collection in ("valves", "crew_bases", "customers"):
        table = "customer" if collection == "customers" else PII_TABLES[collection]
        code = first_code(engine, table, ENTERPRISE_A)
        r = requests.get(f"{pii_server.url}/api/pii/{collection}/{code}", headers=only.headers, timeout=TIMEOUT)
        assert r.status_code == 200, r.text
        assert r.json()["values"] == expected(generated, collection, code)
        other = first_code(engine, table, ENTERPRISE_B)
        r = requests.get(f"{pii_server.url}/api/pii/{collection}/{other}", headers=only.headers, timeout=TIMEOUT)
        assert r.status_code == 404, r.text


def test_a_regulator_with_pii_opens_both_enterprises(pii_server: LiveServer, db_url: str,
                                                     engine: sa.Engine, generated: dict[str, pd.DataFrame]) -> None:
    from signed_in import DISTRICT_OF_BOTH

    regulator = ensure_account(db_url, "pii_district", ("regulator", "pii"), division=DISTRICT_OF_BOTH)
    for enterprise in (ENTERPRISE_A, ENTERPRISE_B):
        code = scalar(engine, "SELECT code FROM valve WHERE enterprise_code = :e AND admin_code = :d ORDER BY id "
                              "LIMIT 1", e=enterprise, d=DISTRICT_OF_BOTH)
        assert isinstance(code, str)
        r = requests.get(f"{pii_server.url}/api/pii/valves/{code}", headers=regulator.headers,
                         params={"enterprise": enterprise}, timeout=TIMEOUT)
        assert r.status_code == 200, r.text
        assert r.json()["values"] == expected(generated, "valves", code)


def test_another_enterprises_feature_is_not_found(pii_server: LiveServer, pii_a: TestAccount,
                                                  engine: sa.Engine) -> None:
    code = first_code(engine, "valve", ENTERPRISE_B)
    r = requests.get(f"{pii_server.url}/api/pii/valves/{code}", headers=pii_a.headers, timeout=TIMEOUT)
    assert (r.status_code, r.json()) == (404, {"code": "NotFound", "description": f"no feature '{code}' in valves"})


def test_without_the_pii_duty_it_is_forbidden(pii_server: LiveServer, users: dict[str, TestAccount],
                                              engine: sa.Engine) -> None:
    code = first_code(engine, "valve", ENTERPRISE_A)
    for name in ("a_viewer", "city_regulator", "a_dispatcher", "auditor"):
        r = requests.get(f"{pii_server.url}/api/pii/valves/{code}", headers=users[name].headers, timeout=TIMEOUT)
        assert r.status_code == 403, (name, r.text)
        assert r.json()["code"] == "Forbidden" and "needs pii" in r.json()["description"]
    r = requests.get(f"{pii_server.url}/api/pii/valves/{code}", timeout=TIMEOUT)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic")


def test_bad_requests_name_what_is_wrong(pii_server: LiveServer, pii_a: TestAccount) -> None:
    def get(path: str, **params: str) -> tuple[int, str]:
        r = requests.get(f"{pii_server.url}/api/pii/{path}", headers=pii_a.headers, params=params, timeout=TIMEOUT)
        return r.status_code, r.json()["description"]

    status, text = get("pipes/GX0000001")
    assert status == 404 and text.startswith("collection: 'pipes' holds no personal data; one of crew_bases, ")
    assert get("valves/FM0000001", enterprise="21030") == (
        400, "enterprise: '21030' is not an enterprise code (10 digits: 6-digit division + 4-digit sequence from 0001)")
    assert get("valves/NO-SUCH") == (404, "no feature 'NO-SUCH' in valves")


# ---- (c) the logs

def test_the_logs_of_this_run_hold_no_clear_number(secrets: set[str]) -> None:
    """What this checkout's logs (the embedded cluster's, the CLI's and the server's errors) got
    during this run, up to here: the demo city's and every other database's loads, exports, pii reads."""
    assert LOGS.is_dir()
    written = {}
    for path in sorted(LOGS.glob("*.log")):
        with path.open("rb") as log:
            log.seek(LOG_OFFSETS.get(path.name, 0))
            written[path.name] = log.read().decode("utf-8", errors="replace")
    assert "postgresql.log" in written
    assert {name: leaks(text, secrets) for name, text in written.items()} == {name: [] for name in written}


# ---- (e) key rotation

@pytest.fixture(scope="module")
def rotated_city(databases: ThrowawayDatabases) -> Iterator[str]:
    with demo_city_database(databases, "qiwang_keys_rotate") as url:
        yield url


def test_keys_rotate_reencrypts_everything_and_drops_the_old_keys(rotated_city: str, tmp_path: Path) -> None:
    from app.cli import keys  # noqa: F401  (adds `keys` to the root group)
    from app.cli.root import cli

    shared = load_keyring(create=False)
    own = tmp_path / "keys" / "personal_data.json"   # a copy: the session's other databases keep theirs
    own.parent.mkdir(mode=0o700)
    shutil.copy(shared_path(), own)
    engine = sa.create_engine(rotated_city, poolclass=NullPool)
    try:
        before = clear_values(engine, shared)
        indexes = blind_indexes(engine)
        total = sum(len(v) for v in before.values())
        done = CliRunner().invoke(cli, ["keys", "rotate", "--batch", "7"],
                                  env={"DATABASE_URL": rotated_city, "QIWANG_PERSONAL_DATA_KEY_FILE": str(own)})
        assert done.exit_code == 0, done.output
        after = Keyring.load(own)
        assert len(after.keys) == 1 and after.active.id not in {k.id for k in shared.keys}
        assert after.index_key == shared.index_key
        lines = done.stdout.splitlines()
        assert lines[0] == (f"keyring {own}: new key {after.active.id} (was {', '.join(k.id for k in shared.keys)})")
        assert lines[-1] == (f"{total:,} values re-encrypted in 10 columns; old keys dropped: "
                             f"{', '.join(k.id for k in shared.keys)}; active key: {after.active.id}")
        assert {line.split(":")[0]: int(line.split(": ")[1].split()[0].replace(",", "")) for line in lines[1:-1]} == {
            f"{t}.{c}": len(v) for (t, c), v in before.items()}
        for table, columns in PERSONAL_COLUMNS.items():
            for column in columns:
                ids = {key_id_of(blob) for (blob,) in rows(engine, f"SELECT {sealed_column(column)} FROM {table} "
                                                                   f"WHERE {sealed_column(column)} IS NOT NULL")}
                assert ids == {after.active.id}, (table, column)
        assert clear_values(engine, after) == before
        assert blind_indexes(engine) == indexes
        with pytest.raises(Exception, match="sealed under key"):   # the old keyring cannot open them any more
            clear_values(engine, shared)
    finally:
        engine.dispose()


def shared_path() -> Path:
    from core.settings import load_settings

    return load_settings().personal_data_key_file


def blind_indexes(engine: sa.Engine) -> dict[tuple[str, str], dict[object, bytes]]:
    return {(table, column): dict(rows(engine, f"SELECT {row_key(table)}, {index_column(column)} FROM {table} "
                                               f"WHERE {index_column(column)} IS NOT NULL"))
            for table, columns in PERSONAL_COLUMNS.items() for column in columns}
