"""Export and import of network data against real files and real databases.

Files are written by the tests with pyogrio (GDAL) into tmp_path; imports go into fresh migrated
databases (`scratch_url`) that first get the deployment's registry (divisions and enterprises), as
a real deployment has it before any network is imported.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
import sqlalchemy as sa
from pyproj import Transformer

from ingest.exporter import DEFAULT_LAYERS, export
from ingest.importer import ImportFailed, import_file

ROOT = Path(__file__).resolve().parent.parent
ENTERPRISE = "2103020001"  # the demo city's first enterprise
# attribute columns compared after a round trip (ids, node ids and timestamps are the database's own)
PIPE_ATTRIBUTES = [
    "code", "pipe_type", "category", "material", "diameter_mm", "outside_diameter_mm", "start_elevation_m",
    "end_elevation_m", "start_depth_m", "end_depth_m", "road_name", "owner", "build_year", "survey_date",
    "status", "pressure_class", "pressure_subclass", "max_operating_pressure_mpa", "laying_type", "remarks",
    "enterprise_code", "admin_code",
]


# -- helpers ---------------------------------------------------------------------------------------
def pipes(engine: sa.Engine) -> pd.DataFrame:
    """Pipes with their attributes, 3D vertices and from/to node ids, by (enterprise, code)."""
    with engine.connect() as conn:
        frame = pd.read_sql(
            sa.text(f"SELECT {', '.join(PIPE_ATTRIBUTES)}, from_node_id, to_node_id, ST_AsBinary(geom) AS wkb "
                    "FROM pipe ORDER BY enterprise_code, code"), conn)
    frame["geom"] = shapely.from_wkb(frame.pop("wkb").map(bytes))
    return frame


def count(engine: sa.Engine, table: str = "pipe") -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()


def assert_same_pipes(source: pd.DataFrame, copied: pd.DataFrame) -> None:
    """Same codes and attributes, vertices within 1 mm in 3D, and the same node structure."""
    assert len(copied) == len(source)
    pd.testing.assert_frame_equal(
        copied[PIPE_ATTRIBUTES].astype(str), source[PIPE_ATTRIBUTES].astype(str), check_exact=True)
    a = shapely.get_coordinates(source["geom"].to_numpy(), include_z=True)
    b = shapely.get_coordinates(copied["geom"].to_numpy(), include_z=True)
    assert a.shape == b.shape
    assert np.abs(a - b).max() <= 0.001
    # topology: pipe ends that shared a node still share one, and no others do
    ends_source = np.concatenate([source["from_node_id"], source["to_node_id"]])
    ends_copied = np.concatenate([copied["from_node_id"], copied["to_node_id"]])
    pairs = set(zip(ends_source.tolist(), ends_copied.tolist(), strict=False))
    assert len(pairs) == len(set(ends_source)) == len(set(ends_copied))


def pipe_frame(rows: list[dict], geoms: list, crs: str = "EPSG:4550") -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(pd.DataFrame(rows), geometry=geoms, crs=crs)


def chinese_pipe(code: str, **changes) -> dict:
    """A valid pipe with Chinese field names and labels, the way gas companies hand them over."""
    row = {"管道编码": code, "管道类型": "干管", "管道类别": "管道天然气", "材质": "聚乙烯", "管径": 200.0,
           "起点高程": 24.5, "终点高程": 24.8, "起点埋深": 1.2, "终点埋深": 1.3, "所在道路": "胜利路",
           "权属单位": "鞍山气网示范燃气有限公司", "建设年代": 2012, "探测日期": "2025-05-06",
           "使用状态": "在用", "压力级制": "中压", "敷设方式": "直埋"}
    row.update(changes)
    return row


def anshan_line(i: int, length: float = 80.0) -> shapely.LineString:
    """A 2D line in EPSG:4550 near the demo city's centre, i-th of a row of separate lines."""
    x0, y0 = 497_000.0 + 100.0 * i, 4_551_500.0
    return shapely.LineString([(x0, y0), (x0 + length, y0 + 5.0)])


# -- export ----------------------------------------------------------------------------------------
def test_export_geopackage_has_every_layer_labels_and_z(engine: sa.Engine, tmp_path: Path) -> None:
    out = tmp_path / "city.gpkg"
    result = export(engine, out, "gpkg")
    assert [name for name, _ in pyogrio.list_layers(out)] == list(DEFAULT_LAYERS)
    for layer in DEFAULT_LAYERS:
        assert result.counts[layer] == count(engine, layer) == pyogrio.read_info(out, layer=layer)["features"]
    frame = pyogrio.read_dataframe(out, layer="pipe")
    with engine.connect() as conn:
        labels = dict(conn.execute(sa.text("SELECT code, label_zh FROM dict.dt_pipe_material")).all())
    assert (frame["material_label"] == frame["material"].map(labels)).all()
    assert {"pressure_class_label", "laying_type_label", "from_node_code", "to_node_code"} <= set(frame.columns)
    assert "id" not in frame.columns and shapely.has_z(frame.geometry.to_numpy()).all()
    customers = pyogrio.read_info(out, layer="customer")["fields"]
    assert not {"id_number", "contact_person", "contact_phone", "meter_reader_phone"} & set(customers)


def test_export_shapefile_writes_cpg_and_short_names(engine: sa.Engine, tmp_path: Path) -> None:
    export(engine, tmp_path / "shp", "shp", layers=["pipe", "valve"])
    assert (tmp_path / "shp" / "pipe.cpg").read_text().strip().upper() in ("UTF-8", "UTF8")
    fields = pyogrio.read_info(tmp_path / "shp" / "pipe.shp")["fields"]
    assert all(len(name) <= 10 for name in fields) and "mater_lbl" in fields
    frame = pyogrio.read_dataframe(tmp_path / "shp" / "pipe.shp")
    assert set(frame["mater_lbl"]) <= {"钢制管道", "灰口铸铁", "球墨铸铁", "聚乙烯", "其他"}


def test_export_crs_and_bbox(engine: sa.Engine, tmp_path: Path) -> None:
    bbox = (122.99, 41.10, 123.00, 41.11)
    out = tmp_path / "pipes.geojson"
    result = export(engine, out, "geojson", layers=["pipe"], crs="EPSG:4326", bbox=",".join(map(str, bbox)))
    with engine.connect() as conn:
        expected = conn.execute(sa.text(
            "SELECT count(*) FROM pipe WHERE geom && ST_Transform(ST_MakeEnvelope(:a, :b, :c, :d, 4326), 4550)"),
            dict(zip("abcd", bbox, strict=False))).scalar()
    assert result.counts == {"pipe": expected} and 0 < expected < count(engine)
    frame = pyogrio.read_dataframe(out)
    lon, lat = shapely.get_coordinates(frame.geometry.to_numpy()).T
    assert (121 < lon).all() and (lon < 124).all() and (40 < lat).all() and (lat < 42).all()


def test_export_refuses_personal_data(engine: sa.Engine, tmp_path: Path) -> None:
    with pytest.raises(Exception, match="personal data"):
        export(engine, tmp_path / "x.gpkg", "gpkg", layers=["customer_personal"])
    assert not list(tmp_path.iterdir())


# -- round trips -----------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["gpkg", "shp", "geojson"])
def test_round_trip_gives_same_pipes(fmt: str, engine: sa.Engine, target: sa.Engine, tmp_path: Path) -> None:
    out = tmp_path / ("city.gpkg" if fmt == "gpkg" else "city")
    export(engine, out, fmt)
    path = out if fmt == "gpkg" else out / f"pipe.{fmt}"
    with target.connect() as conn:
        version_before = conn.execute(sa.text("SELECT version FROM network_version")).scalar()
    # the pipe layer alone: nodes are rebuilt from the pipe ends (the whole city, nodes and all,
    # is test_import_layers.test_whole_city_round_trip)
    report = import_file(target, path, layer="pipe" if fmt == "gpkg" else None)
    assert report.written and report.layers[0].features == count(engine)
    assert report.layers[0].unused_fields == []  # labels, node codes, length: all known as derived
    assert report.layers[0].snapped_ends == 0
    assert report.layers[0].new_nodes == count(target, "node")
    assert_same_pipes(pipes(engine), pipes(target))
    with target.connect() as conn:
        assert conn.execute(sa.text("SELECT version FROM network_version")).scalar() > version_before


# -- other sources ---------------------------------------------------------------------------------
def test_gbk_shapefile_with_chinese_fields_and_no_cpg(target: sa.Engine, tmp_path: Path) -> None:
    path = tmp_path / "燃气管线.shp"
    rows = [chinese_pipe("GBK-1"), chinese_pipe("GBK-2", 材质="钢制管道", 所在道路="铁西区建设大道", 压力级制="次高压")]
    pyogrio.write_dataframe(pipe_frame(rows, [anshan_line(0), anshan_line(1)]), path, encoding="GBK")
    path.with_suffix(".cpg").unlink()
    with pytest.raises(UnicodeDecodeError):
        path.with_suffix(".dbf").read_bytes().decode("utf-8")
    report = import_file(target, path, enterprise=ENTERPRISE)
    assert report.layers[0].encoding == "GB18030"
    with target.connect() as conn:
        got = conn.execute(sa.text(
            "SELECT code, material, road_name, owner, pressure_class, pipe_type, status, survey_date::text "
            "FROM pipe ORDER BY code")).all()
    assert [tuple(r) for r in got] == [
        ("GBK-1", 20, "胜利路", "鞍山气网示范燃气有限公司", 1, "main", "in_service", "2025-05-06"),
        ("GBK-2", 1, "铁西区建设大道", "鞍山气网示范燃气有限公司", 2, "main", "in_service", "2025-05-06"),
    ]


def test_wgs84_geojson_is_transformed_like_pyproj(target: sa.Engine, tmp_path: Path) -> None:
    lonlat = [[(122.990, 41.100), (122.9912, 41.1004), (122.9921, 41.1013)], [(123.001, 41.105), (123.002, 41.106)]]
    features = [
        {"type": "Feature", "geometry": {"type": "LineString", "coordinates": line},
         "properties": {"code": f"W{i}", "pipe_type": "branch", "category": 1, "material": 20, "DN": "DN110",
                        "start_elevation_m": 20.0, "end_elevation_m": 21.0, "埋深": 1.0, "road": "站前街",
                        "owner": "鞍山气网示范燃气有限公司", "year": "2019-07-01", "survey_date": "2025/6/1",
                        "status": "in_service", "pressure": 0, "laying": 1, "enterprise": ENTERPRISE}}
        for i, line in enumerate(lonlat)
    ]
    path = tmp_path / "wgs84.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    report = import_file(target, path)
    assert report.layers[0].crs.startswith("EPSG:4326 (from the file)")
    to_storage = Transformer.from_crs("EPSG:4326", "EPSG:4550", always_xy=True)
    got = pipes(target)
    for line, geom in zip(lonlat, got["geom"], strict=False):
        x, y = to_storage.transform(*np.array(line).T)
        coords = shapely.get_coordinates(geom, include_z=True)
        assert np.abs(coords[:, 0] - x).max() <= 0.001 and np.abs(coords[:, 1] - y).max() <= 0.001
        # no Z in the file: pipe top = ground − depth, interpolated along the line from 19 m to 20 m
        assert coords[0, 2] == pytest.approx(19.0) and coords[-1, 2] == pytest.approx(20.0)
        assert (np.diff(coords[:, 2]) >= 0).all()
    assert got["diameter_mm"].tolist() == [110, 110] and got["build_year"].tolist() == [2019, 2019]


def test_gbk_csv_sheet_in_another_zone_with_survey_axes(target: sa.Engine, tmp_path: Path) -> None:
    """A survey sheet (Excel CSV, GBK): 起点X/起点Y in CGCS2000 6° zone 21 with the zone prefix,
    X being northing as Chinese surveyors write it."""
    to_zone = Transformer.from_crs("EPSG:4490", "EPSG:4499", always_xy=True)
    ends = [((122.990, 41.100), (122.991, 41.1005)), ((122.991, 41.1005), (122.9925, 41.1011))]
    header = ["管道编码", "起点X", "起点Y", "终点X", "终点Y", *list(chinese_pipe("x"))[1:]]
    lines = [",".join(header)]
    for i, (start, end) in enumerate(ends):
        (e1, n1), (e2, n2) = to_zone.transform(*start), to_zone.transform(*end)
        values = list(chinese_pipe(f"CSV{i}").values())[1:]
        lines.append(",".join([f"CSV{i}", f"{n1:.4f}", f"{e1:.4f}", f"{n2:.4f}", f"{e2:.4f}", *map(str, values)]))
    path = tmp_path / "管线成果表.csv"
    path.write_bytes("\r\n".join(lines).encode("gbk"))
    report = import_file(target, path, crs="EPSG:4499", enterprise=ENTERPRISE)
    assert report.layers[0].encoding == "GB18030"
    assert report.layers[0].geometry_note == "lines from columns 起点X, 起点Y, 终点X, 终点Y (X is northing, Y easting)"
    assert report.layers[0].new_nodes == 3  # the two pipes share their middle node
    to_storage = Transformer.from_crs("EPSG:4490", "EPSG:4550", always_xy=True)
    got = pipes(target)
    for (start, end), geom in zip(ends, got["geom"], strict=False):
        expected = np.array([to_storage.transform(*start), to_storage.transform(*end)])
        assert np.abs(shapely.get_coordinates(geom) - expected).max() <= 0.001
    assert got["road_name"].tolist() == ["胜利路", "胜利路"]


def test_file_without_crs_needs_crs_option(target: sa.Engine, tmp_path: Path) -> None:
    lonlat = [(122.995, 41.108), (122.996, 41.1085)]
    path = tmp_path / "no_prj.shp"
    frame = pipe_frame([chinese_pipe("N1")], [shapely.LineString(lonlat)], crs="EPSG:4490")
    pyogrio.write_dataframe(frame, path, encoding="GBK")
    path.with_suffix(".prj").unlink()
    assert failed_lines(target, path, enterprise=ENTERPRISE) == [
        "no_prj.shp:no_prj:*:geometry: the file has no CRS (a Shapefile without .prj, a CAD drawing?): "
        "give --crs EPSG:XXXX"]
    report = import_file(target, path, enterprise=ENTERPRISE, crs="EPSG:4490")
    assert report.layers[0].crs == "EPSG:4490 (--crs) → EPSG:4550"
    x, y = Transformer.from_crs("EPSG:4490", "EPSG:4550", always_xy=True).transform(*np.array(lonlat).T)
    coords = shapely.get_coordinates(pipes(target)["geom"][0])
    assert np.abs(coords - np.column_stack([x, y])).max() <= 0.001


def test_close_pipe_ends_are_snapped_into_one_node(target: sa.Engine, tmp_path: Path) -> None:
    a = shapely.LineString([(497_000.0, 4_551_500.0), (497_050.0, 4_551_500.0)])
    b = shapely.LineString([(497_050.03, 4_551_500.0), (497_100.0, 4_551_500.0)])  # 3 cm off a's end
    c = shapely.LineString([(497_100.0, 4_551_500.0), (497_150.0, 4_551_500.0)])  # exactly on b's end
    path = tmp_path / "pipes.gpkg"
    pyogrio.write_dataframe(pipe_frame([chinese_pipe(f"S{i}") for i in range(3)], [a, b, c]), path, layer="管线")
    report = import_file(target, path, enterprise=ENTERPRISE)
    assert (report.layers[0].new_nodes, report.layers[0].snapped_ends) == (4, 1)
    assert report.layers[0].max_snap_m == pytest.approx(0.03)
    got = pipes(target)
    assert got["to_node_id"][0] == got["from_node_id"][1] and got["to_node_id"][1] == got["from_node_id"][2]
    a_end, b_start = shapely.get_coordinates(got["geom"][0])[-1], shapely.get_coordinates(got["geom"][1])[0]
    assert a_end.tolist() == b_start.tolist()  # one of the two ends moved onto the other
    # a pipe shorter than the tolerance would become a loop on one node: refused
    tiny = tmp_path / "tiny.gpkg"
    stub = shapely.LineString([(497_300.0, 4_551_500.0), (497_300.04, 4_551_500.0)])
    pyogrio.write_dataframe(pipe_frame([chinese_pipe("S9")], [stub]), tiny, layer="管线")
    with pytest.raises(ImportFailed) as failed:
        import_file(target, tiny, enterprise=ENTERPRISE, file_label="tiny.gpkg")
    assert failed.value.problems == ["tiny.gpkg:管线:1:geometry: both ends on one node (a closed line, or shorter "
                                     "than the 0.05 m snapping tolerance)"]
    # a second file joins the first network at its existing end node
    d = shapely.LineString([(497_150.01, 4_551_500.0), (497_200.0, 4_551_500.0)])
    second = tmp_path / "more.gpkg"
    pyogrio.write_dataframe(pipe_frame([chinese_pipe("S3")], [d]), second, layer="管线")
    report = import_file(target, second, enterprise=ENTERPRISE)
    assert (report.layers[0].new_nodes, report.layers[0].reused_nodes, report.layers[0].snapped_ends) == (1, 1, 1)
    got = pipes(target)
    assert got["from_node_id"][3] == got["to_node_id"][2]


def test_mapping_file_adds_field_names(target: sa.Engine, tmp_path: Path) -> None:
    row = chinese_pipe("P1")
    row["GXCZ"] = row.pop("材质")  # a company's own abbreviation for 管线材质
    path = tmp_path / "own_names.gpkg"
    pyogrio.write_dataframe(pipe_frame([row], [anshan_line(0)]), path, layer="pipe")
    assert failed_lines(target, path, enterprise=ENTERPRISE) == [
        "own_names.gpkg:pipe:*:material: mandatory field 管道材质 is missing "
        "(give it in the file, as layers.pipe.defaults.material in a --mapping file, or with --set pipes.material=…)"]
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("layers:\n  pipe:\n    fields:\n      material: [GXCZ]\n", encoding="utf-8")
    report = import_file(target, path, enterprise=ENTERPRISE, mapping_file=mapping)
    assert report.layers[0].unused_fields == []
    assert pipes(target)["material"].tolist() == [20]


def test_dry_run_writes_nothing(target: sa.Engine, tmp_path: Path) -> None:
    path = tmp_path / "pipes.gpkg"
    pyogrio.write_dataframe(pipe_frame([chinese_pipe("D1", 测量单位="鞍山勘测院")], [anshan_line(0)]), path,
                            layer="pipe")
    report = import_file(target, path, enterprise=ENTERPRISE, dry_run=True)
    assert not report.written and report.layers[0].features == 1 and report.layers[0].new_nodes == 2
    assert report.summary()[-3:] == ["  fields not imported: 测量单位",
                                     "  nodes: 2 new, 0 existing reused; 0 pipe ends snapped within 0.05 m",
                                     "dry run: nothing written"]
    assert count(target) == 0 and count(target, "node") == 0


# -- bad files -------------------------------------------------------------------------------------
def failed_lines(target: sa.Engine, path: Path, **options) -> list[str]:
    with pytest.raises(ImportFailed) as failed:
        import_file(target, path, file_label=path.name, **options)
    assert count(target) == 0 and count(target, "node") == 0  # nothing written
    return failed.value.problems


def test_every_problem_is_one_line_and_nothing_is_written(target: sa.Engine, tmp_path: Path) -> None:
    rows = [
        chinese_pipe("B1"),
        chinese_pipe("B2", 材质="塑料管"),  # unknown label
        chinese_pipe("B3", 管径="粗", 企业唯一编码="2103020000"),  # not a number; sequence 0000
        chinese_pipe("B1", 所在道路=" "),  # duplicate code, empty mandatory field
        chinese_pipe("B5", 压力级制=9, 建设年代=1850),
        chinese_pipe("B6"),
    ]
    for row in rows:
        row.setdefault("企业唯一编码", ENTERPRISE)
    geoms = [anshan_line(0), anshan_line(1), anshan_line(2), anshan_line(3), shapely.Point(497_000, 4_551_000),
             shapely.LineString([(10.0, 10.0), (20.0, 20.0)])]  # last one is far outside the city
    path = tmp_path / "bad.gpkg"
    pyogrio.write_dataframe(pipe_frame(rows, geoms), path, layer="pipe")
    assert failed_lines(target, path) == [
        "bad.gpkg:pipe:2:材质: '塑料管' is neither a code nor a label of 管材 (dt_pipe_material)",
        "bad.gpkg:pipe:3:管径: not a number: '粗'",
        "bad.gpkg:pipe:3:企业唯一编码: '2103020000' is not an enterprise code "
        "(10 digits: 6-digit division + 4-digit sequence from 0001)",
        "bad.gpkg:pipe:4:所在道路: 所在道路 is empty",
        "bad.gpkg:pipe:4:管道编码: duplicate code 'B1' (first in row 1)",
        "bad.gpkg:pipe:5:建设年代: not a year between 1900 and 2100: 1850",
        "bad.gpkg:pipe:5:压力级制: '9' is neither a code nor a label of 压力等级 (dt_pipe_pressure_type)",
        "bad.gpkg:pipe:5:geometry: Point where a line is expected",
        "bad.gpkg:pipe:6:geometry: outside the deployment area "
        + "(x {:.0f}..{:.0f}, y {:.0f}..{:.0f} in EPSG:4550): wrong CRS?".format(*deployment_area(target)),
    ]


def deployment_area(engine: sa.Engine) -> tuple[float, ...]:
    with engine.connect() as conn:
        return tuple(conn.execute(sa.text(
            "SELECT ST_XMin(e), ST_XMax(e), ST_YMin(e), ST_YMax(e) "
            "FROM (SELECT ST_Extent(geom) e FROM admin_division) s"
        )).one())


def test_broken_geometry(target: sa.Engine, tmp_path: Path) -> None:
    good = chinese_pipe("G1", 企业唯一编码=ENTERPRISE)
    features = [
        {"type": "Feature", "properties": good, "geometry": {"type": "LineString", "coordinates": [[497000, 4551500]]}},
        {"type": "Feature", "properties": {**good, "管道编码": "G2"}, "geometry": None},
        {"type": "Feature", "properties": {**good, "管道编码": "G3"},
         "geometry": {"type": "LineString", "coordinates": [[497000, 4551500], [497000, 4551500]]}},
        {"type": "Feature", "properties": {**good, "管道编码": "G4"},
         "geometry": {"type": "MultiLineString", "coordinates": [[[497000, 4551500], [497010, 4551500]],
                                                                 [[497020, 4551500], [497030, 4551500]]]}},
    ]
    path = tmp_path / "broken.geojson"
    crs = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::4550"}}
    path.write_text(json.dumps({"type": "FeatureCollection", "crs": crs, "features": features}), encoding="utf-8")
    assert failed_lines(target, path, kind="pipes") == [
        "broken.geojson:broken:1:geometry: broken geometry (unreadable, e.g. a line with a single point)",
        "broken.geojson:broken:2:geometry: no geometry",
        "broken.geojson:broken:3:geometry: zero-length line",
        "broken.geojson:broken:4:geometry: multi-part line with 2 parts: split it into one pipe per part",
    ]


def test_missing_mandatory_field_and_enterprise(target: sa.Engine, tmp_path: Path) -> None:
    row = chinese_pipe("M1")
    del row["所在道路"], row["探测日期"]
    path = tmp_path / "missing.gpkg"
    pyogrio.write_dataframe(pipe_frame([row], [anshan_line(0)]), path, layer="pipe")
    assert failed_lines(target, path) == [
        "missing.gpkg:pipe:*:enterprise_code: the file has no 企业唯一编码 field: give --enterprise CODE",
        "missing.gpkg:pipe:*:road_name: mandatory field 所在道路 is missing "
        "(give it in the file, as layers.pipe.defaults.road_name in a --mapping file, or with --set pipes.road_name=…)",
        "missing.gpkg:pipe:*:survey_date: mandatory field 探测日期 is missing "
        "(give it in the file, as layers.pipe.defaults.survey_date in a --mapping file, "
        "or with --set pipes.survey_date=…)",
    ]


def test_unregistered_enterprise(target: sa.Engine, tmp_path: Path) -> None:
    path = tmp_path / "other.gpkg"
    pyogrio.write_dataframe(pipe_frame([chinese_pipe("E1", 企业唯一编码="2103020009")], [anshan_line(0)]), path)
    assert failed_lines(target, path) == [
        "other.gpkg:other:1:企业唯一编码: enterprise 2103020009 is not registered in this database (register it with "
        "./qiwang enterprise add 2103020009 --name … --credit-code …)",
    ]


def test_truncated_files(target: sa.Engine, tmp_path: Path) -> None:
    frame = pipe_frame([chinese_pipe(f"T{i}") for i in range(50)], [anshan_line(i) for i in range(50)])
    shp = tmp_path / "cut.shp"
    pyogrio.write_dataframe(frame, shp, encoding="GBK")  # dBASE names are 10 bytes: 4 GBK characters
    size = shp.stat().st_size
    with shp.open("r+b") as f:
        f.truncate(size // 2)
    assert failed_lines(target, shp, enterprise=ENTERPRISE) == [
        f"cut.shp:cut:*:*: truncated: cut.shp has {size // 2:,} bytes, its header says {size:,}",
    ]
    geojson = tmp_path / "cut.geojson"
    pyogrio.write_dataframe(frame, geojson)
    geojson.write_bytes(geojson.read_bytes()[:1500])
    lines = failed_lines(target, geojson, enterprise=ENTERPRISE)
    assert len(lines) == 1 and lines[0].startswith("cut.geojson:*:*:*: cannot read it (damaged or truncated?): ")


def test_not_geodata(target: sa.Engine, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("会议纪要\n管线普查下周开始。\n", encoding="utf-8")
    assert failed_lines(target, notes) == ["notes.txt:*:*:*: not a geodata file (no GDAL driver recognises it)"]
    table = tmp_path / "table.csv"
    table.write_text("编号,管径\nA,100\n", encoding="utf-8")
    assert failed_lines(target, table) == [
        "table.csv:*:*:*: nothing to import: table: no geometries (not a geodata layer)"]


def qiwang(database: sa.Engine | str, *args: str) -> subprocess.CompletedProcess[str]:
    """./qiwang against one database, as a user runs it."""
    url = database if isinstance(database, str) else database.url.render_as_string(hide_password=False)
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {"DATABASE_URL": url}
    return subprocess.run([str(ROOT / "qiwang"), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=300)


def test_cli_export(db_url: str, tmp_path: Path) -> None:
    out = tmp_path / "pipes.gpkg"
    done = qiwang(db_url, "export", "--layers", "pipe,valve", "--crs", "EPSG:4490", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].endswith(f"features in 2 layers, EPSG:4490: {out}")
    assert pyogrio.read_info(out, layer="valve")["crs"] == "EPSG:4490"
    done = qiwang(db_url, "export", "--crs", "EPSG:999999", str(out))
    assert done.returncode == 1 and done.stderr.strip().splitlines() == [
        "qiwang: error: --crs EPSG:999999: not a coordinate reference system pyproj knows"]


def test_cli_import_reports_lines_and_exits_non_zero(target: sa.Engine, tmp_path: Path) -> None:
    path = tmp_path / "cli.gpkg"
    pyogrio.write_dataframe(pipe_frame([chinese_pipe("C1", 材质="塑料管")], [anshan_line(0)]), path, layer="pipe")
    done = qiwang(target, "import", "--enterprise", ENTERPRISE, str(path))
    assert done.returncode == 1
    assert f"{path}:pipe:1:材质: '塑料管' is neither a code nor a label of 管材 (dt_pipe_material)" in done.stdout
    assert done.stderr.strip().splitlines()[-1] == f"qiwang: error: 1 problem in {path}: nothing imported"
    assert "Traceback" not in done.stderr and count(target) == 0
    good = tmp_path / "good.gpkg"
    pyogrio.write_dataframe(pipe_frame([chinese_pipe("C2")], [anshan_line(0)]), good, layer="pipe")
    done = qiwang(target, "import", "--enterprise", ENTERPRISE, str(good))
    assert done.returncode == 0, done.stderr
    assert "nodes: 2 new, 0 existing reused; 0 pipe ends snapped within 0.05 m" in done.stdout
    assert count(target) == 1


def test_cli_reimport_of_an_export_summarises_first_and_groups_each_kind(db_url: str, tmp_path: Path) -> None:
    """Issue 16 #9: 3,857 lines of one kind used to scroll by with no summary; now a summary, then
    the first 10 lines of each kind, then how many more (--all-errors: every line)."""
    out = tmp_path / "again.gpkg"
    assert qiwang(db_url, "export", "--layers", "pipe,valve", str(out)).returncode == 0
    with sa.create_engine(db_url).connect() as conn:
        pipes, valves = (conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar() for t in ("pipe", "valve"))
        first = conn.execute(sa.text("SELECT code, enterprise_code FROM pipe ORDER BY id LIMIT 1")).one()
    done = qiwang(db_url, "import", str(out))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    lines = done.stdout.splitlines()
    width = len(f"{max(pipes, valves):,}")
    assert lines[:3] == [
        f"{pipes + valves:,} problems of 2 kinds in {out}:",
        f"  {pipes:>{width},} × pipe:code: code … is already in the database (enterprise …; --mode update or upsert "
        "changes stored features)",
        f"  {valves:>{width},} × valve:code: code … is already in the database (enterprise …; --mode update or upsert "
        "changes stored features)"]
    assert lines[3] == (f"{out}:pipe:1:code: code {first.code!r} is already in the database "
                        f"(enterprise {first.enterprise_code}; --mode update or upsert changes stored features)")
    assert [line.split(":")[2] for line in lines[3:13]] == [str(i) for i in range(1, 11)]
    assert lines[13] == f"… and {pipes - 10:,} more of this kind (--all-problems lists every one)"
    assert lines[14].startswith(f"{out}:valve:1:code: code 'FM")
    assert lines[24:] == [f"… and {valves - 10:,} more of this kind (--all-problems lists every one)"]
    assert done.stderr.splitlines()[-1] == f"qiwang: error: {pipes + valves:,} problems in {out}: nothing imported"
    every = qiwang(db_url, "import", "--all-problems", str(out)).stdout.splitlines()
    assert every[:3] == lines[:3] and len(every) == 3 + pipes + valves
    assert all(re.fullmatch(rf"{re.escape(str(out))}:(pipe|valve):\d+:code: code '\w+' is already in the database "
                            r"\(enterprise \d{10}; --mode update or upsert changes stored features\)", line)
               for line in every[3:])
