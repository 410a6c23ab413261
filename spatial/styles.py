"""Layer styles: QGIS QML, SLD 1.1 and a MapLibre style, all built from styles/palette.yaml.

The palette is the one source of symbology; nothing here hand-writes a colour. Every collection's
style is a list of rules, each an AND of `property = value` tests (or the ELSE rule) with one
symbol, so that the three outputs stay in step: a QGIS rule-based renderer, SLD Rules with
ogc:Filter / ElseFilter, and one MapLibre layer per rule whose filter is the same test (the ELSE
rule's filter is "none of the others").

Free of Flask: the HTTP routes are app/styles.py, the QGIS project app/qgis_project.py. The server
builds the styles per request (MapLibre needs the request's host for its tile URLs);
`python -m spatial.styles` rewrites the committed copies under styles/ for people who load files.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from lxml import etree

from core.errors import NotFound, QiwangError
from spatial.collections import LAYERS
from spatial.tiles import rule as tile_rule

STYLES_DIR = Path(__file__).resolve().parent.parent / "styles"
PALETTE_PATH = STYLES_DIR / "palette.yaml"
# The committed MapLibre copy points at the default local server.
DEFAULT_BASE_URL = "http://127.0.0.1:5000/"

# The media type of each document built here (for HTTP answers and links).
STYLE_FORMATS = {
    "qml": "application/vnd.qgis.qml",
    "sld": "application/vnd.ogc.sld+xml;version=1.1",
    "mapbox": "application/vnd.mapbox.style+json",
}

# spatial.collections.Layer.group → QGIS layer-tree group, bottom group first.
GROUPS = {"admin": ("行政", "Administration"), "context": ("背景", "Context"), "network": ("管网", "Network"),
          "operations": ("运行", "Operations")}
GEOMETRIES = ("polygon", "line", "point")  # also the bottom-to-top drawing order
MARKER_SHAPES = ("circle", "square", "triangle", "diamond", "star", "cross", "x")
# MapLibre asks for tiles up to this zoom and overzooms beyond it (every feature is in z16 tiles).
TILE_MAXZOOM = 16
QGIS_VERSION = "3.28.0-Firenze"

MM_PER_PX = 25.4 / 96  # QGIS works in mm, the palette in 96-dpi pixels

# MapLibre has no sprite here: a non-circle marker is one character drawn by the browser's own fonts
# (MapLibre ≥ 5.11 draws text locally with TinySDF when the style has no `glyphs`), filled or hollow.
MARKER_GLYPHS = {"square": ("■", "□"), "triangle": ("▲", "△"), "diamond": ("◆", "◇"), "star": ("★", "☆"),
                 "cross": ("✚", "✚"), "x": ("✖", "✖")}
# Text size per pixel of marker size: these characters fill about 3/4 of their em box.
MARKER_GLYPH_SCALE = {"square": 1.25, "triangle": 1.3, "diamond": 1.3, "star": 1.3, "cross": 1.25, "x": 1.25}
# CSS font families (no font file is downloaded): CJK first so that Chinese names render well everywhere.
LABEL_FONTS = ["Noto Sans CJK SC", "WenQuanYi Micro Hei", "Microsoft YaHei", "PingFang SC", "sans-serif"]
SYMBOL_FONTS = ["DejaVu Sans", "Segoe UI Symbol", "sans-serif"]


@dataclass(frozen=True)
class Line:
    color: str
    width: float
    dash: tuple[float, ...] = ()


@dataclass(frozen=True)
class Marker:
    shape: str
    fill: str | None  # None: hollow
    stroke: str
    size: float


@dataclass(frozen=True)
class Fill:
    fill: str | None  # None: outline only
    stroke: str
    stroke_width: float
    fill_opacity: float = 1.0
    stroke_dash: tuple[float, ...] = ()


Symbol = Line | Marker | Fill


@dataclass(frozen=True)
class Label:
    """Text drawn on the web map: `field` from `min_zoom` on (along lines, at points and polygons)."""

    field: str
    min_zoom: int
    size: float
    color: str
    halo: str


@dataclass(frozen=True)
class Rule:
    key: str
    title_zh: str
    title_en: str
    when: tuple[tuple[str, Any], ...] | None  # None: the ELSE rule
    symbol: Symbol

    @property
    def label(self) -> str:
        return f"{self.title_zh} {self.title_en}"


@dataclass(frozen=True)
class LayerStyle:
    collection: str
    table: str
    title_zh: str
    title_en: str
    group: str
    geometry: str
    rules: tuple[Rule, ...]
    label: Label | None = None

    @property
    def title(self) -> str:
        return f"{self.title_zh} {self.title_en}"

    @property
    def draw_rank(self) -> int:
        """Polygons under lines under points, whatever their group."""
        return GEOMETRIES.index(self.geometry)


# --- the palette ---------------------------------------------------------------------------------


def _color(value: Any, where: str) -> str:
    if not (isinstance(value, str) and len(value) == 7 and value[0] == "#"
            and all(c in "0123456789abcdefABCDEF" for c in value[1:])):
        raise QiwangError(f"{PALETTE_PATH}: {where}: colour {value!r} is not #rrggbb")
    return value.lower()


def _symbol(geometry: str, spec: dict, where: str) -> Symbol:
    kinds = {"line": "line", "point": "marker", "polygon": "polygon"}
    body = spec.get(kinds[geometry])
    if not isinstance(body, dict):
        raise QiwangError(f"{PALETTE_PATH}: {where}: a {geometry} layer's rule needs `{kinds[geometry]}:`")
    if geometry == "line":
        return Line(_color(body["color"], where), float(body["width"]), tuple(map(float, body.get("dash") or ())))
    if geometry == "point":
        if body["shape"] not in MARKER_SHAPES:
            raise QiwangError(f"{PALETTE_PATH}: {where}: shape {body['shape']!r} is not one of {MARKER_SHAPES}")
        fill = body.get("fill")
        return Marker(body["shape"], fill and _color(fill, where), _color(body["stroke"], where), float(body["size"]))
    fill = body.get("fill")
    return Fill(fill and _color(fill, where), _color(body["stroke"], where), float(body["stroke_width"]),
                float(body.get("fill_opacity", 1.0)), tuple(map(float, body.get("stroke_dash") or ())))


def _layer(collection: str, spec: dict) -> LayerStyle:
    if collection not in LAYERS:
        raise QiwangError(f"{PALETTE_PATH}: {collection} is not a collection of spatial/collections.py")
    layer = LAYERS[collection]
    if layer.group not in GROUPS or spec.get("geometry") not in GEOMETRIES:
        raise QiwangError(f"{PALETTE_PATH}: {collection}: group must be one of {tuple(GROUPS)}, "
                          f"geometry one of {GEOMETRIES}")
    rules = []
    for raw in spec["rules"]:
        where = f"{collection}.{raw.get('key')}"
        when = raw.get("when")
        rules.append(Rule(raw["key"], raw["title_zh"], raw["title_en"],
                          tuple(when.items()) if when else None, _symbol(spec["geometry"], raw, where)))
    elses = [r for r in rules if r.when is None]
    # One rule alone is a single symbol; otherwise exactly one ELSE rule, and it comes last so that
    # MapLibre draws it first (underneath) and QGIS lists it last in the legend.
    if len(rules) > 1 and (len(elses) != 1 or rules[-1].when is not None):
        raise QiwangError(f"{PALETTE_PATH}: {collection}: a layer with several rules needs one ELSE rule "
                          "(no `when`), placed last")
    # SLD and MapLibre draw every rule that matches: rules must test the same properties with
    # different values so that no feature is drawn twice.
    tested = {tuple(sorted(dict(r.when))) for r in rules if r.when}
    values = [tuple(sorted(r.when)) for r in rules if r.when]
    if len(tested) > 1 or len(set(values)) != len(values):
        raise QiwangError(f"{PALETTE_PATH}: {collection}: rules overlap (each must test the same properties "
                          "with other values)")
    if len({r.key for r in rules}) != len(rules):
        raise QiwangError(f"{PALETTE_PATH}: {collection}: rule keys repeat")
    return LayerStyle(collection, layer.table, layer.title_zh, layer.title_en, layer.group, spec["geometry"],
                      tuple(rules), _label(spec.get("label"), collection))


def _label(spec: dict | None, collection: str) -> Label | None:
    if spec is None:
        return None
    where = f"{collection}.label"
    try:
        return Label(str(spec["field"]), int(spec["min_zoom"]), float(spec["size"]), _color(spec["color"], where),
                     _color(spec["halo"], where))
    except (KeyError, TypeError, ValueError) as exc:
        raise QiwangError(f"{PALETTE_PATH}: {where}: needs field, min_zoom, size, color, halo ({exc})") from None


@cache
def _palette_file() -> dict:
    try:
        return yaml.safe_load(PALETTE_PATH.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise QiwangError(f"cannot read the style palette {PALETTE_PATH}: {exc}") from None


@cache
def palette() -> dict[str, LayerStyle]:
    """Every collection's style, in palette order (the drawing order within a geometry type)."""
    return {cid: _layer(cid, spec) for cid, spec in _palette_file()["collections"].items()}


@cache
def overlay_colors() -> dict[str, str]:
    """The colours of the web map's analysis overlays (burst, radius, route, highlight), by key."""
    return {key: _color(value, f"overlays.{key}") for key, value in (_palette_file().get("overlays") or {}).items()}


def layer_style(collection: str) -> LayerStyle:
    """The style of one collection.

    Parameters
    ----------
    collection
        The collection's id in the OGC API (``pipes``, ``valves``).

    Returns
    -------
    LayerStyle
        Its rules and symbols from styles/palette.yaml.

    Raises
    ------
    NotFound
        For a collection the palette does not style (the message lists the known ones).
    """
    try:
        return palette()[collection]
    except KeyError:
        raise NotFound(f"no style for collection {collection!r}; known: {', '.join(palette())}") from None


def drawing_order(collections: list[str] | None = None) -> list[LayerStyle]:
    """Bottom to top: polygons, lines, points; pipes above roads, alarms above valves (palette order)."""
    styles = [layer_style(c) for c in collections] if collections else list(palette().values())
    return sorted(styles, key=lambda s: s.draw_rank)  # stable: palette order within a geometry


def marker_stroke_px(sym: Marker) -> float:
    """Outline width: line-only shapes (cross, x) and hollow markers need a heavier pen to read."""
    if sym.shape in ("cross", "x"):
        return 2.5
    return 2.0 if sym.fill is None else 1.0


# --- QGIS QML ------------------------------------------------------------------------------------


def _qgis_color(hex_color: str | None, alpha: float = 1.0) -> str:
    if hex_color is None:
        return "0,0,0,0"
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"{r},{g},{b},{round(alpha * 255)}"


def _mm(px: float) -> str:
    return f"{px * MM_PER_PX:.3g}"


def _options(parent: etree._Element, props: dict[str, str]) -> None:
    """QGIS 3 symbol-layer properties: <Option type="Map"> of QString options."""
    options = etree.SubElement(parent, "Option", type="Map")
    for name, value in sorted(props.items()):
        etree.SubElement(options, "Option", type="QString", name=name, value=value)


def _empty_data_defined(parent: etree._Element, tag: str = "data_defined_properties") -> None:
    ddp = etree.SubElement(parent, tag)
    options = etree.SubElement(ddp, "Option", type="Map")
    etree.SubElement(options, "Option", type="QString", name="name", value="")
    etree.SubElement(options, "Option", name="properties")
    etree.SubElement(options, "Option", type="QString", name="type", value="collection")


def _symbol_layer(symbol: etree._Element, cls: str, props: dict[str, str]) -> None:
    layer = etree.SubElement(symbol, "layer", {"class": cls, "enabled": "1", "locked": "0", "pass": "0"})
    _options(layer, props)
    _empty_data_defined(layer)


def _line_props(color: str, width: float, dash: tuple[float, ...]) -> dict[str, str]:
    return {
        "line_color": _qgis_color(color), "line_width": _mm(width), "line_width_unit": "MM",
        "line_style": "solid", "use_custom_dash": "1" if dash else "0",
        "customdash": ";".join(_mm(d) for d in dash) if dash else "5;2", "customdash_unit": "MM",
        "capstyle": "flat" if dash else "round", "joinstyle": "round", "offset": "0", "offset_unit": "MM",
        "align_dash_pattern": "0", "dash_pattern_offset": "0", "draw_inside_polygon": "0", "ring_filter": "0",
        "trim_distance_start": "0", "trim_distance_end": "0", "tweak_dash_pattern_on_corners": "0",
    }


def _qml_symbol(symbols: etree._Element, name: str, sym: Symbol) -> None:
    kind = {Line: "line", Marker: "marker", Fill: "fill"}[type(sym)]
    el = etree.SubElement(symbols, "symbol", {
        "type": kind, "name": name, "alpha": "1", "clip_to_extent": "1", "force_rhr": "0",
        "is_animated": "0", "frame_rate": "10"})
    _empty_data_defined(el)
    if isinstance(sym, Line):
        _symbol_layer(el, "SimpleLine", _line_props(sym.color, sym.width, sym.dash))
    elif isinstance(sym, Marker):
        _symbol_layer(el, "SimpleMarker", {
            "name": {"x": "cross2"}.get(sym.shape, sym.shape), "color": _qgis_color(sym.fill),
            "outline_color": _qgis_color(sym.stroke), "outline_style": "solid",
            "outline_width": _mm(marker_stroke_px(sym)), "outline_width_unit": "MM",
            "size": _mm(sym.size), "size_unit": "MM", "angle": "0", "scale_method": "diameter",
            "joinstyle": "bevel", "cap_style": "square", "offset": "0,0", "offset_unit": "MM",
            "horizontal_anchor_point": "1", "vertical_anchor_point": "1"})
    else:
        _symbol_layer(el, "SimpleFill", {
            "color": _qgis_color(sym.fill, sym.fill_opacity), "style": "solid" if sym.fill else "no",
            "outline_style": "no", "outline_color": _qgis_color(sym.stroke), "outline_width": "0",
            "outline_width_unit": "MM", "joinstyle": "bevel", "offset": "0,0", "offset_unit": "MM"})
        # The outline is its own line layer so that it can carry the palette's dash pattern.
        _symbol_layer(el, "SimpleLine", _line_props(sym.stroke, sym.stroke_width, sym.stroke_dash))


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def qgis_expression(when: tuple[tuple[str, Any], ...]) -> str:
    """A rule's test as a QGIS expression, e.g. "status" = 'in_service' AND "pressure_class" = 3."""
    return " AND ".join(f'"{prop}" = {_literal(value)}' for prop, value in when)


def _key(*parts: str) -> str:
    """A stable QGIS rule key, so that regenerated files do not churn."""
    return "{" + str(uuid.uuid5(uuid.NAMESPACE_URL, "qiwang-style:" + ":".join(parts))) + "}"


def renderer_element(collection: str) -> etree._Element:
    """The <renderer-v2> of a collection: singleSymbol for one rule, else a RuleRenderer."""
    style = layer_style(collection)
    common = {"symbollevels": "0", "enableorderby": "0", "forceraster": "0", "referencescale": "-1"}
    if len(style.rules) == 1:
        renderer = etree.Element("renderer-v2", type="singleSymbol", **common)
        _qml_symbol(etree.SubElement(renderer, "symbols"), "0", style.rules[0].symbol)
        etree.SubElement(renderer, "rotation")
        etree.SubElement(renderer, "sizescale")
        return renderer
    renderer = etree.Element("renderer-v2", type="RuleRenderer", **common)
    rules = etree.SubElement(renderer, "rules", key=_key(collection))
    symbols = etree.SubElement(renderer, "symbols")
    for i, rule in enumerate(style.rules):
        etree.SubElement(rules, "rule", key=_key(collection, rule.key), symbol=str(i), label=rule.label,
                         filter=qgis_expression(rule.when) if rule.when else "ELSE")
        _qml_symbol(symbols, str(i), rule.symbol)
    return renderer


def qml(collection: str) -> str:
    """A QGIS 3 style file (symbology only) for a collection."""
    style = layer_style(collection)
    root = etree.Element("qgis", version=QGIS_VERSION, styleCategories="Symbology")
    root.append(renderer_element(collection))
    etree.SubElement(root, "blendMode").text = "0"
    etree.SubElement(root, "featureBlendMode").text = "0"
    etree.SubElement(root, "layerGeometryType").text = str({"point": 0, "line": 1, "polygon": 2}[style.geometry])
    body = etree.tostring(root, pretty_print=True, encoding="unicode")
    return "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + body


# --- SLD 1.1 -------------------------------------------------------------------------------------

SLD_NS = "http://www.opengis.net/sld"
SE_NS = "http://www.opengis.net/se"
OGC_NS = "http://www.opengis.net/ogc"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"


def _se(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    el = etree.SubElement(parent, f"{{{SE_NS}}}{tag}", **attrs)
    if text is not None:
        el.text = text
    return el


def _svg(parent: etree._Element, tag: str, params: dict[str, str]) -> etree._Element:
    el = _se(parent, tag)
    for name, value in params.items():
        _se(el, "SvgParameter", value, name=name)
    return el


def _stroke(parent: etree._Element, color: str, width: float, dash: tuple[float, ...]) -> None:
    params = {"stroke": color, "stroke-width": f"{width:g}", "stroke-linejoin": "round",
              "stroke-linecap": "butt" if dash else "round"}
    if dash:
        params["stroke-dasharray"] = " ".join(f"{d:g}" for d in dash)
    _svg(parent, "Stroke", params)


def _sld_symbolizer(rule_el: etree._Element, sym: Symbol) -> None:
    if isinstance(sym, Line):
        _stroke(_se(rule_el, "LineSymbolizer"), sym.color, sym.width, sym.dash)
    elif isinstance(sym, Fill):
        poly = _se(rule_el, "PolygonSymbolizer")
        if sym.fill:
            _svg(poly, "Fill", {"fill": sym.fill, "fill-opacity": f"{sym.fill_opacity:g}"})
        _stroke(poly, sym.stroke, sym.stroke_width, sym.stroke_dash)
    else:
        graphic = _se(_se(rule_el, "PointSymbolizer"), "Graphic")
        mark = _se(graphic, "Mark")
        # SLD has no diamond: a square turned 45° (what QGIS exports too).
        _se(mark, "WellKnownName", "square" if sym.shape == "diamond" else sym.shape)
        if sym.fill:
            _svg(mark, "Fill", {"fill": sym.fill})
        _svg(mark, "Stroke", {"stroke": sym.stroke, "stroke-width": f"{marker_stroke_px(sym):g}"})
        _se(graphic, "Size", f"{sym.size:g}")
        if sym.shape == "diamond":
            _se(graphic, "Rotation", "45")


def _ogc_filter(parent: etree._Element, when: tuple[tuple[str, Any], ...]) -> None:
    filt = etree.SubElement(parent, f"{{{OGC_NS}}}Filter")
    target = etree.SubElement(filt, f"{{{OGC_NS}}}And") if len(when) > 1 else filt
    for prop, value in when:
        test = etree.SubElement(target, f"{{{OGC_NS}}}PropertyIsEqualTo")
        etree.SubElement(test, f"{{{OGC_NS}}}PropertyName").text = prop
        etree.SubElement(test, f"{{{OGC_NS}}}Literal").text = _literal(value) if isinstance(value, bool) else str(value)


def sld(collection: str) -> str:
    """An SLD 1.1.0 (Symbology Encoding) document: NamedLayer = collection id, one Rule per palette rule."""
    style = layer_style(collection)
    root = etree.Element(f"{{{SLD_NS}}}StyledLayerDescriptor", nsmap={
        None: SLD_NS, "se": SE_NS, "ogc": OGC_NS, "xsi": XSI_NS}, version="1.1.0")
    root.set(f"{{{XSI_NS}}}schemaLocation",
             "http://www.opengis.net/sld http://schemas.opengis.net/sld/1.1.0/StyledLayerDescriptor.xsd")
    layer = etree.SubElement(root, f"{{{SLD_NS}}}NamedLayer")
    _se(layer, "Name", collection)
    user_style = etree.SubElement(layer, f"{{{SLD_NS}}}UserStyle")
    _se(user_style, "Name", collection)
    _se(_se(user_style, "Description"), "Title", style.title)
    fts = _se(user_style, "FeatureTypeStyle")
    for rule in style.rules:
        rule_el = _se(fts, "Rule")
        _se(rule_el, "Name", rule.key)
        _se(_se(rule_el, "Description"), "Title", rule.label)
        if rule.when:
            _ogc_filter(rule_el, rule.when)
        elif len(style.rules) > 1:
            _se(rule_el, "ElseFilter")
        _sld_symbolizer(rule_el, rule.symbol)
    return etree.tostring(root, pretty_print=True, xml_declaration=True, encoding="UTF-8").decode("utf-8")


# --- MapLibre ------------------------------------------------------------------------------------


def maplibre_filter(style: LayerStyle, rule: Rule) -> list | None:
    """The MapLibre expression of a rule; the ELSE rule is "none of the others"."""
    def test(when: tuple[tuple[str, Any], ...]) -> list:
        parts = [["==", ["get", prop], value] for prop, value in when]
        return parts[0] if len(parts) == 1 else ["all", *parts]

    if rule.when:
        return test(rule.when)
    others = [test(r.when) for r in style.rules if r.when]
    return ["!", ["any", *others]] if others else None


SOURCE = "qiwang"  # the MapLibre source of every layer


def _maplibre_layers(style: LayerStyle, min_zoom: int) -> list[dict]:
    layers = []
    # The ELSE rule last in the palette, first here: MapLibre draws later layers on top.
    for rule in [style.rules[-1], *style.rules[:-1]] if len(style.rules) > 1 else style.rules:
        metadata: dict[str, Any] = {"qiwang:title": rule.label, "qiwang:collection": style.collection}
        base: dict[str, Any] = {"source": SOURCE, "source-layer": style.collection, "minzoom": min_zoom,
                                "metadata": metadata}
        filt = maplibre_filter(style, rule)
        if filt is not None:
            base["filter"] = filt
        lid = f"{style.collection}.{rule.key}"
        sym = rule.symbol
        if isinstance(sym, Line):
            metadata["qiwang:symbol"] = {"shape": "line", "color": sym.color, "dash": list(sym.dash)}
            paint = {"line-color": sym.color, "line-width": sym.width}
            if sym.dash:  # MapLibre dashes are in line widths, the palette's in pixels
                paint["line-dasharray"] = [round(d / sym.width, 3) for d in sym.dash]
            layers.append({"id": lid, "type": "line", **base, "layout": {"line-join": "round"}, "paint": paint})
        elif isinstance(sym, Marker):
            metadata["qiwang:symbol"] = {"shape": sym.shape, "fill": sym.fill, "stroke": sym.stroke}
            layers.append({"id": lid, **base, **_maplibre_marker(sym)})
        else:
            metadata["qiwang:symbol"] = {"shape": "polygon", "fill": sym.fill, "stroke": sym.stroke}
            if sym.fill:
                layers.append({"id": f"{lid}.fill", "type": "fill", **base,
                               "paint": {"fill-color": sym.fill, "fill-opacity": sym.fill_opacity}})
            paint = {"line-color": sym.stroke, "line-width": sym.stroke_width}
            if sym.stroke_dash:
                paint["line-dasharray"] = [round(d / sym.stroke_width, 3) for d in sym.stroke_dash]
            layers.append({"id": f"{lid}.outline", "type": "line", **base, "paint": paint})
    return layers


def _maplibre_marker(sym: Marker) -> dict:
    """A circle layer for circles; a one-character symbol layer (■ ▲ ◆ ★ ✚ ✖, hollow □ △ ◇ ☆) otherwise."""
    if sym.shape == "circle":
        return {"type": "circle", "paint": {
            "circle-radius": sym.size / 2, "circle-color": sym.fill or sym.stroke,
            "circle-opacity": 1 if sym.fill else 0,
            "circle-stroke-color": sym.stroke, "circle-stroke-width": marker_stroke_px(sym)}}
    filled, hollow = MARKER_GLYPHS[sym.shape]
    line_only = sym.shape in ("cross", "x")
    # Filled: the fill colour with a halo in the stroke colour; hollow and line-only shapes: the
    # stroke colour with a thin white halo, so that they read on any background.
    paint = ({"text-color": sym.fill, "text-halo-color": sym.stroke, "text-halo-width": marker_stroke_px(sym)}
             if sym.fill and not line_only else
             {"text-color": sym.stroke, "text-halo-color": "#ffffff", "text-halo-width": 1.0})
    return {"type": "symbol", "layout": {
        "text-field": filled if sym.fill else hollow, "text-font": SYMBOL_FONTS,
        "text-size": round(sym.size * MARKER_GLYPH_SCALE[sym.shape], 2), "text-allow-overlap": True,
        "text-ignore-placement": True, "text-padding": 0, "text-rotation-alignment": "viewport"}, "paint": paint}


def _maplibre_label(style: LayerStyle) -> dict:
    """The text layer of a collection's label: along its lines, or at its points and polygons."""
    label = style.label
    assert label is not None
    along = style.geometry == "line"
    layout = {"text-field": ["to-string", ["get", label.field]], "text-font": LABEL_FONTS, "text-size": label.size,
              "symbol-placement": "line" if along else "point", "text-max-width": 8, "text-padding": 2}
    if not along and style.geometry == "point":
        layout |= {"text-anchor": "top", "text-offset": [0, 0.9]}
    return {"id": f"{style.collection}.label", "type": "symbol", "source": SOURCE, "source-layer": style.collection,
            "minzoom": label.min_zoom, "filter": ["has", label.field],
            "metadata": {"qiwang:collection": style.collection, "qiwang:label": label.field},
            "layout": layout,
            "paint": {"text-color": label.color, "text-halo-color": label.halo, "text-halo-width": 1.5}}


def maplibre_style(base_url: str) -> dict:
    """A MapLibre GL style (version 8) over the OGC API vector tiles at `base_url` (server root).

    No glyphs or sprite: MapLibre draws labels and marker characters with the browser's fonts, so
    nothing but tiles is requested. A layer starts at the first zoom its tiles carry features
    (spatial/tiles.py), so that the map asks for no tile it knows to be empty. Labels are drawn
    above every symbol; the overlay colours ride in metadata["qiwang:overlays"].
    """
    root = base_url.rstrip("/")
    layers = [{"id": "background", "type": "background", "paint": {"background-color": "#f7f5f0"}}]
    order = drawing_order()
    for style in order:
        layers += _maplibre_layers(style, tile_rule(style.collection).min_zoom)
    # Labels above all symbols. MapLibre places the top layer's labels first: points' names win over
    # the names of the sites they are in, which win over road names and pipe codes.
    labelled = sorted((style for style in order if style.label),
                      key=lambda s: ("line", "polygon", "point").index(s.geometry))
    layers += [_maplibre_label(style) for style in labelled]
    ids = ",".join(style.collection for style in order)
    # One source, one request per tile position for every layer (/ogc/tiles: an MVT layer per collection);
    # a browser opens six connections per server, so per-collection sources queue 70+ requests at start.
    sources = {SOURCE: {
        "type": "vector",
        "tiles": [f"{root}/ogc/tiles/WebMercatorQuad/{{z}}/{{y}}/{{x}}?collections={ids}"],
        "minzoom": min(tile_rule(style.collection).min_zoom for style in order), "maxzoom": TILE_MAXZOOM,
        "attribution": "气网 Qiwang",
    }}
    return {
        "version": 8,
        "name": "气网 Qiwang",
        "metadata": {"qiwang:palette": "styles/palette.yaml", "qiwang:overlays": overlay_colors()},
        "center": [122.995, 41.108],  # the demo city, 鞍山市铁东区
        "zoom": 12,
        "sources": sources,
        "layers": layers,
    }


# --- committed copies ----------------------------------------------------------------------------


def generated_files(base_url: str = DEFAULT_BASE_URL) -> dict[Path, str]:
    """Every file under styles/ that is built from the palette, with its content."""
    files = {STYLES_DIR / "maplibre.json": json.dumps(maplibre_style(base_url), ensure_ascii=False, indent=2) + "\n"}
    for cid in palette():
        files[STYLES_DIR / "qml" / f"{cid}.qml"] = qml(cid)
        files[STYLES_DIR / "sld" / f"{cid}.sld"] = sld(cid)
    return files


def write_files() -> list[Path]:
    """Rewrite the committed copies under styles/ from the palette."""
    written = []
    for path, text in generated_files().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":  # python -m spatial.styles
    for written_path in write_files():
        print(written_path.relative_to(STYLES_DIR.parent))
