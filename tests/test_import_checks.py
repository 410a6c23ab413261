"""The importer's value checks come from the schema's CHECK constraints: every CHECK (and domain
constraint) of every importable table has a pre-check, and a file with one bad value in a
CHECK-constrained column gets exactly one `FILE:LAYER:FEATURE:FIELD: reason` line, the field named
as the file calls it, and nothing written. The CHECKs on the stored form of phone numbers
(x_is_masked, x_is_sealed, migration 0017) are covered by sealing instead: a file's clear phone
numbers are stored masked and sealed.

Each hand-written check (value_checks.ROW_CHECKS) is also shown to guard a real rule: its file,
imported with that check left out, is refused by the database by that very constraint.

The files are one feature of a small demo city's export (so that every reference, enterprise and
position is valid), given a new code and one bad value, the field renamed to the column's Chinese
name as gas companies' files call it; they are imported into that city's own database.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
import sqlalchemy as sa
from conftest import ThrowawayDatabases, demo_city_database
from sqlalchemy.pool import NullPool

from accounts.personal_data import (
    PERSONAL_COLUMNS,
    decrypt,
    index_column,
    load_keyring,
    sealed_column,
    stored_form_constraints,
)
from core.errors import QiwangError
from db.catalog import CheckConstraint
from ingest import value_checks
from ingest.exporter import EXPORTABLE_LAYERS, export
from ingest.field_mapping import load_mapping, table_schema
from ingest.importer import IMPORT_KINDS, ImportFailed, import_file, importable_columns
from ingest.value_checks import ROW_CHECKS, hand_written, plan

KIND_OF = {table: kind for kind, table in IMPORT_KINDS.items()}
ENTERPRISE_RULE = "enterprise_code_is_division_plus_sequence"
DIVISION_RULE = "admin_code_is_6_digits"


@dataclass(frozen=True)
class Case:
    """One constraint, one bad value: the row changed, the field the line names and its reason."""

    table: str
    constraint: str
    column: str           # the column that takes the blame; its field is renamed to `label`
    label: str | None     # the field's name in the file (None: the column's Chinese comment)
    changes: dict[str, Any]
    reason: str
    pick: Callable[[pd.DataFrame], pd.Series] | None = field(default=None, compare=False)  # rows to choose from
    variant: str = ""     # a second case of one constraint (the other way round)

    @property
    def id(self) -> str:
        return f"{self.table}-{self.constraint}" + (f"-{self.variant}" if self.variant else "")


def spelled(value: str, allowed: str) -> str:
    return f"{value!r} is not one of {allowed} (or their Chinese names)"


VALVE_TYPES = "gate, ball, butterfly, plug, check"
TABLE_CASES = [
    Case("node", "node_depth_m_check", "depth_m", "埋深", {"depth_m": -0.5}, "must not be negative: -0.5"),
    Case("node", "node_role_check", "role", "节点作用", {"role": "水井"},
         spelled("水井", "junction, station_outlet, regulator_inlet, regulator_outlet, service_point")),
    Case("station", "station_design_capacity_m3h_check", "design_capacity_m3h", None, {"design_capacity_m3h": 0},
         "must be greater than 0: 0"),
    Case("pipe", "pipe_build_year_check", "build_year", "建设年代", {"build_year": 1850},
         "not a year between 1900 and 2100: 1850"),
    Case("pipe", "pipe_diameter_mm_check", "diameter_mm", "管径", {"diameter_mm": -100},
         "must be greater than 0: -100"),
    Case("pipe", "pipe_outside_diameter_mm_check", "outside_diameter_mm", "外径", {"outside_diameter_mm": 0},
         "must be greater than 0: 0"),
    Case("pipe", "pipe_start_depth_m_check", "start_depth_m", "起点埋深", {"start_depth_m": -1.2},
         "must not be negative: -1.2"),
    Case("pipe", "pipe_end_depth_m_check", "end_depth_m", "终点埋深", {"end_depth_m": -0.1},
         "must not be negative: -0.1"),
    Case("pipe", "pipe_max_operating_pressure_mpa_check", "max_operating_pressure_mpa", "最高工作压力",
         {"max_operating_pressure_mpa": -0.4}, "must be greater than 0: -0.4"),
    Case("pipe", "pipe_pipe_type_check", "pipe_type", "管道类型", {"pipe_type": "水管"},
         spelled("水管", "trunk, main, branch, yard, service")),
    Case("pipe", "pipe_pressure_subclass_check", "pressure_subclass", "压力级别", {"pressure_subclass": "C"},
         spelled("C", "A, B")),
    Case("pipe", "pipe_status_check", "status", "使用状态", {"status": "broken"},
         spelled("broken", "in_service, idle, abandoned, under_construction, planned")),
    Case("valve", "valve_diameter_mm_check", "diameter_mm", "口径", {"diameter_mm": 0}, "must be greater than 0: 0"),
    Case("valve", "valve_valve_type_check", "valve_type", "阀门类型", {"valve_type": "水阀"},
         spelled("水阀", VALVE_TYPES)),
    Case("valve", "valve_normal_state_check", "normal_state", "常态", {"normal_state": "half"},
         spelled("half", "open, closed")),
    Case("valve", "valve_operability_check", "operability", None, {"operability": "stuck"},
         spelled("stuck", "operable, inaccessible, inoperable")),
    Case("valve", "valve_check_direction_check", "check_direction", "止回方向",
         {"valve_type": "check", "check_direction": "sideways"}, spelled("sideways", "into_pipe, out_of_pipe")),
    Case("valve", "check_valve_has_direction", "check_direction", "止回方向",
         {"valve_type": "check", "check_direction": None},
         "止回方向 is empty: a check valve needs a direction (into_pipe or out_of_pipe)"),
    Case("valve", "check_valve_has_direction", "check_direction", "止回方向",
         {"valve_type": "gate", "check_direction": "into_pipe"},
         "止回方向 given for a gate valve: only check valves have a direction", variant="not-a-check-valve"),
    Case("regulator", "regulator_capacity_m3h_check", "capacity_m3h", None, {"capacity_m3h": -300},
         "must be greater than 0: -300"),
    Case("regulator", "regulator_outlet_pressure_kpa_check", "outlet_pressure_kpa", None, {"outlet_pressure_kpa": 0},
         "must be greater than 0: 0"),
    Case("regulator", "regulator_regulator_kind_check", "regulator_kind", None, {"regulator_kind": "tower"},
         spelled("tower", "station, box, cabinet")),
    Case("regulator", "regulator_joins_two_nodes", "outlet_node_id", "outlet_node_code", {"outlet_node_code": "=inlet"},
         "=inlet is also the 进口节点 (inlet_node_code): a regulator joins two nodes"),
    Case("regulator", "regulator_lowers_pressure", "outlet_pressure_class", None, {"outlet_pressure_class": 4},
         "4 is above the 进口压力等级 =inlet_pressure_class: a regulator lowers the pressure",
         pick=lambda f: f["inlet_pressure_class"] < 4),
    Case("device", "device_reporting_interval_s_check", "reporting_interval_s", None, {"reporting_interval_s": 0},
         "must be greater than 0: 0", pick=lambda f: f["telemetry_type"].notna()),
    Case("device", "device_telemetry_type_check", "telemetry_type", None, {"telemetry_type": "plc"},
         "'plc' is not one of rtu, alarm, meter", pick=lambda f: f["telemetry_type"].notna()),
    Case("device", "reporting_device_is_whole", "reporting_interval_s", None, {"reporting_interval_s": None},
         "上报周期 is empty: a reporting device (上报设备类型 given) needs it",
         pick=lambda f: f["telemetry_type"].notna()),
    Case("sensitive_site", "sensitive_site_occupancy_check", "occupancy", None, {"occupancy": -10},
         "must not be negative: -10"),
    Case("customer", "credit_code_is_gb32100", "credit_code", None, {"credit_code": "91210300MA0YIOSVZ0"},
         "'91210300MA0YIOSVZ0' is not a unified social credit code "
         "(18 characters: digits and capital letters except I, O, S, V, Z; GB 32100)"),
    Case("customer", "non_residents_have_credit_code", "credit_code", None, {"user_type": 3, "credit_code": None},
         "统一社会信用代码 is empty: only residents (用户类型 1) may leave it empty"),
    Case("sentry", "sentry_location_kind_check", "location_kind", None, {"location_kind": "roof"},
         spelled("roof", "valve_chamber, adjacent_space, sensitive_site, station")),
    Case("sentry", "sentry_reporting_interval_s_check", "reporting_interval_s", None, {"reporting_interval_s": -60},
         "must be greater than 0: -60"),
    Case("hazard", "hazard_feature_type_check", "feature_type", None, {"feature_type": "tree"},
         spelled("tree", "pipe, valve, regulator, station, sentry, device, customer"),
         pick=lambda f: f["feature_type"].notna()),
    Case("hazard", "feature_reference_is_whole", "feature_id", "feature_code", {"feature_code": None},
         "feature_code and feature_type go together: give both or neither", pick=lambda f: f["feature_type"].notna()),
    Case("road", "road_road_class_check", "road_class", None, {"road_class": "footpath"},
         spelled("footpath", "expressway, arterial, secondary, branch, lane")),
    Case("road", "road_speed_kmh_check", "speed_kmh", None, {"speed_kmh": 0}, "must be greater than 0: 0"),
    Case("road", "road_width_m_check", "width_m", None, {"width_m": -7.5}, "must be greater than 0: -7.5"),
    Case("river", "river_width_m_check", "width_m", None, {"width_m": 0}, "must be greater than 0: 0"),
    Case("crew_base", "crew_base_crew_count_check", "crew_count", None, {"crew_count": -1}, "must not be negative: -1"),
]
# The domains of the codes every business table carries: checked in each table.
DOMAIN_CASES = [case for table in IMPORT_KINDS.values() for case in (
    Case(table, ENTERPRISE_RULE, "enterprise_code", "企业唯一编码", {"enterprise_code": "2103020000"},
         "'2103020000' is not an enterprise code (10 digits: 6-digit division + 4-digit sequence from 0001)"),
    Case(table, DIVISION_RULE, "admin_code", None, {"admin_code": "021030"},
         "'021030' is not an administrative division code (6 digits: a GB/T 2260 division code, not starting with 0)"),
)]
CASES = TABLE_CASES + DOMAIN_CASES


@pytest.fixture(scope="module")
def city(databases: ThrowawayDatabases) -> Iterator[sa.Engine]:
    """A small demo city of its own: imports that should fail must not touch the shared one."""
    with demo_city_database(databases, "qiwang_import_checks") as url:
        engine = sa.create_engine(url, poolclass=NullPool)
        yield engine
        engine.dispose()


@pytest.fixture(scope="module")
def exported(city: sa.Engine, tmp_path_factory: pytest.TempPathFactory) -> dict[str, gpd.GeoDataFrame]:
    """Every importable layer of the city as its export reads back, by table."""
    out = tmp_path_factory.mktemp("checks") / "city.gpkg"
    export(city, out, "gpkg", layers=[t for t in EXPORTABLE_LAYERS if t in KIND_OF], unmasked=True)
    return {table: pyogrio.read_dataframe(out, layer=table) for table in KIND_OF if table in EXPORTABLE_LAYERS}


def catalog_constraints(engine: sa.Engine) -> dict[tuple[str, str], CheckConstraint]:
    with engine.connect() as conn:
        return {(table, c.name): c for table in IMPORT_KINDS.values() for c in table_schema(conn, table).checks}


def test_every_check_of_an_importable_table_has_a_precheck_and_a_case(city: sa.Engine) -> None:
    """A new CHECK in a migration fails here until the importer checks it (value_checks) and
    CASES gives it a bad value: the database's own refusal is one generic line for the whole file.
    Every constraint the catalog lists is covered, by the planner (a code, comparisons of one
    column) or by a hand-written check named for it; a hand-written check whose constraint was
    dropped, or changed under its name, fails here too."""
    unchecked, sealed, how, listed, by_hand = {}, {}, {}, set(), set()
    with city.connect() as conn:
        for table in IMPORT_KINDS.values():
            schema = table_schema(conn, table)
            checks = plan(schema, importable_columns(schema))
            unchecked.update({(table, c.name): c.definition for c in checks.unchecked})
            sealed.update({(table, c.name): c.columns for c in checks.sealed})
            how.update({(table, name): kind for name, kind in checks.covered.items()})
            listed |= {(table, c.name) for c in schema.checks}
            by_hand |= {(table, name) for name in hand_written(table)}
    assert unchecked == {}
    assert set(how) == listed
    assert {key for key, kind in how.items() if kind == "row"} == by_hand == set(ROW_CHECKS)
    assert set(how.values()) == {"code", "column", "row", "sealed"}
    # covered by sealing (test_phone_numbers_of_a_file_are_stored_sealed), each of them, and nothing else
    assert sealed == {(table, name): (column, *((sealed_column(column),) if name.endswith("_is_sealed") else ()))
                      for table in IMPORT_KINDS.values()
                      for name, column in stored_form_constraints(table).items()}
    assert {key for key, kind in how.items() if kind == "sealed"} == set(sealed)
    assert {table for table, _ in sealed} == {"valve", "regulator", "sentry", "device", "hazard", "crew_base"}
    assert set(catalog_constraints(city)) - set(sealed) == {(case.table, case.constraint) for case in CASES}
    assert len({case.id for case in CASES}) == len(CASES)


def test_a_hand_written_check_written_for_another_rule_leaves_the_constraint_unchecked(city: sa.Engine) -> None:
    """A migration that changes a hand-written check's rule under the same name: the check no
    longer says what the database enforces, so the planner lists the constraint as unchecked (and
    the test above fails) until the check is rewritten."""
    with city.connect() as conn:
        schema = table_schema(conn, "valve")
    changed = tuple(replace(c, definition="CHECK (((valve_type = 'check'::text) OR (check_direction IS NULL)))")
                    if c.name == "check_valve_has_direction" else c for c in schema.checks)
    checks = plan(replace(schema, checks=changed), importable_columns(schema))
    assert [c.name for c in checks.unchecked] == ["check_valve_has_direction"]
    assert "check_valve_has_direction" not in checks.covered
    assert plan(schema, importable_columns(schema)).covered["check_valve_has_direction"] == "row"


@pytest.mark.parametrize("table", ["sentry", "hazard", "crew_base"])
def test_phone_numbers_of_a_file_are_stored_sealed(table: str, city: sa.Engine,
                                                   exported: dict[str, gpd.GeoDataFrame], tmp_path: Path) -> None:
    """A phone number in clear, as files have them: imported, the table holds its mask, its sealed
    value (which opens to the number) and its blind index."""
    column = next(iter(PERSONAL_COLUMNS[table]))
    row = exported[table].iloc[[0]].copy()
    code = f"SEALED-{row['code'].iloc[0]}"
    row["code"], row[column] = code, "13912345678"
    path = tmp_path / f"{table}.gpkg"
    pyogrio.write_dataframe(row, path, layer=table)
    import_file(city, path, kind=KIND_OF[table], file_label=path.name)
    with city.connect() as conn:
        stored, blob, index = conn.execute(sa.text(
            f"SELECT {column}, {sealed_column(column)}, {index_column(column)} FROM {table} WHERE code = :c"),
            {"c": code}).one()
        conn.execute(sa.text(f"DELETE FROM {table} WHERE code = :c"), {"c": code})
        conn.commit()
    assert stored == "139****5678" and len(index) == 32
    assert decrypt(load_keyring(create=False), blob, associated=f"{table}.{column}") == "13912345678"


def test_the_mapping_spells_exactly_the_values_the_schema_allows(city: sa.Engine) -> None:
    """data/field_mapping.yaml gives spellings of stored values; which values are stored is the
    CHECK's list, so the two lists must not drift apart (a value the mapping would store and the
    schema refuses, or one the schema allows and no spelling reaches)."""
    constraints = catalog_constraints(city)
    for table, spec in load_mapping().layers.items():
        for column, values in spec.get("values", {}).items():
            allowed = [c.simple() for c in constraints.values() if c.table == table and c.columns == (column,)]
            lists = [cond.value for check in allowed if check for cond in check.conditions
                     if cond.op == "in" and isinstance(cond.value, tuple)]
            assert lists == [tuple(values)], (table, column)


def count(engine: sa.Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def bad_file(case: Case, city: sa.Engine, exported: dict[str, gpd.GeoDataFrame], tmp_path: Path) -> tuple[Path, str]:
    """One feature of the city's export with the case's bad value, the blamed field renamed to the
    case's label: the file and the one problem line it should get."""
    frame = exported[case.table]
    chosen = frame[case.pick(frame)] if case.pick else frame
    row = chosen.iloc[[0]].copy()
    row["code"] = f"CHECK-{row['code'].iloc[0]}"
    reason = case.reason
    for name, value in case.changes.items():
        if value == "=inlet":  # the regulator's own inlet node
            value = row["inlet_node_code"].iloc[0]
            reason = reason.replace("=inlet", repr(value))
        row[name] = [value]  # the whole column: a text in a number column makes it a text column
    if "=inlet_pressure_class" in reason:
        reason = reason.replace("=inlet_pressure_class", str(int(row["inlet_pressure_class"].iloc[0])))
    with city.connect() as conn:
        label = case.label or table_schema(conn, case.table).comments[case.column]
    source = case.column if case.column in row else f"{case.column.removesuffix('_id')}_code"
    row = row.rename(columns={source: label})
    path = tmp_path / f"{case.table}.gpkg"
    pyogrio.write_dataframe(row, path, layer=case.table)
    return path, f"{path.name}:{case.table}:1:{label}: {reason}"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_a_bad_value_is_one_line_naming_the_field_and_nothing_is_written(
        case: Case, city: sa.Engine, exported: dict[str, gpd.GeoDataFrame], tmp_path: Path) -> None:
    """A dry run writes inside the transaction, so a value the checks let through would meet the
    database's own constraint: an ImportFailed with the one line is the pre-check's answer."""
    path, line = bad_file(case, city, exported, tmp_path)
    before = {table: count(city, table) for table in (case.table, "node")}
    with pytest.raises(ImportFailed) as failed:
        import_file(city, path, kind=KIND_OF[case.table], file_label=path.name, dry_run=True)
    assert failed.value.problems == [line]
    assert {table: count(city, table) for table in before} == before


def refused_by(exc: BaseException) -> str | None:
    """The constraint the database named in refusing a write, looked for along `exc`'s context
    (the importer words it as a QiwangError; the driver's error is in its chain)."""
    seen: BaseException | None = exc
    while seen is not None:
        for candidate in (seen, getattr(seen, "orig", None)):
            name = getattr(getattr(candidate, "diag", None), "constraint_name", None)
            if name:
                return str(name)
        seen = seen.__context__
    return None


HAND_CASES = [case for case in TABLE_CASES if (case.table, case.constraint) in ROW_CHECKS]


def test_every_hand_written_check_has_a_case() -> None:
    assert {(case.table, case.constraint) for case in HAND_CASES} == set(ROW_CHECKS)


@pytest.mark.parametrize("case", HAND_CASES, ids=lambda c: c.id)
def test_without_its_hand_written_check_the_database_refuses_the_case_by_that_constraint(
        case: Case, city: sa.Engine, exported: dict[str, gpd.GeoDataFrame], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The case's file breaks the rule it is a case of, and only that one: with the check left out
    the pre-checks find nothing, and the database refuses the (dry-run) write by that constraint."""
    path, _ = bad_file(case, city, exported, tmp_path)
    monkeypatch.setattr(value_checks, "ROW_CHECKS",
                        {key: check for key, check in ROW_CHECKS.items() if key != (case.table, case.constraint)})
    before = count(city, case.table)
    with pytest.raises(QiwangError, match="refused the import") as refused:
        import_file(city, path, kind=KIND_OF[case.table], file_label=path.name, dry_run=True)
    assert not isinstance(refused.value, ImportFailed)
    assert refused_by(refused.value) == case.constraint
    assert count(city, case.table) == before
