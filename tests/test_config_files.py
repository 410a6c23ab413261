"""YAML configuration files checked by JSON Schemas (core.config_file): the alarm rules and the
import field mapping (the Modbus config: tests/test_telemetry_modbus.py). Every mistake names the
file, the key path as yq writes it, and the reason. No database needed.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.config_file import ConfigValidator, key_path
from core.errors import InvalidInput
from ingest.field_mapping import DEFAULT_MAPPING, MAPPING_SCHEMA, load_mapping
from telemetry.modbus import CONFIG_SCHEMA
from telemetry.rules import DEFAULT_RULES, RULES_SCHEMA, load_rules

pytestmark = pytest.mark.nodb


def refusal(load: Any, path: Path) -> str:
    with pytest.raises(InvalidInput) as raised:
        load(path)
    assert raised.value.field == str(path)
    return str(raised.value).removeprefix(f"{path}: ")


@pytest.mark.parametrize("schema", [RULES_SCHEMA, CONFIG_SCHEMA, MAPPING_SCHEMA])
def test_the_schemas_are_valid_json_schemas(schema: dict) -> None:
    ConfigValidator.check_schema(schema)


def test_key_paths_as_yq_writes_them() -> None:
    assert key_path(["endpoints", 0, "devices", 2, "unit_id"]) == "endpoints[0].devices[2].unit_id"
    assert key_path([0, "port"]) == "[0].port"
    assert key_path(["cad_layers", "中压", "table"]) == "cad_layers.中压.table"
    assert key_path(["layers", "pipe", "fields", "a.b c"]) == 'layers.pipe.fields["a.b c"]'
    assert key_path([]) == ""


# -- alarm rules -------------------------------------------------------------------------------------

def rules_document() -> dict:
    return yaml.safe_load(DEFAULT_RULES.read_text(encoding="utf-8"))


RULE_ERRORS = [
    (lambda d: d["rules"][2].update(measure="pressure_mpa"),
     "rules[2].measure: must be one of ch4_lel, pressure_kpa, temperature_c, battery_v, flow_m3h, signal_dbm, "
     "humidity_pct, co_ppm, h2s_ppm, volume_m3, not 'pressure_mpa'"),
    (lambda d: d["rules"][0].update(device_types=[]), "rules[0].device_types: must not be empty"),
    (lambda d: d["rules"][0].update(device_types=["sentry", "valve"]),
     "rules[0].device_types[1]: must be one of sentry, rtu, alarm, meter, not 'valve'"),
    (lambda d: d["rules"][1].update(direction="up"), "rules[1].direction: must be one of high, low, not 'up'"),
    (lambda d: d["rules"][3].update(pressure_class=9),
     "rules[3].pressure_class: must be a dt_pipe_pressure_type code 0-4, not 9"),
    (lambda d: d["rules"][0].update(deadband=-1), "rules[0].deadband: must be a number ≥ 0, not -1"),
    (lambda d: d["rules"][0].update(deadband=True), "rules[0].deadband: must be a number ≥ 0, not True"),
    (lambda d: d["rules"][0]["levels"].__setitem__(1, [3, 25.0]),
     "rules[0].levels[1][0]: must be one of 4, 5, 6, 7, not 3"),
    (lambda d: d["rules"][0]["levels"].__setitem__(1, [5]), "rules[0].levels[1]: must be [level, threshold], not [5]"),
    (lambda d: d["rules"][0]["levels"].__setitem__(1, [5, 5.0]),
     "rules[0].levels: must go from the mildest to the most severe, each level once"),
    (lambda d: d["rules"][9]["levels"].__setitem__(0, [4, 1000.0]),   # a 'low' rule: thresholds must fall
     "rules[9].levels: must go from the mildest to the most severe, each level once"),
    (lambda d: d["rules"][4].update(threshold=3), "rules[4]: unknown key threshold (allowed: deadband, device_types, "
     "direction, levels, measure, pressure_class)"),
    (lambda d: d["rules"][4].pop("measure"), "rules[4]: missing measure"),
    (lambda d: d["offline"].update(after_intervals=0), "offline.after_intervals: must be a positive number, not 0"),
    (lambda d: d["offline"].update(check_every_s=float("nan")),
     "offline.check_every_s: must be a positive number of seconds, not nan"),
    (lambda d: d.update(ofline={"after_intervals": 3}), "unknown key ofline (allowed: offline, rules)"),
    (lambda d: d.pop("rules"), "missing rules"),
]


@pytest.mark.parametrize(("change", "expected"), RULE_ERRORS)
def test_rule_mistakes_name_file_key_path_and_reason(tmp_path: Path, change: Any, expected: str) -> None:
    document = rules_document()
    change(document)
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    assert refusal(load_rules, path) == expected


def test_the_shipped_rules_load_as_before(tmp_path: Path) -> None:
    rules = load_rules()
    assert (len(rules.rules), rules.offline_after_intervals, rules.offline_check_every_s) == (10, 3.0, 10.0)
    methane = rules.rules[0]
    assert (methane.device_types, methane.pressure_class, methane.measure, methane.direction, methane.deadband,
            methane.levels) == (("sentry", "alarm"), None, "ch4_lel", "high", 2.0, ((4, 10.0), (5, 25.0), (6, 50.0)))
    # offline left out (or empty): the defaults
    document = rules_document()
    document["offline"] = None
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    assert (load_rules(path).offline_after_intervals, load_rules(path).offline_check_every_s) == (3.0, 10.0)


def test_an_unreadable_rules_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - {measure: ch4_lel\n", encoding="utf-8")
    assert refusal(load_rules, path).startswith("cannot read the alarm rules: not YAML: ")
    path.write_text("", encoding="utf-8")
    assert refusal(load_rules, path) == "must be a mapping, not None"


# -- field mapping -----------------------------------------------------------------------------------

MAPPING_ERRORS = [
    ("layers: [pipe]", "layers: must be a mapping, not ['pipe']"),
    ("layers: {pipe: {feilds: {code: [编号]}}}",
     "layers.pipe: unknown key feilds (allowed: constants, coordinates, defaults, fields, names, values)"),
    ("layers: {pipe: {fields: {code: 编号}}}", "layers.pipe.fields.code: must be a list, not '编号'"),
    ("layers: {pipe: {fields: {code: [编号, yes]}}}",
     "layers.pipe.fields.code[1]: must be text or a number, not True"),
    ("layers: {pipe: {coordinates: {start_z: [z1]}}}",
     "layers.pipe.coordinates: must be one of start_x, start_y, end_x, end_y, not 'start_z'"),
    ("layers: {pipe: {values: {status: {in_service: 在用}}}}",
     "layers.pipe.values.status.in_service: must be a list, not '在用'"),
    ("point_coordinates: {w: [w]}", "point_coordinates: must be one of x, y, z, not 'w'"),
    ("local_grids: {city: {dx: 1.0}}", "local_grids.city: missing target"),
    ("local_grids: {city: {target: EPSG:4549, dx: east}}", "local_grids.city.dx: must be a number, not 'east'"),
    ("cad_layers: {中压: {pressure_class: 1}}", "cad_layers.中压: missing table"),
    ("shapefile_names: {diameter_mm: diameter_in_mm}",
     "shapefile_names.diameter_mm: must be a dBASE field name of 1-10 characters, not 'diameter_in_mm'"),
    ("layer: {}", "unknown key layer (allowed: cad_layers, layers, local_grids, point_coordinates, shapefile_names)"),
]


@pytest.mark.parametrize(("text", "expected"), MAPPING_ERRORS)
def test_mapping_mistakes_name_file_key_path_and_reason(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text(text + "\n", encoding="utf-8")
    assert refusal(load_mapping, path) == expected


def test_a_valid_override_is_laid_over_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text("layers:\n  pipe:\n    fields:\n      code: [管线号, 2019]\n", encoding="utf-8")
    mapping = load_mapping(path)
    assert mapping.aliases("pipe", "code")[:4] == ["code", "管线号", 2019, "管道编码"]  # yours first
    assert mapping.resolve("pipe", ["code"], ["2019"]) == {"code": "2019"}
    assert mapping.layers.keys() == load_mapping().layers.keys()
    path.write_text("", encoding="utf-8")   # an empty override changes nothing
    assert load_mapping(path) == load_mapping()


def test_the_default_mapping_is_checked_too() -> None:
    document = yaml.safe_load(DEFAULT_MAPPING.read_text(encoding="utf-8"))
    broken = copy.deepcopy(document)
    broken["local_grids"]["anshan_city"]["scale_ppm"] = "35 ppm"
    errors = list(ConfigValidator(MAPPING_SCHEMA).iter_errors(broken))
    assert [list(e.absolute_path) for e in errors] == [["local_grids", "anshan_city", "scale_ppm"]]
    assert not list(ConfigValidator(MAPPING_SCHEMA).iter_errors(document))
