"""The documents of the OGC API answered by pygeoapi (landing page, OpenAPI, collections, schemas),
and the conformance declaration, which is Qiwang's own: only what works and is tested."""

from __future__ import annotations

import copy

import pygeoapi.api as core_api
from flask import Blueprint, Response
from pygeoapi.api import APIRequest

from app.ogc.context import OgcContext, json_response
from spatial.collections import WORLD_CRS84

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


def describe_in_scope(ctx: OgcContext, api_request: APIRequest, dataset: str | None = None) -> tuple[dict, int, str]:
    """pygeoapi's collection documents, with each collection's bbox that of the caller's scope.

    pygeoapi reads the bbox from its configuration, which holds the whole network's (computed once
    at start): it answers here from a copy of the configuration whose bboxes are the caller's
    (app.scope_summaries), so an enterprise is never shown where the others' networks lie.
    """
    wanted = [c for cid, c in ctx.collections.items() if dataset is None or cid == dataset]
    config = dict(ctx.api.config)
    config["resources"] = resources = dict(config["resources"])
    for cid, summary in ctx.scopes.of(wanted).items():
        resource = resources[cid] = dict(resources[cid])
        extents = resource["extents"] = dict(resource["extents"])
        extents["spatial"] = dict(extents["spatial"], bbox=list(summary.extent_crs84 or WORLD_CRS84))
    scoped = copy.copy(ctx.api)
    scoped.config = config
    return core_api.describe_collections(scoped, api_request, dataset)


def add_routes(bp: Blueprint, ctx: OgcContext) -> None:
    """Add the landing page, OpenAPI, conformance, collection and schema routes to the /ogc blueprint `bp`."""

    ctx.add_pygeoapi_route(bp, "landing_page", core_api.landing_page, "/")
    ctx.add_pygeoapi_route(bp, "openapi", core_api.openapi_, "/openapi", skip_valid_check=True)
    ctx.add_pygeoapi_route(bp, "collection_documents", lambda api, req, *dataset: describe_in_scope(ctx, req, *dataset),
                           "/collections", "/collections/<collection_id>")
    ctx.add_pygeoapi_route(bp, "collection_schema", core_api.get_collection_schema,
                           "/collections/<collection_id>/schema")

    @bp.get("/conformance")
    def conformance() -> Response:
        if ctx.negotiated_format() == "html":
            return ctx.pygeoapi(core_api.conformance)
        return json_response({"conformsTo": CONFORMANCE})
