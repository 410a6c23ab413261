"""Coordinate reference systems the OGC API serves, with their axis order (OGC API Features Part 2).

PostGIS keeps every geometry east-first (x = longitude or easting). CRS84 is east-first too, but the
EPSG definitions of CGCS2000 geographic (EPSG:4490, latitude first) and of the CGCS2000 Gauss-Krüger
zones (EPSG:4491–4554, northing first) are north-first: answers in those CRSs, and bbox / filter
coordinates given in them, are flipped in SQL with ST_FlipCoordinates.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from pyproj import CRS

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
