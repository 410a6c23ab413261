"""Radius query (001 table 5.2.5 row 9): every network feature and sensitive site within R metres of
a point, nearest first.

One SQL statement, one branch per layer: each branch is an ST_DWithin on the layer's GiST index,
so a query costs a few index probes whatever the size of the city.
"""
from __future__ import annotations

import math

import sqlalchemy as sa

from core.crs import points_to_storage
from core.errors import InvalidInput
from db.catalog import storage_srid

MAX_RADIUS_M = 5000.0
DEPLOYMENT_REACH_M = 50_000.0  # a point farther than this from every pipe is outside the deployment area

# layer (= table) → SQL for its "name". Only columns listed here leave the database: never a phone,
# ID number or person's name (customer_personal is not read at all). A resident customer's name is a
# household's name, i.e. a person's: only non-residents' (shops, schools…) names are shown.
LAYERS: dict[str, str] = {
    "pipe": "NULL",  # pipes have no name
    "valve": "name",
    "regulator": "name",
    "station": "name",
    "sentry": "name",
    "device": "name",
    "customer": "CASE WHEN user_type = 1 THEN NULL ELSE name END",  # dt_usertype 1 = 居民
    "sensitive_site": "name",
}

_POINT = "ST_SetSRID(ST_MakePoint(:x, :y), :srid)"  # in the storage CRS
# ST_Distance and ST_DWithin are planar (2D) whatever the Z of the 3D network geometries.
# count(*) OVER () is the layer's full count within R, taken before LIMIT cuts the list.
_NEAR_SQL = sa.text("\nUNION ALL\n".join(
    f"""(SELECT '{layer}' AS layer, id, code, {name} AS name, ST_Distance(geom, {_POINT}) AS distance_m,
            count(*) OVER () AS within
     FROM {layer} WHERE ST_DWithin(geom, {_POINT}, :radius)
     ORDER BY distance_m, id LIMIT :limit)"""
    for layer, name in LAYERS.items()
) + "\nORDER BY distance_m, layer, id")  # built once: parsing the text costs as much as planning it

_NEAREST_PIPE_SQL = sa.text(f"SELECT ST_Distance(geom, {_POINT}) FROM pipe ORDER BY geom <-> {_POINT} LIMIT 1")


def near(
    conn: sa.Connection,
    x: float,
    y: float,
    radius_m: float,
    crs: str | None = None,
    limit_per_layer: int = 200,
) -> dict:
    """Pipes, valves, regulators, stations, sentries, devices, customers and sensitive sites within
    a radius of a point, nearest first.

    Pipes of every status count, abandoned ones included (they are still in the ground). A
    sensitive site's distance is to its outline (0 inside it). "name" is None for pipes (no name)
    and for resident customers (a household's name is personal data); no personal data
    (customer_personal, phones, ID numbers) is ever read.

    Parameters
    ----------
    conn
        A connection to the database.
    x, y
        The point in `crs`, always x = easting / longitude, y = northing / latitude whatever the
        CRS's authority axis order (EPSG:4490 is given as lon, lat).
    radius_m
        R, planar 2D distance in the storage CRS, m: 0 < R ≤ 5000.
    crs
        CRS of the point; None: the storage CRS (`db.catalog.storage_srid`).
    limit_per_layer
        Features listed per layer at most (the nearest ones).

    Returns
    -------
    dict
        Keys fixed::

            {"center": [x, y],               # storage CRS easting, northing (m, 3 decimals)
             "radius_m": R,
             "features": [{"layer": "pipe", "id": 12, "code": "GD0000012", "name": None,
                           "distance_m": 3.27}, ...],   # nearest first (then layer, id), 2 decimals
             "counts": {"pipe": 14, "valve": 2, ...}}   # every layer, all features within R

        counts[layer] > the features of that layer listed means the list was cut.

    Raises
    ------
    InvalidInput
        Naming `radius_m` (≤ 0 or > 5000 m), `limit_per_layer`, `crs` (unknown) or `point` for
        (x, y) (not finite, not transformable by the CRS, or more than 50 km from every pipe:
        outside the deployment area).
    """
    radius = _checked_radius(radius_m)
    if not isinstance(limit_per_layer, int) or limit_per_layer < 1:
        raise InvalidInput("limit_per_layer", f"must be a whole number ≥ 1, not {limit_per_layer!r}")
    try:
        given = float(x), float(y)
    except (TypeError, ValueError):
        given = (math.nan, math.nan)
    if not all(map(math.isfinite, given)):
        raise InvalidInput("point", f"must be two finite numbers, not ({x!r}, {y!r})")
    srid = storage_srid(conn.engine)  # cached per database: the catalog is not read on every query
    (ex, ey), = points_to_storage([given], crs, srid)
    if not all(map(math.isfinite, (ex, ey))):
        raise InvalidInput("point", f"({x}, {y}) cannot be placed in EPSG:{srid}"
                           + (f" from {crs}" if crs else "") + " (x is the easting or longitude)")
    params = {"x": ex, "y": ey, "srid": srid, "radius": radius, "limit": limit_per_layer}
    rows = conn.execute(_NEAR_SQL, params).all()
    counts = dict.fromkeys(LAYERS, 0)
    for row in rows:
        counts[row.layer] = int(row.within)
    if counts["pipe"] == 0:  # only then can the point be far from every pipe; one KNN probe tells
        nearest = conn.execute(_NEAREST_PIPE_SQL, params).scalar()
        if nearest is not None and nearest > DEPLOYMENT_REACH_M:
            raise InvalidInput("point", f"({ex:.1f}, {ey:.1f}) in EPSG:{srid} is outside the deployment "
                               f"area: the nearest pipe is {nearest / 1000:,.0f} km away (limit "
                               f"{DEPLOYMENT_REACH_M / 1000:g} km)")
    return {
        "center": [round(ex, 3), round(ey, 3)],
        "radius_m": radius,
        "features": [{"layer": r.layer, "id": r.id, "code": r.code, "name": r.name,
                      "distance_m": round(r.distance_m, 2)} for r in rows],
        "counts": counts,
    }


def _checked_radius(radius_m: float) -> float:
    try:
        radius = float(radius_m)
    except (TypeError, ValueError):
        raise InvalidInput("radius_m", f"must be a number of metres, not {radius_m!r}") from None
    if not 0 < radius <= MAX_RADIUS_M:  # also False for NaN
        raise InvalidInput("radius_m", f"must be more than 0 and at most {MAX_RADIUS_M:g} m, not {radius_m!r}")
    return radius
