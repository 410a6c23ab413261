"""Reading CAD drawings (DXF) as layers of features for the importer, with ezdxf (export: exporter.py).

Each CAD layer of the model space is one layer. Lines (LINE, LWPOLYLINE, 2D/3D POLYLINE) are read
as line features, points (POINT) and block references (INSERT) as point features; which of the two
a layer gives depends on the table it goes to. What a CAD layer holds is said in the mapping file's
`cad_layers` (e.g. `中压: {table: pipe, pressure_class: 1}`); its other keys are values every entity
of the layer gets, as if they were fields of the file. Block attributes (ATTRIB tags, e.g. 编号,
管径) are fields too and win over those values. A feature's code is its block attribute for the
code when there is one, else the entity's DXF handle (unique and stable within the drawing).

Coordinates are taken as drawn (WCS x = easting, y = northing, in the drawing's units, metres
assumed); a drawing has no CRS, so the import needs --crs (or a local grid). A drawing whose
heights are all 0 is flat: its features are read in 2D and get their heights as other 2D files do.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import ezdxf
import numpy as np
import pandas as pd
import shapely
from ezdxf.document import Drawing as _Document
from ezdxf.entities import Insert, Polyline

from ingest.field_mapping import normalise

LINE_TYPES = ("LINE", "LWPOLYLINE", "POLYLINE")
POINT_TYPES = ("POINT", "INSERT")
POINT_TABLES = ("node", "valve", "station", "regulator", "sentry", "customer", "hazard", "device", "crew_base")


class DrawingError(Exception):
    """The file cannot be read as a DXF drawing; the message is the reason."""


@dataclass
class CadLayer:
    """One CAD layer as the importer reads it."""

    frame: pd.DataFrame  # fields: code, block attributes, the mapping's values
    wkb: np.ndarray  # one geometry per row
    geometry_type: str  # 'LineString', 'Point' (with ' Z' when the drawing has heights)
    encoding: str | None  # the drawing's code page when it is not UTF-8
    constant_fields: tuple[str, ...]  # fields that came from the mapping file


@functools.lru_cache(maxsize=2)
def _document(path: Path, mtime_ns: int) -> _Document:
    try:
        return ezdxf.readfile(path)
    except OSError as exc:
        raise DrawingError(f"cannot read it: {exc.strerror or exc}") from None
    except Exception as exc:  # noqa: BLE001 - a damaged file fails ezdxf's parser in many ways
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DrawingError(f"not a readable DXF drawing (damaged or truncated?): {reason}") from None


def _open(path: Path) -> _Document:
    return _document(path, path.stat().st_mtime_ns)


def layers(path: Path) -> list[tuple[str, str | None]]:
    """(CAD layer, geometry type) of every layer of the model space that has lines or points."""
    kinds: dict[str, set[str]] = {}
    for entity in _open(path).modelspace():
        kind = entity.dxftype()
        if kind in LINE_TYPES or kind in POINT_TYPES:
            kinds.setdefault(entity.dxf.layer, set()).add("LineString" if kind in LINE_TYPES else "Point")
    return [(name, "LineString" if "LineString" in found else "Point") for name, found in kinds.items()]


def _vertices(entity) -> list[tuple[float, float, float]]:
    """WCS vertices of a line entity, metres as drawn."""
    kind = entity.dxftype()
    if kind == "LINE":
        return [tuple(entity.dxf.start), tuple(entity.dxf.end)]
    if kind == "LWPOLYLINE":
        points = [tuple(v) for v in entity.vertices_in_wcs()]
        if entity.closed:
            points.append(points[0])
        return points
    points = [tuple(v) for v in entity.points()]  # POLYLINE (2D/3D)
    if entity.is_closed:
        points.append(points[0])
    return points


def read_layer(path: Path, layer: str, spec: dict, table: str, code_names: set[str]) -> CadLayer:
    """The features of one CAD layer: points for point tables, lines for the others.

    `code_names`: normalised field names that give a feature's code; an entity with no block
    attribute of such a name gets its handle as code."""
    doc = _open(path)
    wanted = POINT_TYPES if table in POINT_TABLES else LINE_TYPES
    records, shapes = [], []
    for entity in doc.modelspace().query(" ".join(wanted)).filter(lambda e: e.dxf.layer == layer):
        record = {}
        if isinstance(entity, Insert):
            record.update({attrib.dxf.tag: attrib.dxf.text for attrib in entity.attribs})
            shapes.append([tuple(entity.dxf.insert)])
        elif entity.dxftype() == "POINT":
            shapes.append([tuple(entity.dxf.location)])
        else:
            if isinstance(entity, Polyline) and (entity.is_poly_face_mesh or entity.is_polygon_mesh):
                continue  # surfaces, not lines
            shapes.append(_vertices(entity))
        if not any(normalise(name) in code_names for name in record):
            record["code"] = entity.dxf.handle
        records.append(record)
    constants = {key: value for key, value in spec.items() if key != "table"}
    frame = pd.DataFrame(records, dtype=object)
    for key, value in constants.items():
        if key not in frame:
            frame[key] = value
        else:
            frame[key] = frame[key].where(frame[key].notna(), value)
    flat = all(z == 0 for shape in shapes for _, _, z in shape)
    points = [np.array(shape, dtype=float)[:, :2] if flat else np.array(shape, dtype=float) for shape in shapes]
    if wanted is POINT_TYPES:
        geoms = [shapely.Point(p[0]) for p in points]
    else:
        geoms = [shapely.LineString(p) if len(p) >= 2 else None for p in points]
    wkb = np.array([None if g is None else shapely.to_wkb(g) for g in geoms], dtype=object)
    base = "Point" if wanted is POINT_TYPES else "LineString"
    codepage = doc.encoding if doc.encoding.lower().replace("-", "") not in ("utf8",) else None
    return CadLayer(frame.reset_index(drop=True), wkb, base if flat else f"{base} Z", codepage, tuple(constants))
