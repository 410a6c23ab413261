"""A QGIS 3 project (.qgs) with every Qiwang layer read over OGC API Features and styled.

Each layer uses QGIS's OAPIF provider against `{base}/ogc` (features in OGC:CRS84, fetched by the
visible extent, paged), carries the renderer of its QML style (app.styles, from the palette) and sits in
a layer-tree group (spatial.collections.Layer.group): 运行 operations on top, then 管网 network,
背景 context and 行政 administration at the bottom. The project CRS
is EPSG:3857, the CRS of the web map and of common basemaps.
"""
from __future__ import annotations

import math
from pathlib import Path
from urllib.parse import urlsplit

from lxml import etree
from pyproj import CRS

from app.errors import QiwangError
from app.styles import GROUPS, QGIS_VERSION, LayerStyle, drawing_order, layer_style, palette, renderer_element

PROJECT_CRS = "EPSG:3857"
# Opens on the demo city (鞍山市铁东区); lon/lat of the view's corners.
HOME_VIEW = (122.90, 41.05, 123.09, 41.17)
QGIS_GEOMETRY = {"point": "Point", "line": "Line", "polygon": "Polygon"}


def ogc_root(base_url: str) -> str:
    """`{base}/ogc` for a server root; a URL that already ends in /ogc is kept as it is."""
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise QiwangError(f"{base_url!r} is not an http(s) URL of a Qiwang server, e.g. http://127.0.0.1:5000")
    root = base_url.strip().rstrip("/")
    return root if root.endswith("/ogc") else root + "/ogc"


def datasource(collection: str, base_url: str) -> str:
    """The OAPIF provider's data source URI of one collection (key='value' pairs, as QGIS writes them)."""
    pairs = {
        "pagingEnabled": "true",
        "preferCoordinatesForWfsT11": "false",
        "restrictToRequestBBOX": "1",
        "srsname": "OGC:CRS84",
        "typename": collection,
        "url": ogc_root(base_url),
    }
    return " ".join(f"{k}='{v}'" for k, v in pairs.items())


def layer_id(collection: str) -> str:
    return f"qiwang_{collection}"


def _srs(parent: etree._Element, authid: str) -> None:
    """A <spatialrefsys> QGIS can read whatever its CRS database holds: WKT2 beside the authid."""
    crs = CRS.from_user_input(authid)
    srs = etree.SubElement(parent, "spatialrefsys", nativeFormat="Wkt")
    etree.SubElement(srs, "wkt").text = crs.to_wkt()
    etree.SubElement(srs, "authid").text = authid
    etree.SubElement(srs, "description").text = crs.name
    etree.SubElement(srs, "geographicflag").text = "true" if crs.is_geographic else "false"


def _web_mercator(lon: float, lat: float) -> tuple[float, float]:
    r = 6378137.0
    return math.radians(lon) * r, r * math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))


def _maplayer(layers: etree._Element, style: LayerStyle, base_url: str) -> None:
    ml = etree.SubElement(layers, "maplayer", type="vector", geometry=QGIS_GEOMETRY[style.geometry],
                          styleCategories="AllStyleCategories", hasScaleBasedVisibilityFlag="0",
                          minScale="100000000", maxScale="0", labelsEnabled="0", readOnly="0")
    etree.SubElement(ml, "id").text = layer_id(style.collection)
    etree.SubElement(ml, "datasource").text = datasource(style.collection, base_url)
    etree.SubElement(ml, "layername").text = style.title
    etree.SubElement(ml, "shortname").text = style.collection
    _srs(etree.SubElement(ml, "srs"), "OGC:CRS84")
    etree.SubElement(ml, "provider", encoding="UTF-8").text = "OAPIF"
    ml.append(renderer_element(style.collection))
    etree.SubElement(ml, "blendMode").text = "0"
    etree.SubElement(ml, "featureBlendMode").text = "0"
    etree.SubElement(ml, "layerOpacity").text = "1"


def project_xml(base_url: str, collections: list[str] | None = None) -> etree._Element:
    """The project document: layers in groups, each connected to the server and styled."""
    chosen = collections or list(palette())
    if len(set(chosen)) != len(chosen):
        raise QiwangError("a collection is named twice")
    styles = [layer_style(c) for c in chosen]
    ogc_root(base_url)  # check the URL once, before building anything

    root = etree.Element("qgis", projectname="气网 Qiwang", version=QGIS_VERSION)
    etree.SubElement(root, "homePath", path="")
    etree.SubElement(root, "title").text = "气网 Qiwang"
    _srs(etree.SubElement(root, "projectCrs"), PROJECT_CRS)

    # Layer tree, top first: groups operations → network → context; in a group points over lines
    # over polygons, and later palette entries over earlier ones (drawing order reversed).
    tree = etree.SubElement(root, "layer-tree-group")
    etree.SubElement(tree, "customproperties")
    top_first = list(reversed(drawing_order(chosen)))
    for group in reversed(GROUPS):
        members = [s for s in top_first if s.group == group]
        if not members:
            continue
        zh, en = GROUPS[group]
        node = etree.SubElement(tree, "layer-tree-group", name=f"{zh} {en}", checked="Qt::Checked", expanded="1")
        etree.SubElement(node, "customproperties")
        for style in members:
            etree.SubElement(node, "layer-tree-layer", id=layer_id(style.collection), name=style.title,
                             source=datasource(style.collection, base_url), providerKey="OAPIF",
                             checked="Qt::Checked", expanded="0")
    order = etree.SubElement(tree, "custom-order", enabled="0")
    for style in top_first:
        etree.SubElement(order, "item").text = layer_id(style.collection)

    canvas = etree.SubElement(root, "mapcanvas", name="theMapCanvas", annotationsVisible="1")
    etree.SubElement(canvas, "units").text = "meters"
    extent = etree.SubElement(canvas, "extent")
    (xmin, ymin), (xmax, ymax) = _web_mercator(*HOME_VIEW[:2]), _web_mercator(*HOME_VIEW[2:])
    for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), (xmin, ymin, xmax, ymax)):
        etree.SubElement(extent, tag).text = f"{value:.1f}"
    etree.SubElement(canvas, "rotation").text = "0"
    _srs(etree.SubElement(canvas, "destinationsrs"), PROJECT_CRS)

    layers = etree.SubElement(root, "projectlayers")
    for style in styles:
        _maplayer(layers, style, base_url)
    layer_order = etree.SubElement(root, "layerorder")
    for style in top_first:
        etree.SubElement(layer_order, "layer", id=layer_id(style.collection))
    return root


def write_project(path: Path, base_url: str, collections: list[str] | None = None) -> Path:
    """Write the project to `path` (parents created) and return it."""
    root = project_xml(base_url, collections)
    body = etree.tostring(root, pretty_print=True, encoding="unicode")
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + body, encoding="utf-8")
    except OSError as exc:
        raise QiwangError(f"cannot write the QGIS project {path}: {exc.strerror}") from None
    return path
