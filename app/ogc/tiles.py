"""OGC API Tiles routes: Mapbox vector tiles (MVT) in WebMercatorQuad cut by PostGIS (spatial/tiles.py).

One collection per tile under /collections/{id}/tiles, several (one MVT layer each) under /tiles;
both answer 204 for an empty tile, gzip when accepted, ETag / 304 and a Cache-Control by
collection group. The TileMatrixSets documents are pygeoapi's.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import pygeoapi.api.tiles as tiles_api
import sqlalchemy as sa
from flask import Blueprint, Response, request

from app.ogc.context import OgcContext, collection_or_404, json_response
from app.ogc.features import queryables_schema
from app.ogc.links import collection_url, link
from core.crs import EPSG_URI
from core.errors import InvalidInput, NotFound
from spatial import tiles
from spatial.collections import Collection

MVT = "application/vnd.mapbox-vector-tile"
WEB_MERCATOR_QUAD = "WebMercatorQuad"
TMS_URI = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
TILES_CRS = EPSG_URI.format(code=3857)  # the CRS of WebMercatorQuad, not a storage CRS

# How long clients may reuse a tile, by collection group: live layers change by the second.
TILE_MAX_AGE_S = {"operations": 5, "network": 60, "context": 3600, "admin": 3600}


def add_routes(bp: Blueprint, ctx: OgcContext) -> None:
    """Add the tileset, tile and TileMatrixSet routes to the /ogc blueprint `bp`."""

    def tileset_url(c: Collection) -> str:
        return collection_url(ctx.base, c.id, "tiles", WEB_MERCATOR_QUAD)

    def tileset_links(c: Collection) -> list[dict[str, Any]]:
        return [
            link("self", "application/json", tileset_url(c)),
            link("http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme", "application/json",
                 f"{ctx.base}/TileMatrixSets/{WEB_MERCATOR_QUAD}"),
            link("item", MVT, tileset_url(c) + "/{tileMatrix}/{tileRow}/{tileCol}?f=mvt", templated=True),
            link("describedby", "application/json", tileset_url(c) + "?f=tilejson", "TileJSON"),
        ]

    @bp.get("/collections/<collection_id>/tiles")
    def tilesets(collection_id: str) -> Response:
        c = collection_or_404(ctx.collections, collection_id)
        return json_response({
            "links": [link("self", "application/json", collection_url(ctx.base, c.id, "tiles"))],
            "tilesets": [{"title": f"{c.layer.title_zh} {c.layer.title_en}", "dataType": "vector",
                          "crs": TILES_CRS, "tileMatrixSetURI": TMS_URI, "links": tileset_links(c)}]})

    @bp.get("/collections/<collection_id>/tiles/<tms>")
    @bp.get("/collections/<collection_id>/tiles/<tms>/metadata")
    def tileset(collection_id: str, tms: str) -> Response:
        c = collection_or_404(ctx.collections, collection_id)
        _check_tile_matrix_set(tms)
        if request.args.get("f") == "tilejson":
            return json_response(tiles.tilejson(c, tileset_url(c) + "/{z}/{y}/{x}?f=mvt"))
        r = tiles.rule(c.id)
        return json_response({
            "title": f"{c.layer.title_zh} {c.layer.title_en}", "dataType": "vector",
            "crs": TILES_CRS, "tileMatrixSetURI": TMS_URI, "links": tileset_links(c),
            "tileMatrixSetLimits": [], "layers": [{
                "id": c.id, "dataType": "vector", "geometryType": _tile_geometry_type(c),
                "minTileMatrix": str(r.min_zoom), "maxTileMatrix": str(tiles.MAX_ZOOM),
                "propertiesSchema": queryables_schema(c, collection_url(ctx.base, c.id, "queryables"))}]})

    @bp.get("/collections/<collection_id>/tiles/<tms>/<int:z>/<int:y>/<int:x>")
    def tile(collection_id: str, tms: str, z: int, y: int, x: int) -> Response:
        c = collection_or_404(ctx.collections, collection_id)
        return _tile_response(ctx.engine, tms, z, x, y, lambda conn: tiles.tile(conn, c, z, x, y),
                              TILE_MAX_AGE_S[c.layer.group], {"f"})

    @bp.get("/tiles/<tms>/<int:z>/<int:y>/<int:x>")
    def layered_tile(tms: str, z: int, y: int, x: int) -> Response:
        """Several collections in one MVT (one layer each): `collections=pipes,valves,…` (default all)."""
        wanted = request.args.get("collections")
        ids = [i.strip() for i in wanted.split(",")] if wanted is not None else list(ctx.collections)
        # Each collection once: a layer is a whole tile query, so repeats would multiply the
        # database's work (1,000 × pipes took one backend to 23 GB); at most every collection.
        if not all(ids):
            raise InvalidInput("collections", "an empty name (two commas, or none given)")
        unknown = [i for i in ids if i not in ctx.collections]
        if unknown:
            raise InvalidInput("collections", f"unknown collection {unknown[0][:100]!r}")
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise InvalidInput("collections", f"{', '.join(repeated)} given more than once")
        chosen = [ctx.collections[i] for i in ids]
        return _tile_response(ctx.engine, tms, z, x, y, lambda conn: tiles.layered_tile(conn, chosen, z, x, y),
                              min(TILE_MAX_AGE_S[c.layer.group] for c in chosen), {"f", "collections"})

    ctx.add_pygeoapi_route(bp, "tile_matrix_sets", tiles_api.tilematrixsets, "/TileMatrixSets")
    ctx.add_pygeoapi_route(bp, "tile_matrix_set", tiles_api.tilematrixset, "/TileMatrixSets/<tms>")


def _check_tile_matrix_set(tms: str) -> None:
    if tms != WEB_MERCATOR_QUAD:
        raise NotFound(f"tile matrix set {tms!r} is not offered; use {WEB_MERCATOR_QUAD}")


def _tile_response(engine: sa.Engine, tms: str, z: int, x: int, y: int, cut: Callable[[sa.Connection], bytes],
                   max_age: int, allowed: set[str]) -> Response:
    """An MVT answer: 204 when empty, gzip when accepted, ETag / 304, Cache-Control.

    Parameters
    ----------
    engine
        The database the tile is cut from.
    tms, z, x, y
        The tile matrix set, zoom, column and row from the path (WebMercatorQuad only).
    cut
        Cuts the tile on a connection: MVT bytes, empty for an empty tile.
    max_age
        Seconds clients may reuse the tile (Cache-Control).
    allowed
        The query parameters this path takes; any other is a 400.

    Returns
    -------
    Response
        200 with the tile, 204, or 304 for a tile the client holds (If-None-Match).
    """
    _check_tile_matrix_set(tms)
    unknown = [k for k in request.args if k not in allowed]
    if unknown:
        raise InvalidInput(unknown[0], "unknown query parameter")
    if request.args.get("f", "mvt") != "mvt":
        raise InvalidInput("f", "tiles are offered as mvt only")
    if not tiles.valid_tile(z, x, y):
        raise NotFound(f"tile {z}/{y}/{x} is outside {WEB_MERCATOR_QUAD}")
    with engine.connect() as conn:
        data = cut(conn)
    if not data:
        response = Response(status=HTTPStatus.NO_CONTENT)
        response.headers["Cache-Control"] = f"public, max-age={max_age}"
        return response
    etag = hashlib.blake2b(data, digest_size=12).hexdigest()
    if etag in request.if_none_match:
        response = Response(status=HTTPStatus.NOT_MODIFIED)
    else:
        response = Response(data, mimetype=MVT)
        if "gzip" in request.accept_encodings:
            response.set_data(gzip.compress(data, compresslevel=1))
            response.headers["Content-Encoding"] = "gzip"
        response.headers["Vary"] = "Accept-Encoding"
    response.set_etag(etag)
    response.headers["Cache-Control"] = f"public, max-age={max_age}"
    return response


def _tile_geometry_type(c: Collection) -> str:
    kind = c.geometry_type.rstrip("Z").upper().replace("MULTI", "")
    return {"POINT": "points", "LINESTRING": "lines", "POLYGON": "polygons"}.get(kind, "geometries")
