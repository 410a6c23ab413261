"""Import of every layer the exporter writes: the whole demo city round trip (GeoPackage, Shapefile
folder), references between layers by code, point sheets, local grids, DXF drawings, bad files.

Imports go into fresh migrated databases that first get the demo city's divisions and enterprises
(the `target` fixture of test_import_export), as a real deployment has them before any import.
"""
from __future__ import annotations

import re
from pathlib import Path

import ezdxf
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
import sqlalchemy as sa
from pyproj import Transformer
from test_import_export import ENTERPRISE, chinese_pipe, count, failed_lines, pipe_frame

from accounts.personal_data import PERSONAL_COLUMNS, companion_columns, decrypt, load_keyring, sealed_column
from ingest.exporter import EXPORTABLE_LAYERS, export
from ingest.importer import ImportFailed, import_file
from ingest.local_grid import local_grid

UNKNOWN_TRACKS = ("巡检轨迹: not recognised as any layer (to take it, name it under layers.<table>.names "
                  "in a --mapping file, e.g. layers.valve.names: [巡检轨迹], or import it alone with "
                  "--layer 巡检轨迹 --as KIND)")
ROUND_TRIP_LAYERS = list(EXPORTABLE_LAYERS)  # the default layers, devices, roads, railways, rivers, crew bases
# never compared: the database's own ids and timestamps, a generated column, and hazard.feature_id
# (an id of the exporting database: the hazard's feature is compared by code instead)
NOT_COMPARED = {"id", "created_at", "updated_at", "length_m", "feature_id"}
HAZARD_FEATURES = """SELECT h.code, h.feature_type, p.code FROM hazard h
                     LEFT JOIN pipe p ON h.feature_type = 'pipe' AND p.id = h.feature_id ORDER BY h.code"""


def layer_frame(engine: sa.Engine, table: str) -> pd.DataFrame:
    """A layer with references as codes, numbers as floats, the rest as text, geometry as shapely;
    sorted by (enterprise, code)."""
    with engine.connect() as conn:
        conn.execute(sa.text("SET TIME ZONE 'UTC'"))
        columns = conn.execute(sa.text(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "WHERE a.attrelid = CAST(:t AS regclass) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"),
            {"t": table}).all()
        refs = dict(conn.execute(sa.text(
            "SELECT a.attname, cl.relname FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid "
            "AND a.attnum = c.conkey[1] JOIN pg_class cl ON cl.oid = c.confrelid JOIN pg_namespace n "
            "ON n.oid = cl.relnamespace WHERE c.contype = 'f' AND c.conrelid = CAST(:t AS regclass) "
            "AND n.nspname = 'public' AND a.attname LIKE '%\\_id'"), {"t": table}).all())
        parts, joins = [], []
        for name, sql_type in columns:
            if name in NOT_COMPARED or name in ("geom", "enterprise_code_id") or name in companion_columns(table):
                continue  # sealed values: compared apart (test_whole_city_round_trip)
            if name in refs:
                joins.append(f"LEFT JOIN {refs[name]} r_{name} ON r_{name}.id = t.{name}")
                parts.append(f"r_{name}.code AS {name.removesuffix('_id')}_code")
            elif sql_type in ("numeric", "double precision", "real", "smallint", "integer", "bigint"):
                parts.append(f"t.{name}::float8 AS {name}")
            else:
                parts.append(f"t.{name}::text AS {name}")
        frame = pd.read_sql(sa.text(
            f"SELECT {', '.join(parts)}, ST_AsBinary(t.geom) AS wkb FROM {table} t {' '.join(joins)} "
            "ORDER BY t.enterprise_code, t.code"), conn)
    # Shapefiles store outer rings clockwise: a polygon comes back reversed, so rings are compared
    # normalised and without repeated vertices (the demo's rectangles repeat their corners)
    frame["geom"] = shapely.normalize(shapely.remove_repeated_points(shapely.from_wkb(frame.pop("wkb").map(bytes))))
    return frame


def assert_same_layer(table: str, source: pd.DataFrame, copied: pd.DataFrame) -> None:
    """Same features, attributes (numbers within 1e-6) and coordinates within 1 mm in 3D."""
    assert len(copied) == len(source), table
    assert list(copied.columns) == list(source.columns), table
    for column in source.columns:
        if column == "geom":
            continue
        a, b = source[column], copied[column]
        if pd.api.types.is_float_dtype(a):
            assert np.allclose(a.to_numpy(float), b.to_numpy(float), atol=1e-6, equal_nan=True), (table, column)
        else:  # an empty text is no value: files cannot tell '' from NULL (dBASE has no NULL)
            def text(values: pd.Series) -> list:
                return [None if v is None or v == "" or (isinstance(v, float) and np.isnan(v)) else str(v)
                        for v in values]
            assert text(a) == text(b), (table, column)
    a = shapely.get_coordinates(source["geom"].to_numpy(), include_z=True)
    b = shapely.get_coordinates(copied["geom"].to_numpy(), include_z=True)
    assert a.shape == b.shape, table
    assert np.nanmax(np.abs(a - b), initial=0.0) <= 0.001, table
    assert (np.isnan(a) == np.isnan(b)).all(), table


@pytest.mark.parametrize("fmt", ["gpkg", "shp"])
def test_whole_city_round_trip(fmt: str, engine: sa.Engine, target: sa.Engine, tmp_path: Path) -> None:
    """The demo city exported (every default layer) and imported into an empty database: same
    features per layer, attributes, coordinates and topology (pipe from/to node codes, valve
    pipe/node codes, regulator inlet/outlet codes, customer service nodes, sentry links)."""
    out = tmp_path / ("city.gpkg" if fmt == "gpkg" else "city")
    layers = ROUND_TRIP_LAYERS
    export(engine, out, fmt, layers=layers, unmasked=True)
    with target.connect() as conn:
        version_before = conn.execute(sa.text("SELECT version FROM network_version")).scalar()
    report = import_file(target, out)
    assert report.written and report.skipped == []
    assert {layer.table: layer.features for layer in report.layers} == {t: count(engine, t) for t in layers}
    pipe_layer = next(layer for layer in report.layers if layer.table == "pipe")
    assert pipe_layer.nodes_by_code and pipe_layer.new_nodes == 0
    for layer in report.layers:
        assert not layer.unused_fields, (layer.table, layer.unused_fields)
    for table in layers:
        assert_same_layer(table, layer_frame(engine, table), layer_frame(target, table))
    # Phone numbers leave only masked (no export carries a clear one): the import seals what the file
    # holds, so the copy keeps the masks and its sealed values open to them, never to the numbers.
    keyring = load_keyring(create=False)
    with target.connect() as copy:
        for table in set(layers) & set(PERSONAL_COLUMNS):
            for column in PERSONAL_COLUMNS[table]:
                rows = copy.execute(sa.text(f"SELECT {column}, {sealed_column(column)} FROM {table}")).all()
                assert rows and all(decrypt(keyring, blob, associated=f"{table}.{column}") == masked
                                    for masked, blob in rows if masked is not None), (table, column)
    with engine.connect() as source, target.connect() as copy:
        expected = source.execute(sa.text(HAZARD_FEATURES)).all()
        assert copy.execute(sa.text(HAZARD_FEATURES)).all() == expected
        assert all(pipe is not None for _, _, pipe in expected)  # every demo hazard concerns a pipe
    with target.connect() as conn:
        assert conn.execute(sa.text("SELECT version FROM network_version")).scalar() > version_before


# -- layers and references -------------------------------------------------------------------------
def valve_row(code: str, pipe: str, node: str, **changes) -> dict:
    row = {"设备编号": code, "pipe_code": pipe, "node_code": node, "阀门类型": "闸阀", "常态": "常开",
           "设备名称": "阀门", "设备型号": "Z41H-16", "生产厂家": "鞍山阀门厂", "负责人": "王工",
           "负责人联系电话": "13800000000", "投入使用日期": "2015-06-01", "企业唯一编码": ENTERPRISE}
    row.update(changes)
    return row


def node_row(code: str, **changes) -> dict:
    row = {"节点编号": code, "压力级制": "中压", "地面高程": 25.0, "埋深": 1.2, "企业唯一编码": ENTERPRISE}
    row.update(changes)
    return row


def small_network(path: Path, valves: list[dict]) -> None:
    """A GeoPackage with two nodes, one pipe between them (named by node codes) and `valves`."""
    a, b = (497_000.0, 4_551_500.0), (497_080.0, 4_551_505.0)
    nodes = pipe_frame([node_row("N1"), node_row("N2")], [shapely.Point(a), shapely.Point(b)])
    pyogrio.write_dataframe(nodes, path, layer="节点")
    pipe = chinese_pipe("P1", 企业唯一编码=ENTERPRISE, from_node_code="N1", to_node_code="N2")
    pyogrio.write_dataframe(pipe_frame([pipe], [shapely.LineString([a, b])]), path, layer="管线", append=False)
    points = [shapely.Point(497_002.0, 4_551_500.1)] * len(valves)
    pyogrio.write_dataframe(pipe_frame(valves, points), path, layer="阀门")
    pyogrio.write_dataframe(pipe_frame([{"名称": "x"}], [shapely.Point(a)]), path, layer="巡检轨迹")


def test_network_layers_named_by_code(target: sa.Engine, tmp_path: Path) -> None:
    path = tmp_path / "network.gpkg"
    small_network(path, [valve_row("V1", "P1", "N1")])
    report = import_file(target, path)
    assert [layer.table for layer in report.layers] == ["node", "pipe", "valve"]
    assert report.skipped == [UNKNOWN_TRACKS]
    with target.connect() as conn:
        got = conn.execute(sa.text(
            "SELECT v.code, p.code, n.code, v.valve_type, v.normal_state, ST_Z(v.geom), "
            "f.code, t.code, ST_Z(n.geom) FROM valve v JOIN pipe p ON p.id = v.pipe_id JOIN node n ON n.id = v.node_id "
            "JOIN node f ON f.id = p.from_node_id JOIN node t ON t.id = p.to_node_id")).one()
    # a 2D valve gets Z 0 m; nodes get ground − depth
    assert tuple(got) == ("V1", "P1", "N1", "gate", "open", 0.0, "N1", "N2", pytest.approx(23.8))
    assert count(target, "node") == 2


def test_bad_references_and_labels_write_nothing(target: sa.Engine, tmp_path: Path) -> None:
    path = tmp_path / "bad_refs.gpkg"
    small_network(path, [valve_row("V1", "P9", "N1"), valve_row("V2", "P1", "N7", 阀门类型="水阀"),
                         valve_row("V3", None, "N1")])
    with pytest.raises(ImportFailed) as failed:
        import_file(target, path, file_label=path.name)
    assert failed.value.problems == [
        "bad_refs.gpkg:阀门:1:pipe_code: no pipe 'P9' of enterprise 2103020001 in this import or the database",
        "bad_refs.gpkg:阀门:2:阀门类型: '水阀' is not one of gate, ball, butterfly, plug, check "
        "(or their Chinese names)",
        "bad_refs.gpkg:阀门:2:node_code: no node 'N7' of enterprise 2103020001 in this import or the database",
        "bad_refs.gpkg:阀门:2:node_code: node 'N7' is neither end of the valve's pipe (from-node 'N1', to-node 'N2')",
        "bad_refs.gpkg:阀门:3:pipe_code: 所在管道 is empty",
    ]
    assert count(target, "node") == count(target, "pipe") == count(target, "valve") == 0


def customer_row(code: str, **changes) -> dict:
    row = {"code": code, "用户名称": "张三", "供气单位": "鞍山燃气", "抄表员": "李四", "account_no": f"A{code}",
           "用户类型": "居民", "细分类型": "住宅", "所在街道": "胜利街道", "所在社区": "胜利社区",
           "用户地址": "胜利路1号", "enterprise_code": ENTERPRISE}
    row.update(changes)
    return row


def test_customer_csv_with_xy_in_another_zone(target: sa.Engine, tmp_path: Path) -> None:
    """A point sheet: x/y in CGCS2000 3° zone CM 120°E (EPSG:4549), checked against pyproj."""
    with target.connect() as conn:
        labels = dict(conn.execute(sa.text("SELECT code, label_zh FROM dict.dt_usersubtype")).all())
        types = dict(conn.execute(sa.text("SELECT code, label_zh FROM dict.dt_usertype")).all())
    lonlat = [(122.995, 41.105), (122.996, 41.1052)]
    to_zone = Transformer.from_crs("EPSG:4490", "EPSG:4549", always_xy=True)
    rows = []
    for i, (lon, lat) in enumerate(lonlat):
        x, y = to_zone.transform(lon, lat)
        rows.append(customer_row(f"C{i}", 用户类型=types[1], 细分类型=labels[min(labels)], x=f"{x:.4f}", y=f"{y:.4f}"))
    path = tmp_path / "customers.csv"
    pd.DataFrame(rows).to_csv(path, index=False, encoding="gbk")
    report = import_file(target, path, crs="EPSG:4549")
    assert report.layers[0].table == "customer" and report.layers[0].geometry_note == "points from columns x, y"
    with target.connect() as conn:
        got = conn.execute(sa.text("SELECT code, user_type, ST_X(geom), ST_Y(geom) FROM customer ORDER BY code")).all()
    to_storage = Transformer.from_crs("EPSG:4490", "EPSG:4550", always_xy=True)
    for (lon, lat), row in zip(lonlat, got, strict=False):
        x, y = to_storage.transform(lon, lat)
        assert row[1] == 1 and abs(row[2] - x) <= 0.001 and abs(row[3] - y) <= 0.001


def test_customer_with_unknown_user_type_label(target: sa.Engine, tmp_path: Path) -> None:
    rows = [customer_row("C1", 用户类型="外星用户", x=497_000.0, y=4_551_500.0),
            customer_row("C2", 用户类型="非居民", 细分类型="餐饮", x=497_010.0, y=4_551_500.0)]
    path = tmp_path / "customers.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    assert failed_lines(target, path, crs="EPSG:4550") == [
        "customers.csv:customers:1:用户类型: '外星用户' is neither a code nor a label of 燃气用户类型 (dt_usertype)",
        "customers.csv:customers:2:credit_code: 统一社会信用代码 is empty: "
        "only residents (用户类型 1) may leave it empty",
    ]
    assert count(target, "customer") == 0


# -- local grid ------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:'crs' was not provided")  # a local grid has no CRS of its own
def test_local_grid_four_parameters(target: sa.Engine, tmp_path: Path) -> None:
    """Local grid coordinates → EPSG:4550 by the four parameters, computed here by hand."""
    mapping = tmp_path / "grid.yaml"
    mapping.write_text("local_grids:\n  city:\n    target: EPSG:4550\n    dx: 496000.0\n    dy: 4550000.0\n"
                       "    rotation_arcsec: 3600.0\n    scale_ppm: 100.0\n", encoding="utf-8")
    local = [(1000.0, 1500.0), (1080.0, 1505.0)]
    path = tmp_path / "local.gpkg"
    pyogrio.write_dataframe(pipe_frame([chinese_pipe("L1")], [shapely.LineString(local)], crs=None), path, layer="pipe")
    report = import_file(target, path, crs="LOCAL:city", enterprise=ENTERPRISE, mapping_file=mapping)
    assert report.layers[0].crs.startswith("local grid city (dx 496000 m, dy 4550000 m, rotation 3600″")
    theta, s = np.radians(1.0), 1.0001  # 3600″ = 1°; 100 ppm
    expected = [(496000.0 + s * (x * np.cos(theta) - y * np.sin(theta)),
                 4550000.0 + s * (x * np.sin(theta) + y * np.cos(theta))) for x, y in local]
    with target.connect() as conn:
        wkb = conn.execute(sa.text("SELECT ST_AsBinary(geom) FROM pipe")).scalar()
    assert np.abs(shapely.get_coordinates(shapely.from_wkb(bytes(wkb))) - np.array(expected)).max() <= 0.001


def test_unknown_local_grid(target: sa.Engine, tmp_path: Path) -> None:
    with pytest.raises(Exception, match="no local grid 'nowhere' in the mapping file"):
        local_grid("LOCAL:nowhere", {})


# -- DXF -------------------------------------------------------------------------------------------
def test_dxf_lines_and_blocks(target: sa.Engine, tmp_path: Path) -> None:
    """A CAD drawing in CGCS2000 6° zone 21 (EPSG:4499, false easting with zone prefix): lines on
    layer 中压 become medium-pressure pipes, blocks on layer 节点 nodes; checked against pyproj."""
    to_zone = Transformer.from_crs("EPSG:4490", "EPSG:4499", always_xy=True)
    lonlat = [(122.990, 41.100), (122.991, 41.1005), (122.9925, 41.1011)]
    xy = [to_zone.transform(*p) for p in lonlat]
    doc = ezdxf.new()
    doc.layers.add("中压")
    doc.layers.add("节点")
    block = doc.blocks.new("NODE")
    block.add_circle((0, 0), 0.5)
    block.add_attdef("编号", (0, 0))
    msp = doc.modelspace()
    msp.add_lwpolyline(xy[:2], dxfattribs={"layer": "中压"})
    msp.add_line(xy[1], xy[2], dxfattribs={"layer": "中压"})
    msp.add_text("说明", dxfattribs={"layer": "标注"})
    for i, point in enumerate(xy):
        msp.add_blockref("NODE", point, dxfattribs={"layer": "节点"}).add_auto_attribs({"编号": f"JD{i}"})
    path = tmp_path / "管网.dxf"
    doc.saveas(path)
    mapping = tmp_path / "cad.yaml"
    mapping.write_text(
        "cad_layers:\n"
        "  中压: {table: pipe, pressure_class: 1, pipe_type: 干管, material: 聚乙烯, 管径: 160, 起点高程: 25.0,\n"
        "        终点高程: 25.0, 埋深: 1.2, 所在道路: 胜利路, 权属单位: 鞍山燃气, 建设年代: 2020,\n"
        "        探测日期: 2025-05-06, 敷设方式: 直埋, 管道类别: 管道天然气, 使用状态: 在用}\n"
        "  节点: {table: node, pressure_class: 中压, 地面高程: 25.0, 埋深: 1.2}\n", encoding="utf-8")
    report = import_file(target, path, crs="EPSG:4499", enterprise=ENTERPRISE, mapping_file=mapping)
    assert [(layer.table, layer.features) for layer in report.layers] == [("node", 3), ("pipe", 2)]
    pipe_layer = report.layers[1]
    assert (pipe_layer.new_nodes, pipe_layer.reused_nodes) == (0, 3)  # the pipes end on the drawn nodes
    to_storage = Transformer.from_crs("EPSG:4490", "EPSG:4550", always_xy=True)
    with target.connect() as conn:
        nodes = conn.execute(sa.text("SELECT code, ST_X(geom), ST_Y(geom) FROM node ORDER BY code")).all()
        pressure = conn.execute(sa.text("SELECT DISTINCT pressure_class, diameter_mm::int FROM pipe")).all()
        ends = conn.execute(sa.text("SELECT f.code, t.code FROM pipe p JOIN node f ON f.id = p.from_node_id "
                                    "JOIN node t ON t.id = p.to_node_id ORDER BY f.code")).all()
    for (lon, lat), (_code, x, y) in zip(lonlat, nodes, strict=False):
        ex, ey = to_storage.transform(lon, lat)
        assert abs(x - ex) <= 0.001 and abs(y - ey) <= 0.001
    assert [tuple(r) for r in pressure] == [(1, 160)]
    assert [tuple(r) for r in ends] == [("JD0", "JD1"), ("JD1", "JD2")]


def test_dxf_without_crs_and_broken_dxf(target: sa.Engine, tmp_path: Path) -> None:
    doc = ezdxf.new()
    doc.modelspace().add_line((497_000, 4_551_500), (497_050, 4_551_500), dxfattribs={"layer": "中压"})
    path = tmp_path / "nocrs.dxf"
    doc.saveas(path)
    lines = failed_lines(target, path, enterprise=ENTERPRISE)
    assert "nocrs.dxf:中压:*:geometry: the file has no CRS (a Shapefile without .prj, a CAD drawing?): " \
           "give --crs EPSG:XXXX" in lines
    broken = tmp_path / "broken.dxf"
    broken.write_bytes(path.read_bytes()[:300])
    lines = failed_lines(target, broken, enterprise=ENTERPRISE)
    assert len(lines) == 1 and lines[0].startswith("broken.dxf:*:*:*: not a readable DXF drawing")


def test_cli_imports_whole_geopackage_and_names_unknown_layers(target: sa.Engine, tmp_path: Path) -> None:
    from test_import_export import qiwang

    path = tmp_path / "whole.gpkg"
    small_network(path, [valve_row("V1", "P1", "N2")])
    done = qiwang(target, "import", str(path))
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    assert out[0] == f"{path}:节点 → node: 2 features; CRS EPSG:4550 (from the file) → EPSG:4550"
    assert ("  nodes by name (from/to node codes): 0 new, 2 of the node layer or the database; 0 pipe ends moved "
            "onto their node within 0.05 m") in out
    assert f"skipped layer {UNKNOWN_TRACKS}" in out
    assert out[-2] == "written in one transaction"
    assert re.fullmatch(r"recorded as import #\d+ \(\./qiwang import-log\)", out[-1])
    assert "[3/3] writing 1 valve rows" in done.stderr.splitlines()  # progress on stderr
    assert (count(target, "node"), count(target, "pipe"), count(target, "valve")) == (2, 1, 1)


def test_a_hazard_names_its_feature_by_type_and_code(engine: sa.Engine, target: sa.Engine, tmp_path: Path) -> None:
    """Hazards alone into a database without the pipes they concern: each names a missing pipe;
    a hazard with a feature type but no feature code is refused too. Nothing is written."""
    out = tmp_path / "hazards.gpkg"
    export(engine, out, "gpkg", layers=["hazard"])
    frame = pyogrio.read_dataframe(out)
    frame.loc[0, "feature_code"] = None
    pyogrio.write_dataframe(frame, out, layer="hazard")
    with engine.connect() as conn:
        first = conn.execute(sa.text("SELECT code, enterprise_code FROM hazard ORDER BY id LIMIT 2")).all()
    lines = failed_lines(target, out)
    assert lines[0] == ("hazards.gpkg:hazard:1:feature_code: feature_code and feature_type go together: "
                        "give both or neither")
    pipe = frame.loc[1, "feature_code"]
    assert (f"hazards.gpkg:hazard:2:feature_code: no pipe {pipe!r} of enterprise {first[1][1]} in this import "
            f"or the database") in lines
    assert len(lines) == len(frame)  # one line per hazard
