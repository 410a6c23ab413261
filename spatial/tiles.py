"""Mapbox Vector Tiles (WebMercatorQuad) of the published collections, cut by PostGIS.

A tile is one ST_AsMVT over the rows whose storage geometry meets the tile envelope (transformed to
the storage CRS once per tile, so the GiST index is used), each geometry transformed to EPSG:3857 and
clipped by ST_AsMVTGeom. Small zooms leave out what could not be seen anyway (service lines below
zoom 15, customers below 15, …): this is what keeps a zoom-12 tile of a million-pipe city cheap.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import sqlalchemy as sa
from pyproj import Transformer

from core.crs import WEB_MERCATOR_MAX_LAT, clip_box, storage_domain
from spatial.collections import Collection

EXTENT = 4096      # MVT tile coordinate units
BUFFER = 64        # clip buffer, tile units: lines and symbols continue across tile edges
MAX_ZOOM = 22


@dataclass(frozen=True)
class TileRule:
    min_zoom: int = 10
    # (zoom below which the condition applies, SQL condition on alias t) — first match wins
    thinning: tuple[tuple[int, str], ...] = ()
    # Below `full_from_zoom` tiles carry only `light` properties (what the styles and labels need);
    # a click fetches the whole feature from /items/{code}.
    light: tuple[str, ...] = ()
    full_from_zoom: int = 0


# Pipe types (pipe.pipe_type): trunk 输气干线, main 干管, branch 支管, yard 庭院管, service 引入管.
TILE_RULES: dict[str, TileRule] = {
    # City overview (z < 13): the trunk lines only; medium-pressure mains from 13, yards from 14.
    "pipes": TileRule(8, ((13, "t.pipe_type = 'trunk'"),
                          (14, "t.pipe_type IN ('trunk', 'main', 'branch')"),
                          (15, "t.pipe_type IN ('trunk', 'main', 'branch', 'yard')")),
                      light=("code", "pipe_type", "pressure_class", "status", "material", "diameter_mm"),
                      full_from_zoom=15),
    "nodes": TileRule(16),
    "valves": TileRule(14),
    "customers": TileRule(15, light=("code", "name", "user_type", "supply_status"), full_from_zoom=17),
    "regulators": TileRule(12),
    "roads": TileRule(11, light=("code", "name", "road_class"), full_from_zoom=15),
    "sentries": TileRule(11),
    "inspections": TileRule(13),
    "topology_issues": TileRule(12),
}


def rule(collection_id: str) -> TileRule:
    return TILE_RULES.get(collection_id, TileRule())


def valid_tile(z: int, x: int, y: int) -> bool:
    return 0 <= z <= MAX_ZOOM and 0 <= x < 2 ** z and 0 <= y < 2 ** z


WORLD_HALF = 20037508.342789244   # half the side of the WebMercatorQuad world, metres


@functools.cache
def _domain_3857(srid: int, extent_crs84: tuple[float, float, float, float] | None
                 ) -> tuple[float, float, float, float]:
    w, s, e, n = storage_domain(srid, extent_crs84)
    s, n = max(s, -WEB_MERCATOR_MAX_LAT), min(n, WEB_MERCATOR_MAX_LAT)
    return Transformer.from_crs(4326, 3857, always_xy=True).transform_bounds(w, s, e, n)


def domain_3857(c: Collection) -> tuple[float, float, float, float]:
    """Where a collection's features can lie (its storage CRS's area of use and its extent), in
    EPSG:3857: tiles are clipped to it before their envelope is transformed to the storage CRS,
    so PROJ never sees a point it cannot project (a world tile in Gauss-Krüger)."""
    return _domain_3857(c.srid, c.extent_crs84)


def tile_box(z: int, x: int, y: int, margin: float = BUFFER / EXTENT) -> tuple[float, float, float, float]:
    """The EPSG:3857 envelope of a tile, grown by `margin` tile widths on every side."""
    size = 2 * WORLD_HALF / 2 ** z
    x1, y2 = -WORLD_HALF + x * size, WORLD_HALF - y * size
    return (x1 - margin * size, y2 - size - margin * size, x1 + size + margin * size, y2 + margin * size)


def tile_sql(c: Collection, z: int) -> str | None:
    """The SELECT producing the MVT of collection `c` at zoom z (parameters :z :x :y), or None below min zoom."""
    r = rule(c.id)
    if z < r.min_zoom:
        return None
    condition = next((sql for below, sql in r.thinning if z < below), None)
    geom = f't."{c.geometry_column}"'
    names = r.light if r.light and z < r.full_from_zoom else [col.name for col in c.columns]
    properties = ", ".join(f't."{name}"' for name in names)
    has_id = c.primary_key_type == "bigint"  # MVT feature ids are integers
    domain = ", ".join(repr(v) for v in domain_3857(c))
    return f"""
        WITH bounds AS (
            SELECT ST_TileEnvelope(:z, :x, :y) AS merc,
                   ST_Transform(ST_ClipByBox2D(ST_TileEnvelope(:z, :x, :y, margin => {BUFFER / EXTENT}),
                                               ST_MakeEnvelope({domain}, 3857)::box2d), {c.srid}) AS box
        )
        SELECT ST_AsMVT(mvt, '{c.id}', {EXTENT}, 'mvt_geom'{", 'mvt_id'" if has_id else ""}) FROM (
            SELECT ST_AsMVTGeom(ST_Transform({geom}, 3857), bounds.merc, {EXTENT}, {BUFFER}, true) AS mvt_geom,
                   {f't."{c.primary_key}" AS mvt_id, ' if has_id else ""}{properties}
            FROM {c.relation} t, bounds
            WHERE {geom} && bounds.box{f" AND {condition}" if condition else ""}
        ) mvt WHERE mvt_geom IS NOT NULL
    """


def tile(conn: sa.Connection, c: Collection, z: int, x: int, y: int) -> bytes:
    """The MVT bytes of one collection's tile (empty for an empty tile or below its min zoom)."""
    return layered_tile(conn, [c], z, x, y)


def layered_tile(conn: sa.Connection, collections: list[Collection], z: int, x: int, y: int) -> bytes:
    """One MVT holding a layer per collection (MVT layers concatenate byte-wise): a web map needs
    one request per tile position instead of one per layer. Empty bytes when every layer is empty.

    `conn` must not be in a transaction: the tile runs in its own, with its own planner settings.
    """
    box = tile_box(z, x, y)
    parts = [sql for c in collections
             if clip_box(box, domain_3857(c)) is not None and (sql := tile_sql(c, z)) is not None]
    if not parts:
        return b""
    sql = "SELECT " + " || ".join(f"coalesce(({part}), ''::bytea)" for part in parts)
    # PostGIS functions carry high declared costs, so a big tile's plan crosses jit_above_cost and
    # PostgreSQL spends 100–1000 ms compiling it (and starting parallel workers) to save ~10 ms.
    with conn.begin():
        conn.execute(sa.text("SET LOCAL jit = off; SET LOCAL max_parallel_workers_per_gather = 0"))
        data = conn.execute(sa.text(sql), {"z": z, "x": x, "y": y}).scalar()
    return bytes(data) if data else b""


def tilejson(c: Collection, tiles_url: str) -> dict:
    """TileJSON 3.0 for MapLibre: `tiles_url` holds {z}/{x}/{y}."""
    fields = {col.name: col.json_type.capitalize() if col.json_type != "integer" else "Number"
              for col in c.columns}
    bounds = list(c.extent_crs84) if c.extent_crs84 else [-180, -85.05112878, 180, 85.05112878]
    return {
        "tilejson": "3.0.0",
        "name": c.id,
        "description": f"{c.layer.title_zh} {c.layer.title_en}",
        "tiles": [tiles_url],
        "minzoom": rule(c.id).min_zoom,
        "maxzoom": MAX_ZOOM,
        "bounds": bounds,
        "center": [(bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2, max(rule(c.id).min_zoom, 13)],
        "vector_layers": [{"id": c.id, "description": c.description, "minzoom": rule(c.id).min_zoom,
                           "maxzoom": MAX_ZOOM, "fields": fields}],
    }
