"""Export of network layers to GeoPackage, Shapefile, GeoJSON and CSV (`./qiwang export`).

Each layer is read with one SQL query (geometry as ISO WKB, so Z survives; transformed in PostGIS
when another CRS is asked for) and written with pyogrio, in chunks so that a million pipes never sit
in memory at once. Every attribute is written; each dictionary code column gets a `<column>_label`
beside it with the Chinese label, and references to other features (`from_node_id`) are written as
those features' codes (`from_node_code`), because ids mean nothing outside this database.

Personal data (table customer_personal) is never exported. Output is written next to OUT under a
temporary name and moved into place at the end, so a failed export leaves no half-written file.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError
from sqlalchemy import Connection, Engine, text

from app.errors import QiwangError
from ingest.field_mapping import LABEL_SUFFIX, TableSchema, load_mapping, table_schema

DEFAULT_LAYERS = ("pipe", "node", "valve", "station", "regulator", "sentry", "customer", "sensitive_site", "hazard")
EXPORTABLE_LAYERS = (*DEFAULT_LAYERS, "device", "road", "railway", "river")
# (GDAL driver, file extension, layer creation options)
FORMATS: dict[str, tuple[str, str, dict[str, str]]] = {
    "gpkg": ("GPKG", ".gpkg", {}),
    "shp": ("ESRI Shapefile", ".shp", {}),
    "geojson": ("GeoJSON", ".geojson", {}),
    "csv": ("CSV", ".csv", {"GEOMETRY": "AS_WKT", "CREATE_CSVT": "YES"}),
}
APPENDABLE = {"gpkg", "shp"}  # drivers that take chunk after chunk into one layer
CHUNK_ROWS = 100_000
_PYOGRIO_TYPES = {"POINT": "Point", "LINESTRING": "LineString", "POLYGON": "Polygon",
                  "MULTIPOINT": "MultiPoint", "MULTILINESTRING": "MultiLineString",
                  "MULTIPOLYGON": "MultiPolygon"}
_NULLABLE_INTS = {"smallint": "Int16", "integer": "Int32", "bigint": "Int64"}


@dataclass
class ExportResult:
    """What was written: features per layer, the CRS, and the paths."""

    crs: str
    counts: dict[str, int] = field(default_factory=dict)
    paths: list[Path] = field(default_factory=list)


def parse_crs(value: str) -> int:
    """EPSG code of a --crs value such as 'EPSG:4490' or '4490'."""
    try:
        crs = CRS.from_user_input(value if not value.isdigit() else f"EPSG:{value}")
    except CRSError:
        raise QiwangError(f"--crs {value}: not a coordinate reference system pyproj knows") from None
    epsg = crs.to_epsg()
    if epsg is None:
        raise QiwangError(f"--crs {value}: give an EPSG code (EPSG:XXXX)")
    return epsg


def parse_bbox(value: str) -> tuple[float, float, float, float]:
    """minx,miny,maxx,maxy in the export CRS."""
    try:
        minx, miny, maxx, maxy = (float(v) for v in value.split(","))
    except ValueError:
        raise QiwangError(f"--bbox {value}: expected minx,miny,maxx,maxy (four numbers)") from None
    if minx >= maxx or miny >= maxy:
        raise QiwangError(f"--bbox {value}: min must be below max on both axes")
    return minx, miny, maxx, maxy


def _select(schema: TableSchema, srid: int, bbox: tuple[float, float, float, float] | None) -> str:
    """SELECT of all attributes, dictionary labels and referenced codes, geometry as WKB in `srid`."""
    parts, joins = [], []
    for column, sql_type in schema.columns.items():
        if column in ("id", schema.geometry):
            continue
        value = f"t.{column}"
        if column in schema.references:
            joins.append(f"LEFT JOIN {schema.references[column]} r_{column} ON r_{column}.id = t.{column}")
            parts.append(f"r_{column}.code AS {column.removesuffix('_id')}_code")
            continue
        if sql_type.startswith("geometry"):  # a second geometry (e.g. a track): WKT text
            parts.append(f"ST_AsText(ST_Transform(t.{column}, {srid})) AS {column}_wkt")
            continue
        if sql_type == "numeric":
            value = f"t.{column}::float8"  # not Decimal: every format has a real type
        elif sql_type == "date":
            value = f"to_char(t.{column}, 'YYYY-MM-DD')"  # ISO text reads back the same everywhere
        elif sql_type.startswith("timestamp"):
            value = f"""to_char(t.{column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')"""
        elif sql_type == "jsonb":
            value = f"t.{column}::text"
        parts.append(f"{value} AS {column}")
        if column in schema.dictionaries:
            joins.append(f"LEFT JOIN dict.{schema.dictionaries[column]} d_{column} ON d_{column}.code = t.{column}")
            parts.append(f"d_{column}.label_zh AS {column}{LABEL_SUFFIX}")
    geom = f"t.{schema.geometry}" if srid == schema.srid else f"ST_Transform(t.{schema.geometry}, {srid})"
    where = ""
    if bbox:
        envelope = f"ST_MakeEnvelope({', '.join(repr(v) for v in bbox)}, {srid})"
        if srid != schema.srid:
            envelope = f"ST_Transform({envelope}, {schema.srid})"
        where = f"WHERE t.{schema.geometry} && {envelope}"
    return (
        f"SELECT {', '.join(parts)}, ST_AsBinary({geom}) AS geom_wkb "
        f"FROM {schema.name} t {' '.join(joins)} {where} ORDER BY t.id"
    )


def _geometry_type(conn: Connection, table: str) -> str:
    """pyogrio's name for the layer's geometry type, e.g. 'LineString Z'."""
    row = conn.execute(
        text("SELECT type, coord_dimension FROM geometry_columns WHERE f_table_name = :t AND f_geometry_column = 'geom'"),
        {"t": table},
    ).one()
    base = _PYOGRIO_TYPES.get(row[0].upper().removesuffix("Z"), "Unknown")
    return f"{base} Z" if row[1] == 3 and base != "Unknown" else base


def _chunks(conn: Connection, schema: TableSchema, srid: int,
            bbox: tuple[float, float, float, float] | None) -> Iterator[gpd.GeoDataFrame]:
    """The layer's rows, CHUNK_ROWS at a time (at least one frame, empty for an empty layer)."""
    dtypes = {c: _NULLABLE_INTS[t] for c, t in schema.columns.items() if t in _NULLABLE_INTS and c != "id"}
    dtypes = {c: t for c, t in dtypes.items() if c not in schema.references}
    streaming = conn.execution_options(stream_results=True, max_row_buffer=CHUNK_ROWS)
    empty = True
    for chunk in pd.read_sql(text(_select(schema, srid, bbox)), streaming, chunksize=CHUNK_ROWS, dtype=dtypes):
        geometry = shapely.from_wkb(chunk.pop("geom_wkb").to_numpy())
        empty = False
        yield gpd.GeoDataFrame(chunk, geometry=geometry, crs=f"EPSG:{srid}")
    if empty:  # an empty layer still gets its fields, so readers see the schema
        frame = pd.read_sql(text(f"SELECT * FROM ({_select(schema, srid, bbox)}) s LIMIT 0"), conn, dtype=dtypes)
        frame.pop("geom_wkb")
        yield gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries([], crs=f"EPSG:{srid}"), crs=f"EPSG:{srid}")


def _shapefile_frame(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Columns renamed to their ≤ 10-character dBASE names (data/field_mapping.yaml)."""
    mapping = load_mapping()
    return frame.rename(columns={c: mapping.shapefile_name(c) for c in frame.columns if c != "geometry"})


def _write_layer(conn: Connection, table: str, fmt: str, path: Path, srid: int,
                 bbox: tuple[float, float, float, float] | None) -> int:
    """Write one table as one layer of `path`; returns features written."""
    driver, _, options = FORMATS[fmt]
    schema = table_schema(conn, table)
    geometry_type = _geometry_type(conn, table)
    # Shapefiles get a .cpg saying UTF-8, so that no reader has to guess the encoding.
    write = dict(layer=table, driver=driver, geometry_type=geometry_type, layer_options=options or None,
                 encoding="UTF-8" if fmt == "shp" else None)
    chunks = (_shapefile_frame(c) if fmt == "shp" else c for c in _chunks(conn, schema, srid, bbox))
    if fmt not in APPENDABLE:
        frames = list(chunks)
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        pyogrio.write_dataframe(frame, path, **write)
        return len(frame)
    written = 0
    for number, chunk in enumerate(chunks):
        pyogrio.write_dataframe(chunk, path, append=number > 0, **write)
        written += len(chunk)
    return written


def export(
    engine: Engine,
    out: Path,
    fmt: str,
    layers: list[str] | None = None,
    crs: str | None = None,
    bbox: str | None = None,
    echo: Callable[[str], None] = lambda _: None,
) -> ExportResult:
    """Write layers to OUT: one GeoPackage file (gpkg), or a folder with one file per layer.

    Coordinates are in `crs` (default: the storage CRS, EPSG:4550; Z = 1985 heights in metres);
    `bbox` is minx,miny,maxx,maxy in that CRS. A single layer written to a path ending in the
    format's extension becomes that one file.
    """
    if fmt not in FORMATS:
        raise QiwangError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    chosen = list(layers or DEFAULT_LAYERS)
    unknown = [name for name in chosen if name not in EXPORTABLE_LAYERS]
    if "customer_personal" in unknown:
        raise QiwangError("customer_personal holds personal data and is never exported")
    if unknown:
        raise QiwangError(f"unknown layer {unknown[0]!r}: choose from {', '.join(EXPORTABLE_LAYERS)}")
    srid = parse_crs(crs) if crs else None
    box = parse_bbox(bbox) if bbox else None
    ext = FORMATS[fmt][1]
    single_file = fmt == "gpkg" or (len(chosen) == 1 and out.suffix.lower() == ext)
    staging = out.parent / (f".{out.stem}.partial{out.suffix}" if single_file else f".{out.name}.partial")
    _remove(staging)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not single_file:
        staging.mkdir()
    with engine.connect() as conn:
        storage = table_schema(conn, chosen[0]).srid
        srid = srid or storage
        if not conn.execute(text("SELECT EXISTS (SELECT 1 FROM spatial_ref_sys WHERE srid = :s)"), {"s": srid}).scalar():
            raise QiwangError(f"--crs EPSG:{srid}: PostGIS has no definition for it")
        result = ExportResult(crs=f"EPSG:{srid}")
        try:
            for table in chosen:
                path = staging if single_file else staging / f"{table}{ext}"
                result.counts[table] = _write_layer(conn, table, fmt, path, srid, box)
                echo(f"{table}: {result.counts[table]:,} features")
        except BaseException:
            _remove(staging)
            raise
    if single_file:
        _remove(out)
        os.replace(staging, out)
        result.paths = [out]
    else:
        out.mkdir(parents=True, exist_ok=True)
        for written in sorted(staging.iterdir()):
            os.replace(written, out / written.name)
            result.paths.append(out / written.name)
        staging.rmdir()
    return result


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
