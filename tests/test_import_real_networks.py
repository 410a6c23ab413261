"""Real networks in as they come (issue 19): third-party files imported without rewriting them.

The files are made here in the shapes real ones have: a water-network model's GeoPackage whose
pipes name their nodes (`pipe_id`, `from_node`, `to_node`), point valves naming their pipe and node,
source points, and none of appendix A's fields but codes; a survey sheet with exactly the fields of
appendix A.1 #4 (000 manual). They go into an empty migrated database of one county and one
enterprise (tests/networks.py's), emptied again before each test.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
import sqlalchemy as sa
from networks import DIVISION, ENTERPRISE, ORIGIN, SRID, Network, load

from ingest.importer import ImportFailed, ImportReport, import_file, parse_set_options

X0, Y0 = ORIGIN


@pytest.fixture
def empty(net_engine: sa.Engine) -> Iterator[sa.Engine]:
    """The module's database with its county and enterprise and no network."""
    load(net_engine, Network(nodes={}, pipes={}))
    yield net_engine


def imported(engine: sa.Engine, path: Path, **options: object) -> ImportReport:
    """import_file, its problem lines shown when it refuses."""
    try:
        return import_file(engine, path, **options)  # type: ignore[arg-type]
    except ImportFailed as failed:
        raise AssertionError("\n".join(failed.problems)) from None


def count(engine: sa.Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


# -- appendix A.1 #4 --------------------------------------------------------------------------------
A14 = ["管道编码", "管道类型", "节点高程", "管道类别", "管道材质", "管径", "起点埋深", "终点埋深", "所在道路",
       "权属单位", "建设时间", "探测日期", "使用状态"]


def a14_sheet(path: Path, rows: int = 3) -> Path:
    """A GeoPackage of `rows` pipes in a row, with exactly the fields of appendix A.1 #4."""
    frame = gpd.GeoDataFrame({
        "管道编码": [f"GD{i:03d}" for i in range(rows)], "管道类型": "干管", "节点高程": 12.5, "管道类别": "管道天然气",
        "管道材质": "聚乙烯", "管径": "DN110", "起点埋深": 1.2, "终点埋深": 1.3, "所在道路": "解放路",
        "权属单位": "测试燃气", "建设时间": 2012, "探测日期": "2024-05-01", "使用状态": "在用",
    }, geometry=[shapely.LineString([(X0 + 50 * i, Y0), (X0 + 50 * (i + 1), Y0)]) for i in range(rows)],
        crs=f"EPSG:{SRID}")
    assert list(frame.columns[:-1]) == A14
    frame.to_file(path, layer="管道", driver="GPKG")
    return path


def test_a_file_with_exactly_the_appendix_a14_fields_imports(empty: sa.Engine, tmp_path: Path) -> None:
    """敷设方式 is not in A.1 #4 and no longer mandatory; the pressure class, which the network model
    needs, is given once for the layer with --set."""
    path = a14_sheet(tmp_path / "a14.gpkg")
    with pytest.raises(ImportFailed) as refused:
        import_file(empty, path, enterprise=ENTERPRISE)
    assert refused.value.problems == [
        f"{path}:管道:*:pressure_class: mandatory field 压力级制 is missing "
        "(give it in the file, as layers.pipe.defaults.pressure_class in a --mapping file, "
        "or with --set pipes.pressure_class=…)"]
    report = import_file(empty, path, enterprise=ENTERPRISE, set_values=parse_set_options(["pipes.pressure_class=中压"]))
    assert report.written and count(empty, "pipe") == 3 and count(empty, "node") == 4
    with empty.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT code, pipe_type, category, material, diameter_mm, start_elevation_m, end_elevation_m, "
            "start_depth_m, end_depth_m, pressure_class, laying_type, build_year, survey_date::text, status, "
            "admin_code FROM pipe ORDER BY code")).all()
    assert [tuple(r) for r in rows] == [
        (f"GD{i:03d}", "main", 1, 20, 110, 12.5, 12.5, 1.2, 1.3, 1, None, 2012, "2024-05-01", "in_service", DIVISION)
        for i in range(3)]


def test_an_unregistered_enterprise_is_one_line_and_unknown_layers_are_listed(empty: sa.Engine, tmp_path: Path,
                                                                            ) -> None:
    """1,613 identical lines became one with the count and the first five features; the layer
    that nothing takes is named, with the mapping key that would take it, although the import
    failed; --problems-csv keeps every line."""
    path = a14_sheet(tmp_path / "a14.gpkg", rows=7)
    gpd.GeoDataFrame({"name": ["h1"]}, geometry=[shapely.Point(X0, Y0)], crs=f"EPSG:{SRID}").to_file(
        path, layer="hydrants", driver="GPKG")
    with pytest.raises(ImportFailed) as refused:
        import_file(empty, path, enterprise="2103029999", set_values=parse_set_options(["pipes.pressure_class=1"]))
    failed = refused.value
    reason = ("enterprise 2103029999 is not registered in this database (register it with "
              "./qiwang enterprise add 2103029999 --name … --credit-code …)")
    assert failed.report() == [
        f"7 problems of 1 kind in {path}:",
        "  7 × 管道:enterprise_code: enterprise … is not registered in this database (register it with "
        "./qiwang enterprise add … --name … --credit-code …)",
        f"{path}:管道:enterprise_code: {reason}: 7 features (1, 2, 3, 4, 5, …)"]
    assert failed.skipped == [
        "hydrants: not recognised as any layer (to take it, name it under layers.<table>.names in a --mapping "
        "file, e.g. layers.valve.names: [hydrants], or import it alone with --layer hydrants --as KIND)"]
    sheet = tmp_path / "problems.csv"
    failed.write_csv(sheet)
    assert sheet.read_text(encoding="utf-8-sig").splitlines() == [
        "file,layer,feature,field,reason", *(f"{path},管道,{i},enterprise_code,{reason}" for i in range(1, 8))]
    assert count(empty, "pipe") == 0


# -- a water-network model's GeoPackage: pipes name their nodes -------------------------------------
#   G1
#   S --P1-- A --P2-- B --P3-- C          valves at pipe ends: V1 on P2 at A, V2 on P3 at B,
#                     |                                       V3 on P4 at B
#                     P4
#                     |
#                     D
NODES = {"S": (0, 0), "A": (100, 0), "B": (200, 0), "C": (300, 0), "D": (200, 100)}
PIPES = {"P1": "S-A", "P2": "A-B", "P3": "B-C", "P4": "B-D"}
VALVES = {"V1": ("P2", "A"), "V2": ("P3", "B"), "V3": ("P4", "B")}
MAPPING = """
layers:
  pipe:
    names: [pipes]
    fields: {code: [pipe_id], diameter_mm: [diam], from_node_code: [from_node], to_node_code: [to_node]}
    defaults: {pipe_type: main, material: 聚乙烯, pressure_class: 中压, start_elevation_m: 20, end_elevation_m: 20,
               start_depth_m: 1.2, end_depth_m: 1.2, road_name: 未知, owner: 测试燃气, build_year: 2015,
               survey_date: 2024-01-01, category: 管道天然气, status: 在用}
  valve:
    names: [valves]
    fields: {code: [valve_id], pipe_code: [pipe_id], node_code: [node_id]}
    defaults: {valve_type: gate, name: 阀门, model: 未知, manufacturer: 未知, responsible_person: 未知,
               responsible_phone: '13900000000', commissioned_on: 2015-01-01}
  station:
    names: [sources]
    fields: {code: [source_id], outlet_node_code: [node_id]}
    defaults: {name: 气源, station_type: 0, address: 未知, equipment: 未知}
"""


def at(name: str) -> tuple[float, float]:
    return X0 + NODES[name][0], Y0 + NODES[name][1]


def model_file(path: Path, pipes: dict[str, str] = PIPES, drawn: dict[str, list] | None = None,
               valves: dict[str, tuple[str, str]] = VALVES, valve_points: dict[str, tuple] | None = None) -> Path:
    """The network as a modelling tool exports it: pipes with pipe_id, from_node, to_node and diam only
    (`drawn`: a pipe's own vertices instead of the straight line between its nodes), valves at pipe
    ends naming pipe and node (`valve_points`: elsewhere), source points naming their node; no node layer."""
    ends = {code: spec.split("-") for code, spec in pipes.items()}
    gpd.GeoDataFrame(
        {"pipe_id": list(pipes), "from_node": [a for a, _ in ends.values()], "to_node": [b for _, b in ends.values()],
         "diam": 110.0},
        geometry=[shapely.LineString((drawn or {}).get(code) or [at(a), at(b)]) for code, (a, b) in ends.items()],
        crs=f"EPSG:{SRID}").to_file(path, layer="pipes", driver="GPKG")
    gpd.GeoDataFrame(
        {"valve_id": list(valves), "pipe_id": [p for p, _ in valves.values()], "node_id": [v for _, v in valves.values()]},
        geometry=[shapely.Point((valve_points or {}).get(code) or at(node)) for code, (_, node) in valves.items()],
        crs=f"EPSG:{SRID}").to_file(path, layer="valves", driver="GPKG")
    gpd.GeoDataFrame({"source_id": ["G1"], "node_id": ["S"]}, geometry=[shapely.Point(at("S"))],
                     crs=f"EPSG:{SRID}").to_file(path, layer="sources", driver="GPKG")
    return path


@pytest.fixture
def mapping(tmp_path: Path) -> Path:
    path = tmp_path / "model.yaml"
    path.write_text(MAPPING, encoding="utf-8")
    return path


def test_a_model_whose_pipes_name_their_nodes_imports_and_bursts(empty: sa.Engine, tmp_path: Path,
                                                                 mapping: Path) -> None:
    from network_analysis.api import burst_analysis

    path = model_file(tmp_path / "model.gpkg")
    report = imported(empty, path, enterprise=ENTERPRISE, mapping_file=mapping)
    assert report.written and not report.skipped
    assert [line for line in report.summary() if "nodes" in line] == [
        "  nodes by name (from/to node codes): 5 new, 0 of the node layer or the database; "
        "0 pipe ends moved onto their node within 0.05 m"]
    with empty.connect() as conn:
        nodes = dict(conn.execute(sa.text("SELECT code, node_type FROM node")).all())
        pipes = conn.execute(sa.text(
            "SELECT p.code, f.code, t.code FROM pipe p JOIN node f ON f.id = from_node_id "
            "JOIN node t ON t.id = to_node_id ORDER BY p.code")).all()
        valves = conn.execute(sa.text(
            "SELECT v.code, p.code, n.code FROM valve v JOIN pipe p ON p.id = pipe_id JOIN node n ON n.id = node_id "
            "ORDER BY v.code")).all()
        station = conn.execute(sa.text("SELECT s.code, n.code FROM station s JOIN node n ON n.id = outlet_node_id")).all()
    assert nodes == {"S": 3, "A": None, "B": 1, "C": 3, "D": 3}   # dt_pipeline_node_type: 1 tee, 3 end
    assert [tuple(r) for r in pipes] == [(code, *spec.split("-")) for code, spec in sorted(PIPES.items())]
    assert [tuple(r) for r in valves] == [(code, *where) for code, where in sorted(VALVES.items())]
    assert [tuple(r) for r in station] == [("G1", "S")]
    closed = {pipe: sorted(v["code"] for v in burst_analysis(empty, pipe=pipe)["valves_to_close"])
              for pipe in ("P2", "P3", "P4")}
    assert closed == {"P2": ["V1", "V2", "V3"], "P3": ["V2"], "P4": ["V3"]}
