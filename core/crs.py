"""Coordinate reference systems the OGC API serves, with their axis order (OGC API Features Part 2).

PostGIS keeps every geometry east-first (x = longitude or easting). CRS84 is east-first too, but the
EPSG definitions of CGCS2000 geographic (EPSG:4490, latitude first) and of the CGCS2000 Gauss-Krüger
zones (EPSG:4491–4554, northing first) are north-first: answers in those CRSs, and bbox / filter
coordinates given in them, are flipped in SQL with ST_FlipCoordinates.

Points given by callers of the analyses (`transformer`, `points_to_storage`) are always x, y in
the east-first sense: easting or longitude first, whatever the CRS's authority axis order.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from pyproj import CRS, Transformer

from core.errors import InvalidInput

CRS84_URI = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG_URI = "http://www.opengis.net/def/crs/EPSG/0/{code}"
CGCS2000_GEOGRAPHIC = 4490


@dataclass(frozen=True)
class ServedCrs:
    uri: str
    srid: int           # PostGIS SRID to transform to (CRS84 → 4326: lon/lat)
    north_first: bool   # authority axis order is (lat, lon) or (northing, easting)
    decimals: int       # GeoJSON precision: 8 for degrees (≈1 mm), 3 for metres

    @property
    def is_geographic(self) -> bool:
        return self.decimals == 8


@functools.cache
def served_crs(code: int | str) -> ServedCrs:
    """The CRS for an EPSG code, or 'CRS84'."""
    if code == "CRS84":
        return ServedCrs(CRS84_URI, 4326, False, 8)
    crs = CRS.from_epsg(int(code))
    north_first = crs.axis_info[0].direction in ("north", "south")
    return ServedCrs(EPSG_URI.format(code=int(code)), int(code), north_first, 8 if crs.is_geographic else 3)


def supported(storage_srid: int) -> list[ServedCrs]:
    """CRS84 (the default), CGCS2000 geographic and the storage CRS."""
    out = [served_crs("CRS84"), served_crs(CGCS2000_GEOGRAPHIC)]
    if storage_srid not in (4326, CGCS2000_GEOGRAPHIC):
        out.append(served_crs(storage_srid))
    return out


_EPSG = re.compile(r"^(?:https?://www\.opengis\.net/def/crs/EPSG/0/|\[?EPSG:)(\d+)\]?$", re.IGNORECASE)
_CRS84 = re.compile(r"^(?:https?://www\.opengis\.net/def/crs/OGC/1\.3/CRS84|\[?OGC:CRS84\]?)$", re.IGNORECASE)


def parse_crs(value: str, storage_srid: int) -> ServedCrs:
    """The served CRS named by a `crs`, `bbox-crs` or `filter-crs` value (a URI, or EPSG:nnnn / OGC:CRS84).

    Raises ValueError listing the supported URIs for anything else.
    """
    allowed = supported(storage_srid)
    wanted: ServedCrs | None = None
    if _CRS84.match(value.strip()):
        wanted = allowed[0]
    elif m := _EPSG.match(value.strip()):
        wanted = next((c for c in allowed if c.srid == int(m.group(1)) and c.uri != CRS84_URI), None)
    if wanted is None:
        raise ValueError(f"unsupported CRS {value!r}; supported: {', '.join(c.uri for c in allowed)}")
    return wanted


# -- domains ---------------------------------------------------------------------------------------

# Web Mercator's own limit of latitude (the square world of WebMercatorQuad).
WEB_MERCATOR_MAX_LAT = 85.05112878


@functools.cache
def area_of_use(srid: int) -> tuple[float, float, float, float]:
    """(west, south, east, north) in degrees where the CRS is valid, from the EPSG area of use (pyproj).

    Coordinates far outside it make PROJ fail point by point (and PostGIS log "tmerc: Invalid
    latitude" for each), so spatial inputs are clipped to it before anything is transformed.
    """
    area = CRS.from_epsg(int(srid)).area_of_use
    if area is None:  # a CRS without one (not among the served ones): the whole world
        return (-180.0, -90.0, 180.0, 90.0)
    return (area.west, area.south, area.east, area.north)


def storage_domain(srid: int, extent_crs84: tuple[float, float, float, float] | None
                   ) -> tuple[float, float, float, float]:
    """The degree box a collection's features can lie in: its storage CRS's area of use, grown to
    the collection's own extent (a feature stored just outside the area of use is still answered)."""
    w, s, e, n = area_of_use(srid)
    if extent_crs84 is not None:
        w, s = min(w, extent_crs84[0]), min(s, extent_crs84[1])
        e, n = max(e, extent_crs84[2]), max(n, extent_crs84[3])
    return (max(w, -180.0), max(s, -90.0), min(e, 180.0), min(n, 90.0))


def clip_box(box: tuple[float, float, float, float], domain: tuple[float, float, float, float]
             ) -> tuple[float, float, float, float] | None:
    """`box` ∩ `domain` (both west, south, east, north), or None when they do not meet."""
    w, s = max(box[0], domain[0]), max(box[1], domain[1])
    e, n = min(box[2], domain[2]), min(box[3], domain[3])
    return (w, s, e, n) if w <= e and s <= n else None


MAX_DENSIFIED_SEGMENTS = 100_000   # in one densified geometry: what PostgreSQL folds into a plan stays small


def densify_step(box: tuple[float, float, float, float], degrees: float = 0.001, segments: int = 256,
                 length: float = 0.0) -> float:
    """The segment length (degrees) to densify a geographic geometry of extent `box` with before
    transforming it.

    `degrees` (≈ 100 m, so edges follow meridians and parallels), but never more than `segments`
    segments along the longer side (a continent-sized box densified at 0.001° has millions of
    vertices, and the chord of a 1/256 part of a zone-sized box is off by centimetres), and never
    more than MAX_DENSIFIED_SEGMENTS in all for a geometry whose edges are `length` degrees long
    together (a zig-zag of 10,000 positions across the box would otherwise become millions).
    """
    return max(degrees, max(box[2] - box[0], box[3] - box[1]) / segments, length / MAX_DENSIFIED_SEGMENTS)


# -- transforming points ---------------------------------------------------------------------------

_transformers = threading.local()


def transformer(source: str | int, target: str | int) -> Transformer:
    """An always_xy Transformer from `source` to `target`, kept per thread.

    Building one costs ≈ 0.4 s (PROJ database look-ups), and pyproj transformers are not to be
    shared between threads.

    Parameters
    ----------
    source
        The caller's CRS: anything pyproj takes (``EPSG:4490``, ``OGC:CRS84``, a URI, an EPSG code).
    target
        The CRS to transform into (an EPSG code, e.g. the storage CRS).

    Returns
    -------
    Transformer
        x, y in east-first order (easting or longitude first) both ways.

    Raises
    ------
    InvalidInput
        Field ``crs``: `source` is no CRS pyproj knows.
    """
    cache = _transformers.__dict__.setdefault("by_crs", {})
    key = (str(source), str(target))
    if key not in cache:
        try:
            src = CRS.from_user_input(source)
        except Exception:  # noqa: BLE001 - pyproj raises CRSError, TypeError…: all are a bad CRS for the caller
            raise InvalidInput("crs", f"unknown CRS {source!r}") from None
        cache[key] = Transformer.from_crs(src, CRS.from_user_input(target), always_xy=True)
    return cache[key]


def points_to_storage(points: Sequence[tuple[float, float]], crs: str | None, storage_srid: int
                      ) -> list[tuple[float, float]]:
    """Points given in `crs` as they are stored.

    Parameters
    ----------
    points
        x, y pairs in `crs`, east-first (easting or longitude first, whatever the CRS's authority
        axis order says: EPSG:4490 is given as lon, lat).
    crs
        The CRS of the points; None when they are in the storage CRS already.
    storage_srid
        EPSG code of the storage CRS (`db.catalog.storage_srid`).

    Returns
    -------
    list of tuple
        Easting, northing in the storage CRS, m (inf where PROJ cannot place a point).

    Raises
    ------
    InvalidInput
        Field ``crs``: an unknown CRS.
    """
    if crs is None or not points:
        return [(float(x), float(y)) for x, y in points]
    transform = transformer(crs, storage_srid).transform
    out = []
    for x, y in points:
        ex, ey = transform(x, y)
        out.append((float(ex), float(ey)))
    return out
