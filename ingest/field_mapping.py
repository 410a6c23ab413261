"""How fields in exchanged files relate to table columns: name aliases and the schema's own facts.

The aliases come from data/field_mapping.yaml (Chinese and English names seen in gas companies'
files). The schema facts — column types, Chinese column comments, which columns are dictionary codes
(foreign keys to `dict.<name>`), which point at other features and the CHECK constraints — are read
from PostgreSQL's catalog (db/catalog.py), so
the import and the export follow the migrations without a second copy of the schema here.

The sealed companions of personal columns (``x_sealed``, ``x_index``: accounts.personal_data,
migration 0018) and any other bytea column are not columns of a `TableSchema`: `table_schema` is
where the import and the export learn a table's columns, so none of them is ever exported, mapped
to a file's field or imported; the importer writes the companions itself, by sealing.
"""
from __future__ import annotations

import datetime
import functools
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, text

from accounts.personal_data import companion_columns
from core import config_file
from core.errors import QiwangError
from core.text import normalise
from db import catalog
from db.catalog import CheckConstraint

DEFAULT_MAPPING = Path(__file__).resolve().parents[1] / "data" / "field_mapping.yaml"
SHAPEFILE_NAME_MAX = 10  # dBASE field names
LABEL_SUFFIX = "_label"  # export: dictionary label beside each code column


@dataclass(frozen=True)
class FieldMapping:
    """The parsed mapping file."""

    layers: dict[str, dict]
    shapefile_names: dict[str, str]
    point_coordinates: dict[str, list[str]] = field(default_factory=dict)  # x/y/z → names
    local_grids: dict[str, dict] = field(default_factory=dict)  # name → Helmert parameters
    cad_layers: dict[str, dict] = field(default_factory=dict)  # DXF layer name → table and values

    def aliases(self, table: str, column: str, comment: str | None = None) -> list[str]:
        """Names a source field may have for `column`, most specific first: the column, its dBASE
        name, the mapping file's names, then the column's Chinese comment (the schema's own name)."""
        spec = self.layers.get(table, {})
        names = [column, self.shapefile_name(column), *spec.get("fields", {}).get(column, [])]
        if comment:
            names.append(comment)
        return list(dict.fromkeys(names))

    def given_values(self, table: str) -> tuple[dict[str, object], dict[str, object]]:
        """(defaults, constants) of `table`: column → value. A default fills the column where the
        file has no such field or the value is empty; a constant overrides the file."""
        spec = self.layers.get(table, {})
        return dict(spec.get("defaults", {})), dict(spec.get("constants", {}))

    def layer_names(self, table: str) -> list[str]:
        return [table, *self.layers.get(table, {}).get("names", [])]

    def value_spellings(self, table: str, column: str) -> dict[str, str] | None:
        """normalised spelling → stored value, for text-coded columns; None for other columns."""
        values = self.layers.get(table, {}).get("values", {}).get(column)
        if values is None:
            return None
        out: dict[str, str] = {}
        for stored, spellings in values.items():
            for spelling in [stored, *spellings]:
                out[normalise(spelling)] = stored
        return out

    def resolve(self, table: str, columns: list[str], source_fields: list[str],
                comments: dict[str, str] | None = None) -> dict[str, str]:
        """column → source field, for every column some source field names (first alias wins)."""
        by_key: dict[str, str] = {}
        for name in source_fields:
            by_key.setdefault(normalise(name), name)
        found: dict[str, str] = {}
        for column in columns:
            for alias in self.aliases(table, column, (comments or {}).get(column)):
                if normalise(alias) in by_key:
                    found[column] = by_key[normalise(alias)]
                    break
        return found

    def coordinate_fields(self, table: str, source_fields: list[str]) -> dict[str, str] | None:
        """start_x/start_y/end_x/end_y → source field, when a sheet has all four; else None."""
        spec = self.layers.get(table, {}).get("coordinates", {})
        by_key = {normalise(name): name for name in source_fields}
        found = {}
        for column, aliases in spec.items():
            match = next((by_key[normalise(a)] for a in aliases if normalise(a) in by_key), None)
            if match is None:
                return None
            found[column] = match
        return found or None

    def point_fields(self, source_fields: list[str]) -> dict[str, str] | None:
        """x/y (and z when present) → source field, for point sheets without geometry; else None."""
        by_key = {normalise(name): name for name in source_fields}
        found = {}
        for axis, aliases in self.point_coordinates.items():
            match = next((by_key[normalise(a)] for a in aliases if normalise(a) in by_key), None)
            if match is not None:
                found[axis] = match
        return found if {"x", "y"} <= set(found) else None

    def cad_layer(self, name: str) -> dict | None:
        """What a DXF layer holds (table and values), from `cad_layers`; None for an unlisted layer."""
        key = normalise(name)
        return next((dict(spec) for layer, spec in self.cad_layers.items() if normalise(layer) == key), None)

    def shapefile_name(self, column: str) -> str:
        """The ≤ 10-character dBASE name a column is exported under."""
        return self.shapefile_names.get(column, column[:SHAPEFILE_NAME_MAX])


_NAMES = {"type": "array", "items": {"type": ["string", "number"]}}  # aliases; YAML may read 2019 as a number
_NAME_LISTS = {"type": "object", "additionalProperties": _NAMES}
_VALUES = {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}}  # column → value
_LAYER = {"type": "object", "additionalProperties": False, "properties": {
    "names": _NAMES,
    "fields": _NAME_LISTS,
    "defaults": _VALUES,
    "constants": _VALUES,
    "coordinates": {**_NAME_LISTS, "propertyNames": {"enum": ["start_x", "start_y", "end_x", "end_y"]}},
    "values": {"type": "object", "additionalProperties": _NAME_LISTS},
}}
_LOCAL_GRID = {"type": "object", "additionalProperties": False, "required": ["target"], "properties": {
    "target": {"type": "string"}, "dx": {"type": "number"}, "dy": {"type": "number"},
    "rotation_arcsec": {"type": "number"}, "scale_ppm": {"type": "number"},
}}
#: The mapping file's shape (core.config_file); see data/field_mapping.yaml for what each part means.
MAPPING_SCHEMA = {"type": "object", "additionalProperties": False, "properties": {
    "layers": {"type": "object", "additionalProperties": _LAYER},
    "point_coordinates": {**_NAME_LISTS, "propertyNames": {"enum": ["x", "y", "z"]}},
    "local_grids": {"type": "object", "additionalProperties": _LOCAL_GRID},
    "cad_layers": {"type": "object", "additionalProperties": {
        "type": "object", "required": ["table"], "properties": {"table": {"type": "string"}}}},
    "shapefile_names": {"type": "object", "additionalProperties": {
        "type": "string", "minLength": 1, "maxLength": SHAPEFILE_NAME_MAX,
        "errorMessage": f"must be a dBASE field name of 1-{SHAPEFILE_NAME_MAX} characters"}},
}}


def _dates_as_text(value: object) -> object:
    """YAML reads 2015-01-01 as a date: a value for a column, given as the file would give it."""
    if isinstance(value, dict):
        return {key: _dates_as_text(v) for key, v in value.items()}
    if isinstance(value, list):
        return [_dates_as_text(v) for v in value]
    return value.isoformat() if isinstance(value, datetime.date) else value


def _read_yaml(path: Path) -> dict:
    document = _dates_as_text(config_file.read_yaml(path, "the field mapping") or {})  # empty: no change
    config_file.check(document, MAPPING_SCHEMA, path)
    assert isinstance(document, dict)  # the schema says so
    return document


def _merged(base: dict, override: dict) -> dict:
    """Lists: the override's names first, then the base's; mappings: merged key by key."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            out[key] = _merged(base[key], value)
        elif isinstance(value, list) and isinstance(base.get(key), list):
            out[key] = [*value, *(v for v in base[key] if v not in value)]
        else:
            out[key] = value
    return out


@functools.cache
def _defaults() -> dict:
    return _read_yaml(DEFAULT_MAPPING)


def load_mapping(override: Path | None = None) -> FieldMapping:
    """The default mapping (data/field_mapping.yaml), with a user's mapping file laid over it: its
    names are tried before the defaults, which stay valid."""
    raw = _defaults()
    if override is not None:
        raw = _merged(raw, _read_yaml(override))
    return FieldMapping(layers=raw.get("layers", {}), shapefile_names=raw.get("shapefile_names", {}),
                        point_coordinates=raw.get("point_coordinates", {}), local_grids=raw.get("local_grids", {}),
                        cad_layers=raw.get("cad_layers", {}))


@dataclass
class TableSchema:
    """What PostgreSQL says about one feature table."""

    name: str
    columns: dict[str, str]  # column → type as format_type() prints it, in table order
    not_null: set[str]
    has_default: set[str]
    comments: dict[str, str]  # column → Chinese comment (first word)
    dictionaries: dict[str, str] = field(default_factory=dict)  # column → dict table name
    references: dict[str, str] = field(default_factory=dict)  # column (…_id) → referenced feature table
    geometry: str = "geom"
    srid: int = 0
    geometry_type: str = ""  # POINT, LINESTRING, POLYGON, … as geometry_columns says
    has_z: bool = False
    checks: tuple[CheckConstraint, ...] = ()  # the table's CHECKs and its columns' domains'


def table_schema(conn: Connection, table: str) -> TableSchema:
    """Columns, NOT NULLs, defaults, comments, foreign keys, geometry and CHECK constraints of a
    table in schema public, from db.catalog."""
    info = catalog.tables(conn, [table]).get(table)
    if info is None:
        raise QiwangError(f"table {table} does not exist (run ./qiwang migrate)")
    unexchanged = companion_columns(table)   # never exported, mapped or imported (module docstring)
    columns = [c for c in info.columns if c.name not in unexchanged and c.base_type != "bytea"]
    schema = TableSchema(
        name=table,
        columns={c.name: c.type for c in columns},
        not_null={c.name for c in columns if c.not_null},
        has_default={c.name for c in columns if c.has_default},
        comments={c.name: (c.comment.split() or [c.name])[0] for c in columns},
        checks=info.checks,
    )
    for key in info.foreign_keys:
        if key.schema == "dict":
            schema.dictionaries[key.column] = key.table
        elif key.column.endswith("_id"):
            schema.references[key.column] = key.table
    geometry = info.geometry_column("geom")
    if geometry is not None:
        schema.srid = geometry.srid
        schema.geometry_type = geometry.type.upper().removesuffix("Z")
        schema.has_z = geometry.coord_dimension == 3
    return schema


@dataclass(frozen=True)
class Dictionary:
    """One dict.<name> code list, for reading codes or Chinese labels."""

    name: str
    title_zh: str
    labels: dict[int, str]  # code → label_zh

    def code_of_label(self) -> dict[str, int]:
        return {normalise(label): code for code, label in self.labels.items()}


def dictionaries(conn: Connection, names: set[str]) -> dict[str, Dictionary]:
    """The named code lists, from the view dict.code and the catalogue dict.dictionary."""
    if not names:
        return {}
    titles: dict[str, str] = dict(conn.execute(
        text("SELECT name, title_zh FROM dict.dictionary WHERE name = ANY(:n)"), {"n": list(names)}).all())
    out = {name: Dictionary(name, titles.get(name, name), {}) for name in names}
    for name, code, label in conn.execute(
        text("SELECT dictionary, code, label_zh FROM dict.code WHERE dictionary = ANY(:n)"), {"n": list(names)}
    ):
        out[name].labels[int(code)] = label
    return out
