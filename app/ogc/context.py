"""What the route modules of /ogc share: the served collections, pygeoapi's API, the database, and
the answers they all give (a collection looked up or 404, pygeoapi's answer, JSON and GeoJSON).

Errors are raised (core.errors) and answered by the blueprint's one handler (app.http_errors),
never built per route.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from flask import Blueprint, Response, make_response, request
from pygeoapi.api import API, APIRequest, apply_gzip

from app.ogc.links import GEOJSON
from app.scope_summaries import ScopeSummaries
from core.errors import NotFound
from spatial.collections import Collection

T = TypeVar("T")


def collection_or_404(collections: Mapping[str, T], collection_id: str) -> T:
    """The collection a route's path names.

    Parameters
    ----------
    collections
        The collections that route serves, by id (the database's for /ogc, the palette's for /styles).
    collection_id
        The id from the path.

    Returns
    -------
    The collection (or its style).

    Raises
    ------
    core.errors.NotFound
        For an id not in `collections` (HTTP 404).
    """
    try:
        return collections[collection_id]
    except KeyError:
        raise NotFound(f"collection {collection_id!r} does not exist") from None


@dataclass(frozen=True)
class OgcContext:
    """The /ogc blueprint's state, built once per app: route modules receive it in `add_routes`."""

    api: API
    collections: dict[str, Collection]
    engine: sa.Engine
    scopes: ScopeSummaries   # what the caller's scope holds of each collection (bbox, count)

    @property
    def base(self) -> str:
        """The public URL of /ogc (links are absolute)."""
        return str(self.api.base_url)

    def api_request(self) -> APIRequest:
        """pygeoapi's request object for this request, JSON unless HTML is asked for.

        pygeoapi 0.21 answers some paths (job results) with HTML when a client sends `Accept: */*`, as
        requests, curl and GDAL do; API clients get JSON unless they ask for text/html or f=html.
        """
        api_request = APIRequest.from_flask(request, self.api.locales)
        if "f" not in request.args and "text/html" not in request.headers.get("Accept", ""):
            api_request._format = "json"
        return api_request

    def negotiated_format(self) -> str | None:
        """The format this request asks for (``json``, ``html`` …; see `api_request`)."""
        return self.api_request().format

    def pygeoapi(self, function: Callable, *args: Any, skip_valid_check: bool = False) -> Response:
        """Answer with a pygeoapi API function, as pygeoapi's own flask_app does."""
        api_request = self.api_request()
        if not skip_valid_check and not api_request.is_valid():
            headers, status, content = self.api.get_format_exception(api_request)
        else:
            headers, status, content = function(self.api, api_request, *args)
            content = apply_gzip(headers, content)
        response = make_response(content, status)
        if headers:
            response.headers = headers
        return response

    def add_pygeoapi_route(self, bp: Blueprint, endpoint: str, function: Callable, *rules: str,
                           method: str = "GET", skip_valid_check: bool = False) -> None:
        """Route the paths `rules` of `bp` to pygeoapi's API function `function`.

        Parameters
        ----------
        bp
            The /ogc blueprint.
        endpoint
            The view's name (``ogc.<endpoint>`` for url_for).
        function
            A pygeoapi API function ``(api, request, *path_values)``.
        rules
            The paths; each has at most one variable, passed to `function` after the request (a path
            without it leaves the function's default, e.g. every job instead of one).
        method
            The HTTP method.
        skip_valid_check
            Answer even when pygeoapi finds the requested format invalid (the OpenAPI document).
        """
        def view(**path: str) -> Response:
            return self.pygeoapi(function, *path.values(), skip_valid_check=skip_valid_check)

        for rule in rules:
            bp.add_url_rule(rule, endpoint, view, methods=[method])


def json_response(doc: Any, media_type: str = "application/json") -> Response:
    """`doc` as JSON (non-ASCII kept as it is) with the media type `media_type`."""
    return Response(json.dumps(doc, ensure_ascii=False), mimetype=media_type)


def geojson_response(body: str, crs_uri: str) -> Response:
    """A GeoJSON body, its coordinates in `crs_uri` (stated in Content-Crs, OGC API Features Part 2)."""
    response = Response(body, mimetype=GEOJSON)
    response.headers["Content-Crs"] = f"<{crs_uri}>"
    return response
