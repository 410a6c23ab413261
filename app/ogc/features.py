"""OGC API Features routes answered by Qiwang's PostGIS code: items, single items, queryables.

pygeoapi 0.21 gets CGCS2000 data wrong or slow on these paths (../shared/reference/ogcapi-interop.md);
the JSON answers come from spatial/features.py and spatial/cql2.py, the HTML pages from pygeoapi
after the same checks. Bad parameters raise core.errors.InvalidInput (spatial.features.QueryError is
one), answered as 400 by the blueprint.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pygeoapi.api.itemtypes as itemtypes_api
import sqlalchemy as sa
from flask import Blueprint, Response, request

from app.ogc.context import OgcContext, collection_or_404, geojson_response, json_response
from app.ogc.links import GEOJSON, collection_url, link, page_links
from core.errors import InvalidInput, NotFound
from spatial import features
from spatial.collections import Collection


def add_routes(bp: Blueprint, ctx: OgcContext) -> None:
    """Add the items, item and queryables routes of `ctx`'s collections to the /ogc blueprint `bp`."""

    @bp.get("/collections/<collection_id>/queryables")
    def queryables(collection_id: str) -> Response:
        c = collection_or_404(ctx.collections, collection_id)
        return json_response(queryables_schema(c, collection_url(ctx.base, c.id, "queryables")),
                             "application/schema+json")

    @bp.get("/collections/<collection_id>/items")
    def items(collection_id: str) -> Response:
        c = collection_or_404(ctx.collections, collection_id)
        fmt = ctx.negotiated_format()
        if fmt not in ("json", "geojson", "html", None):
            raise InvalidInput("f", f"{fmt!r} is not offered; use json or html")
        try:
            # Checked here for the HTML page too: pygeoapi 0.21 fails with 500 on some bad values.
            query = features.parse_items_request(c, request.args)
            if fmt == "html":
                return ctx.pygeoapi(itemtypes_api.get_collection_items, collection_id)
            with ctx.engine.connect() as conn:
                page = features.query_page(conn, query)
        except sa.exc.DataError as exc:  # e.g. a cursor value the column type cannot take
            raise InvalidInput(None, f"a parameter value does not fit: {_first_line(exc)}") from None
        head: dict[str, Any] = {
            "numberReturned": page.number_returned,
            "timeStamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "links": page_links(collection_url(ctx.base, c.id, "items"), list(request.args.items(multi=True)),
                                collection_url(ctx.base, c.id), c.layer.title_en, page.next_cursor)}
        if page.number_matched is not None:
            head["numberMatched"] = page.number_matched
        # The features arrive as JSON text from PostgreSQL: spliced in, not parsed and dumped again.
        body = ('{"type":"FeatureCollection","features":[' + page.features_json + "],"
                + json.dumps(head, ensure_ascii=False)[1:])
        return geojson_response(body, query.crs.uri)

    @bp.get("/collections/<collection_id>/items/<path:item_id>")
    def item(collection_id: str, item_id: str) -> Response:
        c = collection_or_404(ctx.collections, collection_id)
        fmt = ctx.negotiated_format()
        for name in request.args:
            if name not in features.ITEM_PARAMETERS:
                raise InvalidInput(name[:100], "unknown query parameter")
        crs = features.parse_crs_parameter(c, request.args.get("crs"))
        features.possible_feature_id(c, item_id)  # checked for the HTML page too
        if fmt == "html":
            return ctx.pygeoapi(itemtypes_api.get_collection_item, collection_id, item_id)
        with ctx.engine.connect() as conn:
            text = features.query_one(conn, c, item_id, crs)
        if text is None:
            raise NotFound(f"{c.id} has no feature {item_id!r}")
        feature = json.loads(text)
        feature["links"] = [link("self", GEOJSON, collection_url(ctx.base, c.id, "items", item_id)),
                            link("collection", "application/json", collection_url(ctx.base, c.id))]
        return geojson_response(json.dumps(feature, ensure_ascii=False), crs.uri)


def queryables_schema(c: Collection, schema_id: str) -> dict[str, Any]:
    """The queryables of a collection as JSON Schema (OGC API Features Part 3).

    Parameters
    ----------
    c
        The collection.
    schema_id
        The schema's ``$id``: the URL it is served at.

    Returns
    -------
    dict
        A JSON Schema (2020-12) object: one property per column, titled by its comment, the id and
        time columns marked with their ``x-ogc-role``, plus the primary geometry.
    """
    properties: dict[str, Any] = {"geometry": {"format": _geometry_format(c), "x-ogc-role": "primary-geometry"}}
    for col in c.columns:
        p: dict[str, Any] = {"title": col.description or col.name, "type": col.json_type}
        if col.json_format:
            p["format"] = col.json_format
        if col.name == c.layer.id_column:
            p["x-ogc-role"] = "id"
        elif col.name == c.time_column:
            p["x-ogc-role"] = "primary-instant"
        properties[col.name] = p
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": schema_id, "type": "object",
            "title": f"{c.layer.title_zh} {c.layer.title_en}", "properties": properties,
            "additionalProperties": False}


def _geometry_format(c: Collection) -> str:
    kind = c.geometry_type.rstrip("Z").replace("MULTI", "multi").lower()
    return {"point": "geometry-point", "linestring": "geometry-linestring", "polygon": "geometry-polygon",
            "multipoint": "geometry-multipoint", "multilinestring": "geometry-multilinestring",
            "multipolygon": "geometry-multipolygon"}.get(kind, "geometry-any")


def _first_line(exc: Exception) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
