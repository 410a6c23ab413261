"""Import of network data from GeoPackage, Shapefile, GeoJSON, CSV sheets and DXF (`./qiwang import`).

Every layer the exporter writes can come back: pipes (appendix A.1 #4), nodes, stations, valves,
regulators, devices, sensitive sites, customers (without personal data), sentries, hazards, roads,
railways, rivers, crew bases. A file (or every geodata file of a folder, as a Shapefile export is)
is read whole, every feature of every layer is checked, and only when nothing is wrong are the
layers written, in one transaction: a file with one bad feature leaves the database exactly as it
was.

- Features name other features by code (`pipe_code`, `node_code`, `inlet_node_code`,
  `service_node_code`, …, as the exporter writes them); a code must name a feature of the same
  enterprise in this import or in the database. Layers are written in LAYER_ORDER so that what is
  named is there first. A pipe layer imported with a node layer takes its nodes by code; alone, it
  gets nodes built from its ends (snapping, below).
- Fields are found by name through data/field_mapping.yaml (管径/diameter/DN → diameter_mm, …).
- Dictionary columns take codes or the Chinese labels of their dict.<name> table.
- Values are checked against the schema's own CHECK and domain constraints, read from the catalog
  (value_checks.py: codes of core/codes.py, ranges, lists, patterns, and a few hand-written checks
  of several columns), so that a bad value is a problem line rather than a refused write.
- Coordinates come in the file's CRS (or --crs, or a local grid's four parameters: local_grid.py)
  and are transformed with pyproj to the storage CRS (EPSG:4550). Heights are kept as they are
  (metres, 1985 National Height Datum); pipes without Z get the pipe-top height, ground elevation
  minus burial depth, interpolated along the line; nodes without Z ground minus depth; other points
  without Z 0 m. Layers stored in 2D (roads, sensitive sites, …) drop Z.
- Shapefile attributes are decoded as the .cpg says; without a .cpg the .dbf (or a CSV sheet) is
  tried as strict UTF-8 and read as GBK (GB18030) when that fails, the usual case for Chinese
  CAD/GIS exports and Excel sheets.
- A CSV sheet without geometry gives each pipe's start and end coordinates as columns, each
  point's x/y(/z); survey sheets call northing X, so the axis order that falls inside the CRS's
  area of use is taken.
- DXF drawings (dxf_reader.py): CAD layers map to tables and values through `cad_layers` of the
  mapping file (中压 → pipes of pressure class 1).
- Pipe ends within a tolerance (metres, default 0.05) become one node, an existing node of the same
  enterprise where there is one; moved ends are counted and reported.
- Phone numbers (staff phones of valves, regulators, sentries, devices, hazards, crew bases:
  accounts.personal_data.PERSONAL_COLUMNS) come in clear and are sealed just before the COPY
  (`seal_frame`, the deployment's keyring): the tables hold their masks, the sealed values and
  blind indexes, never a clear number.

Every problem is one line `FILE:LAYER:FEATURE:FIELD: reason`, FEATURE being the 1-based row ('*'
when the whole layer is concerned). ImportFailed.report() summarises them by kind (layer, field and
reason without its values) for people; `problems` keeps every line.
"""
from __future__ import annotations

import codecs
import csv
import dataclasses
import math
import re
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pyogrio
import shapely
from pyogrio import raw
from pyogrio.errors import DataLayerError, DataSourceError
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from accounts import audit
from accounts.personal_data import PERSONAL_COLUMNS, Keyring, load_keyring, seal_frame
from accounts.registers import LAYER_NAMES as ENTERPRISE_LAYERS
from accounts.registers import prepare_enterprises, write_enterprises
from core.codes import ENTERPRISE_CODE
from core.errors import QiwangError
from db.bulk_load import constraints_deferred, copy_frame, to_copy_text
from ingest import dxf_reader as dxf
from ingest import import_log
from ingest.datum import Datum, DatumRefused, Helmert, choose, for_local_grid
from ingest.exporter import parse_crs
from ingest.field_mapping import (
    LABEL_SUFFIX,
    Dictionary,
    FieldMapping,
    TableSchema,
    dictionaries,
    load_mapping,
    normalise,
    table_schema,
)
from ingest.local_grid import PREFIX as LOCAL_PREFIX
from ingest.local_grid import LocalGrid, local_grid
from ingest.value_checks import CheckPlan, Layer, plan
from ingest.value_checks import blank as _blank
from ingest.value_checks import shown as _shown
from ingest.value_checks import textual as _textual
from network_analysis import consistency

SNAP_TOLERANCE_M = 0.05
# --mode: insert new features only; update stored ones by code (the fields the file carries);
# upsert both; replace-enterprise: delete the enterprise's network, then insert, in one transaction.
MODES = ("insert", "update", "upsert", "replace-enterprise")
NETWORK_TABLES = ("node", "pipe", "station", "valve", "regulator", "device")  # what replace-enterprise replaces
# Imports at least this large, and larger than what the tables hold, drop indexes and constraints
# of node and pipe and rebuild them after the COPY (one sort each instead of per-row upkeep).
BULK_ROWS = 50_000
# --as value → table
IMPORT_KINDS = {"pipes": "pipe", "nodes": "node", "valves": "valve", "stations": "station", "regulators": "regulator",
                "sentries": "sentry", "customers": "customer", "sensitive_sites": "sensitive_site", "roads": "road",
                "railways": "railway", "rivers": "river", "hazards": "hazard", "devices": "device",
                "crew_bases": "crew_base"}
# Write order: every layer after the layers it names by code (a valve names its pipe and node, …).
# Pipes come before stations: a pipe layer that names its nodes makes them, and a station names one.
LAYER_ORDER = ("node", "pipe", "station", "valve", "regulator", "device", "sensitive_site", "customer", "sentry",
               "hazard", "road", "railway", "river", "crew_base")
# References whose table a column of the row names: a hazard concerns a pipe, a valve… named by
# (feature_type, feature_code) in files, as the exporter writes it. The id itself never comes from a file.
POLYMORPHIC = {("hazard", "feature_id"): ("feature_type", "feature_code")}
NOT_IMPORTED = {"hazard": {"feature_id"}}
# Appendix A.1 #4 (000 manual): mandatory fields of 管道数字化档案, besides the schema's NOT NULLs.
APPENDIX_MANDATORY = {
    "pipe": {"code", "pipe_type", "start_elevation_m", "end_elevation_m", "category", "material", "diameter_mm",
             "start_depth_m", "end_depth_m", "road_name", "owner", "build_year", "survey_date", "status"},
}
BUILT_COLUMNS = {"id", "geom", "created_at", "updated_at", "length_m"}  # never taken from a file
_INTEGER_TYPES = {"smallint": "Int16", "integer": "Int32", "bigint": "Int64"}
_FLOAT_TYPES = {"numeric", "double precision", "real"}
_NUMBER_DECORATION = re.compile(r"^\s*(?:DN|De|Φ|φ)?\s*(-?[0-9]+(?:\.[0-9]*)?)\s*(?:mm|m|MPa|kPa)?\s*$", re.I)
TEE, END = 1, 3  # dt_pipeline_node_type
_BOOLEAN_WORDS = {"t": ("true", "t", "1", "yes", "y", "是", "有", "√"),
                  "f": ("false", "f", "0", "no", "n", "否", "无", "×")}


@dataclass
class LayerReport:
    """One imported layer: where from, how many features, which CRS, what the node building did."""

    source: str
    table: str
    features: int
    crs: str
    encoding: str | None = None
    geometry_note: str | None = None  # where lines came from when the file has no geometry
    unused_fields: list[str] = field(default_factory=list)  # source fields no column took
    new_nodes: int = 0
    reused_nodes: int = 0
    snapped_ends: int = 0
    max_snap_m: float = 0.0
    nodes_by_code: bool = False  # pipes name their nodes (from/to node codes): no snapping
    datum: str | None = None  # the transformation to the storage CRS and its accuracy
    crs_overridden: str | None = None  # the file's declared CRS, when --crs contradicts it
    inserted: int = 0
    updated: int = 0


@dataclass
class ImportReport:
    """What an import did (or, in a dry run, would do), layer by layer."""

    file: str
    layers: list[LayerReport] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # layer names, with why
    written: bool = False
    tolerance_m: float = SNAP_TOLERANCE_M
    mode: str = "insert"
    deleted: dict[str, int] = field(default_factory=dict)  # replace-enterprise: rows deleted per table
    log_id: int | None = None  # its import_log row
    registered: list[tuple[str, int]] = field(default_factory=list)  # enterprises layers: (layer, rows)

    def summary(self) -> list[str]:
        lines = [f"{self.file}:{layer} → enterprise: {n:,} enterprises registered" for layer, n in self.registered]
        for layer in self.layers:
            lines.append(f"{layer.source} → {layer.table}: {layer.features:,} features; CRS {layer.crs}"
                         + (f"; encoding {layer.encoding}" if layer.encoding else "")
                         + (f"; {layer.geometry_note}" if layer.geometry_note else ""))
            if layer.crs_overridden:
                lines.append(f"  --crs overrides the CRS the file declares: {layer.crs_overridden}")
            if layer.datum:
                lines.append(f"  transformation: {layer.datum}")
            if self.mode != "insert":
                lines.append(f"  {layer.inserted:,} new, {layer.updated:,} updated")
            if layer.unused_fields:
                lines.append(f"  fields not imported: {', '.join(layer.unused_fields)}")
            if layer.table == "pipe" and layer.nodes_by_code:
                lines.append(f"  nodes by name (from/to node codes): {layer.new_nodes:,} new, {layer.reused_nodes:,} "
                             f"of the node layer or the database; {layer.snapped_ends:,} pipe ends moved onto their "
                             f"node within {self.tolerance_m:g} m"
                             + (f" (largest move {layer.max_snap_m:.3f} m)" if layer.snapped_ends else ""))
            elif layer.table == "pipe":
                lines.append(f"  nodes: {layer.new_nodes:,} new, {layer.reused_nodes:,} existing reused; "
                             f"{layer.snapped_ends:,} pipe ends snapped within {self.tolerance_m:g} m"
                             + (f" (largest move {layer.max_snap_m:.3f} m)" if layer.snapped_ends else ""))
        lines += [f"skipped layer {name}" for name in self.skipped]
        if self.deleted:
            lines.append("replaced: deleted " + ", ".join(f"{n:,} {table}" for table, n in self.deleted.items()))
        lines.append("written in one transaction" if self.written else "dry run: nothing written")
        if self.log_id is not None:
            lines.append(f"recorded as import #{self.log_id} (./qiwang import-log)")
        return lines


PROBLEMS_PER_KIND = 10  # problem lines listed per kind of problem unless every line is asked for
FEATURES_SHOWN = 5  # features named in a line that stands for many identical problems
# A reason's values (quoted codes, numbers) vary from line to line; without them it is its kind.
_REASON_VALUES = re.compile(r"'[^']*'|\"[^\"]*\"|-?\d[\d,]*(?:\.\d+)?")


def problem_parts(file: str, line: str) -> tuple[str, str, str, str]:
    """(LAYER, FEATURE, FIELD, reason) of a problem line `FILE:LAYER:FEATURE:FIELD: reason`
    ('*' where a line of another shape has no such part)."""
    rest = line[len(file) + 1:] if line.startswith(f"{file}:") else line
    parts = rest.split(":", 3)
    if len(parts) < 4:
        return "*", "*", "*", rest
    layer, feature, field_name, reason = parts
    return layer, feature, field_name, reason.strip()


def problem_kind(file: str, line: str) -> tuple[str, str]:
    """(LAYER:FIELD, reason without its values) of a problem line `FILE:LAYER:FEATURE:FIELD: reason`:
    the lines that differ only by feature and values are problems of one kind."""
    layer, _feature, field_name, reason = problem_parts(file, line)
    if layer == "*" and field_name == "*":
        return "*", _REASON_VALUES.sub("…", reason)
    return f"{layer}:{field_name}", _REASON_VALUES.sub("…", reason)


class ImportFailed(QiwangError):
    """Problems found in the file; nothing was written. `problems` holds the report lines,
    `skipped` the layers not taken (with why), to be listed whatever the outcome."""

    def __init__(self, file: str, problems: list[str], skipped: list[str] | None = None) -> None:
        self.file = file
        self.problems = problems
        self.skipped = list(skipped or [])
        super().__init__(f"{len(problems):,} problem{'s' * (len(problems) != 1)} in {file}: nothing imported")

    def report(self, per_kind: int | None = PROBLEMS_PER_KIND) -> list[str]:
        """The problems for a person: a summary first (how many of each kind, most first), then
        each kind's problems in feature order. Identical problems of several features are one line
        with their count and the first features (`…: enterprise 2103020001 is not registered in
        this database: 1,613 features (1, 2, 3, 4, 5, …)`); of each kind the first `per_kind` such
        lines, then how many more problems there are. `per_kind` None: every line as it is.
        """
        kinds: dict[tuple[str, str], list[str]] = {}
        for line in self.problems:
            kinds.setdefault(problem_kind(self.file, line), []).append(line)
        if len(kinds) == len(self.problems):
            return list(self.problems)  # nothing to group: every line is a kind of its own
        ranked = sorted(kinds.items(), key=lambda item: -len(item[1]))  # stable: file order among equals
        width = len(f"{len(ranked[0][1]):,}")
        out = [f"{len(self.problems):,} problems of {len(kinds):,} kind{'s' * (len(kinds) != 1)} in {self.file}:"]
        out += [f"  {len(lines):>{width},} × {where}: {reason}" for (where, reason), lines in ranked]
        for _kind, lines in ranked:
            if per_kind is None:
                out += lines
                continue
            groups = self._identical(lines)
            shown = groups[:per_kind]
            out += [line for line, _ in shown]
            if rest := len(lines) - sum(n for _, n in shown):
                out.append(f"… and {rest:,} more of this kind (--all-problems lists every one)")
        return out

    def _identical(self, lines: list[str]) -> list[tuple[str, int]]:
        """Lines of one kind with identical layer, field and reason folded into one: (line, count)."""
        groups: dict[tuple[str, str, str], list[str]] = {}
        for line in lines:
            layer, feature, field_name, reason = problem_parts(self.file, line)
            groups.setdefault((layer, field_name, reason), []).append(feature)
        out = []
        for (layer, field_name, reason), features in groups.items():
            if len(features) == 1:
                out.append((f"{self.file}:{layer}:{features[0]}:{field_name}: {reason}", 1))
                continue
            named = ", ".join(features[:FEATURES_SHOWN]) + (", …" if len(features) > FEATURES_SHOWN else "")
            out.append((f"{self.file}:{layer}:{field_name}: {reason}: {len(features):,} features ({named})",
                        len(features)))
        return out

    def write_csv(self, path: Path) -> None:
        """Every problem as a row of a CSV file (UTF-8 with BOM, as Excel opens it): file, layer,
        feature, field, reason."""
        with path.open("w", newline="", encoding="utf-8-sig") as f:
            writer = csv.writer(f)
            writer.writerow(["file", "layer", "feature", "field", "reason"])
            writer.writerows([self.file, *problem_parts(self.file, line)] for line in self.problems)


class _Problems:
    """Problem lines of one layer, kept in feature order."""

    def __init__(self, file: str, layer: str) -> None:
        self.prefix = f"{file}:{layer}"
        self.items: list[tuple[int, int, str]] = []

    def layer(self, field_name: str, reason: str) -> None:
        self.items.append((-1, len(self.items), f"{self.prefix}:*:{field_name}: {reason}"))

    def rows(self, rows: np.ndarray, field_name: str, reasons) -> None:
        """One line per row; `reasons` is a string or one string per row."""
        reasons = [reasons] * len(rows) if isinstance(reasons, str) else list(reasons)
        for row, reason in zip(np.asarray(rows).tolist(), reasons, strict=True):
            self.items.append((row, len(self.items), f"{self.prefix}:{row + 1}:{field_name}: {reason}"))

    def lines(self) -> list[str]:
        return [line for _, _, line in sorted(self.items)]


# -- reading ---------------------------------------------------------------------------------------
def _sibling(path: Path, suffix: str) -> Path | None:
    for candidate in (path.with_suffix(suffix), path.with_suffix(suffix.upper())):
        if candidate.exists():
            return candidate
    return None


def detected_encoding(path: Path) -> str | None:
    """Encoding to read a Shapefile's .dbf or a CSV sheet with.

    None when a .cpg says it (GDAL honours it) or for other formats (their encoding is defined);
    else UTF-8 if the text decodes strictly as UTF-8, else GB18030 (a superset of GBK, what
    Chinese GIS/CAD tools and Excel write).
    """
    suffix = path.suffix.lower()
    if suffix in (".shp", ".dbf"):
        dbf = _sibling(path, ".dbf")
        if _sibling(path, ".cpg") or dbf is None:
            return None
        source = dbf
    elif suffix in (".csv", ".txt"):
        source = path
    else:
        return None
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    with source.open("rb") as f:
        try:
            if source.suffix.lower() == ".dbf":  # binary header: only the field names are text
                head = f.read(32)
                if len(head) < 32:
                    return None
                descriptors = f.read(struct.unpack("<H", head[8:10])[0] - 32)
                decoder.decode(b"".join(descriptors[i:i + 11].split(b"\0")[0]
                                        for i in range(0, len(descriptors) - 31, 32)))
            while chunk := f.read(1 << 20):
                decoder.decode(chunk)
        except UnicodeDecodeError:
            return "GB18030"
    return "UTF-8"


def _shapefile_damage(path: Path) -> str | None:
    """Why a Shapefile is truncated, if it is: its headers say how long .shp and .dbf must be."""
    shp = path if path.suffix.lower() == ".shp" else _sibling(path, ".shp")
    if shp and shp.stat().st_size >= 28:
        with shp.open("rb") as f:
            declared = struct.unpack(">i", f.read(28)[24:28])[0] * 2  # 16-bit words
        if shp.stat().st_size < declared:
            return f"truncated: {shp.name} has {shp.stat().st_size:,} bytes, its header says {declared:,}"
    dbf = _sibling(path, ".dbf")
    if dbf and dbf.stat().st_size >= 12:
        with dbf.open("rb") as f:
            head = f.read(12)
        records, header_len, record_len = struct.unpack("<IHH", head[4:12])
        declared = header_len + records * record_len
        if dbf.stat().st_size < declared:
            return f"truncated: {dbf.name} has {dbf.stat().st_size:,} bytes, its header says {declared:,}"
    return None


def _gdal_reason(exc: Exception) -> str:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "not recognized as being in a supported file format" in message:
        return "not a geodata file (no GDAL driver recognises it)"
    if "No such file or directory" in message:
        return "no such file"
    return f"cannot read it (damaged or truncated?): {message.split('; ')[-1]}"


@dataclass
class _Source:
    """One layer as read: attribute frame (source field names), WKB geometries, CRS, encoding."""

    layer: str
    frame: pd.DataFrame
    wkb: np.ndarray
    crs: str | None
    geometry_type: str | None
    encoding: str | None
    constant_fields: tuple[str, ...] = ()  # fields a reader filled from the mapping (DXF layer values)


def _layers(path: Path, file: str) -> list[tuple[str, str | None]]:
    if not path.exists():
        raise ImportFailed(file, [f"{file}:*:*:*: no such file"])
    if path.suffix.lower() in (".shp", ".dbf") and (damage := _shapefile_damage(path)):
        raise ImportFailed(file, [f"{file}:{path.stem}:*:*: {damage}"])
    if path.suffix.lower() == ".dxf":
        try:
            return dxf.layers(path)
        except dxf.DrawingError as exc:
            raise ImportFailed(file, [f"{file}:*:*:*: {exc}"]) from None
    try:
        return [(str(name), None if kind is None else str(kind)) for name, kind in pyogrio.list_layers(path)]
    except (DataSourceError, DataLayerError) as exc:
        raise ImportFailed(file, [f"{file}:*:*:*: {_gdal_reason(exc)}"]) from None


def _read(path: Path, file: str, layer: str, mapping: FieldMapping, table: str) -> _Source:
    if path.suffix.lower() == ".dxf":
        code_names = {normalise(name) for name in mapping.aliases(table, "code")}
        drawing = dxf.read_layer(path, layer, mapping.cad_layer(layer) or {}, table, code_names)
        return _Source(layer, drawing.frame, drawing.wkb, None, drawing.geometry_type, drawing.encoding,
                       drawing.constant_fields)
    encoding = detected_encoding(path)
    try:
        meta, _, wkb, values = raw.read(path, layer=layer, encoding=encoding)
    except Exception as exc:  # noqa: BLE001 - GDAL's many failure types all mean "cannot read"
        raise ImportFailed(file, [f"{file}:{layer}:*:*: {_gdal_reason(exc)}"]) from None
    frame = pd.DataFrame({name: column for name, column in zip(meta["fields"], values, strict=True)})
    if wkb is None:
        wkb = np.full(len(frame), None, dtype=object)
    return _Source(layer, frame, np.asarray(wkb, dtype=object), meta.get("crs"), meta.get("geometry_type"),
                   encoding or meta.get("encoding"))


# -- converting values -----------------------------------------------------------------------------
def _one_text(value) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip() or None


def _as_text(series: pd.Series) -> pd.Series:
    """Strings, stripped, empty ones None; integral numbers without '.0' (codes read as numbers)."""
    if pd.api.types.is_integer_dtype(series) and not series.hasnans:
        return series.astype(str).astype(object)
    if pd.api.types.is_float_dtype(series):
        values = series.to_numpy(dtype=float)
        out = np.full(len(values), None, dtype=object)
        whole = np.isfinite(values) & (np.mod(values, 1.0, where=np.isfinite(values), out=np.ones_like(values)) == 0)
        fraction = np.isfinite(values) & ~whole
        out[whole] = values[whole].astype(np.int64).astype(str)
        out[fraction] = values[fraction].astype(str)
        return pd.Series(out, index=series.index, dtype=object)
    if not _textual(series):
        return pd.Series([_one_text(v) for v in series.to_numpy(dtype=object)], index=series.index, dtype=object)
    series = series.astype(object)
    try:
        text_values = series.str.strip()  # vectorised for the usual case; non-strings become NaN
    except AttributeError:  # no strings at all (e.g. dates from a mapping file's values)
        text_values = pd.Series(np.nan, index=series.index, dtype=object)
    others = text_values.isna().to_numpy() & series.notna().to_numpy()
    if others.any():
        text_values[others] = [_one_text(v) for v in series[others]]
    return text_values.where(text_values.notna() & text_values.ne(""), None).astype(object)


def _as_number(series: pd.Series) -> pd.Series:
    """Floats; strings like 'DN100', '1.2 m' give their number; anything else NaN."""
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return series.astype(float)
    def one(value):
        if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
            return float(value)
        match = _NUMBER_DECORATION.match(str(value)) if value is not None else None
        return float(match.group(1)) if match else math.nan
    return pd.Series([one(v) for v in series.to_numpy(dtype=object)], index=series.index, dtype=float)


def _as_date(series: pd.Series) -> pd.Series:
    """datetime64 values; ISO, 2024/5/1, 20240501 and GDAL dates understood; NaT where not."""
    if pd.api.types.is_datetime64_any_dtype(series):
        return series.dt.tz_localize(None) if series.dt.tz is not None else series
    text_values = _as_text(series)
    parsed = pd.to_datetime(text_values, format="%Y-%m-%d", errors="coerce")
    rest = parsed.isna() & text_values.notna()
    if rest.any():
        compact = pd.to_datetime(text_values[rest], format="%Y%m%d", errors="coerce")
        parsed[rest] = compact
        rest = parsed.isna() & text_values.notna()
    if rest.any():
        parsed[rest] = pd.to_datetime(text_values[rest], format="mixed", errors="coerce")
    return parsed


class _Converter:
    """Turns one layer's source fields into table columns, reporting every value it cannot use."""

    def __init__(self, schema: TableSchema, mapping: FieldMapping, codes: dict[str, Dictionary],
                 problems: _Problems, source: pd.DataFrame, checks: CheckPlan) -> None:
        self.schema, self.mapping, self.codes, self.problems = schema, mapping, codes, problems
        self.source, self.checks = source, checks

    def column(self, column: str, field_name: str) -> pd.Series:
        values = self.source[field_name]
        sql_type = self.schema.columns[column]
        blank = _blank(values)
        if column in self.schema.dictionaries:
            out = self._dictionary(column, field_name, values)
        elif (spellings := self.mapping.value_spellings(self.schema.name, column)) is not None:
            out = self._spelled(field_name, values, spellings)
        elif sql_type == "boolean":
            out = self._boolean(field_name, values, blank)
        elif sql_type.startswith("timestamp"):
            parsed = pd.to_datetime(_as_text(values), errors="coerce", utc=True, format="mixed")
            self._bad(field_name, values, ~blank & parsed.isna().to_numpy(), "not a date and time")
            out = pd.Series(parsed.dt.strftime("%Y-%m-%dT%H:%M:%S+00:00"), dtype=object).where(parsed.notna(), None)
        elif sql_type in _INTEGER_TYPES or sql_type in _FLOAT_TYPES:
            return self._number(column, field_name, values, blank, sql_type)  # checked inside
        elif sql_type == "date":
            parsed = _as_date(values)
            self._bad(field_name, values, ~blank & parsed.isna().to_numpy(), "not a date")
            out = pd.Series(parsed.dt.strftime("%Y-%m-%d"), dtype=object).where(parsed.notna(), None)
        else:
            out = _as_text(values)
        return self._checked(column, field_name, out)

    def _checked(self, column: str, field_name: str, converted: pd.Series) -> pd.Series:
        """The schema's CHECKs of `column` (and of its domain) on its converted values."""
        for check in self.checks.columns.get(column, ()):
            converted = check.apply(converted, self.source[field_name], field_name, self.problems)
        return converted

    def _bad(self, field_name: str, values: pd.Series, bad: np.ndarray, reason: str) -> None:
        rows = np.flatnonzero(bad)
        shown = values.to_numpy(dtype=object)[rows]
        self.problems.rows(rows, field_name, [f"{reason}: {_shown(v)}" for v in shown])

    def _boolean(self, field_name: str, values: pd.Series, blank: np.ndarray) -> pd.Series:
        """t/f for COPY, from booleans, 1/0, true/false, yes/no, T/F, 是/否, 有/无."""
        words = {normalise(w): v for v, spellings in _BOOLEAN_WORDS.items() for w in spellings}
        text_values = _as_text(values)
        out = text_values.map(lambda v: None if v is None else words.get(normalise(v)))
        self._bad(field_name, values, ~blank & out.isna().to_numpy(), "not yes/no (是/否, true/false, 1/0)")
        return out.astype(object).where(out.notna(), None)

    def _number(self, column: str, field_name: str, values: pd.Series, blank: np.ndarray, sql_type: str) -> pd.Series:
        """Numbers, with the ranges the schema's CHECKs and types allow (the CHECKs before the
        type's range: a year 99999 is reported as not a year, not as too large)."""
        numbers = _as_number(values)
        if column.endswith("_year"):  # 建设时间 given as a date: take its year
            dates = _as_date(values[numbers.isna() & ~blank])
            numbers[dates.index] = dates.dt.year
        self._bad(field_name, values, ~blank & numbers.isna().to_numpy(), "not a number")
        ok = numbers.notna().to_numpy()
        if sql_type in _INTEGER_TYPES:
            fraction = ok & (numbers.fillna(0) % 1 != 0).to_numpy()
            self._bad(field_name, values, fraction, "not a whole number")
            numbers[fraction] = math.nan
        numbers = self._checked(column, field_name, numbers).astype(float)
        if sql_type in _INTEGER_TYPES:
            limit = np.iinfo(_INTEGER_TYPES[sql_type].lower()).max
            huge = numbers.notna().to_numpy() & (numbers.abs() > limit).to_numpy()
            self._bad(field_name, values, huge, f"out of range (at most {limit})")
            numbers[huge] = math.nan
            return numbers.round().astype(_INTEGER_TYPES[sql_type])
        return numbers

    def _dictionary(self, column: str, field_name: str, values: pd.Series) -> pd.Series:
        """Codes of the column's dict.<name> table, from codes or Chinese labels."""
        code_list = self.codes[self.schema.dictionaries[column]]
        numbers = _as_number(values)
        is_code = numbers.notna() & (numbers % 1 == 0) & numbers.isin(list(code_list.labels))
        out = numbers.where(is_code)
        text_values = _as_text(values)
        rest = text_values.notna() & ~is_code
        by_label = code_list.code_of_label()
        labels = {v: by_label.get(normalise(v)) for v in text_values[rest].unique()}
        out[rest] = text_values[rest].map(labels).astype(float)
        bad = np.flatnonzero((rest & out.isna()).to_numpy())
        self.problems.rows(bad, field_name, [
            f"{_shown(values.iloc[i])} is neither a code nor a label of {code_list.title_zh} ({code_list.name})"
            for i in bad])
        return out.astype("Int16")

    def _spelled(self, field_name: str, values: pd.Series, spellings: dict[str, str]) -> pd.Series:
        """Text codes (pipe_type, status, …) from any accepted spelling of data/field_mapping.yaml."""
        text_values = _as_text(values)
        present = text_values.dropna().unique()
        out = text_values.map({v: spellings.get(normalise(v)) for v in present})
        bad = np.flatnonzero(text_values.notna().to_numpy() & out.isna().to_numpy())
        allowed = ", ".join(dict.fromkeys(spellings.values()))
        self.problems.rows(bad, field_name, [
            f"{_shown(values.iloc[i])} is not one of {allowed} (or their Chinese names)" for i in bad])
        return out.astype(object).where(out.notna(), None)


# -- geometry --------------------------------------------------------------------------------------
_SHAPES = {"POINT": (0, "point"), "LINESTRING": (1, "line"), "POLYGON": (3, "polygon")}  # shapely type ids


def _shapes(wkb: np.ndarray, problems: _Problems, kind: str = "LINESTRING", feature: str = "feature") -> np.ndarray:
    """Single points, lines or polygons (`kind`, as geometry_columns names it) from WKB; every
    other shape, unreadable, empty, degenerate or invalid geometry is a problem (and None)."""
    single, noun = _SHAPES[kind]
    missing = np.array([v is None for v in wkb], dtype=bool)
    problems.rows(np.flatnonzero(missing), "geometry", "no geometry")
    geoms = shapely.from_wkb(wkb, on_invalid="ignore")
    unreadable = ~missing & pd.isna(geoms)
    problems.rows(np.flatnonzero(unreadable), "geometry",
                  f"broken geometry (unreadable, e.g. a {'line with a single point' if single == 1 else 'ring'})")
    type_ids = shapely.get_type_id(geoms)
    single_multi = (type_ids == single + 4) & (shapely.get_num_geometries(geoms) == 1)
    geoms[single_multi] = shapely.get_geometry(geoms[single_multi], 0)
    type_ids = shapely.get_type_id(geoms)
    multi = np.flatnonzero(type_ids == single + 4)
    problems.rows(multi, "geometry", [f"multi-part {noun} with {n} parts: split it into one {feature} per part"
                                      for n in shapely.get_num_geometries(geoms[multi])])
    other = np.flatnonzero((type_ids >= 0) & (type_ids != single) & (type_ids != single + 4))
    problems.rows(other, "geometry", [f"{g.geom_type} where a {noun} is expected" for g in geoms[other]])
    ok = type_ids == single
    empty = ok & shapely.is_empty(geoms)
    problems.rows(np.flatnonzero(empty), "geometry", f"empty {noun}")
    coords = shapely.get_coordinates(geoms[ok & ~empty], include_z=True)
    finite = np.ones(len(geoms), dtype=bool)
    if len(coords):
        _, index = shapely.get_coordinates(geoms[ok & ~empty], return_index=True)
        bad_coords = ~np.isfinite(coords[:, :2]).all(axis=1)
        finite[np.flatnonzero(ok & ~empty)[np.unique(index[bad_coords])]] = False
    problems.rows(np.flatnonzero(~finite), "geometry", "coordinates are not finite numbers")
    checked = ok & ~empty & finite
    zero = np.zeros(len(geoms), dtype=bool)
    if single == 1:
        zero = checked & (shapely.length(geoms) == 0)
    elif single == 3:
        zero = checked & (shapely.area(geoms) == 0)
    problems.rows(np.flatnonzero(zero), "geometry", f"zero-{'length line' if single == 1 else 'area polygon'}")
    invalid = checked & ~zero & ~shapely.is_valid(geoms)
    problems.rows(np.flatnonzero(invalid), "geometry",
                  [f"invalid {noun}: {shapely.is_valid_reason(g)}" for g in geoms[invalid]])
    geoms[~(checked & ~invalid & ~zero)] = None
    return geoms


def _swapped_axes(pairs: list[tuple[np.ndarray, np.ndarray]], ok: np.ndarray, crs: CRS | None) -> bool:
    """Whether (x, y) columns hold northing/easting: true when swapping puts more points inside the
    CRS's area of use (Chinese survey tables call northing X)."""
    if crs is None or crs.area_of_use is None or not ok.any():
        return False
    minx, miny, maxx, maxy = Transformer.from_crs(CRS.from_epsg(4326), crs, always_xy=True).transform_bounds(
        *crs.area_of_use.bounds)

    def inside(x: np.ndarray, y: np.ndarray) -> float:
        return float(((x >= minx) & (x <= maxx) & (y >= miny) & (y <= maxy))[ok].mean())

    return sum(inside(y, x) for x, y in pairs) > sum(inside(x, y) for x, y in pairs)


def _sheet_numbers(frame: pd.DataFrame, fields: dict[str, str], problems: _Problems) -> dict[str, np.ndarray]:
    """Coordinate columns as floats; empty or non-numeric values reported."""
    numbers = {}
    for column, name in fields.items():
        numbers[column] = _as_number(frame[name]).to_numpy()
        blank = _blank(frame[name])
        problems.rows(np.flatnonzero(blank), name, "coordinate is empty")
        bad = np.flatnonzero(~blank & np.isnan(numbers[column]))
        problems.rows(bad, name, [f"not a number: {_shown(v)}" for v in frame[name].to_numpy(dtype=object)[bad]])
    return numbers


def _sheet_points(frame: pd.DataFrame, fields: dict[str, str], crs: CRS | None,
                  problems: _Problems) -> tuple[np.ndarray, str]:
    """WKB points from a sheet's x/y(/z) columns, and a note saying how they were read."""
    numbers = _sheet_numbers(frame, {k: v for k, v in fields.items() if k in ("x", "y")}, problems)
    x, y = numbers["x"], numbers["y"]
    ok = ~np.isnan(np.column_stack([x, y])).any(axis=1)
    swapped = _swapped_axes([(x, y)], ok, crs)
    if swapped:
        x, y = y, x
    z = _as_number(frame[fields["z"]]).to_numpy() if "z" in fields else np.full(len(frame), np.nan)
    wkb = np.full(len(frame), None, dtype=object)
    has_z = ok & np.isfinite(z)
    wkb[has_z] = shapely.to_wkb(shapely.points(np.column_stack([x, y, z])[has_z]))
    wkb[ok & ~has_z] = shapely.to_wkb(shapely.points(np.column_stack([x, y])[ok & ~has_z]))
    names = ", ".join(fields[c] for c in ("x", "y", "z") if c in fields)
    return wkb, f"points from columns {names}" + (" (X is northing, Y easting)" if swapped else "")


def _sheet_lines(frame: pd.DataFrame, fields: dict[str, str], crs: CRS | None,
                 problems: _Problems) -> tuple[np.ndarray, str]:
    """WKB lines from a sheet's start/end coordinate columns, and a note saying how they were read."""
    numbers = _sheet_numbers(frame, fields, problems)
    x1, y1, x2, y2 = (numbers[c] for c in ("start_x", "start_y", "end_x", "end_y"))
    ok = ~np.isnan(np.column_stack([x1, y1, x2, y2])).any(axis=1)
    swapped = _swapped_axes([(x1, y1), (x2, y2)], ok, crs)
    if swapped:
        x1, y1, x2, y2 = y1, x1, y2, x2
    wkb = np.full(len(frame), None, dtype=object)
    starts, ends = np.column_stack([x1, y1])[ok], np.column_stack([x2, y2])[ok]
    wkb[ok] = shapely.to_wkb(shapely.linestrings(np.stack([starts, ends], axis=1)))
    names = ", ".join(fields[c] for c in ("start_x", "start_y", "end_x", "end_y"))
    return wkb, f"lines from columns {names}" + (" (X is northing, Y easting)" if swapped else "")


def _with_z(geoms: np.ndarray, start_z: np.ndarray, end_z: np.ndarray) -> np.ndarray:
    """3D lines: Z kept where the file has it, else interpolated by length from start_z to end_z."""
    flat = np.flatnonzero(pd.notna(geoms) & ~shapely.has_z(geoms))
    if len(flat) == 0:
        return geoms
    xy, index = shapely.get_coordinates(geoms[flat], return_index=True)
    step = np.r_[0.0, np.hypot(*np.diff(xy, axis=0).T)]
    step[np.r_[True, index[1:] != index[:-1]]] = 0.0  # each line starts at distance 0
    along = pd.Series(step).groupby(index).cumsum().to_numpy()
    total = np.bincount(index, weights=step)
    t = along / np.where(total[index] > 0, total[index], 1.0)
    z = start_z[flat][index] + t * (end_z[flat][index] - start_z[flat][index])
    out = geoms.copy()
    out[flat] = shapely.linestrings(np.column_stack([xy, z]), indices=index)
    return out


def _transform(geoms: np.ndarray, source: _SourceCRS, target_srid: int) -> np.ndarray:
    """Plane coordinates to the storage CRS by the layer's datum transformation (x = east/longitude),
    after the local grid's four parameters when there is one; heights unchanged."""
    assert source.datum is not None and source.crs is not None
    grid = source.grid
    transformer = source.datum.transformer if source.crs.to_epsg() != target_srid else None
    if grid is None and transformer is None:
        return geoms

    def move(coords: np.ndarray) -> np.ndarray:
        x, y = coords[:, 0], coords[:, 1]
        if grid is not None:
            x, y = grid.apply(x, y)
        if transformer is not None:
            x, y = transformer.transform(x, y)
        return np.column_stack([x, y, *coords[:, 2:].T])

    out = geoms.copy()
    has_z = shapely.has_z(geoms)
    for with_z in (True, False):
        chosen = pd.notna(geoms) & (has_z == with_z)
        if chosen.any():
            out[chosen] = shapely.transform(geoms[chosen], move, include_z=with_z)
    return out


def _deployment_area(conn: Connection, srid: int) -> tuple[float, float, float, float]:
    """Extent of the deployment: its administrative divisions, or else the storage CRS's area of use."""
    extent = conn.execute(
        text("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
             "FROM (SELECT ST_Extent(geom) e FROM admin_division) s")
    ).one()
    if extent[0] is not None:
        return float(extent[0]), float(extent[1]), float(extent[2]), float(extent[3])
    area = CRS.from_epsg(srid).area_of_use
    if area is None:
        raise QiwangError(f"EPSG:{srid} has no area of use and the database no divisions: cannot check positions")
    transformer = Transformer.from_crs(CRS.from_epsg(4490), CRS.from_epsg(srid), always_xy=True)
    return transformer.transform_bounds(*area.bounds)


# -- nodes from pipe ends --------------------------------------------------------------------------
def _components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Connected components of n points joined by pairs (i, j): each point's smallest member index."""
    labels = np.arange(n)
    while True:
        low = np.minimum(labels[i], labels[j])
        new = labels.copy()
        np.minimum.at(new, i, low)
        np.minimum.at(new, j, low)
        new = new[new]  # pointer jumping: chains collapse in log steps
        if np.array_equal(new, labels):
            return labels
        labels = new


@dataclass
class _Nodes:
    frame: pd.DataFrame  # new nodes, ready for COPY (ids filled at write time)
    from_node: np.ndarray  # per pipe: index into frame (≥ 0) or -(existing id) - 1
    to_node: np.ndarray
    reused: int
    snapped: int
    max_snap: float
    geoms: np.ndarray  # pipes with ends moved onto their nodes


def _node_frame(pipes: pd.DataFrame, node_of_end: np.ndarray, points: np.ndarray) -> pd.DataFrame:
    """New nodes' rows (without id and code) for the pipe ends that make them.

    `node_of_end`: for each of the 2n ends (the n starts, then the n ends) the index of its new
    node in `points`, or -1 (an existing node). A node's type follows its degree, its pressure class
    is the highest of its pipes', its ground elevation, depth, enterprise and division are those
    of the first end that makes it."""
    n = len(pipes)
    mine = node_of_end >= 0
    nodes, first = np.unique(node_of_end[mine], return_index=True)
    assert len(nodes) == len(points), "every new node is made by some end"
    rep = np.flatnonzero(mine)[first]  # index into the ends
    pipe_row, at_start = rep % n, rep < n
    degree = np.bincount(node_of_end[mine], minlength=len(points))
    pressure = pd.Series(np.concatenate([pipes["pressure_class"].to_numpy()] * 2)[mine])
    node_pressure = pressure.groupby(node_of_end[mine]).max().to_numpy()
    frame = pd.DataFrame({
        "node_type": pd.array(np.select([degree >= 3, degree == 1], [TEE, END], 0), dtype="Int16").astype(object),
        "role": "junction",
        "pressure_class": node_pressure.astype(int),
        "ground_elevation_m": np.where(at_start, pipes["start_elevation_m"].to_numpy()[pipe_row],
                                       pipes["end_elevation_m"].to_numpy()[pipe_row]),
        "depth_m": np.where(at_start, pipes["start_depth_m"].to_numpy()[pipe_row],
                            pipes["end_depth_m"].to_numpy()[pipe_row]),
        "geom": points,
        "enterprise_code": pipes["enterprise_code"].to_numpy(dtype=object)[pipe_row],
        "admin_code": pipes["admin_code"].to_numpy(dtype=object)[pipe_row],
    })
    frame.loc[degree == 2, "node_type"] = None
    return frame


def _ends_moved(lines: np.ndarray, targets: np.ndarray, moved: np.ndarray) -> np.ndarray:
    """`lines` with the ends flagged in `moved` (the n starts, then the n ends) put on `targets`
    (2n × 2, plan coordinates); heights stay the line's own."""
    n = len(lines)
    out = lines.copy()
    for which, rows in ((0, np.flatnonzero(moved[:n])), (-1, np.flatnonzero(moved[n:]))):
        for row in rows:
            coords = shapely.get_coordinates(out[row], include_z=True)
            coords[which, :2] = targets[row if which == 0 else row + n]
            out[row] = shapely.LineString(coords)
    return out


def _build_nodes(conn: Connection, pipes: pd.DataFrame, geoms: np.ndarray, tolerance: float, srid: int) -> _Nodes:
    """One node per cluster of pipe ends within `tolerance` metres (per enterprise), reusing nodes
    already in the database; ends are moved (in plan, Z kept) onto their node."""
    n = len(pipes)
    starts = shapely.get_coordinates(shapely.get_point(geoms, 0), include_z=True)
    ends = shapely.get_coordinates(shapely.get_point(geoms, -1), include_z=True)
    points = np.vstack([starts, ends])
    enterprise = np.concatenate([pipes["enterprise_code"].to_numpy(dtype=object)] * 2)
    minx, miny = points[:, 0].min() - tolerance, points[:, 1].min() - tolerance
    maxx, maxy = points[:, 0].max() + tolerance, points[:, 1].max() + tolerance
    existing = pd.read_sql(
        text(
            "SELECT id, enterprise_code, ST_X(geom) AS x, ST_Y(geom) AS y, ST_Z(geom) AS z FROM node "
            "WHERE enterprise_code = ANY(:e) AND geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, :srid)"
        ),
        conn,
        params={"e": sorted(set(enterprise)), "x0": minx, "y0": miny, "x1": maxx, "y1": maxy, "srid": srid},
    )
    # existing nodes first: a cluster's smallest index is then an existing node when it has one
    all_xyz = np.vstack([existing[["x", "y", "z"]].to_numpy(dtype=float).reshape(-1, 3), points])
    all_enterprise = np.concatenate([existing["enterprise_code"].to_numpy(dtype=object), enterprise])
    k = len(existing)
    labels = np.arange(len(all_xyz))
    for code in sorted(set(all_enterprise)):
        members = np.flatnonzero(all_enterprise == code)
        xy = all_xyz[members, :2]
        tree = shapely.STRtree(shapely.points(xy))
        i, j = tree.query(shapely.points(xy), predicate="dwithin", distance=tolerance)
        labels[members] = members[_components(len(members), i, j)]
    end_label = labels[k:]
    moved = np.hypot(*(all_xyz[end_label, :2] - points[:, :2]).T)
    snapped = moved > 0
    out = _ends_moved(geoms, all_xyz[end_label, :2], snapped)
    new_labels = np.unique(end_label[end_label >= k])
    new_index = np.full(len(all_xyz), -1)
    new_index[new_labels] = np.arange(len(new_labels))
    existing_ids = np.concatenate([existing["id"].to_numpy(dtype=np.int64), np.zeros(len(points), np.int64)])
    node_of_end = np.where(end_label < k, -existing_ids[end_label] - 1, new_index[end_label])
    frame = _node_frame(pipes, new_index[end_label], shapely.points(all_xyz[new_labels]))
    return _Nodes(frame, node_of_end[:n], node_of_end[n:], len(np.unique(end_label[end_label < k])),
                  int(snapped.sum()), float(moved.max()) if len(moved) else 0.0, out)


# -- nodes by name ---------------------------------------------------------------------------------
@dataclass
class _NamedNodes:
    """The nodes a pipe layer names (from/to node codes) that neither its node layer nor the
    database has: made at the first end naming each."""

    frame: pd.DataFrame  # new nodes with their codes, ready for COPY (ids given at write time)
    node_of_end: np.ndarray  # per end (the n starts, then the n ends): index into frame, or -1


def _node_positions(rows: pd.DataFrame, geoms: np.ndarray) -> pd.DataFrame:
    """enterprise_code, code, x, y of nodes (a node layer, or the nodes a pipe layer names)."""
    return pd.DataFrame({"enterprise_code": rows["enterprise_code"].to_numpy(dtype=object),
                         "code": rows["code"].to_numpy(dtype=object),
                         "x": shapely.get_x(geoms), "y": shapely.get_y(geoms)})


def _named_nodes(conn: Connection, pipes: _Prepared, imported: list[pd.DataFrame], tolerance_m: float) -> None:
    """Nodes of a pipe layer that names them: each end must lie within `tolerance_m` (metres, in
    plan) of the node it names, be it of the node layer, of the database, or made here by the
    first end naming it; one problem line per end that does not. `imported`: positions of the
    nodes of this import so far (_node_positions). Sets `pipes.named`, moves the ends onto their
    nodes and reports on the layer."""
    rows, n = pipes.rows, len(pipes.rows)
    which = ("from", "to")
    codes = np.concatenate([pipes.refs["from_node_id"].to_numpy(dtype=object),
                            pipes.refs["to_node_id"].to_numpy(dtype=object)])
    enterprise = np.concatenate([rows["enterprise_code"].to_numpy(dtype=object)] * 2)
    points = np.concatenate([shapely.get_point(pipes.geoms, 0), shapely.get_point(pipes.geoms, -1)])
    xy = np.column_stack([shapely.get_x(points), shapely.get_y(points)])
    usable = ~np.isnan(xy[:, 0]) & pd.notna(codes) & pd.notna(enterprise)
    key = pd.Series(np.where(usable, enterprise.astype(str) + "\x1f" + codes.astype(str), None), dtype=object)

    known = [pd.DataFrame(conn.execute(
        text("SELECT enterprise_code, code, ST_X(geom) AS x, ST_Y(geom) AS y FROM node WHERE code = ANY(:c)"),
        {"c": sorted(set(codes[usable]))}).all(), columns=["enterprise_code", "code", "x", "y"])]
    nodes = pd.concat([*known, *imported], ignore_index=True).dropna()
    nodes_key = nodes["enterprise_code"].astype(str) + "\x1f" + nodes["code"].astype(str)
    position = pd.DataFrame({"x": nodes["x"].to_numpy(), "y": nodes["y"].to_numpy()}, index=nodes_key.to_numpy())
    position = position[~position.index.duplicated()]   # a code twice is reported by _check_codes
    target = position.reindex(key.to_numpy()).to_numpy(dtype=float, copy=True)
    has_node = usable & ~np.isnan(target[:, 0])

    # a name no node has: the first end naming it (in row order, a start before its end) places it
    order = np.argsort(np.r_[np.arange(n) * 2, np.arange(n) * 2 + 1], kind="stable")
    new = usable & ~has_node
    ends = order[new[order]]
    labels, _ = pd.factorize(key.to_numpy()[ends])   # numbered in order of first appearance
    node_of_end = np.full(2 * n, -1)
    node_of_end[ends] = labels
    first_end = ends[np.unique(labels, return_index=True)[1]]
    target[new] = xy[first_end[node_of_end[new]]]
    distance = np.hypot(*(xy - target).T)

    field_of = {0: pipes.ref_fields["from_node_id"], 1: pipes.ref_fields["to_node_id"]}
    for end in np.flatnonzero(usable & (distance > tolerance_m)):
        row, side = end % n, int(end // n)
        where = ("the node layer or the database puts it" if has_node[end]
                 else f"row {first_end[node_of_end[end]] % n + 1} puts it")
        pipes.problems.rows(np.array([row]), field_of[side], (
            f"{which[side]}-node {codes[end]!r} is {distance[end]:,.2f} m from the pipe's drawn "
            f"{'start' if side == 0 else 'end'}, where {where} (tolerance {tolerance_m:g} m)"))
    loops = np.flatnonzero(usable[:n] & usable[n:] & (key[:n].to_numpy() == key[n:].to_numpy()))
    pipes.problems.rows(loops, field_of[1], [f"both ends name node {codes[row]!r}" for row in loops])

    moved = usable & (distance > 0) & (distance <= tolerance_m)
    pipes.geoms = _ends_moved(pipes.geoms, target, moved)
    xyz = shapely.get_coordinates(points[first_end], include_z=True) if len(first_end) else np.empty((0, 3))
    frame = _node_frame(rows, node_of_end, shapely.points(np.column_stack([target[first_end], xyz[:, 2:]])))
    frame.insert(0, "code", codes[first_end])
    pipes.named = _NamedNodes(frame, node_of_end)
    report = pipes.report
    report.new_nodes, report.reused_nodes = len(frame), len(set(key[has_node]))
    report.snapped_ends = int(moved.sum())
    report.max_snap_m = float(distance[moved].max()) if moved.any() else 0.0


# -- one layer -------------------------------------------------------------------------------------
@dataclass
class _Prepared:
    table: str
    rows: pd.DataFrame  # table columns, converted
    geoms: np.ndarray  # geometries in the storage CRS (3D where the table is)
    report: LayerReport
    schema: TableSchema
    refs: dict[str, pd.Series]  # reference column (…_id) → code of the referenced feature, per row
    ref_fields: dict[str, str]  # reference column → source field
    problems: _Problems
    named: _NamedNodes | None = None  # a pipe layer's nodes by name (_named_nodes)
    existing: np.ndarray | None = None  # rows that update stored features (--mode update, upsert)
    carried: list[str] = field(default_factory=list)  # columns the file gives (an update sets those)
    crs_record: dict = field(default_factory=dict)  # CRS declared and used, transformation (import_log)
    enterprise_field: str = "enterprise_code"  # the source field of 企业唯一编码 (or --enterprise)


@dataclass
class _SourceCRS:
    """Where a layer's coordinates are: a CRS pyproj knows, optionally reached through a local grid."""

    crs: CRS | None
    text: str
    grid: LocalGrid | None = None
    datum: Datum | None = None  # how to the storage CRS (ingest/datum.py); None: no usable CRS
    overridden: str | None = None  # the file's declared CRS that --crs contradicts


@dataclass(frozen=True)
class DatumOptions:
    """What the user says about datums: `shift` a 7-parameter Helmert (--datum-shift),
    `accept_approximate` an approximate transformation is good enough (--accept-approximate-datum)."""

    shift: Helmert | None = None
    accept_approximate: bool = False


def _source_crs(src: _Source, crs_option: str | None, mapping: FieldMapping, problems: _Problems,
                target_srid: int, datum_options: DatumOptions) -> _SourceCRS:
    """The layer's CRS (--crs over the file's), and the transformation to the storage CRS: one
    of unknown accuracy or worse than 1 m is a problem line unless the user gives or accepts it."""
    found = _declared_crs(src, crs_option, mapping, problems)
    if found.crs is None:
        return found
    declared = None
    if crs_option and src.crs:
        try:
            declared = CRS.from_user_input(src.crs)
        except CRSError:
            declared = None
    overridden = None
    if declared is not None and found.grid is None and not declared.equals(found.crs, ignore_axis_order=True):
        overridden = f"{declared.name} (EPSG:{declared.to_epsg()})" if declared.to_epsg() else declared.name
    try:
        if found.grid is not None:
            chosen = for_local_grid(found.grid, target_srid, datum_options.accept_approximate)
        else:
            chosen = choose(found.crs, target_srid, datum_options.shift, datum_options.accept_approximate)
    except DatumRefused as refused:
        problems.layer("geometry", str(refused))
        return _SourceCRS(None, found.text)
    return dataclasses.replace(found, datum=chosen, overridden=overridden)


def _declared_crs(src: _Source, crs_option: str | None, mapping: FieldMapping, problems: _Problems) -> _SourceCRS:
    if crs_option and crs_option.upper().startswith(LOCAL_PREFIX):
        grid = local_grid(crs_option, mapping.local_grids)
        return _SourceCRS(grid.target, f"{grid.describe()} (--crs)", grid)
    if crs_option:
        epsg = parse_crs(crs_option)
        return _SourceCRS(CRS.from_epsg(epsg), f"EPSG:{epsg} (--crs)")
    if src.crs:
        try:
            return _SourceCRS(CRS.from_user_input(src.crs), f"{src.crs} (from the file)")
        except CRSError:
            problems.layer("geometry", f"the file's CRS is not one pyproj knows ({src.crs}): give --crs EPSG:XXXX")
            return _SourceCRS(None, "unknown")
    problems.layer("geometry", "the file has no CRS (a Shapefile without .prj, a CAD drawing?): give --crs EPSG:XXXX")
    return _SourceCRS(None, "unknown")


def _registered(conn: Connection, table: str, column: str, values: pd.Series) -> set[str]:
    wanted = sorted({v for v in values.dropna().to_numpy(dtype=object)})
    if not wanted:
        return set()
    found = conn.execute(text(f"SELECT {column} FROM {table} WHERE {column} = ANY(:v)"), {"v": wanted}).scalars()
    return set(found)


def _anchors(geoms: np.ndarray) -> np.ndarray:
    """One point per feature for locating it: a line's start, a polygon's point on its surface."""
    out = geoms.copy()
    type_ids = shapely.get_type_id(geoms)
    out[type_ids == 1] = shapely.get_point(geoms[type_ids == 1], 0)
    out[type_ids == 3] = shapely.point_on_surface(geoms[type_ids == 3])
    return out


def _admin_codes(conn: Connection, geoms: np.ndarray, enterprise: pd.Series) -> pd.Series:
    """Division of each feature: the county whose boundary holds its anchor point (a line's start),
    else its enterprise's."""
    out = np.full(len(geoms), None, dtype=object)
    starts = shapely.get_coordinates(_anchors(geoms))
    has = np.flatnonzero(pd.notna(geoms))
    counties = conn.execute(
        text("SELECT admin_code, ST_AsBinary(geom) FROM admin_division WHERE level = 'county' AND geom IS NOT NULL")
    ).all()
    for code, wkb in counties:
        polygon = shapely.from_wkb(bytes(wkb))
        inside = shapely.contains_xy(polygon, starts[:, 0], starts[:, 1])
        out[has[inside & pd.isna(out[has])]] = code
    by_enterprise: dict[str, str] = dict(
        conn.execute(text("SELECT enterprise_code, admin_code FROM enterprise")).all())
    fallback = enterprise.map(by_enterprise).to_numpy(dtype=object)
    return pd.Series(np.where(pd.isna(out), fallback, out), index=enterprise.index, dtype=object)


def _references(src: _Source, schema: TableSchema, mapping: FieldMapping, nodes_by_code: bool,
                problems: _Problems) -> tuple[dict[str, pd.Series], dict[str, str]]:
    """Codes naming other features (<column>_code fields), per reference column, and their fields.

    A pipe's from/to nodes are taken by code when the layer names both (nodes by name); otherwise
    they are built from the pipe ends (snapping)."""
    refs, fields = {}, {}
    for column in schema.references:
        if schema.name == "pipe" and not nodes_by_code:
            continue
        name = f"{column.removesuffix('_id')}_code"
        hit = mapping.resolve(schema.name, [name], list(src.frame.columns), {name: schema.comments[column]})
        if name in hit:
            refs[column], fields[column] = _as_text(src.frame[hit[name]]), hit[name]
            if column in schema.not_null:
                problems.rows(np.flatnonzero(refs[column].isna().to_numpy()), hit[name],
                              f"{schema.comments[column]} is empty")
        elif column in schema.not_null:
            problems.layer(name, f"mandatory field {schema.comments[column]} ({name}) is missing")
    for (table, column), (_type_column, name) in POLYMORPHIC.items():
        if table != schema.name:
            continue
        hit = mapping.resolve(table, [name], list(src.frame.columns))
        if name in hit:  # its type column must come with it: CHECK feature_reference_is_whole (value_checks)
            refs[column], fields[column] = _as_text(src.frame[hit[name]]), hit[name]
    return refs, fields


def _targets(prepared: _Prepared, column: str) -> pd.Series:
    """The table each row's reference in `column` points at."""
    if column in prepared.schema.references:
        return pd.Series(prepared.schema.references[column], index=prepared.rows.index)
    type_column, _ = POLYMORPHIC[(prepared.table, column)]
    return prepared.rows[type_column]


def _geometries(conn: Connection, src: _Source, schema: TableSchema, rows: pd.DataFrame, mapping: FieldMapping,
                source_crs: _SourceCRS, problems: _Problems) -> tuple[np.ndarray, str | None, dict[str, str]]:
    """The layer's geometries checked, 3D where the table is (pipes: Z interpolated from the ends'
    ground elevation − depth; nodes: ground − depth; other points: 0 m), in the storage CRS and
    inside the deployment area; with a note on sheet columns used and those columns."""
    kind = schema.geometry_type if schema.geometry_type in _SHAPES else "LINESTRING"
    wkb, note, sheet = src.wkb, None, None
    if src.geometry_type is None and kind == "LINESTRING":
        sheet = mapping.coordinate_fields(schema.name, list(src.frame.columns))
        if sheet:
            wkb, note = _sheet_lines(src.frame, sheet, source_crs.crs, problems)
    elif src.geometry_type is None and kind == "POINT":
        sheet = mapping.point_fields(list(src.frame.columns))
        if sheet:
            wkb, note = _sheet_points(src.frame, sheet, source_crs.crs, problems)
    geoms = _shapes(wkb, problems, kind, "pipe" if schema.name == "pipe" else "feature")
    if schema.name == "pipe":  # a pipe crossing itself is drawn wrong, whatever its validity as a line
        crossing = consistency.non_simple_lines(geoms)
        problems.rows(crossing.rows, "geometry", crossing.reasons)
        geoms[crossing.rows] = None

    def column(name: str) -> np.ndarray:
        return rows[name].to_numpy(dtype=float, na_value=np.nan) if name in rows else np.full(len(rows), np.nan)

    if schema.name == "pipe":
        geoms = _with_z(geoms, column("start_elevation_m") - column("start_depth_m"),
                        column("end_elevation_m") - column("end_depth_m"))
    elif schema.has_z and kind == "POINT":
        z = column("ground_elevation_m") - np.nan_to_num(column("depth_m"))
        flat = np.flatnonzero(pd.notna(geoms) & ~shapely.has_z(geoms))
        xy = shapely.get_coordinates(geoms[flat])
        geoms[flat] = shapely.points(np.column_stack([xy, np.nan_to_num(z[flat])]))
    if source_crs.datum is not None:
        geoms = _transform(geoms, source_crs, schema.srid)
        minx, miny, maxx, maxy = _deployment_area(conn, schema.srid)
        bounds = shapely.bounds(geoms)
        outside = pd.notna(geoms) & ~((bounds[:, 0] >= minx) & (bounds[:, 1] >= miny)
                                      & (bounds[:, 2] <= maxx) & (bounds[:, 3] <= maxy))
        problems.rows(np.flatnonzero(outside), "geometry",
                      f"outside the deployment area (x {minx:.0f}..{maxx:.0f}, y {miny:.0f}..{maxy:.0f} in "
                      f"EPSG:{schema.srid}): wrong CRS?")
    if not schema.has_z:
        geoms = shapely.force_2d(geoms)
    return geoms, note, sheet or {}


def parse_set_options(options: list[str] | tuple[str, ...]) -> dict[str, dict[str, str]]:
    """`--set LAYER.COLUMN=VALUE` options as table → column → value. LAYER is a kind of --as
    (pipes) or a table (pipe)."""
    out: dict[str, dict[str, str]] = {}
    for option in options:
        where, equals, value = option.partition("=")
        layer, dot, column = where.strip().partition(".")
        table = IMPORT_KINDS.get(layer, layer)
        if not (equals and dot and column.strip()):
            raise QiwangError(f"--set {option}: give LAYER.COLUMN=VALUE, e.g. pipes.pressure_class=中压")
        if table not in IMPORT_KINDS.values():
            raise QiwangError(f"--set {option}: no layer {layer!r} (choose one of {', '.join(IMPORT_KINDS)})")
        out.setdefault(table, {})[column.strip()] = value.strip()
    return out


def _given_values(frame: pd.DataFrame, table: str, importable: list[str], found: dict[str, str],
                  mapping: FieldMapping, set_values: dict[str, str]
                  ) -> tuple[pd.DataFrame, dict[str, str], set[str]]:
    """The layer's fields with the mapping's defaults and constants and the --set values laid in,
    and column → field with them. A value the file lacks comes in a field named after where it was
    given (`defaults.pressure_class`, `--set pipes.pressure_class`), so that a problem line says so."""
    defaults, constants = mapping.given_values(table)
    kind = next(k for k, t in IMPORT_KINDS.items() if t == table)
    given = [(f"layers.{table}.defaults", column, value, False) for column, value in defaults.items()]
    given += [(f"layers.{table}.constants", column, value, True) for column, value in constants.items()]
    given += [("--set", column, value, True) for column, value in set_values.items()]
    if not given:
        return frame, found, set()
    frame, found, defaulted = frame.copy(), dict(found), set()
    for where, column, value, overrides in given:
        if column not in importable:
            raise QiwangError(f"{where}: {table} has no column {column!r} a file may give "
                              f"(columns: {', '.join(importable)})")
        name = f"--set {kind}.{column}" if where == "--set" else f"{where.rsplit('.', 1)[1]}.{column}"
        if column in found and not overrides:
            field_name = found[column]
            frame[field_name] = frame[field_name].astype(object).where(~_blank(frame[field_name]), value)
        else:
            frame[name] = pd.Series([value] * len(frame), index=frame.index, dtype=object)
            found[column] = name
            if overrides:
                defaulted.discard(column)
            else:
                defaulted.add(column)
    return frame, found, defaulted


def importable_columns(schema: TableSchema) -> list[str]:
    """The columns of `schema` a file may give, in table order: not ids, timestamps or generated
    columns (BUILT_COLUMNS), not references (a file names those by code), not geometry."""
    skipped = NOT_IMPORTED.get(schema.name, set())
    return [c for c in schema.columns if c not in BUILT_COLUMNS and c not in schema.references
            and c not in skipped and not schema.columns[c].startswith("geometry")]


def _prepare(conn: Connection, src: _Source, file: str, table: str, mapping: FieldMapping,
             crs_option: str | None, enterprise_option: str | None,
             set_values: dict[str, str] | None = None, mode: str = "insert",
             datum_options: DatumOptions = DatumOptions()) -> tuple[_Prepared, _Problems]:
    """Convert and check one layer; nothing is written here. `set_values`: --set column → value;
    `mode` one of MODES."""
    problems = _Problems(file, src.layer)
    schema = table_schema(conn, table)
    importable = importable_columns(schema)
    found = mapping.resolve(table, importable, list(src.frame.columns), schema.comments)
    frame, found, defaulted = _given_values(src.frame, table, importable, found, mapping, set_values or {})
    given_fields = set(frame.columns) - set(src.frame.columns)
    src = _Source(src.layer, frame, src.wkb, src.crs, src.geometry_type, src.encoding,
                  (*src.constant_fields, *given_fields))
    mandatory = (APPENDIX_MANDATORY.get(table, set()) | (schema.not_null - schema.has_default)) & set(importable)
    nodes_by_code = table == "pipe" and {"from_node_id", "to_node_id"} <= set(
        c for c in schema.references
        if f"{c.removesuffix('_id')}_code" in mapping.resolve(table, [f"{c.removesuffix('_id')}_code"],
                                                              list(src.frame.columns)))
    refs, ref_fields = _references(src, schema, mapping, nodes_by_code, problems)
    codes = dictionaries(conn, {schema.dictionaries[c] for c in found if c in schema.dictionaries})
    checks = plan(schema, importable)
    converter = _Converter(schema, mapping, codes, problems, src.frame, checks)
    rows = pd.DataFrame({c: converter.column(c, found[c]) for c in importable if c in found}, index=src.frame.index)
    for column in sorted(mandatory & set(found) - {"enterprise_code"}, key=importable.index):
        empty = np.flatnonzero(_blank(src.frame[found[column]]))
        problems.rows(empty, found[column], f"{schema.comments[column]} is empty")
    checks.check_rows(Layer(schema, rows, src.frame, found, refs, ref_fields, problems))

    # enterprise: the file's field, blanks filled from --enterprise; it must be registered
    ent_field = found.get("enterprise_code", "enterprise_code")
    if "enterprise_code" not in rows:
        rows["enterprise_code"] = enterprise_option
        if not enterprise_option:
            problems.layer("enterprise_code", "the file has no 企业唯一编码 field: give --enterprise CODE")
    elif enterprise_option:
        rows["enterprise_code"] = rows["enterprise_code"].where(~_blank(src.frame[ent_field]), enterprise_option)
    else:
        problems.rows(np.flatnonzero(_blank(src.frame[ent_field])), ent_field, "企业唯一编码 is empty")
    known = _registered(conn, "enterprise", "enterprise_code", rows["enterprise_code"])
    unknown = np.flatnonzero(rows["enterprise_code"].notna().to_numpy()
                             & ~rows["enterprise_code"].isin(known).to_numpy())
    problems.rows(unknown, ent_field, [
        f"enterprise {rows['enterprise_code'].iloc[i]} is not registered in this database (register it with "
        f"./qiwang enterprise add {rows['enterprise_code'].iloc[i]} --name … --credit-code …)" for i in unknown])

    existing = _check_codes(conn, table, rows, found.get("code", "code"), problems, mode)
    if table == "pipe" and existing.any():
        _stored_heights(conn, rows, existing)
    source_crs = _source_crs(src, crs_option, mapping, problems, schema.srid, datum_options)
    geoms, geometry_note, sheet = _geometries(conn, src, schema, rows, mapping, source_crs, problems)

    if "admin_code" in rows:
        admin_field = found["admin_code"]
        known = _registered(conn, "admin_division", "admin_code", rows["admin_code"])
        unknown = np.flatnonzero(rows["admin_code"].notna().to_numpy() & ~rows["admin_code"].isin(known).to_numpy())
        problems.rows(unknown, admin_field, [f"division {rows['admin_code'].iloc[i]} is not in admin_division"
                                             for i in unknown])
        rows["admin_code"] = rows["admin_code"].where(rows["admin_code"].notna(),
                                                      _admin_codes(conn, geoms, rows["enterprise_code"]))
    else:
        rows["admin_code"] = _admin_codes(conn, geoms, rows["enterprise_code"])

    if mode != "update" and not existing.all():  # what new features must have (an update keeps the rest)
        kind = next(k for k, t in IMPORT_KINDS.items() if t == table)
        for column in sorted(mandatory - set(found) - {"enterprise_code", "admin_code"}, key=importable.index):
            problems.layer(column, f"mandatory field {schema.comments[column]} is missing (give it in the file, "
                                   f"as layers.{table}.defaults.{column} in a --mapping file, or with "
                                   f"--set {kind}.{column}=…)")
    carried = [c for c in rows.columns if c in found and c not in defaulted and c != "enterprise_code"]
    used = {*found.values(), *sheet.values(), *ref_fields.values(), *src.constant_fields}
    # what our own export adds (labels, referenced codes, generated columns) is derived, not data
    derived = {c for c in schema.columns if c in schema.references or c in BUILT_COLUMNS}
    derived |= {f"{c}{LABEL_SUFFIX}" for c in schema.dictionaries} | {f"{c.removesuffix('_id')}_code" for c in derived}
    derived |= {mapping.shapefile_name(c) for c in derived}
    unused = [f for f in src.frame.columns if f not in used and f not in derived]
    report = LayerReport(f"{file}:{src.layer}", table, len(rows), f"{source_crs.text} → EPSG:{schema.srid}",
                         datum=source_crs.datum.describe() if source_crs.datum else None,
                         crs_overridden=source_crs.overridden,
                         encoding=src.encoding if src.encoding and src.encoding != "UTF-8" else None,
                         geometry_note=geometry_note, unused_fields=unused, nodes_by_code=nodes_by_code)
    prepared = _Prepared(table, rows, geoms, report, schema, refs, ref_fields, problems,
                         existing=existing if existing.any() else None, carried=carried,
                         crs_record={"declared": src.crs, "used": source_crs.text, "overridden": source_crs.overridden,
                                     "transformation": source_crs.datum.describe() if source_crs.datum else None,
                                     "accuracy_m": source_crs.datum.accuracy_m if source_crs.datum else None,
                                     **({"datum": source_crs.datum.record()} if source_crs.datum else {})},
                         enterprise_field=ent_field)
    return prepared, problems


HEIGHT_COLUMNS = ("start_elevation_m", "end_elevation_m", "start_depth_m", "end_depth_m")  # a pipe's Z


def _stored_heights(conn: Connection, rows: pd.DataFrame, existing: np.ndarray) -> None:
    """The stored ground elevations and depths of updated pipes where the file does not carry
    them: a 2D line's heights are interpolated from them (not written: not carried)."""
    missing = [c for c in HEIGHT_COLUMNS if c not in rows]
    if not missing:
        return
    stored = pd.DataFrame(conn.execute(text(
        f"SELECT enterprise_code, code, {', '.join(missing)} FROM pipe WHERE code = ANY(:c)"),
        {"c": sorted(set(rows.loc[existing, "code"]))}).all(), columns=["enterprise_code", "code", *missing])
    heights = rows[["enterprise_code", "code"]].merge(stored, how="left", on=["enterprise_code", "code"])
    for column in missing:
        rows[column] = heights[column].to_numpy(dtype=float)


def _check_codes(conn: Connection, table: str, rows: pd.DataFrame, code_field: str, problems: _Problems,
                 mode: str = "insert") -> np.ndarray:
    """Codes are unique per enterprise within the file; against the database, as `mode` wants:
    new for an insert, stored for an update, either for an upsert. Returns which rows name a
    stored feature."""
    existing = np.zeros(len(rows), dtype=bool)
    if "code" not in rows:
        return existing
    key = rows[["enterprise_code", "code"]]
    present = key.notna().all(axis=1).to_numpy()
    joined = (key["enterprise_code"].astype(str) + "/" + key["code"].astype(str)).to_numpy()
    first = pd.Series(np.arange(len(rows))).groupby(joined, dropna=False).transform("min").to_numpy(dtype=np.int64)
    dup_rows = np.flatnonzero(present & (first != np.arange(len(rows))))
    problems.rows(dup_rows, code_field, [f"duplicate code {rows['code'].iloc[i]!r} (first in row {first[i] + 1})"
                                         for i in dup_rows])
    codes = sorted(set(rows.loc[present, "code"]))
    taken = pd.DataFrame(conn.execute(
        text(f"SELECT enterprise_code, code FROM {table} WHERE code = ANY(:c)"), {"c": codes}).all(),
        columns=["enterprise_code", "code"]) if codes else pd.DataFrame(columns=["enterprise_code", "code"])
    stored = key.reset_index(drop=True).reset_index().merge(taken, on=["enterprise_code", "code"])["index"]
    existing[stored.to_numpy(dtype=np.int64)] = True
    if mode == "insert":
        clash = np.flatnonzero(existing)
        problems.rows(clash, code_field, [
            f"code {rows['code'].iloc[i]!r} is already in the database (enterprise {rows['enterprise_code'].iloc[i]}; "
            "--mode update or upsert changes stored features)" for i in clash])
    elif mode == "update":
        new = np.flatnonzero(present & ~existing)
        problems.rows(new, code_field, [
            f"no {table} {rows['code'].iloc[i]!r} of enterprise {rows['enterprise_code'].iloc[i]} to update "
            "(--mode upsert adds new ones)" for i in new])
    return existing


# -- choosing layers -------------------------------------------------------------------------------
def _table_of(layer: str, mapping: FieldMapping, tables: list[str]) -> str | None:
    """The table a layer name stands for: an exact name first, then a name contained in it."""
    key = normalise(layer)
    for table in tables:
        if key in {normalise(n) for n in mapping.layer_names(table)}:
            return table
    best = [(len(n), t) for t in tables for n in mapping.layer_names(t) if normalise(n) in key]
    return max(best)[1] if best else None


@dataclass
class _Chosen:
    """One layer to import: the file it is in, its name there and the table it goes to."""

    path: Path
    file: str  # as shown in problem lines
    layer: str
    table: str


def _has_coordinates(path: Path, layer: str, table: str | None, mapping: FieldMapping) -> bool:
    """A sheet (no geometry column) with coordinate columns: start/end for pipes, x/y for points."""
    fields = list(pyogrio.read_info(path, layer=layer, encoding=detected_encoding(path))["fields"])
    if table in (None, "pipe") and mapping.coordinate_fields("pipe", fields):
        return True
    return table not in (None, "pipe") and mapping.point_fields(fields) is not None


def _choose(path: Path, layers: list[tuple[str, str | None]], file: str, layer: str | None, kind: str | None,
            mapping: FieldMapping) -> tuple[list[_Chosen], list[str]]:
    """Layers of one file to import, and skipped layers with why."""
    from ingest.exporter import EXPORTABLE_LAYERS

    names = [name for name, _ in layers]
    tables = list(dict.fromkeys([*IMPORT_KINDS.values(), *EXPORTABLE_LAYERS]))
    importable = set(IMPORT_KINDS.values())
    wanted = IMPORT_KINDS[kind] if kind else None

    def table_of(name: str) -> str | None:
        cad = mapping.cad_layer(name) if path.suffix.lower() == ".dxf" else None
        return cad["table"] if cad and cad.get("table") else _table_of(name, mapping, tables)

    if layer is not None:
        if layer not in names:
            raise ImportFailed(file, [f"{file}:{layer}:*:*: no such layer (the file has: {', '.join(names)})"])
        candidates = [layer]
    elif wanted:
        candidates = [n for n in names if table_of(n) == wanted] or (names if len(names) == 1 else [])
        if len(candidates) != 1:
            why = "no layer" if not candidates else "several layers"
            raise ImportFailed(file, [f"{file}:*:*:*: {why} look like {kind} (layers: {', '.join(names)}): "
                                      "choose one with --layer"])
    else:
        candidates = names
    chosen, skipped = [], []
    for name in candidates:
        if not wanted and normalise(name) in {normalise(n) for n in ENTERPRISE_LAYERS}:
            chosen.append(_Chosen(path, file, name, "enterprise"))  # the register, before the network
            continue
        table = wanted or table_of(name)
        lines = (dict(layers)[name] or "").startswith(("LineString", "MultiLineString"))
        if dict(layers)[name] is None:  # a sheet: only with coordinate columns
            if not _has_coordinates(path, name, table, mapping):
                skipped.append(f"{name}: no geometries (not a geodata layer)")
                continue
            lines = table in (None, "pipe")
        if table is None and len(names) == 1 and lines:
            table = "pipe"  # a lone line layer with an unknown name: pipes are what such files hold
        if table in importable:
            chosen.append(_Chosen(path, file, name, table))
        elif table:
            skipped.append(f"{name}: {table} layers are not imported")
        else:
            skipped.append(f"{name}: not recognised as any layer (to take it, name it under layers.<table>.names "
                           f"in a --mapping file, e.g. layers.valve.names: [{name}], or import it alone with "
                           f"--layer {name} --as KIND)")
    return chosen, skipped


FOLDER_SUFFIXES = (".gpkg", ".shp", ".geojson", ".json", ".csv", ".dxf")


def _plan(path: Path, file: str, layer: str | None, kind: str | None,
          mapping: FieldMapping) -> tuple[list[_Chosen], list[str]]:
    """What to import from a file, or from every geodata file of a folder (a Shapefile export:
    one file per layer), in write order; and what is skipped, with why."""
    if path.is_dir():
        if layer or kind:
            raise QiwangError(f"{file} is a folder: --layer and --as name one layer of one file")
        files = sorted(f for f in path.iterdir() if f.suffix.lower() in FOLDER_SUFFIXES and not f.name.startswith("."))
        if not files:
            raise ImportFailed(file, [f"{file}:*:*:*: no geodata files ({', '.join(FOLDER_SUFFIXES)}) in this folder"])
        chosen, skipped = [], []
        for member in files:
            label = f"{file.rstrip('/')}/{member.name}"
            more, why = _choose(member, _layers(member, label), label, None, None, mapping)
            chosen += more
            skipped += [f"{member.name}:{reason}" for reason in why]
    else:
        chosen, skipped = _choose(path, _layers(path, file), file, layer, kind, mapping)
    if not chosen:
        raise ImportFailed(file, [f"{file}:*:*:*: nothing to import: " + "; ".join(skipped)])
    order = {table: i for i, table in enumerate(LAYER_ORDER)}
    return sorted(chosen, key=lambda c: order.get(c.table, len(order))), skipped


def _check_references(conn: Connection, prepared_layers: list[_Prepared]) -> None:
    """Every code naming another feature names one of this import or of the database (same
    enterprise); each that does not is a problem line."""
    keys: dict[str, set[tuple[str, str]]] = {}
    for prepared in prepared_layers:
        if "code" in prepared.rows:
            keys.setdefault(prepared.table, set()).update(
                zip(prepared.rows["enterprise_code"].to_numpy(dtype=object),
                    prepared.rows["code"].to_numpy(dtype=object), strict=True))
        if prepared.named is not None:  # the nodes a pipe layer makes by naming them
            keys.setdefault("node", set()).update(zip(prepared.named.frame["enterprise_code"].to_numpy(dtype=object),
                                                      prepared.named.frame["code"].to_numpy(dtype=object), strict=True))
    for prepared in prepared_layers:
        enterprises = prepared.rows["enterprise_code"].to_numpy(dtype=object)
        for column, codes in prepared.refs.items():
            if prepared.named is not None and column in ("from_node_id", "to_node_id"):
                continue  # named nodes exist or are made (_named_nodes)
            targets = _targets(prepared, column).to_numpy(dtype=object)
            for referenced in sorted({t for t in targets if isinstance(t, str)}):
                pairs = list(zip(enterprises, codes.to_numpy(dtype=object), strict=True))
                inside = keys.get(referenced, set())
                missing = [i for i, (e, c) in enumerate(pairs) if targets[i] == referenced and e is not None
                           and c is not None and (e, c) not in inside]
                if not missing:
                    continue
                wanted = sorted({pairs[i][1] for i in missing})
                stored = {tuple(r) for r in conn.execute(
                    text(f"SELECT enterprise_code, code FROM {referenced} WHERE code = ANY(:c)"), {"c": wanted})}
                bad = [i for i in missing if pairs[i] not in stored]
                prepared.problems.rows(np.array(bad, dtype=np.int64), prepared.ref_fields[column], [
                    f"no {referenced} {pairs[i][1]!r} of enterprise {pairs[i][0]} in this import or the database"
                    for i in bad])


# -- writing ---------------------------------------------------------------------------------------
@contextmanager
def _bulk(conn: Connection, tables: list[str], rows: int) -> Iterator[None]:
    """Indexes and constraints off during a large COPY into small tables, rebuilt (and so checked)
    after it, in the caller's transaction, as db.bulk_load does for the demo city."""
    existing = conn.execute(text(f"SELECT count(*) FROM (SELECT 1 FROM {tables[0]} LIMIT {rows}) s")).scalar_one()
    if rows < BULK_ROWS or existing >= rows:
        yield
        return
    with constraints_deferred(conn, tables):
        yield


def _write_pipes(conn: Connection, prepared: _Prepared, nodes: _Nodes, srid: int) -> None:
    """COPY the new nodes, then the pipes pointing at them (one transaction: the caller's)."""
    conn.execute(text("LOCK TABLE node, pipe IN SHARE ROW EXCLUSIVE MODE"))  # ids below stay ours
    with _bulk(conn, ["pipe", "node"], len(prepared.rows)):
        _copy_pipes(conn, prepared, nodes, srid)
    for table in ("node", "pipe"):
        conn.execute(text(f"ANALYZE {table}"))


def _copy_pipes(conn: Connection, prepared: _Prepared, nodes: _Nodes, srid: int) -> None:
    base = int(conn.execute(text("SELECT COALESCE(max(id), 0) FROM node")).scalar_one())
    frame = nodes.frame.copy()
    ids = base + 1 + np.arange(len(frame), dtype=np.int64)
    frame.insert(0, "id", ids)
    frame.insert(1, "code", pd.Series(ids).astype(str).str.zfill(8).radd("JD").to_numpy(dtype=object))
    taken = conn.execute(text("SELECT code FROM node WHERE code = ANY(:c) LIMIT 1"),
                         {"c": frame["code"].tolist()}).scalar()
    if taken:
        raise QiwangError(f"node code {taken} already exists: cannot number the new nodes; nothing imported")
    frame["geom"] = shapely.set_srid(frame["geom"].to_numpy(), srid)
    copy_frame(conn, "node", to_copy_text(frame, ("geom",)))
    conn.execute(text("SELECT setval(pg_get_serial_sequence('node', 'id'), GREATEST((SELECT max(id) FROM node), 1))"))

    def node_ids(index: np.ndarray) -> np.ndarray:
        return np.where(index >= 0, ids[np.maximum(index, 0)] if len(ids) else 0, -index - 1)

    pipes = prepared.rows.copy()
    pipes["from_node_id"] = node_ids(nodes.from_node)
    pipes["to_node_id"] = node_ids(nodes.to_node)
    pipes["geom"] = shapely.set_srid(nodes.geoms, srid)
    copy_frame(conn, "pipe", to_copy_text(pipes, ("geom",)))


def _write_named_nodes(conn: Connection, prepared: _Prepared, srid: int) -> None:
    """COPY the nodes a pipe layer names and nobody has yet; the pipes' from/to node ids are then
    known (those nodes, or the node layer's and the database's by code) and set on its rows."""
    assert prepared.named is not None
    conn.execute(text("LOCK TABLE node IN SHARE ROW EXCLUSIVE MODE"))  # ids below stay ours
    n = len(prepared.rows)
    nodes = prepared.named.frame.copy()
    base = int(conn.execute(text("SELECT COALESCE(max(id), 0) FROM node")).scalar_one())
    ids = base + 1 + np.arange(len(nodes), dtype=np.int64)
    nodes.insert(0, "id", ids)
    nodes["geom"] = shapely.set_srid(nodes["geom"].to_numpy(), srid)
    with _bulk(conn, ["node"], len(nodes)):
        copy_frame(conn, "node", to_copy_text(nodes, ("geom",)))
    conn.execute(text("SELECT setval(pg_get_serial_sequence('node', 'id'), GREATEST((SELECT max(id) FROM node), 1))"))
    conn.execute(text("ANALYZE node"))
    for side, column in enumerate(("from_node_id", "to_node_id")):
        made = prepared.named.node_of_end[side * n:(side + 1) * n]
        elsewhere = _reference_ids(conn, "node", prepared.rows["enterprise_code"],
                                   prepared.refs.pop(column).where(made < 0))
        prepared.rows[column] = np.where(made >= 0, ids[np.maximum(made, 0)] if len(ids) else 0,
                                         elsewhere.to_numpy(dtype=np.int64, na_value=0))
        prepared.carried.append(column)


def _subset(prepared: _Prepared, mask: np.ndarray) -> _Prepared:
    """The rows of a layer that `mask` picks, to be written one way (inserted, or updated)."""
    return dataclasses.replace(
        prepared, rows=prepared.rows[mask].reset_index(drop=True), geoms=prepared.geoms[mask],
        refs={column: codes[mask].reset_index(drop=True) for column, codes in prepared.refs.items()},
        named=None, existing=None)


def _feature_rows(conn: Connection, prepared: _Prepared, srid: int, keyring: Keyring | None) -> pd.DataFrame:
    """One layer's rows as stored: references to other features turned from codes into ids (the
    features they name are in the database by now: layers are written in LAYER_ORDER), personal
    columns sealed (`keyring`: needed when the table has some), geometry with its SRID."""
    rows = prepared.rows.copy()
    if prepared.table in PERSONAL_COLUMNS:
        assert keyring is not None, "import_file loads the keyring for tables with personal columns"
        rows = seal_frame(prepared.table, rows, keyring)
    for column, codes in prepared.refs.items():
        targets = _targets(prepared, column)
        ids = pd.Series(pd.NA, index=rows.index, dtype="Int64")
        for referenced in sorted({t for t in targets.dropna()}):
            mine = (targets == referenced).to_numpy()
            ids[mine] = _reference_ids(conn, referenced, rows["enterprise_code"][mine], codes[mine])
        rows[column] = ids
    rows["geom"] = shapely.set_srid(prepared.geoms, srid)
    return rows


def _write_features(conn: Connection, prepared: _Prepared, srid: int, keyring: Keyring | None) -> None:
    """COPY one layer's new features (_feature_rows)."""
    rows = _feature_rows(conn, prepared, srid, keyring)
    with _bulk(conn, [prepared.table], len(rows)):
        copy_frame(conn, prepared.table, to_copy_text(rows, ("geom",)))
    conn.execute(text(f"ANALYZE {prepared.table}"))


def _update_features(conn: Connection, prepared: _Prepared, srid: int, keyring: Keyring | None) -> int:
    """Update stored features by (enterprise, code): the columns the file carries, the references
    it gives, the geometry (and the sealed companions of personal columns); every other column
    keeps its stored value. Returns the rows updated."""
    rows = _feature_rows(conn, prepared, srid, keyring)
    sealed = [c for c in rows.columns if c not in prepared.rows.columns]
    columns = [c for c in rows.columns
               if c in {*prepared.carried, *prepared.refs, *sealed, "geom"} and c not in ("code", "enterprise_code")]
    key = ["enterprise_code", "code"]
    conn.execute(text(f"CREATE TEMP TABLE import_update ON COMMIT DROP AS "
                      f"SELECT {', '.join(key + columns)} FROM {prepared.table} WITH NO DATA"))
    copy_frame(conn, "import_update", to_copy_text(rows[key + columns], ("geom",)))
    updated = conn.execute(text(
        f"UPDATE {prepared.table} t SET {', '.join(f'{c} = u.{c}' for c in columns)}, updated_at = now() "
        "FROM import_update u WHERE t.enterprise_code = u.enterprise_code AND t.code = u.code")).rowcount
    conn.execute(text("DROP TABLE import_update"))
    conn.execute(text(f"ANALYZE {prepared.table}"))
    return int(updated)


def _replace_enterprise(conn: Connection, file: str, enterprise: str) -> dict[str, int]:
    """Delete the network of `enterprise` (NETWORK_TABLES) for --mode replace-enterprise, in the
    import's transaction; refused (ImportFailed, nothing deleted) while rows outside it (customers,
    sentries, …) name its features through a foreign key that would forbid the deletion."""
    blocking = conn.execute(text(
        "SELECT c.conrelid::regclass::text, a.attname, c.confrelid::regclass::text FROM pg_constraint c "
        "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
        "WHERE c.contype = 'f' AND c.confrelid::regclass::text = ANY(:t) AND NOT c.conrelid::regclass::text = ANY(:t) "
        "AND c.confdeltype IN ('a', 'r') ORDER BY 1, 2"), {"t": list(NETWORK_TABLES)}).all()
    lines = []
    for table, column, referenced in blocking:
        named = conn.execute(text(f"SELECT count(*) FROM {table} x JOIN {referenced} r ON r.id = x.{column} "
                                  "WHERE r.enterprise_code = :e"), {"e": enterprise}).scalar_one()
        if named:
            lines.append(f"{file}:*:*:--mode: replace-enterprise cannot replace the network of enterprise "
                         f"{enterprise}: {named:,} {table} rows name its {referenced} features ({table}.{column}); "
                         f"import them in the same file, or use --mode upsert")
    if lines:
        raise ImportFailed(file, lines)
    deleted = {}
    for table in reversed(LAYER_ORDER):
        if table in NETWORK_TABLES:
            deleted[table] = int(conn.execute(text(f"DELETE FROM {table} WHERE enterprise_code = :e"),
                                              {"e": enterprise}).rowcount)
    return {table: n for table, n in deleted.items() if n}


def _kept_nodes(conn: Connection, prepared: _Prepared, tolerance_m: float) -> None:
    """Pipes updated without node codes keep their stored nodes: their drawn ends must lie within
    `tolerance_m` (metres, in plan) of them, and are moved onto them."""
    assert prepared.existing is not None
    rows, n = prepared.rows, len(prepared.rows)
    stored = pd.DataFrame(conn.execute(text(
        "SELECT p.enterprise_code, p.code, f.code, ST_X(f.geom), ST_Y(f.geom), t.code, ST_X(t.geom), ST_Y(t.geom) "
        "FROM pipe p JOIN node f ON f.id = p.from_node_id JOIN node t ON t.id = p.to_node_id "
        "WHERE p.code = ANY(:c)"), {"c": sorted(set(rows.loc[prepared.existing, "code"]))}).all(),
        columns=["enterprise_code", "code", "from_code", "fx", "fy", "to_code", "tx", "ty"])
    nodes = rows[["enterprise_code", "code"]].merge(stored, how="left", on=["enterprise_code", "code"])
    points = np.concatenate([shapely.get_point(prepared.geoms, 0), shapely.get_point(prepared.geoms, -1)])
    xy = np.column_stack([shapely.get_x(points), shapely.get_y(points)])
    target = np.vstack([nodes[["fx", "fy"]].to_numpy(dtype=float), nodes[["tx", "ty"]].to_numpy(dtype=float)])
    distance = np.hypot(*(xy - target).T)
    mine = np.concatenate([prepared.existing] * 2) & ~np.isnan(distance)
    code_field = "geometry"
    for end in np.flatnonzero(mine & (distance > tolerance_m)):
        row, side = end % n, int(end // n)
        node = nodes.iloc[row]["from_code" if side == 0 else "to_code"]
        prepared.problems.rows(np.array([row]), code_field, (
            f"the pipe's drawn {'start' if side == 0 else 'end'} is {distance[end]:,.2f} m from its stored "
            f"{'from' if side == 0 else 'to'}-node {node!r} (tolerance {tolerance_m:g} m): an update keeps a "
            "pipe's nodes unless the file names them (from/to node codes)"))
    moved = mine & (distance > 0) & (distance <= tolerance_m)
    prepared.geoms = _ends_moved(prepared.geoms, target, moved)


def _reference_ids(conn: Connection, table: str, enterprise: pd.Series, codes: pd.Series) -> pd.Series:
    """Ids of the features of `table` that (enterprise, code) name; <NA> where no code is given."""
    wanted = sorted(set(codes.dropna()))
    found = pd.DataFrame(conn.execute(
        text(f"SELECT enterprise_code, code, id FROM {table} WHERE code = ANY(:c)"), {"c": wanted}).all(),
        columns=["enterprise_code", "code", "id"])
    key = pd.DataFrame({"enterprise_code": enterprise.to_numpy(dtype=object), "code": codes.to_numpy(dtype=object)})
    ids = key.merge(found, how="left", on=["enterprise_code", "code"])["id"]  # a left merge keeps the order
    return pd.Series(ids.to_numpy(), index=codes.index).astype("Int64")


def _snapped_pipes(conn: Connection, prepared: _Prepared, tolerance_m: float, srid: int) -> _Nodes:
    """Nodes built from the pipe ends (reusing nodes already written), reported on the layer; an
    ImportFailed when a pipe would start and end on one node."""
    nodes = _build_nodes(conn, prepared.rows, prepared.geoms, tolerance_m, srid)
    report = prepared.report
    report.new_nodes, report.reused_nodes = len(nodes.frame), nodes.reused
    report.snapped_ends, report.max_snap_m = nodes.snapped, nodes.max_snap
    loops = [f"{report.source}:{row + 1}:geometry: both ends on one node (a closed line, "
             f"or shorter than the {tolerance_m:g} m snapping tolerance)"
             for row in np.flatnonzero(nodes.from_node == nodes.to_node)]
    if loops:
        raise ImportFailed(report.source.rsplit(":", 1)[0], loops)
    return nodes


def import_file(
    engine: Engine,
    path: Path,
    layer: str | None = None,
    kind: str | None = None,
    crs: str | None = None,
    enterprise: str | None = None,
    dry_run: bool = False,
    tolerance_m: float = SNAP_TOLERANCE_M,
    file_label: str | None = None,
    mapping_file: Path | None = None,
    echo: Callable[[str], None] = lambda _: None,
    keyring: Keyring | None = None,
    set_values: dict[str, dict[str, str]] | None = None,
    mode: str = "insert",
    datum_options: DatumOptions = DatumOptions(),
) -> ImportReport:
    """Check a file (or every geodata file of a folder) and, when nothing is wrong and not
    `dry_run`, import every layer it recognises in one transaction.

    Raises ImportFailed (with every problem line) when anything is wrong; nothing is written then.
    Layers are written nodes first, then the layers that name them by code (LAYER_ORDER); a dry
    run writes too, inside the transaction, so that the database's own checks run, then rolls back.
    `crs` is an EPSG code or LOCAL:<grid of the mapping file>; `tolerance_m` the snapping distance
    for pipe ends, in metres of the storage CRS; `mapping_file` a YAML file laid over
    data/field_mapping.yaml; `set_values` table → column → value, constants of `--set`
    (parse_set_options). `mode` one of MODES: update and upsert match stored features by
    (enterprise, code) and set only what the file carries; replace-enterprise (with `enterprise`)
    deletes that enterprise's network first. `datum_options`: a transformation of unknown accuracy
    or worse than 1 m (Beijing 1954, Xian 1980) is refused unless it gives one or accepts it.
    An import written is recorded in import_log
    (ingest/import_log.py). `echo` gets one line per step (reading, writing). `keyring` seals
    the phone numbers of the layers that have some (default: the deployment's,
    accounts.personal_data.load_keyring, made when missing).
    """
    file = file_label or str(path)
    if kind is not None and kind not in IMPORT_KINDS:
        raise QiwangError(f"--as {kind}: choose one of {', '.join(IMPORT_KINDS)}")
    if enterprise is not None and not ENTERPRISE_CODE.is_valid(enterprise):
        raise QiwangError(f"--enterprise {enterprise}: an enterprise code is {ENTERPRISE_CODE.description}")
    if not (0 <= tolerance_m <= 10):
        raise QiwangError(f"snapping tolerance {tolerance_m} m: give 0 to 10 m")
    if mode not in MODES:
        raise QiwangError(f"--mode {mode}: choose one of {', '.join(MODES)}")
    if mode == "replace-enterprise" and enterprise is None:
        raise QiwangError("--mode replace-enterprise: name the enterprise whose network the file replaces "
                          "with --enterprise CODE")
    mapping = load_mapping(mapping_file)
    chosen, skipped = _plan(path, file, layer, kind, mapping)
    report = ImportReport(file, skipped=skipped, tolerance_m=tolerance_m, mode=mode)
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            if mode == "replace-enterprise":
                assert enterprise is not None
                with audit.bulk(conn, "import_replace", {"file": str(file), "enterprise": enterprise}) as summary:
                    report.deleted = summary["deleted"] = _replace_enterprise(conn, file, enterprise)
            registered = _register_enterprises(conn, [c for c in chosen if c.table == "enterprise"], mapping,
                                               skipped)
            chosen = [c for c in chosen if c.table != "enterprise"]
            report.registered = registered
            prepared_layers = _prepared_layers(conn, chosen, mapping, crs, enterprise, set_values or {}, mode,
                                               tolerance_m, echo, datum_options)
            lines = [line for prepared in prepared_layers for line in prepared.problems.lines()]
            if lines:
                raise ImportFailed(file, lines, skipped)
            srid = table_schema(conn, "node").srid
            if keyring is None and any(p.table in PERSONAL_COLUMNS for p in prepared_layers):
                keyring = load_keyring()
            if chosen:
                conn.execute(text(f"LOCK TABLE {', '.join(dict.fromkeys(c.table for c in chosen))} "
                                  "IN SHARE ROW EXCLUSIVE MODE"))  # codes checked above stay free
            # one audit row for the whole import rather than one per feature (accounts/audit.py)
            with audit.bulk(conn, "import", {"file": str(file), "mode": mode}) as summary:
                for number, prepared in enumerate(prepared_layers, 1):
                    report.layers.append(prepared.report)
                    echo(f"[{number}/{len(prepared_layers)}] writing {prepared.report.features:,} "
                         f"{prepared.table} rows")
                    _write_layer(conn, prepared, srid, keyring, tolerance_m)
                summary["rows"] = {p.table: p.report.features for p in prepared_layers}
            if not dry_run:
                report.log_id = import_log.record(
                    conn, file_name=file, digest=import_log.sha256(path, _members(path)), mode=mode,
                    enterprises=sorted({e for p in prepared_layers for e in p.rows["enterprise_code"].dropna()}),
                    counts=[{"layer": layer, "table": "enterprise", "inserted": n} for layer, n in registered]
                    + [{"layer": p.report.source.rsplit(":", 1)[-1], "table": p.table,
                             "inserted": p.report.inserted, "updated": p.report.updated} for p in prepared_layers]
                    + [{"layer": "(replaced)", "table": t, "deleted": n} for t, n in report.deleted.items()],
                    crs=[{"layer": p.report.source.rsplit(":", 1)[-1], **p.crs_record} for p in prepared_layers],
                    mapping={"file": str(mapping_file) if mapping_file else None,
                             "text": mapping_file.read_text(encoding="utf-8") if mapping_file else None,
                             "set": set_values or {}})
            if dry_run:
                transaction.rollback()
            else:
                transaction.commit()
                report.written = True
        except (DBAPIError, psycopg.Error) as exc:  # COPY runs on the driver's connection: psycopg's own errors
            transaction.rollback()
            orig = exc.orig if isinstance(exc, DBAPIError) else exc
            first = str(orig).strip().splitlines()[0] if orig else str(exc)
            constraint = getattr(getattr(orig, "diag", None), "constraint_name", None)
            raise QiwangError(f"the database refused the import of {file}, nothing was written: {first}"
                              + (f" (constraint {constraint})" if constraint else "")) from None
        except BaseException:
            transaction.rollback()
            raise
    return report


def _register_enterprises(conn: Connection, layers: list[_Chosen], mapping: FieldMapping,
                          skipped: list[str]) -> list[tuple[str, int]]:
    """Register the enterprises of the file's `enterprises` layers (appendix A.1 #1, checked as
    `./qiwang enterprise add` checks one) in the import's transaction, before the network layers
    that name them; ImportFailed with every problem line otherwise."""
    written, lines = [], []
    for item in layers:
        frame = _read(item.path, item.file, item.layer, mapping, item.table).frame
        rows, problems = prepare_enterprises(conn, frame, item.file, item.layer)
        lines += problems
        if not problems:
            written.append((item.layer, write_enterprises(conn, rows)))
    if lines:
        raise ImportFailed(layers[0].file, lines, skipped)
    return written


def _members(path: Path) -> list[Path] | None:
    """A folder's geodata files (and their sidecars), in name order; None for a file."""
    if not path.is_dir():
        return None
    return sorted(f for f in path.iterdir() if f.is_file() and not f.name.startswith("."))


def _prepared_layers(conn: Connection, chosen: list[_Chosen], mapping: FieldMapping, crs: str | None,
                     enterprise: str | None, set_values: dict[str, dict[str, str]], mode: str,
                     tolerance_m: float, echo: Callable[[str], None],
                     datum_options: DatumOptions = DatumOptions()) -> list[_Prepared]:
    """Every chosen layer read, converted and checked, alone and against the others (nodes by
    name, kept nodes of updated pipes, references); problems are on each layer's `problems`."""
    prepared_layers = []
    for number, item in enumerate(chosen, 1):
        echo(f"[{number}/{len(chosen)}] reading {item.file}:{item.layer} → {item.table}")
        source = _read(item.path, item.file, item.layer, mapping, item.table)
        prepared, _ = _prepare(conn, source, item.file, item.table, mapping, crs, enterprise,
                               set_values.get(item.table), "insert" if mode == "replace-enterprise" else mode,
                               datum_options)
        if mode == "replace-enterprise":
            other = np.flatnonzero(prepared.rows["enterprise_code"].notna().to_numpy()
                                   & (prepared.rows["enterprise_code"] != enterprise).to_numpy())
            prepared.problems.rows(other, prepared.enterprise_field, [
                f"--mode replace-enterprise replaces the network of enterprise {enterprise}: this feature is of "
                f"enterprise {prepared.rows['enterprise_code'].iloc[i]}" for i in other])
        prepared_layers.append(prepared)
    imported = [_node_positions(p.rows, p.geoms) for p in prepared_layers if p.table == "node"]
    for prepared in prepared_layers:
        if prepared.table == "pipe" and prepared.report.nodes_by_code:
            _named_nodes(conn, prepared, imported, tolerance_m)
            assert prepared.named is not None
            imported.append(_node_positions(prepared.named.frame, prepared.named.frame["geom"].to_numpy()))
        elif prepared.table == "pipe" and prepared.existing is not None:
            _kept_nodes(conn, prepared, tolerance_m)
    _check_references(conn, prepared_layers)
    _check_network_rules(conn, prepared_layers, tolerance_m)
    return prepared_layers


def _pipe_ends(conn: Connection, prepared_layers: list[_Prepared], wanted: set[tuple[str, str]]) -> pd.DataFrame:
    """enterprise_code, code, from/to node codes and line of the pipes `wanted` names: this
    import's (node codes known only where the layer names its nodes), else the database's."""
    frames = []
    for prepared in prepared_layers:
        if prepared.table == "pipe":
            named = prepared.report.nodes_by_code
            frames.append(pd.DataFrame({
                "enterprise_code": prepared.rows["enterprise_code"].to_numpy(dtype=object),
                "code": prepared.rows["code"].to_numpy(dtype=object),
                "from_code": prepared.refs["from_node_id"].to_numpy(dtype=object) if named else None,
                "to_code": prepared.refs["to_node_id"].to_numpy(dtype=object) if named else None,
                "line": prepared.geoms}))
    here = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["enterprise_code", "code", "from_code", "to_code", "line"])
    missing = sorted({code for enterprise, code in wanted} - set(here["code"]))
    if missing:
        stored = pd.DataFrame(conn.execute(text(
            "SELECT p.enterprise_code, p.code, f.code, t.code, ST_AsBinary(p.geom) FROM pipe p "
            "JOIN node f ON f.id = p.from_node_id JOIN node t ON t.id = p.to_node_id WHERE p.code = ANY(:c)"),
            {"c": missing}).all(), columns=["enterprise_code", "code", "from_code", "to_code", "line"])
        stored["line"] = shapely.from_wkb(stored["line"].map(bytes).to_numpy(dtype=object))
        here = pd.concat([here, stored], ignore_index=True)
    return here.drop_duplicates(["enterprise_code", "code"])


def _check_network_rules(conn: Connection, prepared_layers: list[_Prepared], tolerance_m: float) -> None:
    """The network's consistency rules (network_analysis/consistency.py), which the editing path
    checks too: a valve's node is an end of its pipe and its point lies on the pipe within
    `tolerance_m` (m); a regulator joins two pressure classes."""
    for prepared in prepared_layers:
        if prepared.table == "valve" and "pipe_id" in prepared.refs:
            rows = prepared.rows
            pipe_codes = prepared.refs["pipe_id"]
            wanted = set(zip(rows["enterprise_code"], pipe_codes.dropna(), strict=False))
            pipes = _pipe_ends(conn, prepared_layers, wanted)
            of = pd.DataFrame({"enterprise_code": rows["enterprise_code"].to_numpy(dtype=object),
                               "code": pipe_codes.to_numpy(dtype=object)}).merge(
                pipes, how="left", on=["enterprise_code", "code"])
            if "node_id" in prepared.refs:
                ends = consistency.node_not_an_end(prepared.refs["node_id"].to_numpy(dtype=object),
                                                   of["from_code"].to_numpy(dtype=object),
                                                   of["to_code"].to_numpy(dtype=object))
                prepared.problems.rows(ends.rows, prepared.ref_fields["node_id"], ends.reasons)
            if "node_id" in prepared.refs:  # UNIQUE (pipe_id, node_id): one valve per pipe end
                pair = pd.Series(list(zip(rows["enterprise_code"], pipe_codes, prepared.refs["node_id"], strict=True)))
                known = pipe_codes.notna().to_numpy() & prepared.refs["node_id"].notna().to_numpy()
                twice = np.flatnonzero(known & pair.duplicated().to_numpy())
                first = {p: i for i, p in reversed(list(enumerate(pair)))}
                prepared.problems.rows(twice, prepared.ref_fields["node_id"], [
                    f"a second valve at node {pair[i][2]!r} of pipe {pair[i][1]!r} "
                    f"(the first is row {first[pair[i]] + 1})" for i in twice])
            lines = of["line"].to_numpy(dtype=object, copy=True)
            lines[pd.isna(lines)] = None
            off = consistency.points_off_lines(prepared.geoms, lines, tolerance_m)
            prepared.problems.rows(off.rows, "geometry", off.reasons)
        elif prepared.table == "regulator" and {"inlet_pressure_class", "outlet_pressure_class"} <= set(prepared.rows):
            same = consistency.same_pressure_class(prepared.rows["inlet_pressure_class"].to_numpy(dtype=object),
                                                   prepared.rows["outlet_pressure_class"].to_numpy(dtype=object))
            prepared.problems.rows(same.rows, "outlet_pressure_class", same.reasons)


def _write_layer(conn: Connection, prepared: _Prepared, srid: int, keyring: Keyring | None,
                 tolerance_m: float) -> None:
    """Write one checked layer: its new features inserted, its stored ones updated."""
    if prepared.named is not None:
        _write_named_nodes(conn, prepared, srid)
    new = np.ones(len(prepared.rows), dtype=bool) if prepared.existing is None else ~prepared.existing
    if new.any():
        part = prepared if new.all() else _subset(prepared, new)
        if prepared.table == "pipe" and prepared.named is None:
            _write_pipes(conn, part, _snapped_pipes(conn, part, tolerance_m, srid), srid)
        else:
            _write_features(conn, part, srid, keyring)
        prepared.report.inserted = int(new.sum())
    if not new.all():
        prepared.report.updated = _update_features(conn, _subset(prepared, ~new), srid, keyring)
