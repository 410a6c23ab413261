"""A QGIS 3 project (.qgs) with every Qiwang layer read over OGC API Features and styled.

Written for the QGIS version asked (default 3.22, the LTR of Debian 12): the file is stamped with it
and says `ProjectionsEnabled`, without which QGIS 3.22 drops the project CRS (EPSG:3857, the CRS of
the web map and of common basemaps) when it reads the file.

Most layers use QGIS's OAPIF provider against `{base}/ogc` (features in OGC:CRS84, fetched by the
visible extent, paged, cached by QGIS). That provider takes a layer's geometry type from the first
features it reads and nothing else (QGIS issue #56946): an empty collection becomes a layer without
geometry or CRS, whatever the project file says, until it is loaded again once it has features. So
the records the system itself writes while it runs, and which start empty in every deployment
(alarms, incidents, topology issues), are read through GDAL's OAPIF driver (QGIS's "ogr" provider)
with their geometry type declared in the data source (`|geometrytype=`); GDAL pages through them
itself and reads them afresh at every redraw, which suits records that change by the minute.

Signing in (`authcfg`, a QGIS authentication configuration of method Basic). Both providers name it
in their data source, ` authcfg='<id>'` after the ogr source, as QGIS writes it (QGIS 3.22 reads no
`|authcfg=` part: it would end up in the URL and the layer would not open). The password stays in
QGIS's authentication database, never in the project. QGIS's ogr provider signs GDAL's requests by
routing them through its own network stack (QgsCPLHTTPFetchOverrider, a GDAL HTTP callback pushed
for the current thread) only inside the provider methods that set one up: the constructor, feature
iterators, subset strings, … but not QgsOgrProvider::featureCount()/recalculateFeatureCount() nor
reloadData() in QGIS 3.22. There GDAL fetches with libcurl directly, unsigned (seen on the server:
no Authorization and no User-Agent, where every other request carries QGIS's), gets 401 and the
layer reports 0 features, from whatever thread it is asked. With an `authcfg` each record layer is
therefore a QGIS virtual layer over that ogr layer (`?layer=ogr:<source>:<name>:UTF-8`): the virtual
provider counts with SQL over the ogr layer's feature iterator, which is signed, so the count is the
scope's exact count; the geometry type and CRS (EPSG:4326, GDAL's name for CRS84 features) are the
ogr layer's, so an empty collection stays a point layer; refreshing the layer is signed too.
Alternatives tried in QGIS 3.22 and rejected:

- QGIS's Basic method writes the credentials into an ogr source (in memory) only when it starts
  with `http(s)://` or `/vsicurl/http(s)://`, not `OAPIF:`, and unescaped (a password with '@',
  ':', '/' or '#' breaks the URL); GDAL opens such a URL with its GeoJSON driver: one request, no
  paging, at most the server's 10 000 features a page. `GeoJSON:http…` (no credentials written)
  counts in memory but has the same one-page limit, reports 3D points in EPSG:4979, and QGIS
  reopens it unsigned on refresh.
- QGIS's OAPIF provider for the records: signed throughout, but an empty collection becomes a layer
  without geometry or CRS (the reason above), and it counts only what `numberMatched` says.
- GDAL's USERPWD open option, GDAL_HTTP_USERPWD or a .netrc: a password outside QGIS's
  authentication database (in the project or on disk).

What the virtual layer costs: it gives spatial filters to SQLite, not to GDAL, so each redraw reads
the whole collection of the account's scope (in pages of GDAL_PAGE_SIZE) rather than the visible
extent, and date-time fields come out as ISO text. Without an `authcfg` the record layers stay the
plain ogr layers above, whose count QGIS 3.22 asks for unsigned.

Each layer carries the renderer of its QML style (spatial.styles, from the palette) and sits in a
layer-tree group (spatial.collections.Layer.group): 运行 operations on top, then 管网 network,
背景 context and 行政 administration at the bottom.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from urllib.parse import quote, urlsplit

from lxml import etree
from pyproj import CRS

from core.errors import QiwangError
from spatial.styles import GROUPS, LayerStyle, drawing_order, layer_style, palette, renderer_element

PROJECT_CRS = "EPSG:3857"
DEFAULT_QGIS_VERSION = "3.22"
OLDEST_QGIS = (3, 22)  # the oldest release the generated projects are tested with (tests/test_qgis.py)
# Release names QGIS writes after the number (long-term releases; others get the bare number).
QGIS_RELEASE_NAMES = {(3, 22): "Białowieża", (3, 28): "Firenze", (3, 34): "Prizren", (3, 40): "Bratislava"}
# Collections read through GDAL's OAPIF driver, with the geometry type (OGR name) their table holds:
# empty until the system writes them, so QGIS's own provider could not learn their geometry type.
RECORD_GEOMETRY = {"alarms": "Point25D", "incidents": "Point", "topology_issues": "Point"}
GDAL_CRS = "EPSG:4326"  # what GDAL's OAPIF driver reports for CRS84 features (longitude first)
GDAL_PAGE_SIZE = 1000  # GDAL before 3.8 asks for pages of 10 otherwise
# Opens on the demo city (鞍山市铁东区); lon/lat of the view's corners.
HOME_VIEW = (122.90, 41.05, 123.09, 41.17)
QGIS_GEOMETRY = {"point": "Point", "line": "Line", "polygon": "Polygon"}
# QGIS's authentication configuration ids (QgsAuthManager makes them so; app/files_api.py checks the same):
# anything else could not be quoted in a data source.
AUTHCFG = re.compile(r"[A-Za-z0-9]{7}")


def ogc_root(base_url: str) -> str:
    """`{base}/ogc` for a server root; a URL that already ends in /ogc is kept as it is."""
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise QiwangError(f"{base_url!r} is not an http(s) URL of a Qiwang server, e.g. http://127.0.0.1:5000")
    root = base_url.strip().rstrip("/")
    return root if root.endswith("/ogc") else root + "/ogc"


def qgis_version(text: str) -> tuple[int, int, int]:
    """(major, minor, patch) of a QGIS version such as '3.22' or '3.28.4'; 3.22 and later 3.x only."""
    match = re.fullmatch(r"\s*(\d+)\.(\d+)(?:\.(\d+))?\s*", text or "")
    if not match:
        raise QiwangError(f"--qgis-version {text!r}: give a QGIS version such as 3.22 or 3.28.4")
    version = int(match[1]), int(match[2]), int(match[3] or 0)
    if version[:2] < OLDEST_QGIS or version[0] != 3:
        raise QiwangError(f"--qgis-version {text}: projects are written for QGIS 3.22 to 3.x")
    return version


def version_stamp(version: tuple[int, int, int]) -> str:
    """The `version` attribute QGIS itself writes, e.g. '3.22.0-Białowieża'."""
    name = QGIS_RELEASE_NAMES.get(version[:2])
    return ".".join(map(str, version)) + (f"-{name}" if name else "")


def provider(collection: str, authcfg: str | None = None) -> str:
    """The QGIS data provider of a collection's layer: 'OAPIF', or for the records 'ogr' (GDAL's
    OAPIF driver), wrapped in a 'virtual' layer when the layer signs in with `authcfg`."""
    if collection not in RECORD_GEOMETRY:
        return "OAPIF"
    return "virtual" if authcfg else "ogr"


def gdal_source(collection: str, base_url: str, authcfg: str | None = None) -> str:
    """The ogr provider's data source of a record collection: GDAL's OAPIF connection string, with
    the layer's geometry type and GDAL's page size after '|' and ` authcfg='<id>'` at the end."""
    source = (f"OAPIF:{ogc_root(base_url)}/collections/{collection}|layername={collection}"
              f"|geometrytype={RECORD_GEOMETRY[collection]}|option:PAGE_SIZE={GDAL_PAGE_SIZE}")
    return source + (f" authcfg='{authcfg}'" if authcfg else "")


def datasource(collection: str, base_url: str, authcfg: str | None = None) -> str:
    """The data source URI of one collection's layer, in the form its provider() reads.

    OAPIF: key='value' pairs, as QGIS writes them. ogr: gdal_source(). virtual: that ogr layer
    embedded, percent-encoded as QgsVirtualLayerDefinition.toString() writes it (everything but
    letters, digits and '-._~'), named after the collection. `authcfg`: the QGIS authentication
    configuration (Basic: account and password or token) the layer signs in with.
    """
    if collection in RECORD_GEOMETRY:
        source = gdal_source(collection, base_url, authcfg)
        if provider(collection, authcfg) == "ogr":
            return source
        return f"?layer=ogr:{quote(source, safe='')}:{collection}:UTF-8"
    pairs = {
        "pagingEnabled": "true",
        "preferCoordinatesForWfsT11": "false",
        "restrictToRequestBBOX": "1",
        "srsname": "OGC:CRS84",
        "typename": collection,
        "url": ogc_root(base_url),
    }
    if authcfg:
        pairs = {"authcfg": authcfg, **pairs}
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


def _maplayer(layers: etree._Element, style: LayerStyle, base_url: str, authcfg: str | None) -> None:
    ml = etree.SubElement(layers, "maplayer", type="vector", geometry=QGIS_GEOMETRY[style.geometry],
                          styleCategories="AllStyleCategories", hasScaleBasedVisibilityFlag="0",
                          minScale="100000000", maxScale="0", labelsEnabled="0", readOnly="0")
    etree.SubElement(ml, "id").text = layer_id(style.collection)
    etree.SubElement(ml, "datasource").text = datasource(style.collection, base_url, authcfg)
    etree.SubElement(ml, "layername").text = style.title
    etree.SubElement(ml, "shortname").text = style.collection
    _srs(etree.SubElement(ml, "srs"), GDAL_CRS if style.collection in RECORD_GEOMETRY else "OGC:CRS84")
    etree.SubElement(ml, "provider", encoding="UTF-8").text = provider(style.collection, authcfg)
    ml.append(renderer_element(style.collection))
    etree.SubElement(ml, "blendMode").text = "0"
    etree.SubElement(ml, "featureBlendMode").text = "0"
    etree.SubElement(ml, "layerOpacity").text = "1"


def project_xml(base_url: str, collections: list[str] | None = None,
                version: str = DEFAULT_QGIS_VERSION, authcfg: str | None = None) -> etree._Element:
    """The project document for QGIS `version`: layers in groups, each connected to the server and
    styled, signing in with QGIS authentication configuration `authcfg` when given."""
    stamp = version_stamp(qgis_version(version))
    chosen = collections or list(palette())
    if len(set(chosen)) != len(chosen):
        raise QiwangError("a collection is named twice")
    styles = [layer_style(c) for c in chosen]
    ogc_root(base_url)  # check the URL once, before building anything
    if authcfg is not None and not AUTHCFG.fullmatch(authcfg):
        raise QiwangError(f"authcfg {authcfg[:40]!r} is not a QGIS authentication configuration id "
                          "(7 letters or digits)")

    root = etree.Element("qgis", projectname="气网 Qiwang", version=stamp)
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
                             source=datasource(style.collection, base_url, authcfg),
                             providerKey=provider(style.collection, authcfg),
                             checked="Qt::Checked", expanded="0")
    order = etree.SubElement(tree, "custom-order", enabled="0")
    for style in top_first:
        etree.SubElement(order, "item").text = layer_id(style.collection)

    canvas = etree.SubElement(root, "mapcanvas", name="theMapCanvas", annotationsVisible="1")
    etree.SubElement(canvas, "units").text = "meters"
    extent = etree.SubElement(canvas, "extent")
    (xmin, ymin), (xmax, ymax) = _web_mercator(*HOME_VIEW[:2]), _web_mercator(*HOME_VIEW[2:])
    for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), (xmin, ymin, xmax, ymax), strict=True):
        etree.SubElement(extent, tag).text = f"{value:.1f}"
    etree.SubElement(canvas, "rotation").text = "0"
    _srs(etree.SubElement(canvas, "destinationsrs"), PROJECT_CRS)

    layers = etree.SubElement(root, "projectlayers")
    for style in styles:
        _maplayer(layers, style, base_url, authcfg)
    layer_order = etree.SubElement(root, "layerorder")
    for style in top_first:
        etree.SubElement(layer_order, "layer", id=layer_id(style.collection))
    # Without this switch QGIS 3.22 reads the project as having no CRS (tests/test_qgis.py).
    properties = etree.SubElement(root, "properties")
    srs_properties = etree.SubElement(properties, "SpatialRefSys")
    etree.SubElement(srs_properties, "ProjectionsEnabled", type="int").text = "1"
    return root


def project_document(root: etree._Element) -> str:
    """The text of a project file (with the DOCTYPE QGIS writes)."""
    return "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + etree.tostring(
        root, pretty_print=True, encoding="unicode")


def write_project(path: Path, base_url: str, collections: list[str] | None = None,
                  version: str = DEFAULT_QGIS_VERSION, authcfg: str | None = None) -> Path:
    """Write the project for QGIS `version` to `path` (parents created) and return it."""
    text = project_document(project_xml(base_url, collections, version, authcfg))
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise QiwangError(f"cannot write the QGIS project {path}: {exc.strerror}") from None
    return path
