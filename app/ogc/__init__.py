"""OGC API at /ogc: pygeoapi 0.21 configured from the database, with Qiwang's own feature and tile paths.

pygeoapi answers the landing page, collection documents, schemas, HTML pages, TileMatrixSets,
processes and jobs from a configuration generated from the database, never from a hand-kept YAML.
The paths where pygeoapi 0.21 gets CGCS2000 data wrong or slow — items and single items as GeoJSON,
queryables, tiles, conformance — are answered by Qiwang's PostGIS code (spatial/features.py,
spatial/cql2.py, spatial/tiles.py); see ../shared/reference/ogcapi-interop.md.

One module per concern, each adding its routes to the blueprint assembled here:

- config.py: the pygeoapi configuration and the OpenAPI document;
- documents.py: landing page, OpenAPI, conformance, collection documents and schemas;
- features.py: items, single items, queryables;
- tiles.py: vector tiles, tilesets, TileMatrixSets;
- processes.py: processes and jobs (processors and job manager: app/processes/);
- html.py: the offline HTML pages' templates, assets and vocabulary;
- context.py: what the routes share (`collection_or_404`, pygeoapi's answer, JSON responses);
- links.py: the one link builder (also for the collection documents' style links; the /styles
  routes themselves are app/styles.py).

Routes raise core.errors (NotFound, InvalidInput naming the parameter, Unavailable); the blueprint
answers them through app.http_errors, the one mapping to HTTP.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, request
from pygeoapi.api import API

from app.http_errors import error_response, response_for
from app.ogc import documents, features, processes, tiles
from app.ogc.config import PREFIX, build_config, openapi_document
from app.ogc.context import OgcContext
from app.scope_summaries import ScopeSummaries
from core.errors import NotFound, QiwangError
from db.engine import get_engine
from spatial.ogc_provider import collections_of


def ogc_blueprint(database_url: str, public_url: str, jobs_dir: Path, scopes: ScopeSummaries,
                  basemap: dict[str, str] | None = None) -> Blueprint:
    """The /ogc blueprint.

    Parameters
    ----------
    database_url
        The SQLAlchemy URL of the database served (its published collections are read once, here).
    public_url
        Where clients reach the server (its root): links in the answers are absolute, under it.
    jobs_dir
        Where asynchronous jobs' results are written.
    scopes
        The counts and extents of each caller's scope (the collection documents' bboxes).
    basemap
        The HTML pages' raster basemap ({url, attribution}), None for none.

    Returns
    -------
    Blueprint
        Every /ogc route, with error handlers answering in the OGC API exception shape.
    """
    collections = collections_of(database_url)
    config = build_config(collections, database_url, public_url, jobs_dir, basemap)
    ctx = OgcContext(API(config, openapi_document(config, collections)), collections, get_engine(database_url), scopes)
    bp = Blueprint("ogc", __name__, url_prefix=PREFIX)
    for module in (documents, features, tiles, processes):
        module.add_routes(bp, ctx)
    bp.register_error_handler(QiwangError, response_for)

    @bp.errorhandler(404)
    def not_found(exc: Exception) -> Response:
        return response_for(NotFound(f"{request.path} does not exist"))

    @bp.errorhandler(405)
    def not_allowed(exc: Exception) -> Response:
        return error_response(405, "MethodNotAllowed", f"{request.method} is not allowed on {request.path}")

    return bp
