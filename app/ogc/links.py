"""Links in the answers of /ogc and /styles: one builder, so that every link has the same members in
the same order (rel, type, title, templated, href) and every collection URL is spelled once."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from spatial.styles import STYLE_FORMATS, layer_style

GEOJSON = "application/geo+json"
STYLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/styles"


def link(rel: str, media_type: str, href: str, title: str | None = None, *, templated: bool = False
         ) -> dict[str, Any]:
    """A link object of OGC API Common.

    Parameters
    ----------
    rel
        The relation (``self``, ``alternate``, ``collection``, ``next``, or an OGC relation URI).
    media_type
        The media type of the target (``application/geo+json``, ``text/html`` …).
    href
        The absolute URL of the target; a URI template when `templated`.
    title
        For people; left out when None.
    templated
        Whether `href` is a URI template (``{tileMatrix}`` …); the member is left out when not.

    Returns
    -------
    dict
        ``{"rel", "type", "title"?, "templated"?, "href"}``.
    """
    out: dict[str, Any] = {"rel": rel, "type": media_type}
    if title is not None:
        out["title"] = title
    if templated:
        out["templated"] = True
    out["href"] = href
    return out


def collection_url(base: str, collection_id: str, *path: str) -> str:
    """`{base}/collections/{id}` and the path below it (``items``, ``tiles`` …), `base` ending in /ogc."""
    return "/".join((f"{base}/collections/{collection_id}", *path))


def with_query(url: str, params: Iterable[tuple[str, str]]) -> str:
    """`url` with the query parameters `params` (in their order, repeats kept); no ``?`` when none."""
    query = urlencode(list(params))
    return f"{url}?{query}" if query else url


def page_links(url: str, args: list[tuple[str, str]], collection_href: str, collection_title: str,
               next_cursor: str | None) -> list[dict[str, Any]]:
    """The links of one page of items: self, the same page as HTML, its collection, and the next page.

    Parameters
    ----------
    url
        The items URL of the collection, without a query.
    args
        The query parameters of this request, in their order (repeats kept).
    collection_href, collection_title
        The collection document's URL and title.
    next_cursor
        The keyset cursor of the next page; None on the last page (no next link).

    Returns
    -------
    list of dict
        The link objects, self first. The HTML and next links drop `cursor`, `offset` and `f`.
    """
    kept = [(k, v) for k, v in args if k not in ("cursor", "offset", "f")]
    links = [
        link("self", GEOJSON, with_query(url, args), "This page"),
        link("alternate", "text/html", with_query(url, [*kept, ("f", "html")]), "This page as HTML"),
        link("collection", "application/json", collection_href, collection_title),
    ]
    if next_cursor is not None:
        links.append(link("next", GEOJSON, with_query(url, [*kept, ("cursor", next_cursor)]), "Next page"))
    return links


def style_links(collection_id: str, base_url: str) -> list[dict[str, Any]]:
    """The links of a collection document to its styles (/styles, outside /ogc).

    Parameters
    ----------
    collection_id
        The collection's id; it must have a style in styles/palette.yaml.
    base_url
        The server's root URL (not /ogc); a trailing slash is ignored.

    Returns
    -------
    list of dict
        The styles list, then one stylesheet per format: QML, SLD, and the MapLibre style of all layers.

    Raises
    ------
    core.errors.NotFound
        For a collection without a style.
    """
    root = base_url.rstrip("/")
    title = layer_style(collection_id).title
    return [
        link(STYLES_REL, "application/json", f"{root}/styles/", "样式 Styles"),
        link("stylesheet", STYLE_FORMATS["qml"], f"{root}/styles/{collection_id}.qml", f"{title} (QGIS QML)"),
        link("stylesheet", STYLE_FORMATS["sld"], f"{root}/styles/{collection_id}.sld", f"{title} (SLD 1.1)"),
        maplibre_link(root, "气网 Qiwang (MapLibre, all layers)"),
    ]


def maplibre_link(root: str, title: str) -> dict[str, Any]:
    """The stylesheet link to the MapLibre style of all layers, under the server root `root`."""
    return link("stylesheet", STYLE_FORMATS["mapbox"], f"{root}/styles/maplibre.json", title)
