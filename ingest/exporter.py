"""Export of network layers to GeoPackage, Shapefile, GeoJSON, CSV, KML and DXF (`./qiwang export`).

Each layer is read with one SQL query (geometry as ISO WKB, so Z survives; transformed in PostGIS
when another CRS is asked for) and written with pyogrio, in chunks so that a million pipes never sit
in memory at once. Every attribute is written; each dictionary code column gets a `<column>_label`
beside it with the Chinese label, and references to other features (`from_node_id`) are written as
those features' codes (`from_node_code`), because ids mean nothing outside this database.

KML (for Google Earth and web maps) is one file, one folder per layer, always in lon/lat; DXF (for
CAD users) is written with ezdxf, not GDAL, because GDAL's DXF writer takes no attributes, writes a
fixed R2004 template in ANSI_1252 and has no way to set layer colours: see `_write_dxf`.

Personal data (table customer_personal) is never exported. Layers are read as the OGC API reads
them: from ``published.<table>`` where a table has that view, so staff names (张**), residents'
addresses and credit codes of individuals go out masked, as everywhere but GET /api/pii (the
owner's ``unmasked`` export, for backups and moves, reads the tables and is audited as a
``pii_read``). Phone numbers are masked in the tables themselves since migration 0018
(138****0000), and their sealed values and blind indexes (``x_sealed``, ``x_index``) are no
columns of `table_schema` (ingest/field_mapping.py), so no format ever carries them. Output is
written next to OUT under a temporary name and moved into place at the end, so a failed export
leaves no half-written file.
"""
from __future__ import annotations

import math
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import ezdxf
import ezdxf.zoom
import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from ezdxf.enums import TextEntityAlignment
from pyproj import CRS
from pyproj.exceptions import CRSError
from sqlalchemy import Connection, Engine, text

from accounts import audit
from core.errors import QiwangError
from ingest.field_mapping import LABEL_SUFFIX, TableSchema, load_mapping, table_schema

if TYPE_CHECKING:
    from ezdxf.document import Drawing
    from ezdxf.entities import DXFGraphic

DEFAULT_LAYERS = ("pipe", "node", "valve", "station", "regulator", "sentry", "customer", "sensitive_site", "hazard")
EXPORTABLE_LAYERS = (*DEFAULT_LAYERS, "device", "road", "railway", "river", "crew_base")
# (GDAL driver, file extension, layer creation options)
FORMATS: dict[str, tuple[str, str, dict[str, str]]] = {
    "gpkg": ("GPKG", ".gpkg", {}),
    "shp": ("ESRI Shapefile", ".shp", {}),
    "geojson": ("GeoJSON", ".geojson", {}),
    "csv": ("CSV", ".csv", {"GEOMETRY": "AS_WKT", "CREATE_CSVT": "YES"}),
    # LIBKML rather than the old KML driver: it adds layers to an existing file (one folder each)
    # and writes typed <Schema>s, so readers get numbers back as numbers.
    "kml": ("LIBKML", ".kml", {"FOLDER": "YES"}),
    "dxf": ("ezdxf", ".dxf", {}),  # not a GDAL driver: see _write_dxf
}
APPENDABLE = {"gpkg", "shp"}  # drivers that take chunk after chunk into one layer
SINGLE_FILE = {"gpkg", "kml", "dxf"}  # every layer in one file, whatever OUT is called
KML_SRID = 4326  # KML 2.2 is WGS84 lon/lat only
KML_NAME_FIELD = "kml_name"  # column LIBKML turns into <name> (the label Google Earth shows)
# LIBKML turns fields of these names into KML elements instead of data (a `model` field, which
# valves have, makes a 3D <Model>; `end` a <TimeSpan>…). Each option renames one such field.
_LIBKML_SPECIAL_FIELDS = (
    "DESCRIPTION", "TIMESTAMP", "BEGIN", "END", "ALTITUDEMODE", "TESSELLATE", "EXTRUDE", "VISIBILITY", "ICON",
    "DRAWORDER", "SNIPPET", "HEADING", "TILT", "ROLL", "MODEL", "SCALE_X", "SCALE_Y", "SCALE_Z", "NETWORKLINK",
    "NETWORKLINK_REFRESHVISIBILITY", "NETWORKLINK_FLYTOVIEW", "NETWORKLINK_REFRESHMODE",
    "NETWORKLINK_REFRESHINTERVAL", "NETWORKLINK_VIEWREFRESHMODE", "NETWORKLINK_VIEWREFRESHTIME",
    "NETWORKLINK_VIEWBOUNDSCALE", "NETWORKLINK_VIEWFORMAT", "NETWORKLINK_HTTPQUERY", "CAMERA_LONGITUDE",
    "CAMERA_LATITUDE", "CAMERA_ALTITUDE", "CAMERA_ALTITUDEMODE", "PHOTOOVERLAY", "LEFTFOV", "RIGHTFOV",
    "BOTTOMFOV", "TOPFOV", "NEARFOV", "PHOTOOVERLAY_SHAPE",
)
# every special field pointed at a name no table has, but <name> at the code column
KML_CONFIG = {
    **{f"LIBKML_{name}_FIELD": f"qiwang_no_{name.lower()}" for name in _LIBKML_SPECIAL_FIELDS},
    **{f"LIBKML_IMAGEPYRAMID_{name}": f"qiwang_no_{name.lower()}"
       for name in ("TILESIZE", "MAXWIDTH", "MAXHEIGHT", "GRIDORIGIN")},
    "LIBKML_NAME_FIELD": KML_NAME_FIELD,
}

# -- DXF (see _write_dxf) --
DXF_VERSION = "R2010"
DXF_APPID = "QIWANG"  # XDATA application name: (table, enterprise_code, code) on every entity
DXF_TEXT_STYLE = "QIWANG"
DXF_TEXT_HEIGHT_M = 1.0  # 2 mm on a 1:500 plot, the scale of Chinese pipe drawings (管线图)
DXF_LABEL_SUFFIX = "_注记"  # labels on a layer of their own, so they can be frozen apart
DXF_PIPE_LAYER = "管道_{}"  # one per pressure class: 管道_中压 …
# Pipes by pressure class (dt_pipe_pressure_type code → AutoCAD Color Index, lineweight in 1/100 mm).
# The usual Chinese gas-company map convention, hotter for higher pressure: 超高压 dark red (14),
# 高压 red (1), 次高压 orange (30), 中压 blue (5, not yellow: yellow vanishes on white paper),
# 低压 green (3); heavier lines for higher pressure.
DXF_PRESSURE_STYLE = {4: (14, 50), 3: (1, 50), 2: (30, 40), 1: (5, 35), 0: (3, 25)}
DXF_GAS_COLOUR = 6  # magenta: the colour of gas in CJJ 61 (城市地下管线探测技术规程), for gas facilities
# Other layers: CAD layer name and colour, one layer per feature type.
DXF_LAYERS: dict[str, tuple[str, int]] = {
    "node": ("管道节点", DXF_GAS_COLOUR), "valve": ("阀门", DXF_GAS_COLOUR),
    "regulator": ("调压装置", DXF_GAS_COLOUR), "station": ("厂站", DXF_GAS_COLOUR),
    "sentry": ("管网哨兵", DXF_GAS_COLOUR), "device": ("设备设施", DXF_GAS_COLOUR),
    "customer": ("燃气用户", DXF_GAS_COLOUR), "hazard": ("隐患", 1), "sensitive_site": ("敏感场所", 7),
    "road": ("道路", 8), "railway": ("铁路", 8), "river": ("河流", 4), "crew_base": ("抢修站", 1),
}
CHUNK_ROWS = 100_000
_HAZARD_FEATURE = ("hazard", "feature_id")
HAZARD_FEATURE_TYPES = ("pipe", "valve", "regulator", "station", "sentry", "device", "customer")  # CHECK in 0005
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
    if not all(math.isfinite(v) for v in (minx, miny, maxx, maxy)):  # float() takes 'nan' and 'inf'
        raise QiwangError(f"--bbox {value}: expected minx,miny,maxx,maxy (four numbers)")
    if minx >= maxx or miny >= maxy:
        raise QiwangError(f"--bbox {value}: min must be below max on both axes")
    return minx, miny, maxx, maxy


def _select(schema: TableSchema, srid: int, bbox: tuple[float, float, float, float] | None,
            relation: str) -> str:
    """SELECT of all attributes, dictionary labels and referenced codes, geometry as WKB in `srid`,
    from `relation` (the table, or its view with personal data masked)."""
    parts, joins = [], []
    for column, sql_type in schema.columns.items():
        if column in ("id", schema.geometry):
            continue
        value = f"t.{column}"
        if (schema.name, column) == _HAZARD_FEATURE:  # written as the code of whatever the hazard concerns
            cases = " ".join(f"WHEN '{kind}' THEN (SELECT code FROM {kind} x WHERE x.id = t.feature_id)"
                             for kind in HAZARD_FEATURE_TYPES)
            parts.append(f"CASE t.feature_type {cases} END AS feature_code")
            continue
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
        f"FROM {relation} t {' '.join(joins)} {where} ORDER BY t.id"
    )


def _geometry_type(conn: Connection, table: str) -> str:
    """pyogrio's name for the layer's geometry type, e.g. 'LineString Z'."""
    row = conn.execute(
        text("SELECT type, coord_dimension FROM geometry_columns "
             "WHERE f_table_schema = 'public' AND f_table_name = :t AND f_geometry_column = 'geom'"),
        {"t": table},
    ).one()
    base = _PYOGRIO_TYPES.get(row[0].upper().removesuffix("Z"), "Unknown")
    return f"{base} Z" if row[1] == 3 and base != "Unknown" else base


def _relation(conn: Connection, table: str, masked: bool) -> str:
    """What a layer is read from: ``published.<table>`` (names, addresses, credit codes of
    individuals masked: migrations 0011, 0014) where the table has that view, else the table;
    the table itself for an unmasked export."""
    if not masked:
        return f"public.{table}"
    view = conn.execute(text("SELECT to_regclass(:v) IS NOT NULL"), {"v": f"published.{table}"}).scalar_one()
    return f"published.{table}" if view else f"public.{table}"


def _chunks(conn: Connection, schema: TableSchema, srid: int,
            bbox: tuple[float, float, float, float] | None, masked: bool) -> Iterator[gpd.GeoDataFrame]:
    """The layer's rows, CHUNK_ROWS at a time (at least one frame, empty for an empty layer)."""
    relation = _relation(conn, schema.name, masked)
    dtypes = {c: _NULLABLE_INTS[t] for c, t in schema.columns.items() if t in _NULLABLE_INTS and c != "id"}
    dtypes = {c: t for c, t in dtypes.items() if c not in schema.references and (schema.name, c) != _HAZARD_FEATURE}
    streaming = conn.execution_options(stream_results=True, max_row_buffer=CHUNK_ROWS)
    empty = True
    query = text(_select(schema, srid, bbox, relation))
    for chunk in pd.read_sql(query, streaming, chunksize=CHUNK_ROWS, dtype=dtypes):
        geometry = shapely.from_wkb(chunk.pop("geom_wkb").to_numpy())
        empty = False
        yield gpd.GeoDataFrame(chunk, geometry=geometry, crs=f"EPSG:{srid}")
    if empty:  # an empty layer still gets its fields, so readers see the schema
        frame = pd.read_sql(text(f"SELECT * FROM ({_select(schema, srid, bbox, relation)}) s LIMIT 0"), conn,
                            dtype=dtypes)
        frame.pop("geom_wkb")
        yield gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries([], crs=f"EPSG:{srid}"), crs=f"EPSG:{srid}")


def _shapefile_frame(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Columns renamed to their ≤ 10-character dBASE names (data/field_mapping.yaml)."""
    mapping = load_mapping()
    return frame.rename(columns={c: mapping.shapefile_name(c) for c in frame.columns if c != "geometry"})


def _write_layer(conn: Connection, table: str, fmt: str, path: Path, srid: int,
                 bbox: tuple[float, float, float, float] | None, masked: bool) -> int:
    """Write one table as one layer of `path`; returns features written."""
    driver, _, options = FORMATS[fmt]
    schema = table_schema(conn, table)
    geometry_type = _geometry_type(conn, table)
    # Shapefiles get a .cpg saying UTF-8, so that no reader has to guess the encoding.
    write = dict(layer=table, driver=driver, geometry_type=geometry_type, layer_options=options or None,
                 encoding="UTF-8" if fmt == "shp" else None)
    chunks = (_shapefile_frame(c) if fmt == "shp" else c for c in _chunks(conn, schema, srid, bbox, masked))
    if fmt == "kml":
        return _write_kml_layer(list(chunks), path, write)
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


def _write_kml_layer(frames: list[gpd.GeoDataFrame], path: Path, write: dict) -> int:
    """Add one layer to the KML file `path` as a <Folder>; attributes go to <ExtendedData>.

    Frames are in EPSG:4326. Z (heights in metres, 1985 national height datum) stays in the
    coordinates; no <altitudeMode> is written, so viewers drape the network on the ground (KML's
    default clampToGround) instead of hiding buried pipes under their terrain model.
    """
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    # The code becomes each placemark's <name> through a column of its own: LIBKML takes its name
    # field out of <ExtendedData>, and several layers have a `name` attribute that must stay there.
    # The other special fields are switched off (KML_CONFIG).
    frame.insert(0, KML_NAME_FIELD, frame["code"])
    pyogrio.set_gdal_config_options(KML_CONFIG)
    try:
        pyogrio.write_dataframe(frame, path, append=path.exists(), **write)
    finally:  # GDAL's configuration is process-wide: leave it as it was for other readers
        pyogrio.set_gdal_config_options(dict.fromkeys(KML_CONFIG))
    return len(frame)


def _write_dxf(conn: Connection, tables: list[str], path: Path, srid: int,
               bbox: tuple[float, float, float, float] | None, echo: Callable[[str], None],
               masked: bool) -> dict[str, int]:
    """Write `tables` as one DXF drawing (R2010, units metres, coordinates in EPSG:`srid`).

    Pipes become 3D polylines (POLYLINE, Z = pipe-top heights in metres, 1985 datum) on one layer
    per pressure class (管道_中压 …); points become POINTs with Z on one layer per feature type
    (阀门, 调压装置 …). DXF has no CRS: it is named in the header's custom properties.

    The feature code goes on every entity twice, for two readers. A TEXT label beside it, on a
    `<layer>_注记` layer, because that is what CAD users expect of a pipe drawing: visible, printed,
    found by FIND, and it needs no block library (block attributes would, and polylines cannot
    carry them). And XDATA (QIWANG: table, enterprise_code, code) on the entity and its label,
    because a label is only placed near its feature and a program must not guess by distance.
    Other attributes are not written: CAD users get them from the GeoPackage.

    GDAL's DXF driver is not used: it rejects attribute fields, writes a fixed R2004 header with
    code page ANSI_1252 and cannot set layer colours or XDATA. ezdxf keeps the whole drawing in
    memory, so very large exports belong in a GeoPackage or a --bbox.
    """
    doc = ezdxf.new(DXF_VERSION)
    doc.units = ezdxf.units.M
    doc.header["$MEASUREMENT"] = 1  # metric
    doc.header.custom_vars.append("CRS", f"EPSG:{srid}")
    doc.header.custom_vars.append("Z", "管顶高程 m, 1985国家高程基准")
    doc.appids.add(DXF_APPID)
    # txt.shx with the big font gbcbig.shx: the stock Chinese text style of AutoCAD and its clones
    doc.styles.add(DXF_TEXT_STYLE, font="txt.shx").dxf.bigfont = "gbcbig.shx"
    pressure: dict[int, str] = dict(
        conn.execute(text("SELECT code, label_zh FROM dict.dt_pipe_pressure_type ORDER BY code")).all())
    if "pipe" in tables:  # every class gets its layer, so drawings share one layer list
        for code, label in pressure.items():
            colour, weight = DXF_PRESSURE_STYLE.get(code, (7, -1))
            _add_layer(doc, DXF_PIPE_LAYER.format(label), colour, weight)
    extent = np.array([np.inf, np.inf, -np.inf, -np.inf])
    counts: dict[str, int] = {}
    for table in tables:
        name, colour = DXF_LAYERS.get(table, (table, 7))
        if table != "pipe":
            _add_layer(doc, name, colour)
        written = 0
        for frame in _chunks(conn, table_schema(conn, table), srid, bbox, masked):
            if table == "pipe":
                layers = [DXF_PIPE_LAYER.format(pressure[c]) for c in frame["pressure_class"]]
            else:
                layers = [name] * len(frame)
            geometries = frame.geometry.to_numpy()
            for geometry, layer, enterprise, code in zip(geometries, layers, frame["enterprise_code"], frame["code"],
                                                        strict=True):
                xdata = [(1000, table), (1000, enterprise or ""), (1000, code)]
                for entity in _dxf_entities(doc, geometry, layer):
                    entity.set_xdata(DXF_APPID, xdata)
                _dxf_label(doc, geometry, layer, code).set_xdata(DXF_APPID, xdata)
            if len(frame):
                extent = np.concatenate([np.minimum(extent[:2], frame.total_bounds[:2]),
                                         np.maximum(extent[2:], frame.total_bounds[2:])])
            written += len(frame)
        counts[table] = written
        echo(f"{table}: {written:,} features")
    if np.isfinite(extent).all():  # open the drawing on the network, not on the origin
        msp = doc.modelspace()  # ezdxf copies the model space's extents to $EXTMIN/$EXTMAX on save
        msp.dxf.extmin, msp.dxf.extmax = (*extent[:2], 0.0), (*extent[2:], 0.0)
        ezdxf.zoom.window(msp, extent[:2], extent[2:])
    doc.saveas(path)
    return counts


def _add_layer(doc: Drawing, name: str, colour: int, lineweight: int = -1) -> None:
    """A layer and its label layer (`<name>_注记`), same colour."""
    doc.layers.add(name, color=colour, lineweight=lineweight)
    doc.layers.add(name + DXF_LABEL_SUFFIX, color=colour)


def _dxf_entities(doc: Drawing, geometry: shapely.Geometry, layer: str) -> list[DXFGraphic]:
    """Model-space entities of one geometry: POINT, POLYLINE (3D) or LWPOLYLINE (2D); polygon rings closed."""
    msp, attribs = doc.modelspace(), {"layer": layer}
    if geometry is None or geometry.is_empty:
        return []
    if isinstance(geometry, shapely.Point):
        return [msp.add_point(_xyz(geometry)[0], dxfattribs=attribs)]
    if isinstance(geometry, (shapely.LineString, shapely.LinearRing)):
        closed = isinstance(geometry, shapely.LinearRing)
        if geometry.has_z:
            return [msp.add_polyline3d(_xyz(geometry), close=closed, dxfattribs=attribs)]
        return [msp.add_lwpolyline(shapely.get_coordinates(geometry), close=closed, dxfattribs=attribs)]
    if isinstance(geometry, shapely.Polygon):
        parts = [geometry.exterior, *geometry.interiors]
    else:  # Multi* and collections
        parts = list(geometry.geoms)
    return [entity for part in parts for entity in _dxf_entities(doc, part, layer)]


def _xyz(geometry: shapely.Geometry) -> list[tuple[float, float, float]]:
    """Vertices as (x, y, z), z = 0 where the geometry has none."""
    coords = shapely.get_coordinates(geometry, include_z=True)
    return [(x, y, 0.0 if np.isnan(z) else z) for x, y, z in coords]


def _dxf_label(doc: Drawing, geometry: shapely.Geometry, layer: str, code: str) -> DXFGraphic:
    """TEXT with the code on `<layer>_注记`: on a line's midpoint along it, right of a point."""
    align, rotation = TextEntityAlignment.MIDDLE_LEFT, 0.0
    if isinstance(geometry, (shapely.LineString, shapely.MultiLineString)):
        line = geometry if isinstance(geometry, shapely.LineString) else geometry.geoms[0]
        middle = line.length / 2
        at = line.interpolate(middle)
        (x0, y0), (x1, y1) = (line.interpolate(max(middle - 0.01, 0)).coords[0][:2],
                              line.interpolate(min(middle + 0.01, line.length)).coords[0][:2])
        rotation = math.degrees(math.atan2(y1 - y0, x1 - x0))
        rotation = rotation - 180 if rotation > 90 else rotation + 180 if rotation <= -90 else rotation  # upright
        align, position = TextEntityAlignment.BOTTOM_CENTER, _xyz(at)[0]
    elif isinstance(geometry, shapely.Point):
        x, y, z = _xyz(geometry)[0]
        position = (x + DXF_TEXT_HEIGHT_M / 2, y, z)
    else:
        position = _xyz(geometry.representative_point())[0]
    text_entity = doc.modelspace().add_text(code, height=DXF_TEXT_HEIGHT_M, rotation=rotation, dxfattribs={
        "layer": layer + DXF_LABEL_SUFFIX, "style": DXF_TEXT_STYLE})
    return text_entity.set_placement(position, align=align)


def export(
    engine: Engine,
    out: Path,
    fmt: str,
    layers: list[str] | None = None,
    crs: str | None = None,
    bbox: str | None = None,
    echo: Callable[[str], None] = lambda _: None,
    *,
    unmasked: bool = False,
) -> ExportResult:
    """Write layers to OUT: one file (gpkg, kml, dxf), or a folder with one file per layer.

    Coordinates are in `crs` (default: the storage CRS, EPSG:4550; Z = 1985 heights in metres);
    KML is always EPSG:4326 lon/lat, DXF needs a projected CRS in metres. `bbox` is
    minx,miny,maxx,maxy in the output CRS. A single layer written to a path ending in the
    format's extension becomes that one file.

    `unmasked` reads the tables instead of their ``published`` views: names, residents'
    addresses and credit codes of individuals go out in clear, so that a backup or a move to
    another Qiwang imports again (a masked credit code is no credit code). It is the owner's
    (the CLI's ``--unmasked``), never an HTTP client's, and one ``pii_read`` audit row records
    the export before anything is read. Phone numbers stay masked either way: the tables hold
    them masked (migration 0018), their clear values only sealed.
    """
    if fmt not in FORMATS:
        raise QiwangError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    chosen = list(layers or DEFAULT_LAYERS)
    unknown = [name for name in chosen if name not in EXPORTABLE_LAYERS]
    if "customer_personal" in unknown:
        raise QiwangError("customer_personal holds personal data and is never exported")
    if unknown:
        raise QiwangError(f"unknown layer {unknown[0]!r}: choose from {', '.join(EXPORTABLE_LAYERS)}")
    srid = _format_srid(fmt, parse_crs(crs) if crs else None)
    box = parse_bbox(bbox) if bbox else None
    ext = FORMATS[fmt][1]
    single_file = fmt in SINGLE_FILE or (len(chosen) == 1 and out.suffix.lower() == ext)
    # the staging file keeps the format's extension: LIBKML writes a folder for a name without .kml
    staging = out.parent / (f".{out.stem}.partial{ext}" if single_file else f".{out.name}.partial")
    _remove(staging)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not single_file:
        staging.mkdir()
    try:
        with engine.connect() as conn:
            srid = srid or table_schema(conn, chosen[0]).srid
            if not conn.execute(text("SELECT EXISTS (SELECT 1 FROM spatial_ref_sys WHERE srid = :s)"),
                                {"s": srid}).scalar():
                raise QiwangError(f"--crs EPSG:{srid}: PostGIS has no definition for it")
            result = ExportResult(crs=f"EPSG:{srid}")
            if unmasked:
                _audit_unmasked(engine, fmt, chosen, out)
            if fmt == "dxf":
                result.counts = _write_dxf(conn, chosen, staging, srid, box, echo, not unmasked)
            else:
                for table in chosen:
                    path = staging if single_file else staging / f"{table}{ext}"
                    result.counts[table] = _write_layer(conn, table, fmt, path, srid, box, not unmasked)
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


def _audit_unmasked(engine: Engine, fmt: str, layers: list[str], out: Path) -> None:
    """Record an unmasked export (its own transaction: the read is recorded even if writing fails)."""
    with engine.begin() as conn:
        audit.append(conn, "pii_read", {"export": fmt, "layers": layers, "out": str(out)})


def _format_srid(fmt: str, srid: int | None) -> int | None:
    """The output CRS a format allows: KML only EPSG:4326, DXF only projected CRSs (metres)."""
    if fmt == "kml":
        # The storage CRS is CGCS2000; CGCS2000 and WGS84 differ by a few centimetres, below this
        # data's accuracy, so PostGIS goes from one to the other with no shift (PROJ's "ballpark").
        if srid not in (None, KML_SRID):
            raise QiwangError(f"--crs EPSG:{srid}: KML is always EPSG:4326 (WGS84 lon/lat); leave --crs out")
        return KML_SRID
    if fmt == "dxf" and srid is not None and not _in_metres(CRS.from_epsg(srid)):
        raise QiwangError(f"--crs EPSG:{srid}: DXF needs a projected CRS in metres, e.g. EPSG:4550")
    return srid


def _in_metres(crs: CRS) -> bool:
    """A projected CRS whose easting and northing are metres (not degrees, not feet)."""
    return crs.is_projected and all(axis.unit_name == "metre" for axis in crs.axis_info[:2])


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
