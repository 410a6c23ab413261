"""Styles (QML, SLD, MapLibre) built from styles/palette.yaml, their HTTP routes, and `qgis-project`."""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from conftest import ROOT
from flask import Flask
from lxml import etree

from app.ogc.links import style_links
from app.qgis_project import write_project
from app.styles import styles_blueprint
from core.errors import QiwangError
from spatial import styles
from spatial.tiles import rule as tile_rule

# The collections agreed with the OGC API (collection id → table).
CONTRACT = {
    "pipes": "pipe", "nodes": "node", "valves": "valve", "stations": "station", "regulators": "regulator",
    "sentries": "sentry", "customers": "customer", "sensitive_sites": "sensitive_site", "roads": "road",
    "railways": "railway", "rivers": "river", "hazards": "hazard", "alarms": "alarm", "incidents": "incident",
    "topology_issues": "topology_issue", "enterprises": "enterprise", "admin_divisions": "admin_division",
    "crew_bases": "crew_base", "inspections": "inspection",
}
# Pressure class code → (colour, width px, dash px): the palette's documented values.
PIPE_CLASSES = {
    0: ("#2e9e3e", 1.4, (5.0, 2.0)),
    1: ("#1f6fd1", 2.2, ()),
    2: ("#f57c00", 3.0, (10.0, 4.0)),
    3: ("#d7191c", 4.0, ()),
    4: ("#6a1b9a", 5.0, (16.0, 4.0, 4.0, 4.0)),
}
SE = {"se": styles.SE_NS, "ogc": styles.OGC_NS, "sld": styles.SLD_NS}


def dictionary_codes(name: str) -> list[int]:
    with (ROOT / "data" / "dictionaries.csv").open(encoding="utf-8", newline="") as f:
        return [int(r["code"]) for r in csv.DictReader(f) if r["dictionary"] == name]


def qml_tree(cid: str) -> etree._Element:
    return etree.fromstring(styles.qml(cid).split("\n", 1)[1].encode())


def sld_tree(cid: str) -> etree._Element:
    return etree.fromstring(styles.sld(cid).encode())


def qml_symbol_options(root: etree._Element, symbol_name: str) -> list[dict[str, str]]:
    """The option maps of a QML symbol's layers, first layer first."""
    symbol = root.find(f".//symbols/symbol[@name='{symbol_name}']")
    return [{o.get("name"): o.get("value") for o in layer.findall("Option/Option")}
            for layer in symbol.findall("layer")]


def gets(expr: object) -> set[str]:
    """Property names read by a MapLibre expression."""
    if isinstance(expr, list):
        if expr[:1] == ["get"]:
            return {expr[1]}
        return set().union(*(gets(e) for e in expr)) if expr else set()
    return set()


# --- the palette -----------------------------------------------------------------------------------


def test_palette_has_every_collection_of_the_ogc_api() -> None:
    from spatial.collections import LAYERS

    assert {cid: s.table for cid, s in styles.palette().items()} == CONTRACT
    assert set(LAYERS) == set(CONTRACT)
    assert styles.layer_style("pipes").title == f"{LAYERS['pipes'].title_zh} {LAYERS['pipes'].title_en}"


def test_palette_geometry_is_the_published_geometry(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        types: dict[str, str] = dict(conn.execute(sa.text(
            "SELECT f_table_name, type FROM geometry_columns WHERE f_table_schema = 'public' "
            "AND f_geometry_column = 'geom'")).all())
    expected = {"POINT": "point", "LINESTRING": "line", "MULTIPOLYGON": "polygon", "POLYGON": "polygon",
                "GEOMETRY": "point"}  # topology issues: mostly points (ends, near misses)
    assert {cid: expected[types[s.table]] for cid, s in styles.palette().items()} == {
        cid: s.geometry for cid, s in styles.palette().items()}


def test_every_pressure_class_has_its_own_colour_and_line_style() -> None:
    codes = dictionary_codes("dt_pipe_pressure_type")
    assert codes == [0, 1, 2, 3, 4]
    pipes = styles.layer_style("pipes")
    by_class = {dict(r.when)["pressure_class"]: r.symbol for r in pipes.rules
                if r.when and isinstance(r.symbol, styles.Line)}
    assert {c: (s.color, s.width, s.dash) for c, s in by_class.items()} == PIPE_CLASSES
    assert all(dict(r.when)["status"] == "in_service" for r in pipes.rules if r.when)
    assert len({s.color for s in by_class.values()}) == len(codes)
    assert len({(s.width, s.dash) for s in by_class.values()}) == len(codes)
    assert pipes.rules[-1].when is None and pipes.rules[-1].symbol == styles.Line("#9e9e9e", 1.5, (2.0, 3.0))


# --- QML -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("cid", list(CONTRACT))
def test_qml_is_a_qgis_3_style_with_one_symbol_per_rule(cid: str) -> None:
    style = styles.layer_style(cid)
    root = qml_tree(cid)
    assert (root.tag, root.get("version"), root.get("styleCategories")) == ("qgis", "3.28.0-Firenze", "Symbology")
    renderer = root.find("renderer-v2")
    symbols = renderer.findall("symbols/symbol")
    assert len(symbols) == len(style.rules)
    kind = {"point": "marker", "line": "line", "polygon": "fill"}[style.geometry]
    assert {s.get("type") for s in symbols} == {kind}
    first_layer = {"point": "SimpleMarker", "line": "SimpleLine", "polygon": "SimpleFill"}[style.geometry]
    assert {s.find("layer").get("class") for s in symbols} == {first_layer}
    if len(style.rules) == 1:
        assert renderer.get("type") == "singleSymbol"
        return
    assert renderer.get("type") == "RuleRenderer"
    rules = renderer.findall("rules/rule")
    assert [r.get("symbol") for r in rules] == [s.get("name") for s in symbols]
    assert [r.get("filter") for r in rules].count("ELSE") == 1 and rules[-1].get("filter") == "ELSE"


def test_qml_pipe_rules_carry_the_palette_colours_and_dashes() -> None:
    root = qml_tree("pipes")
    rules = root.findall("renderer-v2/rules/rule")
    assert rules[3].get("filter") == "\"status\" = 'in_service' AND \"pressure_class\" = 3"
    assert rules[3].get("label") == "高压 High pressure"
    colours = {}
    for rule in rules[:-1]:
        match = re.search(r'"pressure_class" = (\d+)', rule.get("filter"))
        assert match, rule.get("filter")
        code = int(match[1])
        (opts,) = qml_symbol_options(root, rule.get("symbol"))
        colours[code] = opts["line_color"]
        assert opts["use_custom_dash"] == ("1" if PIPE_CLASSES[code][2] else "0")
    assert colours == {0: "46,158,62,255", 1: "31,111,209,255", 2: "245,124,0,255", 3: "215,25,28,255",
                       4: "106,27,154,255"}
    (sub_high,) = qml_symbol_options(root, "2")
    assert (sub_high["line_width"], sub_high["customdash"]) == ("0.794", "2.65;1.06")  # 3 px; 10 px, 4 px in mm


def test_qml_valves_are_hollow_when_open_and_red_when_inoperable() -> None:
    root = qml_tree("valves")
    rules = {r.get("filter"): r.get("symbol") for r in root.findall("renderer-v2/rules/rule")}
    (open_broken,) = qml_symbol_options(root, rules["\"normal_state\" = 'open' AND \"operability\" = 'inoperable'"])
    assert (open_broken["name"], open_broken["color"], open_broken["outline_color"]) == ("circle", "0,0,0,0",
                                                                                       "198,40,40,255")
    (closed_ok,) = qml_symbol_options(root, rules["\"normal_state\" = 'closed' AND \"operability\" = 'operable'"])
    assert (closed_ok["name"], closed_ok["color"]) == ("square", "46,125,50,255")


# --- SLD -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("cid", list(CONTRACT))
def test_sld_named_layer_and_one_rule_per_category_plus_else(cid: str) -> None:
    style = styles.layer_style(cid)
    root = sld_tree(cid)
    assert root.tag == f"{{{styles.SLD_NS}}}StyledLayerDescriptor" and root.get("version") == "1.1.0"
    assert root.xpath("sld:NamedLayer/se:Name/text()", namespaces=SE) == [cid]
    rules = root.xpath("sld:NamedLayer/sld:UserStyle/se:FeatureTypeStyle/se:Rule", namespaces=SE)
    categories = [r for r in style.rules if r.when]
    assert len(rules) == len(categories) + 1  # the ELSE rule, or the single unfiltered one
    assert len(root.xpath("//se:ElseFilter", namespaces=SE)) == (1 if len(style.rules) > 1 else 0)
    for rule_el, rule in zip(rules, style.rules, strict=True):
        tests = rule_el.xpath("ogc:Filter//ogc:PropertyIsEqualTo", namespaces=SE)
        assert [(t[0].text, t[1].text) for t in tests] == [(p, str(v)) for p, v in rule.when or ()]
        symbolizer = {"point": "PointSymbolizer", "line": "LineSymbolizer", "polygon": "PolygonSymbolizer"}
        assert len(rule_el.xpath(f"se:{symbolizer[style.geometry]}", namespaces=SE)) == 1


def test_sld_pressure_classes_have_distinct_strokes() -> None:
    root = sld_tree("pipes")
    strokes = {}
    for rule in root.xpath("//se:Rule[ogc:Filter]", namespaces=SE):
        code = int(rule.xpath(".//ogc:PropertyIsEqualTo[ogc:PropertyName='pressure_class']/ogc:Literal/text()",
                              namespaces=SE)[0])
        params = {p.get("name"): p.text for p in rule.xpath(".//se:Stroke/se:SvgParameter", namespaces=SE)}
        strokes[code] = (params["stroke"], params["stroke-width"], params.get("stroke-dasharray"))
    assert strokes == {0: ("#2e9e3e", "1.4", "5 2"), 1: ("#1f6fd1", "2.2", None), 2: ("#f57c00", "3", "10 4"),
                       3: ("#d7191c", "4", None), 4: ("#6a1b9a", "5", "16 4 4 4")}


# --- MapLibre ------------------------------------------------------------------------------------


def test_maplibre_style_sources_layers_and_order() -> None:
    style = styles.maplibre_style("http://gis.example.cn:8080/")
    assert style["version"] == 8 and "glyphs" not in style and "sprite" not in style
    assert list(style["sources"]) == [styles.SOURCE]
    source = style["sources"][styles.SOURCE]
    order_ids = [s.collection for s in styles.drawing_order()]
    assert source == {
        "type": "vector", "minzoom": min(tile_rule(c).min_zoom for c in CONTRACT), "maxzoom": 16,
        "attribution": "气网 Qiwang",
        "tiles": ["http://gis.example.cn:8080/ogc/tiles/WebMercatorQuad/{z}/{y}/{x}?collections="
                  + ",".join(order_ids)]}
    assert set(order_ids) == set(CONTRACT)
    labels = [layer for layer in style["layers"] if "qiwang:label" in layer.get("metadata", {})]
    # Layers start where the tiles start to carry features: no request for a tile known to be empty.
    assert {layer["source-layer"]: layer["minzoom"] for layer in style["layers"][1:] if layer not in labels} == \
        {c: tile_rule(c).min_zoom for c in CONTRACT}
    # Labels last (above every symbol), points' names placed first, each from its palette zoom.
    assert [(layer["id"], layer["minzoom"], layer["metadata"]["qiwang:label"]) for layer in labels] == [
        ("roads.label", 14, "name"), ("pipes.label", 17, "code"), ("sensitive_sites.label", 14, "name"),
        ("crew_bases.label", 14, "name"), ("valves.label", 17, "code"), ("stations.label", 13, "name")]
    assert style["layers"][-len(labels):] == labels
    assert labels[0]["layout"]["symbol-placement"] == "line" and labels[-1]["layout"]["symbol-placement"] == "point"
    assert {tuple(layer["layout"]["text-font"]) for layer in labels} == {tuple(styles.LABEL_FONTS)}
    layers = style["layers"]
    ids = [layer["id"] for layer in layers]
    assert len(ids) == len(set(ids))
    # text (labels, marker characters) without glyphs: MapLibre draws it with the browser's fonts
    assert {layer["type"] for layer in layers} == {"background", "fill", "line", "circle", "symbol"}
    for layer in layers[1:]:
        assert layer["source"] == styles.SOURCE and layer["source-layer"] in CONTRACT
    order = [layer["source-layer"] for layer in layers[1:] if layer not in labels]
    first = {cid: order.index(cid) for cid in CONTRACT}
    assert max(first[c] for c in ("admin_divisions", "rivers", "roads", "railways")) < first["pipes"]
    point_sources = [c for c, s in styles.palette().items() if s.geometry == "point"]
    assert max(i for i, c in enumerate(order) if c == "pipes") < min(first[c] for c in point_sources)
    pipe_layers = [layer["id"] for layer in layers[1:] if layer["source-layer"] == "pipes" and layer not in labels]
    assert pipe_layers == ["pipes.not_in_service", "pipes.low", "pipes.medium", "pipes.sub_high", "pipes.high",
                           "pipes.extra_high"]


def test_maplibre_pressure_classes_and_else_filter() -> None:
    layers = {layer["id"]: layer for layer in styles.maplibre_style("http://x/")["layers"]}
    colours = {layer["filter"][2][2]: layer["paint"]["line-color"] for lid, layer in layers.items()
               if lid.startswith("pipes.") and lid not in ("pipes.not_in_service", "pipes.label")}
    assert colours == {code: spec[0] for code, spec in PIPE_CLASSES.items()}
    assert layers["pipes.sub_high"]["paint"]["line-dasharray"] == [3.333, 1.333]  # dashes in line widths
    not_in_service = layers["pipes.not_in_service"]["filter"]
    assert not_in_service[0] == "!" and not_in_service[1][0] == "any" and len(not_in_service[1]) == 6
    assert layers["valves.open_inoperable"]["paint"]["circle-opacity"] == 0  # hollow: open


def test_maplibre_markers_keep_their_shape() -> None:
    """Non-circle markers are characters of their shape, filled or hollow, in the palette's colours."""
    layers = {layer["id"]: layer for layer in styles.maplibre_style("http://x/")["layers"]}
    cabinet = layers["regulators.cabinet"]
    assert (cabinet["type"], cabinet["layout"]["text-field"], cabinet["layout"]["text-size"]) == ("symbol", "◆", 13.0)
    assert cabinet["paint"] == {"text-color": "#5c6bc0", "text-halo-color": "#1a237e", "text-halo-width": 1.0}
    assert cabinet["layout"]["text-allow-overlap"] is True and cabinet["layout"]["text-ignore-placement"] is True
    assert cabinet["metadata"]["qiwang:symbol"] == {"shape": "diamond", "fill": "#5c6bc0", "stroke": "#1a237e"}
    assert layers["crew_bases.all"]["layout"]["text-field"] == "✚"
    assert layers["crew_bases.all"]["paint"]["text-color"] == "#00897b"
    assert layers["enterprises.all"]["layout"]["text-field"] == "□"  # hollow square
    assert layers["alarms.alarm_1"]["layout"]["text-field"] == "★"
    assert layers["hazards.major"]["layout"]["text-field"] == "▲"
    assert layers["incidents.active"]["layout"]["text-field"] == "✖"
    assert layers["sentries.alarm_1"]["type"] == "circle"
    shapes = {layer["metadata"]["qiwang:symbol"]["shape"] for layer in layers.values() if layer["type"] == "symbol"
              and "qiwang:symbol" in layer.get("metadata", {})}
    assert shapes == set(styles.MARKER_GLYPHS)
    assert styles.maplibre_style("http://x/")["metadata"]["qiwang:overlays"] == styles.overlay_colors()
    assert styles.overlay_colors()["dry"] == "#00bfa5"


def test_styles_name_only_columns_and_codes_that_exist(engine: sa.Engine) -> None:
    """Every property a rule tests is a column of its table, and every value one the column allows."""
    with engine.connect() as conn:
        columns: dict[str, dict[str, str]] = {}
        for table, column, udt in conn.execute(sa.text(
                "SELECT table_name, column_name, udt_name FROM information_schema.columns "
                "WHERE table_schema = 'public'")):
            columns.setdefault(table, {})[column] = udt
        fks = {(t, c): f for t, c, f in conn.execute(sa.text("""
            SELECT cl.relname, a.attname, ft.relname FROM pg_constraint k
            JOIN pg_class cl ON cl.oid = k.conrelid JOIN pg_class ft ON ft.oid = k.confrelid
            JOIN pg_namespace n ON n.oid = ft.relnamespace AND n.nspname = 'dict'
            JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
            WHERE k.contype = 'f'"""))}
        checks = {(t, c): d for t, c, d in conn.execute(sa.text("""
            SELECT cl.relname, a.attname, pg_get_constraintdef(k.oid) FROM pg_constraint k
            JOIN pg_class cl ON cl.oid = k.conrelid
            JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
            WHERE k.contype = 'c' AND array_length(k.conkey, 1) = 1"""))}
        codes = {d: set(conn.execute(sa.text(f"SELECT code FROM dict.{d}")).scalars()) for d in set(fks.values())}

    properties = set()
    for cid, style in styles.palette().items():
        props = {c: u for c, u in columns[style.table].items() if u != "geometry" and c != "id"}
        for rule in style.rules:
            for prop, value in rule.when or ():
                assert prop in props, f"{cid}: {prop} is not a column of {style.table}"
                properties.add((style.table, prop))
                if (style.table, prop) in fks:
                    assert value in codes[fks[style.table, prop]], f"{cid}.{rule.key}: {value} not a code"
                else:
                    assert f"'{value}'::text" in checks[style.table, prop], f"{cid}.{rule.key}: {value!r}"
        if style.label:
            assert style.label.field in props, f"{cid}: label {style.label.field} is not a column of {style.table}"
        for layer in [ml for ml in styles.maplibre_style("http://x/")["layers"] if ml.get("source-layer") == cid]:
            assert gets(layer.get("filter")) <= set(props)
    # Categories that must be complete: every code / allowed value has its own rule.
    complete = {("pipe", "pressure_class"), ("sentry", "status"), ("hazard", "level"), ("station", "station_type"),
                ("customer", "user_type"), ("valve", "normal_state"), ("valve", "operability"),
                ("regulator", "regulator_kind"), ("road", "road_class"), ("incident", "state"),
                ("admin_division", "level")}
    assert complete <= properties
    for table, prop in complete:
        cid = next(c for c, s in styles.palette().items() if s.table == table)
        styled = {dict(r.when)[prop] for r in styles.layer_style(cid).rules if r.when}
        if (table, prop) in fks:
            assert styled == codes[fks[table, prop]], (table, prop)
        else:
            allowed = set(re.findall(r"'([^']*)'::text", checks[table, prop]))
            assert styled == allowed, (table, prop)


def test_committed_style_files_are_up_to_date() -> None:
    stale = [str(p.relative_to(ROOT)) for p, text in styles.generated_files().items()
             if not p.exists() or p.read_text(encoding="utf-8") != text]
    assert not stale, f"run `.venv/bin/python -m spatial.styles`: out of date: {stale}"
    on_disk = {p.name for p in (ROOT / "styles" / "qml").glob("*.qml")} | {
        p.name for p in (ROOT / "styles" / "sld").glob("*.sld")}
    assert on_disk == {f"{c}.{ext}" for c in CONTRACT for ext in ("qml", "sld")}


# --- HTTP ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client():
    app = Flask(__name__)
    app.register_blueprint(styles_blueprint)
    return app.test_client()


def test_style_list_and_files_over_http(client) -> None:
    listing = client.get("/styles/")
    assert listing.status_code == 200
    body = listing.get_json()
    assert [s["id"] for s in body["styles"]] == list(styles.palette())
    assert body["styles"][0]["links"][0]["href"] == "http://localhost/styles/admin_divisions.qml"
    qml = client.get("/styles/pipes.qml")
    assert qml.status_code == 200 and qml.headers["Content-Type"] == "application/vnd.qgis.qml; charset=utf-8"
    assert qml.get_data(as_text=True) == styles.qml("pipes")
    sld = client.get("/styles/valves.sld")
    assert sld.headers["Content-Type"] == "application/vnd.ogc.sld+xml;version=1.1; charset=utf-8"
    assert sld.get_data(as_text=True) == styles.sld("valves")


def test_maplibre_tiles_follow_the_request_host(client) -> None:
    response = client.get("/styles/maplibre.json", base_url="http://gis.example.cn:8080")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/vnd.mapbox.style+json; charset=utf-8"
    style = json.loads(response.get_data(as_text=True))
    (tiles,) = style["sources"][styles.SOURCE]["tiles"]
    assert tiles.startswith("http://gis.example.cn:8080/ogc/tiles/WebMercatorQuad/{z}/{y}/{x}?collections=")


@pytest.mark.parametrize("path", ["/styles/nowhere.qml", "/styles/nowhere.sld", "/styles/pipes.txt"])
def test_unknown_style_is_404_json(client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.get_json()["code"] == "NotFound"
    assert "nowhere" in response.get_json()["description"] or "pipes.txt" in response.get_json()["description"]


def test_style_links_for_a_collection_document() -> None:
    assert style_links("pipes", "http://127.0.0.1:5000/") == [
        {"rel": "http://www.opengis.net/def/rel/ogc/1.0/styles", "type": "application/json",
         "title": "样式 Styles", "href": "http://127.0.0.1:5000/styles/"},
        {"rel": "stylesheet", "type": "application/vnd.qgis.qml", "title": "管线 Pipes (QGIS QML)",
         "href": "http://127.0.0.1:5000/styles/pipes.qml"},
        {"rel": "stylesheet", "type": "application/vnd.ogc.sld+xml;version=1.1", "title": "管线 Pipes (SLD 1.1)",
         "href": "http://127.0.0.1:5000/styles/pipes.sld"},
        {"rel": "stylesheet", "type": "application/vnd.mapbox.style+json",
         "title": "气网 Qiwang (MapLibre, all layers)", "href": "http://127.0.0.1:5000/styles/maplibre.json"},
    ]
    with pytest.raises(QiwangError, match="no style for collection 'pipez'"):
        style_links("pipez", "http://127.0.0.1:5000")


# --- qgis-project --------------------------------------------------------------------------------


def read_project(path: Path) -> etree._Element:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE qgis")
    return etree.fromstring(text.split("\n", 1)[1].encode())


def test_qgis_project_command_writes_every_layer_connected_and_styled(tmp_path: Path) -> None:
    from app.cli.main import cli

    out = tmp_path / "sub" / "city.qgs"
    result = CliRunner().invoke(cli, ["qgis-project", "--url", "http://gis.example.cn:8080/", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(out)
    root = read_project(out)
    assert root.findtext("projectCrs/spatialrefsys/authid") == "EPSG:3857"
    layers = root.findall("projectlayers/maplayer")
    typenames = []
    for layer in layers:
        source = layer.findtext("datasource")
        if layer.findtext("provider") == "ogr":  # records that start empty: GDAL's OAPIF driver (test_qgis.py)
            (typename,) = re.findall(r"^OAPIF:http://gis.example.cn:8080/ogc/collections/([a-z_]+)\|", source)
        else:
            assert layer.findtext("provider") == "OAPIF"
            assert "url='http://gis.example.cn:8080/ogc'" in source and "srsname='OGC:CRS84'" in source
            (typename,) = re.findall(r"typename='([^']+)'", source)
        typenames.append(typename)
        style = styles.layer_style(typename)
        assert layer.findtext("layername") == style.title
        renderer = layer.find("renderer-v2")
        assert len(renderer.findall("symbols/symbol")) == len(style.rules)
    assert sorted(typenames) == sorted(CONTRACT)
    groups = root.findall("layer-tree-group/layer-tree-group")
    assert [g.get("name") for g in groups] == [
        "运行 Operations", "管网 Network", "背景 Context", "行政 Administration"]
    in_tree = [t.get("id") for t in root.iter("layer-tree-layer")]
    assert sorted(in_tree) == sorted(f"qiwang_{c}" for c in CONTRACT)
    network = [t.get("id") for t in groups[1]]
    assert network.index("qiwang_valves") < network.index("qiwang_pipes")  # valves drawn over pipes
    pipes = root.find("projectlayers/maplayer[id='qiwang_pipes']")
    assert pipes.find("renderer-v2").get("type") == "RuleRenderer"
    assert pipes.get("geometry") == "Line"


def test_qgis_project_subset_and_errors(tmp_path: Path) -> None:
    path = write_project(tmp_path / "p.qgs", "http://127.0.0.1:5000/ogc", ["valves", "pipes"])
    root = read_project(path)
    sources = [m.findtext("datasource") for m in root.findall("projectlayers/maplayer")]
    assert sources == [
        "pagingEnabled='true' preferCoordinatesForWfsT11='false' restrictToRequestBBOX='1' srsname='OGC:CRS84' "
        "typename='valves' url='http://127.0.0.1:5000/ogc'",
        "pagingEnabled='true' preferCoordinatesForWfsT11='false' restrictToRequestBBOX='1' srsname='OGC:CRS84' "
        "typename='pipes' url='http://127.0.0.1:5000/ogc'",
    ]
    assert [g.get("name") for g in root.findall("layer-tree-group/layer-tree-group")] == ["管网 Network"]
    with pytest.raises(QiwangError, match="not an http"):
        write_project(tmp_path / "q.qgs", "127.0.0.1:5000")
    with pytest.raises(QiwangError, match="no style for collection 'pipez'"):
        write_project(tmp_path / "q.qgs", "http://127.0.0.1:5000", ["pipez"])
    assert not (tmp_path / "q.qgs").exists()


def test_palette_rejects_overlapping_rules_and_a_missing_else() -> None:
    line = {"color": "#000000", "width": 1}
    spec: dict[str, Any] = {
            "table": "pipe", "title_zh": "管道", "title_en": "Pipes", "group": "network", "geometry": "line",
            "rules": [{"key": "a", "title_zh": "甲", "title_en": "A", "when": {"pressure_class": 1}, "line": line},
                      {"key": "b", "title_zh": "乙", "title_en": "B", "when": {"status": "idle"}, "line": line},
                      {"key": "c", "title_zh": "丙", "title_en": "C", "line": line}]}
    with pytest.raises(QiwangError, match="rules overlap"):
        styles._layer("pipes", spec)
    spec["rules"][1]["when"] = {"pressure_class": 2}
    assert [r.key for r in styles._layer("pipes", spec).rules] == ["a", "b", "c"]
    with pytest.raises(QiwangError, match="needs one ELSE rule"):
        styles._layer("pipes", {**spec, "rules": spec["rules"][:2]})
