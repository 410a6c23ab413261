"""The schema as migrations build it: dictionaries, codes, CRS, indexes, personal data, versions."""
from __future__ import annotations

import csv
import os
import subprocess
from collections import Counter

import pytest
import sqlalchemy as sa
from conftest import ROOT, scalar


def alembic(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The plain `alembic` command, as an engineer runs it from the repository root."""
    return subprocess.run(
        [str(ROOT / ".venv" / "bin" / "alembic"), *args], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "DATABASE_URL": url}, timeout=300,
    )


def test_alembic_upgrade_downgrade_upgrade(scratch_url: str) -> None:
    engine = sa.create_engine(scratch_url)
    for step in (("upgrade", "head"), ("downgrade", "base"), ("upgrade", "head")):
        done = alembic(scratch_url, *step)
        assert done.returncode == 0, done.stderr
        tables = scalar(engine, "SELECT count(*) FROM pg_tables WHERE schemaname IN ('public', 'dict')")
        if step[0] == "downgrade":
            # only PostGIS's spatial_ref_sys and alembic's bookkeeping are left
            assert tables == 2
            assert scalar(engine, "SELECT to_regnamespace('dict')") is None
    assert scalar(engine, "SELECT version_num FROM alembic_version") == "0021"
    assert scalar(engine, "SELECT count(*) FROM dict.dictionary") == 42
    engine.dispose()


def test_dictionaries_hold_42_lists_and_296_codes(engine: sa.Engine) -> None:
    with (ROOT / "data" / "dictionaries.csv").open(encoding="utf-8") as f:
        expected = Counter(row["dictionary"] for row in csv.DictReader(f))
    assert scalar(engine, "SELECT count(*) FROM dict.dictionary") == 42
    assert scalar(engine, "SELECT count(*) FROM dict.code") == 296
    with engine.connect() as conn:
        actual = dict(conn.execute(sa.text("SELECT dictionary, count(*) FROM dict.code GROUP BY 1")).all())
    assert actual == dict(expected)
    assert scalar(engine, "SELECT label_zh FROM dict.dt_pipe_material WHERE code = 20") == "聚乙烯"
    assert scalar(engine, "SELECT label_zh FROM dict.dt_devicestatus WHERE code = 6") == "二级报警"


@pytest.mark.parametrize(
    ("table", "column", "dictionary"),
    [
        ("pipe", "material", "dt_pipe_material"),
        ("pipe", "pressure_class", "dt_pipe_pressure_type"),
        ("pipe", "laying_type", "dt_laying_type"),
        ("pipe", "category", "dt_gasclass"),
        ("node", "node_type", "dt_pipeline_node_type"),
        ("station", "station_type", "dt_pipe_station_type"),
        ("customer", "user_subtype", "dt_usersubtype"),
        ("customer", "supply_status", "dt_supply_status"),
        ("sensitive_site", "site_type", "dt_usersubtype"),
        ("hazard", "level", "dt_hidden_danger_level"),
        ("hazard", "check_status", "dt_checkstatus"),
        ("sentry", "status", "dt_devicestatus"),
        ("enterprise", "nature", "dt_enterprise_nature"),
    ],
)
def test_coded_columns_reference_their_dictionary(engine: sa.Engine, table: str, column: str, dictionary: str) -> None:
    referenced = scalar(
        engine,
        """
        SELECT c.confrelid::regclass::text
        FROM pg_constraint c
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
        WHERE c.contype = 'f' AND c.conrelid = CAST(:t AS regclass) AND a.attname = :c
        """,
        t=table, c=column,
    )
    assert referenced == f"dict.{dictionary}"


@pytest.mark.parametrize(
    ("code", "ok"),
    [("2103020001", True), ("2103020000", False), ("210302001", False), ("21030200011", False),
     ("0103020001", False), ("21030A0001", False)],
)
def test_enterprise_code_domain(engine: sa.Engine, code: str, ok: bool) -> None:
    with engine.connect() as conn:
        if ok:
            assert conn.execute(sa.text("SELECT CAST(:c AS t_enterprise_code)"), {"c": code}).scalar() == code
        else:
            with pytest.raises(sa.exc.IntegrityError, match="enterprise_code_is_division_plus_sequence"):
                conn.execute(sa.text("SELECT CAST(:c AS t_enterprise_code)"), {"c": code})


def test_every_business_table_carries_enterprise_and_division(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            """
            SELECT c.relname,
                   bool_or(a.attname = 'enterprise_code' AND format_type(a.atttypid, NULL) = 't_enterprise_code'),
                   bool_or(a.attname = 'admin_code' AND format_type(a.atttypid, NULL) = 't_admin_code')
            FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
            WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
              AND c.relname NOT IN ('spatial_ref_sys', 'alembic_version', 'network_version', 'road_version',
                                    'admin_division', 'jobs',
                                    'import_log',   -- the operator's record of imports (owner only)
                                    'customer_personal',
                                    -- telemetry records: raw input, child rows of an alarm, logs, the outbox
                                    'reading_quarantine', 'alarm_event', 'device_status_log', 'outbox')
            GROUP BY c.relname
            """
        )).all()
    assert len(rows) == 20
    assert [name for name, has_ent, has_div in rows if not (has_ent and has_div)] == []


def test_geometries_are_in_epsg_4550_with_gist_indexes(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        columns = conn.execute(sa.text(
            "SELECT f_table_name, f_geometry_column, srid, type, coord_dimension FROM geometry_columns "
            "WHERE f_table_schema = 'public'"
        )).all()
        indexed = {tuple(r) for r in conn.execute(sa.text(
            """
            SELECT t.relname, a.attname FROM pg_index i
            JOIN pg_class ix ON ix.oid = i.indexrelid JOIN pg_am am ON am.oid = ix.relam AND am.amname = 'gist'
            JOIN pg_class t ON t.oid = i.indrelid JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = i.indkey[0]
            """
        ))}
    assert {srid for *_, srid, _, _ in columns} == {4550}
    by_table = {(t, c): (kind, dims) for t, c, _, kind, dims in columns}
    assert by_table[("pipe", "geom")] == ("LINESTRING", 3)
    assert by_table[("node", "geom")] == ("POINT", 3)
    assert by_table[("valve", "geom")] == ("POINT", 3)
    missing = {(t, c) for t, c, *_ in columns} - indexed
    assert missing == {("telemetry_device", "geom")}  # a view over sentry and device, both indexed


def test_personal_data_is_kept_out_of_the_customer_table(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        customer = set(conn.execute(sa.text(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'customer'")).scalars())
        personal = set(conn.execute(sa.text(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'customer_personal'")).scalars())
    assert {"id_number", "contact_phone", "contact_person", "meter_reader_phone"} <= personal
    assert customer & personal == set()


def test_network_version_bumps_once_per_statement(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        before = conn.execute(sa.text("SELECT version FROM network_version")).scalar_one()
        conn.execute(sa.text("UPDATE pipe SET remarks = 'checked' WHERE id <= 10"))
        after = conn.execute(sa.text("SELECT version FROM network_version")).scalar_one()
        conn.execute(sa.text("UPDATE customer SET street = street WHERE id = 1"))  # not a network table
        unchanged = conn.execute(sa.text("SELECT version FROM network_version")).scalar_one()
        conn.rollback()
    assert (after - before, unchanged - after) == (1, 0)


def test_readings_land_in_their_monthly_partition(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        part = conn.execute(sa.text("SELECT ensure_reading_partition('2026-11-23T08:00:00Z')")).scalar_one()
        conn.execute(sa.text(
            "INSERT INTO reading (device_code, device_type, ts, enterprise_code, admin_code, ch4_lel) "
            "VALUES ('SB000001', 'sentry', '2026-11-23T08:00:00Z', '2103020001', '210302', 3.2)"))
        where = conn.execute(sa.text(
            "SELECT tableoid::regclass::text FROM reading WHERE device_code = 'SB000001'")).scalar_one()
        conn.rollback()
    assert part == where == "reading_2026_11"
