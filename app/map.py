"""The dispatcher web map (调度地图) at /map: MapLibre GL JS over the OGC API vector tiles and processes.

MapLibre comes from npm (`package.json`, installed by ./qiwang into node_modules/) and is served
by the app under /map/vendor/maplibre-gl/: the map makes no request outside the server (no CDN,
no web fonts, no glyph files: MapLibre draws labels with the computer's fonts). A basemap is
optional: $QIWANG_BASEMAP_URL is an XYZ or WMTS (KVP) tile URL template with {z}/{x}/{y} (and {key},
replaced by $QIWANG_BASEMAP_KEY, e.g. Tianditu's `tk`); without one, the city's roads, rivers,
railways and districts are the backdrop.

The page's JavaScript (app/static/map/) reads the style from /styles/maplibre.json and talks to
/ogc only; this module just serves the page, the scripts and the vendored library, and the OGC
HTML pages' assets under /ogc/static/ (app/ogc/html.py).
"""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, abort, current_app, render_template, send_from_directory

from core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
STATIC_DIR = Path(__file__).resolve().parent / "static" / "map"
MAPLIBRE_DIST = ROOT / "node_modules" / "maplibre-gl" / "dist"
# The files of maplibre-gl's dist/ the page may load (the CSP-free build and its stylesheet).
MAPLIBRE_FILES = frozenset({"maplibre-gl.js", "maplibre-gl.js.map", "maplibre-gl.css", "LICENSE.txt"})


def basemap_config(settings: Settings) -> dict[str, str] | None:
    """The raster basemap of the settings ({url, attribution}), or None when none is configured.

    basemap_url: tile URL template ({z}, {x}, {y}; `{key}` is replaced by basemap_key);
    basemap_attribution: the credit line shown on the map (core/settings.py).
    """
    url = (settings.basemap_url or "").strip()
    if not url:
        return None
    return {"url": url.replace("{key}", (settings.basemap_key or "").strip()),
            "attribution": (settings.basemap_attribution or "").strip()}


def maplibre_version() -> str | None:
    """The installed maplibre-gl version (None when `npm ci` has not run)."""
    import json

    try:
        return json.loads((MAPLIBRE_DIST.parent / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


map_blueprint = Blueprint("map", __name__, static_folder=str(STATIC_DIR), static_url_path="/map/static",
                          template_folder="templates")


@map_blueprint.get("/map")
def map_page() -> str:
    """The dispatcher map page."""
    from telemetry.measures import MEASURES

    measures = {m.name: {"zh": m.title_zh, "en": m.title_en, "unit": m.unit} for m in MEASURES.values()}
    return render_template("map.html", basemap=current_app.config["QIWANG_BASEMAP"],
                           maplibre_version=maplibre_version(), measures=measures)


@map_blueprint.get("/ogc/static/<path:path>")
def ogc_static(path: str) -> Response:
    """The OGC API HTML pages' assets: pygeoapi's static files and the vendored npm packages
    (Bootstrap, Leaflet, Leaflet.markercluster, Swagger UI) under vendor/ — see app/ogc/html.py."""
    from app.ogc.html import static_file

    found = static_file(path)
    if found is None:
        abort(404)
    folder, name = found
    return send_from_directory(folder, name, max_age=86400)


@map_blueprint.get("/map/vendor/maplibre-gl/<name>")
def maplibre_file(name: str) -> Response:
    """maplibre-gl's dist files from node_modules (installed by ./qiwang from package-lock.json)."""
    if name not in MAPLIBRE_FILES:
        abort(404)
    if not (MAPLIBRE_DIST / name).is_file():
        abort(503, description="maplibre-gl is not installed: run ./qiwang (npm ci) in the checkout")
    return send_from_directory(MAPLIBRE_DIST, name, max_age=86400)
