"""The /styles routes: each collection's QGIS QML and SLD 1.1, and the MapLibre style of all layers.

The documents are built per request by spatial/styles.py from styles/palette.yaml (the MapLibre
style needs the request's host for its tile URLs); the links are app/ogc/links.py's.
"""
from __future__ import annotations

import json

from flask import Blueprint, Response, jsonify, request

from app.http_errors import response_for
from app.ogc.context import collection_or_404
from app.ogc.links import maplibre_link, style_links
from core.errors import NotFound, QiwangError
from spatial.styles import STYLE_FORMATS, maplibre_style, palette, qml, sld

styles_blueprint = Blueprint("styles", __name__)
styles_blueprint.register_error_handler(QiwangError, response_for)


def _text(body: str, media_type: str) -> Response:
    response = Response(body, mimetype=media_type.split(";")[0])
    response.headers["Content-Type"] = f"{media_type}; charset=utf-8"
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@styles_blueprint.get("/styles/")
def list_styles() -> Response:
    """Every collection's styles (OGC API Styles-like list)."""
    root = request.url_root.rstrip("/")
    return jsonify({
        "styles": [{"id": s.collection, "title": s.title, "links": style_links(s.collection, root)[1:3]}
                   for s in palette().values()],
        "links": [maplibre_link(root, "气网 Qiwang (MapLibre)")],
    })


@styles_blueprint.get("/styles/maplibre.json")
def get_maplibre() -> Response:
    # url_root, not host_url: the tile URLs stay right when the app is mounted under a prefix.
    body = json.dumps(maplibre_style(request.url_root), ensure_ascii=False)
    return _text(body, STYLE_FORMATS["mapbox"])


@styles_blueprint.get("/styles/<collection>.qml")
def get_qml(collection: str) -> Response:
    return _text(qml(collection_or_404(palette(), collection).collection), STYLE_FORMATS["qml"])


@styles_blueprint.get("/styles/<collection>.sld")
def get_sld(collection: str) -> Response:
    return _text(sld(collection_or_404(palette(), collection).collection), STYLE_FORMATS["sld"])


@styles_blueprint.get("/styles/<path:name>")
def unknown_style(name: str) -> Response:
    raise NotFound(f"no style {name!r}: see /styles/")
