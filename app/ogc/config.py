"""The pygeoapi configuration and OpenAPI document of /ogc, generated from the database.

pygeoapi answers the landing page, collection documents, schemas, HTML pages, TileMatrixSets,
processes and jobs from this configuration (built from spatial/collections.py, never from a
hand-kept YAML); the paths Qiwang answers itself are documented here with the parameters they take.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from pygeoapi.openapi import get_oas

from app.ogc.html import html_vocabulary_of, templates_config
from app.ogc.links import collection_url, link, style_links
from app.processes import manager_definition, process_resources
from core.crs import EPSG_URI, served_crs, supported
from spatial import features
from spatial.collections import WORLD_CRS84, Collection

PREFIX = "/ogc"


# -- configuration ---------------------------------------------------------------------------------

def build_config(collections: dict[str, Collection], database_url: str, public_url: str,
                 jobs_dir: Path, basemap: dict[str, str] | None = None) -> dict:
    """The pygeoapi configuration for these collections.

    Parameters
    ----------
    collections
        The collections to serve, by id (spatial.ogc_provider.collections_of).
    database_url
        The SQLAlchemy URL of the database the features and jobs are in.
    public_url
        Where clients reach the server (its root); the API is at `public_url` + /ogc.
    jobs_dir
        Where asynchronous jobs' results are written.
    basemap
        The raster basemap of the HTML pages' maps ({url, attribution}; app.map.basemap_config),
        None for none.

    Returns
    -------
    dict
        pygeoapi's configuration: server, metadata, one resource per collection and per process,
        and ``qiwang_html`` (the item tables' Chinese column names and value labels).
    """
    base = public_url.rstrip("/") + PREFIX
    resources: dict[str, Any] = {}
    for c in collections.values():
        resources[c.id] = {
            "type": "collection",
            "title": f"{c.layer.title_zh} {c.layer.title_en}",
            "description": c.description or c.layer.title_en,
            "keywords": [c.layer.title_zh, c.layer.title_en, "燃气", "gas"],
            "links": [
                link("http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector", "application/json",
                     collection_url(base, c.id, "tiles") + "?f=json", "Vector tiles (MVT)"),
                # GDAL reads the JSON Schema behind `describedby` to type the fields before the first page.
                link("describedby", "application/schema+json", collection_url(base, c.id, "schema") + "?f=json",
                     "JSON Schema of the features"),
                *style_links(c.id, public_url),
            ],
            "extents": {"spatial": {"bbox": list(c.extent_crs84 or WORLD_CRS84),
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
            # HTML pages offline: our templates and assets (app/ogc/html.py); a basemap only when
            # one is configured (QIWANG_BASEMAP_URL), never a public tile server.
            "templates": templates_config(),
            "map": basemap or {"url": "", "attribution": ""},
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
    """pygeoapi's OpenAPI document, with the parameters Qiwang's items paths actually take.

    Parameters
    ----------
    config
        The configuration from `build_config`.
    collections
        The same collections.

    Returns
    -------
    dict
        An OpenAPI 3.0 document that resolves from this server alone (no reference to
        schemas.opengis.net), tagged with exactly the operations served.
    """
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
