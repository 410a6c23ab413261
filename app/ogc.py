"""OGC API at /ogc: pygeoapi 0.21 configured from the database, with Qiwang's own feature and tile paths.

pygeoapi answers the landing page, collection documents, schemas, HTML pages, TileMatrixSets,
processes and jobs from a configuration generated here from the database (spatial/collections.py),
never from a hand-kept YAML. The paths where pygeoapi 0.21 gets CGCS2000 data wrong or slow — items
and single items as GeoJSON, queryables, tiles, conformance — are answered by Qiwang's PostGIS code
(spatial/features.py, spatial/cql2.py, spatial/tiles.py); see ../shared/reference/ogcapi-interop.md.
"""

from __future__ import annotations

import copy
import datetime as dt
import gzip
import hashlib
import json
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pygeoapi.api as core_api
import pygeoapi.api.itemtypes as itemtypes_api
import pygeoapi.api.processes as processes_api
import pygeoapi.api.tiles as tiles_api
import sqlalchemy as sa
from flask import Blueprint, Response, current_app, make_response, request
from pygeoapi.api import API, APIRequest, apply_gzip
from pygeoapi.openapi import get_oas
from pygeoapi.process.base import ProcessorGenericError

from app.http_errors import error_response
from app.limits import is_timeout, json_object
from core.crs import EPSG_URI, served_crs, supported
from db.engine import get_engine
from spatial import features, tiles
from spatial.collections import Collection
from spatial.ogc_provider import collections_of

PREFIX = "/ogc"
GEOJSON = "application/geo+json"
MVT = "application/vnd.mapbox-vector-tile"
WEB_MERCATOR_QUAD = "WebMercatorQuad"
TMS_URI = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"

_FEATURES = "http://www.opengis.net/spec/ogcapi-features-{part}/1.0/conf/{name}"
# Only what works and is exercised by tests/test_ogc*.py (QGIS needs the four filter URIs to push filters).
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/landing-page",
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/json",
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-common-2/1.0/conf/collections",
    _FEATURES.format(part=1, name="core"),
    _FEATURES.format(part=1, name="oas30"),
    _FEATURES.format(part=1, name="geojson"),
    _FEATURES.format(part=1, name="html"),
    _FEATURES.format(part=2, name="crs"),
    _FEATURES.format(part=3, name="queryables"),
    _FEATURES.format(part=3, name="queryables-query-parameters"),
    _FEATURES.format(part=3, name="filter"),
    _FEATURES.format(part=3, name="features-filter"),
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tileset",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tilesets-list",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/geodata-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/ogc-process-description",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/json",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/job-list",
]

# How long clients may reuse a tile, by collection group: live layers change by the second.
TILE_MAX_AGE_S = {"operations": 5, "network": 60, "context": 3600, "admin": 3600}


# -- configuration ---------------------------------------------------------------------------------

def build_config(collections: dict[str, Collection], database_url: str, public_url: str,
                 jobs_dir: Path) -> dict:
    """The pygeoapi configuration for these collections, served at `public_url` + /ogc."""
    from app.map import basemap_config
    from app.ogc_html import html_vocabulary_of, templates_config
    from app.processes import manager_definition, process_resources
    from app.styles import style_links

    base = public_url.rstrip("/") + PREFIX
    resources: dict[str, Any] = {}
    for c in collections.values():
        tiles_href = f"{base}/collections/{c.id}/tiles"
        resources[c.id] = {
            "type": "collection",
            "title": f"{c.layer.title_zh} {c.layer.title_en}",
            "description": c.description or c.layer.title_en,
            "keywords": [c.layer.title_zh, c.layer.title_en, "燃气", "gas"],
            "links": [
                {"type": "application/json", "rel": "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector",
                 "title": "Vector tiles (MVT)", "href": f"{tiles_href}?f=json"},
                # GDAL reads the JSON Schema behind `describedby` to type the fields before the first page.
                {"type": "application/schema+json", "rel": "describedby", "title": "JSON Schema of the features",
                 "href": f"{base}/collections/{c.id}/schema?f=json"},
                *style_links(c.id, public_url),
            ],
            "extents": {"spatial": {"bbox": list(c.extent_crs84 or (-180, -90, 180, 90)),
                                    "crs": served_crs("CRS84").uri}},
            "limits": {"default_items": features.DEFAULT_LIMIT, "max_items": features.MAX_LIMIT},
            "providers": [{
                "type": "feature",
                "name": "spatial.ogc_provider.QiwangProvider",
                "data": {"database_url": database_url, "collection": c.id},
                "id_field": c.layer.id_column,
                **({"time_field": c.time_column} if c.time_column else {}),
                "crs": [s.uri for s in supported(c.srid)],
                "storage_crs": EPSG_URI.format(code=c.srid),
            }],
        }
    resources.update(process_resources(database_url))
    return {
        "server": {
            "bind": {"host": "127.0.0.1", "port": 5000},
            "url": base,
            "mimetype": "application/json; charset=UTF-8",
            "encoding": "utf-8",
            "gzip": False,
            "languages": ["en-US", "zh-CN"],
            "cors": False,  # pygeoapi's own flask_app only; app/web.py decides (app/limits.py)
            "pretty_print": False,
            "limits": {"default_items": features.DEFAULT_LIMIT, "max_items": features.MAX_LIMIT},
            # HTML pages offline: our templates and assets (app/ogc_html.py); a basemap only when
            # one is configured ($QIWANG_BASEMAP_URL), never a public tile server.
            "templates": templates_config(),
            "map": basemap_config() or {"url": "", "attribution": ""},
            "manager": manager_definition(database_url, jobs_dir),
        },
        "logging": {"level": "ERROR"},
        "metadata": {
            "identification": {
                "title": "气网 Qiwang OGC API",
                "description": "城市燃气管网 GIS: 管线、阀门、场站、管网哨兵、隐患、报警 — "
                               "a GIS platform for city gas networks",
                "keywords": ["燃气", "管网", "gas", "pipeline", "GIS"],
                "keywords_type": "theme",
                "terms_of_service": "",
                "url": public_url,
            },
            "license": {"name": "proprietary", "url": public_url},
            "provider": {"name": "Qiwang", "url": public_url},
            "contact": {"name": "Qiwang", "position": "", "address": "", "city": "", "stateorprovince": "",
                        "postalcode": "", "country": "CN", "phone": "", "fax": "", "email": "", "url": public_url,
                        "hours": "", "instructions": "", "role": "pointOfContact"},
        },
        "resources": resources,
        "qiwang_html": html_vocabulary_of(collections, database_url),  # item tables: Chinese names, labels
    }


def openapi_document(config: dict, collections: dict[str, Collection]) -> dict:
    """pygeoapi's OpenAPI document, with the parameters Qiwang's items paths actually take."""
    doc = get_oas(config, fail_on_invalid_collection=False)
    crs_param = {"schema": {"type": "string", "format": "uri"}, "style": "form", "explode": False}
    extra = [
        {"name": "crs", "in": "query", "required": False, "description": "Output CRS (default CRS84)", **crs_param},
        {"name": "bbox-crs", "in": "query", "required": False, "description": "CRS of bbox (default CRS84)",
         **crs_param},
        {"name": "filter", "in": "query", "required": False, "description": "CQL2 filter",
         "schema": {"type": "string"}},
        {"name": "filter-lang", "in": "query", "required": False, "description": "Filter language",
         "schema": {"type": "string", "enum": list(features.FILTER_LANGS), "default": "cql2-text"}},
        {"name": "filter-crs", "in": "query", "required": False, "description": "CRS of filter geometries",
         **crs_param},
        {"name": "cursor", "in": "query", "required": False,
         "description": "Keyset cursor from a next link (opaque)", "schema": {"type": "string"}},
    ]
    for c in collections.values():
        path = doc["paths"].get(f"/collections/{c.id}/items")
        if not path or "get" not in path:
            continue
        params = path["get"].setdefault("parameters", [])
        components = doc.get("components", {}).get("parameters", {})
        names = {p.get("name") or components.get(p.get("$ref", "").rsplit("/", 1)[-1], {}).get("name")
                 for p in params if isinstance(p, dict)}
        for p in params:  # state the bounds the server enforces (GDAL ≥ 3.8 reads the maximum)
            if isinstance(p, dict) and p.get("name") == "limit":
                p["schema"] = {"type": "integer", "minimum": 1, "maximum": features.MAX_LIMIT,
                               "default": features.DEFAULT_LIMIT}
        params.extend(p for p in copy.deepcopy(extra) if p["name"] not in names)
    for path in doc["paths"].values():
        # pygeoapi documents an OPTIONS operation (a CORS preflight, which Flask answers itself) on
        # items paths; Swagger UI 5 stops laying out the page at the first one, and it tells a client
        # nothing an Allow header does not.
        path.pop("options", None)
    _declare_used_tags(doc)
    _localise_refs(doc)
    return doc


def _declare_used_tags(doc: dict) -> None:
    """Tags: exactly those of the operations served, in their order.

    pygeoapi declares a tag for every kind of resource it could serve (coverages, EDR, records,
    STAC …) and none for each process; clients that group by the declared tags (Swagger UI's
    layout, code generators) should find neither empty groups nor undeclared ones.
    """
    declared = {tag["name"]: tag for tag in doc.get("tags", []) if isinstance(tag, dict) and "name" in tag}
    used: dict[str, dict] = {}
    for path in doc.get("paths", {}).values():
        for operation in path.values():
            for name in operation.get("tags", []) if isinstance(operation, dict) else []:
                used.setdefault(name, declared.get(name, {"name": name, "description": operation.get("summary", name)}))
    doc["tags"] = list(used.values())


# Parameters pygeoapi borrows from the OGC schema repositories, defined here instead.
_LOCAL_PARAMETERS = {
    "datetime": {"name": "datetime", "in": "query", "required": False, "style": "form", "explode": False,
                 "description": "Instant or closed/open interval (RFC 3339) on the collection's time property",
                 "schema": {"type": "string"}},
    "featureId": {"name": "featureId", "in": "path", "required": True, "description": "Feature id (code)",
                  "schema": {"type": "string"}},
    "sortby": {"name": "sortby", "in": "query", "required": False, "style": "form", "explode": False,
               "description": "Comma-separated properties, each optionally prefixed + or -",
               "schema": {"type": "array", "items": {"type": "string"}}},
}


def _localise_refs(node: Any, doc: dict | None = None) -> None:
    """Replace references to schemas.opengis.net / GitHub by local components.

    Utilities run Qiwang on networks without internet access: a client (or a validator) must be able
    to resolve the whole OpenAPI document from this server alone.
    """
    doc = doc if doc is not None else node
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("http"):
            if "#/components/" in ref:
                kind, name = ref.split("#/components/", 1)[1].split("/", 1)
            else:
                kind = next(k for k in ("responses", "schemas", "parameters") if f"/{k}/" in ref)
                name = ref.rsplit("/", 1)[1].removesuffix(".yaml")
            components = doc.setdefault("components", {}).setdefault(kind, {})
            if name not in components:
                if kind == "parameters":
                    components[name] = _LOCAL_PARAMETERS[name]
                elif kind == "responses":
                    components[name] = {"description": name, "content": {
                        "application/json": {"schema": {"type": "object"}}}}
                else:
                    components[name] = {"type": "object"}
            node["$ref"] = f"#/components/{kind}/{name}"
        for value in list(node.values()):
            _localise_refs(value, doc)
    elif isinstance(node, list):
        for value in node:
            _localise_refs(value, doc)


# -- responses -------------------------------------------------------------------------------------

error = error_response     # an OGC API exception as JSON (the shape pygeoapi uses)


def _api_request(api: API) -> APIRequest:
    """pygeoapi's request object, JSON unless HTML is asked for.

    pygeoapi 0.21 answers some paths (job results) with HTML when a client sends `Accept: */*`, as
    requests, curl and GDAL do; API clients get JSON unless they ask for text/html or f=html.
    """
    api_request = APIRequest.from_flask(request, api.locales)
    if "f" not in request.args and "text/html" not in request.headers.get("Accept", ""):
        api_request._format = "json"
    return api_request


def _negotiated_format(api: API) -> str | None:
    return _api_request(api).format


def ogc_blueprint(database_url: str, public_url: str, jobs_dir: Path) -> Blueprint:
    """The /ogc blueprint for the database at `database_url`, announcing links under `public_url`."""
    collections = collections_of(database_url)
    config = build_config(collections, database_url, public_url, jobs_dir)
    api = API(config, openapi_document(config, collections))
    base = api.base_url
    engine = get_engine(database_url)
    bp = Blueprint("ogc", __name__, url_prefix=PREFIX)

    def pygeoapi(function: Callable, *args: Any, skip_valid_check: bool = False) -> Response:
        """Answer with a pygeoapi API function, as pygeoapi's own flask_app does."""
        api_request = _api_request(api)
        if not skip_valid_check and not api_request.is_valid():
            headers, status, content = api.get_format_exception(api_request)
        else:
            headers, status, content = function(api, api_request, *args)
            content = apply_gzip(headers, content)
        response = make_response(content, status)
        if headers:
            response.headers = headers
        return response

    def collection_or_404(collection_id: str) -> Collection | Response:
        c = collections.get(collection_id)
        return c if c is not None else error(404, "NotFound", f"collection {collection_id!r} does not exist")

    @bp.get("/")
    def landing_page() -> Response:
        return pygeoapi(core_api.landing_page)

    @bp.get("/openapi")
    def openapi() -> Response:
        return pygeoapi(core_api.openapi_, skip_valid_check=True)

    @bp.get("/conformance")
    def conformance() -> Response:
        if _negotiated_format(api) == "html":
            return pygeoapi(core_api.conformance)
        return Response(json.dumps({"conformsTo": CONFORMANCE}), mimetype="application/json")

    @bp.get("/collections")
    @bp.get("/collections/<collection_id>")
    def collection_documents(collection_id: str | None = None) -> Response:
        return pygeoapi(core_api.describe_collections, collection_id)

    @bp.get("/collections/<collection_id>/schema")
    def collection_schema(collection_id: str) -> Response:
        return pygeoapi(core_api.get_collection_schema, collection_id)

    @bp.get("/collections/<collection_id>/queryables")
    def queryables(collection_id: str) -> Response:
        c = collection_or_404(collection_id)
        if isinstance(c, Response):
            return c
        return Response(json.dumps(queryables_schema(c, f"{base}/collections/{c.id}/queryables"),
                                   ensure_ascii=False), mimetype="application/schema+json")

    @bp.get("/collections/<collection_id>/items")
    def items(collection_id: str) -> Response:
        c = collection_or_404(collection_id)
        if isinstance(c, Response):
            return c
        fmt = _negotiated_format(api)
        if fmt not in ("json", "geojson", "html", None):
            return error(400, "InvalidParameterValue", f"f: {fmt!r} is not offered; use json or html")
        try:
            # Checked here for the HTML page too: pygeoapi 0.21 fails with 500 on some bad values.
            query = features.parse_items_request(c, request.args)
            if fmt == "html":
                return pygeoapi(itemtypes_api.get_collection_items, collection_id)
            with engine.connect() as conn:
                page = features.query_page(conn, query)
        except features.QueryError as exc:
            return error(400, "InvalidParameterValue", str(exc))
        except sa.exc.DataError as exc:  # e.g. a cursor value the column type cannot take
            return error(400, "InvalidParameterValue", f"a parameter value does not fit: {_first_line(exc)}")
        url = f"{base}/collections/{c.id}/items"
        kept = [(k, v) for k, v in request.args.items(multi=True) if k not in ("cursor", "offset", "f")]
        links = [
            {"rel": "self", "type": GEOJSON, "title": "This page", "href": _href(url, request.args.items(multi=True))},
            {"rel": "alternate", "type": "text/html", "title": "This page as HTML",
             "href": _href(url, kept + [("f", "html")])},
            {"rel": "collection", "type": "application/json", "title": c.layer.title_en,
             "href": f"{base}/collections/{c.id}"},
        ]
        if page.next_cursor is not None:
            links.append({"rel": "next", "type": GEOJSON, "title": "Next page",
                          "href": _href(url, kept + [("cursor", page.next_cursor)])})
        head = {"numberReturned": page.number_returned,
                "timeStamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "links": links}
        if page.number_matched is not None:
            head["numberMatched"] = page.number_matched
        body = ('{"type":"FeatureCollection","features":[' + page.features_json + "],"
                + json.dumps(head, ensure_ascii=False)[1:])
        return _geojson(body, query.crs.uri)

    @bp.get("/collections/<collection_id>/items/<path:item_id>")
    def item(collection_id: str, item_id: str) -> Response:
        c = collection_or_404(collection_id)
        if isinstance(c, Response):
            return c
        fmt = _negotiated_format(api)
        for name in request.args:
            if name not in features.ITEM_PARAMETERS:
                return error(400, "InvalidParameterValue", f"{name[:100]}: unknown query parameter")
        try:
            crs = features.parse_crs_parameter(c, request.args.get("crs"))
            features.possible_feature_id(c, item_id)  # checked for the HTML page too
        except features.QueryError as exc:
            return error(400, "InvalidParameterValue", str(exc))
        if fmt == "html":
            return pygeoapi(itemtypes_api.get_collection_item, collection_id, item_id)
        try:
            with engine.connect() as conn:
                text = features.query_one(conn, c, item_id, crs)
        except features.QueryError as exc:
            return error(400, "InvalidParameterValue", str(exc))
        if text is None:
            return error(404, "NotFound", f"{c.id} has no feature {item_id!r}")
        feature = json.loads(text)
        feature["links"] = [
            {"rel": "self", "type": GEOJSON, "href": f"{base}/collections/{c.id}/items/{item_id}"},
            {"rel": "collection", "type": "application/json", "href": f"{base}/collections/{c.id}"},
        ]
        return _geojson(json.dumps(feature, ensure_ascii=False), crs.uri)

    # -- tiles -----------------------------------------------------------------------------------
    def tiles_template(c: Collection) -> str:
        return f"{base}/collections/{c.id}/tiles/{WEB_MERCATOR_QUAD}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}?f=mvt"

    def tileset_links(c: Collection) -> list[dict]:
        return [
            {"rel": "self", "type": "application/json",
             "href": f"{base}/collections/{c.id}/tiles/{WEB_MERCATOR_QUAD}"},
            {"rel": "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme", "type": "application/json",
             "href": f"{base}/TileMatrixSets/{WEB_MERCATOR_QUAD}"},
            {"rel": "item", "type": MVT, "templated": True, "href": tiles_template(c)},
            {"rel": "describedby", "type": "application/json", "title": "TileJSON",
             "href": f"{base}/collections/{c.id}/tiles/{WEB_MERCATOR_QUAD}?f=tilejson"},
        ]

    @bp.get("/collections/<collection_id>/tiles")
    def tilesets(collection_id: str) -> Response:
        c = collection_or_404(collection_id)
        if isinstance(c, Response):
            return c
        doc = {"links": [{"rel": "self", "type": "application/json", "href": f"{base}/collections/{c.id}/tiles"}],
               "tilesets": [{"title": f"{c.layer.title_zh} {c.layer.title_en}", "dataType": "vector",
                             "crs": EPSG_URI.format(code=3857), "tileMatrixSetURI": TMS_URI,
                             "links": tileset_links(c)}]}
        return _json(doc)

    @bp.get("/collections/<collection_id>/tiles/<tms>")
    @bp.get("/collections/<collection_id>/tiles/<tms>/metadata")
    def tileset(collection_id: str, tms: str) -> Response:
        c = collection_or_404(collection_id)
        if isinstance(c, Response):
            return c
        if tms != WEB_MERCATOR_QUAD:
            return error(404, "NotFound", f"tile matrix set {tms!r} is not offered; use {WEB_MERCATOR_QUAD}")
        if request.args.get("f") == "tilejson":
            url = f"{base}/collections/{c.id}/tiles/{WEB_MERCATOR_QUAD}/{{z}}/{{y}}/{{x}}?f=mvt"
            return _json(tiles.tilejson(c, url))
        r = tiles.rule(c.id)
        doc = {"title": f"{c.layer.title_zh} {c.layer.title_en}", "dataType": "vector",
               "crs": EPSG_URI.format(code=3857), "tileMatrixSetURI": TMS_URI, "links": tileset_links(c),
               "tileMatrixSetLimits": [], "layers": [{
                   "id": c.id, "dataType": "vector", "geometryType": _tile_geometry_type(c),
                   "minTileMatrix": str(r.min_zoom), "maxTileMatrix": str(tiles.MAX_ZOOM),
                   "propertiesSchema": queryables_schema(c, f"{base}/collections/{c.id}/queryables")}]}
        return _json(doc)

    @bp.get("/collections/<collection_id>/tiles/<tms>/<int:z>/<int:y>/<int:x>")
    def tile(collection_id: str, tms: str, z: int, y: int, x: int) -> Response:
        c = collection_or_404(collection_id)
        if isinstance(c, Response):
            return c
        return tile_response(tms, z, x, y, lambda conn: tiles.tile(conn, c, z, x, y),
                             TILE_MAX_AGE_S[c.layer.group], {"f"})

    def tile_response(tms: str, z: int, x: int, y: int, cut: Callable[[sa.Connection], bytes], max_age: int,
                      allowed: set[str]) -> Response:
        """An MVT answer: 204 when empty, gzip when accepted, ETag / 304, Cache-Control."""
        if tms != WEB_MERCATOR_QUAD:
            return error(404, "NotFound", f"tile matrix set {tms!r} is not offered; use {WEB_MERCATOR_QUAD}")
        unknown = [k for k in request.args if k not in allowed]
        if unknown:
            return error(400, "InvalidParameterValue", f"{unknown[0]}: unknown query parameter")
        if request.args.get("f", "mvt") != "mvt":
            return error(400, "InvalidParameterValue", "f: tiles are offered as mvt only")
        if not tiles.valid_tile(z, x, y):
            return error(404, "NotFound", f"tile {z}/{y}/{x} is outside {WEB_MERCATOR_QUAD}")
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

    @bp.get("/tiles/<tms>/<int:z>/<int:y>/<int:x>")
    def layered_tile(tms: str, z: int, y: int, x: int) -> Response:
        """Several collections in one MVT (one layer each): `collections=pipes,valves,…` (default all)."""
        wanted = request.args.get("collections")
        ids = [i.strip() for i in wanted.split(",")] if wanted is not None else list(collections)
        # Each collection once: a layer is a whole tile query, so repeats would multiply the
        # database's work (1,000 × pipes took one backend to 23 GB); at most every collection.
        if not all(ids):
            return error(400, "InvalidParameterValue", "collections: an empty name (two commas, or none given)")
        unknown = [i for i in ids if i not in collections]
        if unknown:
            return error(400, "InvalidParameterValue", f"collections: unknown collection {unknown[0][:100]!r}")
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            return error(400, "InvalidParameterValue", f"collections: {', '.join(repeated)} given more than once")
        chosen = [collections[i] for i in ids]
        return tile_response(tms, z, x, y, lambda conn: tiles.layered_tile(conn, chosen, z, x, y),
                             min(TILE_MAX_AGE_S[c.layer.group] for c in chosen), {"f", "collections"})

    @bp.get("/TileMatrixSets")
    def tile_matrix_sets() -> Response:
        return pygeoapi(tiles_api.tilematrixsets)

    @bp.get("/TileMatrixSets/<tms>")
    def tile_matrix_set(tms: str) -> Response:
        return pygeoapi(tiles_api.tilematrixset, tms)

    # -- processes and jobs (pygeoapi with Qiwang's processors: app/processes) -------------------
    @bp.get("/processes")
    @bp.get("/processes/<process_id>")
    def processes(process_id: str | None = None) -> Response:
        return pygeoapi(processes_api.describe_processes, process_id)

    @bp.post("/processes/<process_id>/execution")
    def execute(process_id: str) -> Response:
        # pygeoapi 0.21 assumes a UTF-8 JSON object (data.get on whatever json.loads returned).
        try:
            body = json_object(request.get_data(), '{"inputs": {...}}', current_app.config["MAX_CONTENT_LENGTH"])
            for member in ("inputs", "outputs", "subscriber"):
                if member in body and body[member] is not None and not isinstance(body[member], dict):
                    raise ValueError(f"{member}: a JSON object is expected")
            if not isinstance(body.get("response", "raw"), str):
                raise ValueError("response: raw or document")
        except ValueError as exc:
            return error(400, "InvalidParameterValue", str(exc))
        response = pygeoapi(processes_api.execute_process, process_id)
        location = response.headers.get("Location")
        if response.status_code == HTTPStatus.CREATED and location:
            # pygeoapi 0.21 answers an accepted job with `null`; the standard asks for its status info.
            status = pygeoapi(processes_api.get_jobs, location.rstrip("/").rsplit("/", 1)[1])
            if status.status_code == HTTPStatus.OK:
                response.set_data(status.get_data())
                response.mimetype = "application/json"
        return response

    @bp.get("/jobs")
    @bp.get("/jobs/<job_id>")
    def jobs(job_id: str | None = None) -> Response:
        return pygeoapi(processes_api.get_jobs, job_id)

    @bp.delete("/jobs/<job_id>")
    def delete_job(job_id: str) -> Response:
        return pygeoapi(processes_api.delete_job, job_id)

    @bp.get("/jobs/<job_id>/results")
    def job_results(job_id: str) -> Response:
        return pygeoapi(processes_api.get_job_result, job_id)

    @bp.errorhandler(ProcessorGenericError)
    def job_store_failed(exc: ProcessorGenericError) -> Response:
        # pygeoapi's job manager turns any database error while it records a job into this (its
        # cause kept as __context__); a statement timeout there is the server's limit: 503.
        if is_timeout(exc.__context__):
            return error(503, "ServiceUnavailable", "statement_timeout: recording the job took longer than the "
                                                    "server allows; try again later")
        raise exc

    @bp.errorhandler(404)
    def not_found(exc: Exception) -> Response:
        return error(404, "NotFound", f"{request.path} does not exist")

    @bp.errorhandler(405)
    def not_allowed(exc: Exception) -> Response:
        return error(405, "MethodNotAllowed", f"{request.method} is not allowed on {request.path}")

    return bp


# -- helpers ---------------------------------------------------------------------------------------

def queryables_schema(c: Collection, schema_id: str) -> dict:
    """The queryables of a collection as JSON Schema (Part 3), titles from the column comments."""
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


def _tile_geometry_type(c: Collection) -> str:
    kind = c.geometry_type.rstrip("Z").upper().replace("MULTI", "")
    return {"POINT": "points", "LINESTRING": "lines", "POLYGON": "polygons"}.get(kind, "geometries")


def _href(url: str, params: Any) -> str:
    query = urlencode(list(params))
    return f"{url}?{query}" if query else url


def _geojson(body: str, crs_uri: str) -> Response:
    response = Response(body, mimetype=GEOJSON)
    response.headers["Content-Crs"] = f"<{crs_uri}>"
    return response


def _json(doc: dict) -> Response:
    return Response(json.dumps(doc, ensure_ascii=False), mimetype="application/json")


def _first_line(exc: Exception) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
