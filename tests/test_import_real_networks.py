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

from core.codes import credit_code_check_char
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
    report = import_file(empty, path, enterprise=ENTERPRISE,
                         set_values=parse_set_options(["pipes.pressure_class=中压"]))
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
NODES = {"S": (0, 0), "A": (100, 0), "B": (200, 0), "C": (300, 0), "D": (200, 100), "E": (250, 100)}
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
        {"valve_id": list(valves), "pipe_id": [p for p, _ in valves.values()],
         "node_id": [v for _, v in valves.values()]},
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
        station = conn.execute(sa.text(
            "SELECT s.code, n.code FROM station s JOIN node n ON n.id = outlet_node_id")).all()
    assert nodes == {"S": 3, "A": None, "B": 1, "C": 3, "D": 3}   # dt_pipeline_node_type: 1 tee, 3 end
    assert [tuple(r) for r in pipes] == [(code, *spec.split("-")) for code, spec in sorted(PIPES.items())]
    assert [tuple(r) for r in valves] == [(code, *where) for code, where in sorted(VALVES.items())]
    assert [tuple(r) for r in station] == [("G1", "S")]
    closed = {pipe: sorted(v["code"] for v in burst_analysis(empty, pipe=pipe)["valves_to_close"])
              for pipe in ("P2", "P3", "P4")}
    assert closed == {"P2": ["V1", "V2", "V3"], "P3": ["V2"], "P4": ["V3"]}


def refused(engine: sa.Engine, path: Path, **options: object) -> list[str]:
    """The problem lines of an import that must be refused (file names shortened), nothing written."""
    before = {table: count(engine, table) for table in ("node", "pipe", "valve", "station")}
    with pytest.raises(ImportFailed) as failed:
        import_file(engine, path, **options)  # type: ignore[arg-type]
    assert {table: count(engine, table) for table in before} == before
    return [line.removeprefix(f"{path}:") for line in failed.value.problems]


def node_layer(path: Path, x: float, y: float) -> None:
    gpd.GeoDataFrame({"code": ["C"], "pressure_class": [1]}, geometry=[shapely.Point(X0 + x, Y0 + y)],
                     crs=f"EPSG:{SRID}").to_file(path, layer="node", driver="GPKG")


def test_pipe_ends_must_lie_on_the_nodes_they_name(empty: sa.Engine, tmp_path: Path, mapping: Path) -> None:
    """P4's drawn end lies 2.9 km from node D, which P4 is the first to name: D is made there, and
    P5 starting at D's true place is 2,900 m off. With a node layer placing C 12 m from P3's drawn
    end, the node layer is right; 0.04 m off (within the tolerance), the end is moved onto it."""
    far = {"P4": [at("B"), (X0 + 200, Y0 + 3000)]}
    path = model_file(tmp_path / "far.gpkg", pipes={**PIPES, "P5": "D-E"}, drawn=far)
    assert refused(empty, path, enterprise=ENTERPRISE, mapping_file=mapping) == [
        "pipes:5:from_node: from-node 'D' is 2,900.00 m from the pipe's drawn start, where row 4 puts it "
        "(tolerance 0.05 m)"]
    path = model_file(tmp_path / "nodes.gpkg")
    node_layer(path, 300, 12)
    assert refused(empty, path, enterprise=ENTERPRISE, mapping_file=mapping) == [
        "pipes:3:to_node: to-node 'C' is 12.00 m from the pipe's drawn end, where the node layer or the "
        "database puts it (tolerance 0.05 m)"]
    path = model_file(tmp_path / "good.gpkg")
    node_layer(path, 300, 0.04)
    report = imported(empty, path, enterprise=ENTERPRISE, mapping_file=mapping)
    assert [line for line in report.summary() if "nodes" in line] == [
        "  nodes by name (from/to node codes): 4 new, 1 of the node layer or the database; "
        "1 pipe ends moved onto their node within 0.05 m (largest move 0.040 m)"]
    with empty.connect() as conn:
        end = conn.execute(sa.text("SELECT ST_X(ST_EndPoint(geom)) - :x, ST_Y(ST_EndPoint(geom)) - :y FROM pipe "
                                   "WHERE code = 'P3'"), {"x": X0, "y": Y0}).one()
    assert tuple(round(v, 6) for v in end) == (300.0, 0.04)


# -- modes and the import log -------------------------------------------------------------------------
OTHER = "2103020002"


def network_version(engine: sa.Engine) -> int:
    return int(count_sql(engine, "SELECT version FROM network_version"))


def count_sql(engine: sa.Engine, sql: str, **params: object) -> object:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar_one()


def test_update_changes_only_the_carried_fields(empty: sa.Engine, tmp_path: Path, mapping: Path) -> None:
    imported(empty, model_file(tmp_path / "model.gpkg"), enterprise=ENTERPRISE, mapping_file=mapping)
    with empty.connect() as conn:
        before = {r[0]: tuple(r[1:]) for r in conn.execute(sa.text(
            "SELECT code, diameter_mm::int, material, road_name, from_node_id, to_node_id, ST_AsText(geom) FROM pipe"))}
    # a sheet of corrections: P2 and P3 are DN160, P3 redrawn 0.03 m off at its end; no node codes
    path = tmp_path / "corrections.gpkg"
    gpd.GeoDataFrame({"pipe_id": ["P2", "P3"], "diam": [160.0, 160.0]},
                     geometry=[shapely.LineString([at("A"), at("B")]),
                               shapely.LineString([at("B"), (X0 + 300, Y0 + 0.03)])],
                     crs=f"EPSG:{SRID}").to_file(path, layer="pipes", driver="GPKG")
    version = network_version(empty)
    report = imported(empty, path, enterprise=ENTERPRISE, mapping_file=mapping, mode="update")
    assert [(layer.table, layer.inserted, layer.updated) for layer in report.layers] == [("pipe", 0, 2)]
    assert network_version(empty) == version + 1   # once for the import, not per statement
    with empty.connect() as conn:
        after = {r[0]: tuple(r[1:]) for r in conn.execute(sa.text(
            "SELECT code, diameter_mm::int, material, road_name, from_node_id, to_node_id, ST_AsText(geom) FROM pipe"))}
    assert after == {code: ((160, *row[1:]) if code in ("P2", "P3") else row) for code, row in before.items()}
    from ingest.import_log import entries
    with empty.connect() as conn:
        logged = entries(conn, 1)[0]
    assert (logged.mode, logged.file_name, logged.counts) == (
        "update", str(path), [{"layer": "pipes", "table": "pipe", "inserted": 0, "updated": 2}])
    # a code that is not stored, and an end 5 m from the node it keeps
    gpd.GeoDataFrame({"pipe_id": ["P9", "P4"], "diam": [90.0, 90.0]},
                     geometry=[shapely.LineString([at("A"), at("B")]),
                               shapely.LineString([at("B"), (X0 + 205, Y0 + 100)])],
                     crs=f"EPSG:{SRID}").to_file(path, layer="pipes", driver="GPKG", mode="w")
    assert refused(empty, path, enterprise=ENTERPRISE, mapping_file=mapping, mode="update") == [
        f"pipes:1:pipe_id: no pipe 'P9' of enterprise {ENTERPRISE} to update (--mode upsert adds new ones)",
        "pipes:2:geometry: the pipe's drawn end is 5.00 m from its stored to-node 'D' (tolerance 0.05 m): an update "
        "keeps a pipe's nodes unless the file names them (from/to node codes)"]


def test_replace_enterprise_swaps_one_network_and_the_log_lists_every_import(empty: sa.Engine, tmp_path: Path,
                                                                            mapping: Path) -> None:
    with empty.begin() as conn:
        conn.execute(sa.text(
            f"""INSERT INTO enterprise (enterprise_code, name, admin_code, address, legal_representative,
                    business_license_type, credit_code, gas_license_no, gas_license_issued_on,
                    gas_license_expires_on, operating_area)
                SELECT '{OTHER}', '另一燃气', admin_code, address, legal_representative, business_license_type,
                       :credit, 'T-2', gas_license_issued_on, gas_license_expires_on, operating_area
                FROM enterprise WHERE enterprise_code = '{ENTERPRISE}'"""),
            {"credit": "91210302MA0000002" + credit_code_check_char("91210302MA0000002")})
        conn.execute(sa.text("TRUNCATE import_log"))
    model = model_file(tmp_path / "model.gpkg")
    for enterprise in (ENTERPRISE, OTHER):
        imported(empty, model, enterprise=enterprise, mapping_file=mapping)
    smaller = model_file(tmp_path / "smaller.gpkg", pipes={"P1": "S-A", "P2": "A-B"}, valves={"V1": ("P2", "A")})
    version = network_version(empty)
    report = imported(empty, smaller, enterprise=ENTERPRISE, mapping_file=mapping, mode="replace-enterprise")
    assert report.deleted == {"valve": 3, "station": 1, "pipe": 4, "node": 5}
    assert network_version(empty) == version + 1
    with empty.connect() as conn:
        held = conn.execute(sa.text(
            "SELECT enterprise_code, (SELECT count(*) FROM pipe p WHERE p.enterprise_code = e.enterprise_code), "
            "(SELECT count(*) FROM node n WHERE n.enterprise_code = e.enterprise_code), "
            "(SELECT count(*) FROM valve v WHERE v.enterprise_code = e.enterprise_code) "
            "FROM enterprise e ORDER BY 1")).all()
    assert [tuple(r) for r in held] == [(ENTERPRISE, 2, 3, 1), (OTHER, 4, 5, 3)]
    # the file's features must all be of the enterprise replaced
    assert refused(empty, smaller, enterprise=ENTERPRISE, mapping_file=mapping, mode="replace-enterprise",
                   set_values=parse_set_options(["valves.enterprise_code=" + OTHER])) == [
        f"valves:1:valve_id: code 'V1' is already in the database (enterprise {OTHER}; --mode update or upsert "
        "changes stored features)",
        f"valves:1:--set valves.enterprise_code: --mode replace-enterprise replaces the network of enterprise "
        f"{ENTERPRISE}: this feature is of enterprise {OTHER}"]

    from ingest.import_log import entries, sha256
    with empty.connect() as conn:
        log = entries(conn)
    assert [(e.mode, e.file_name, e.enterprises, e.sha256) for e in log] == [
        ("replace-enterprise", str(smaller), [ENTERPRISE], sha256(smaller)),
        ("insert", str(model), [OTHER], sha256(model)), ("insert", str(model), [ENTERPRISE], sha256(model))]
    assert log[0].counts == [
        {"layer": "pipes", "table": "pipe", "inserted": 2, "updated": 0},
        {"layer": "sources", "table": "station", "inserted": 1, "updated": 0},
        {"layer": "valves", "table": "valve", "inserted": 1, "updated": 0},
        *({"layer": "(replaced)", "table": t, "deleted": n} for t, n in report.deleted.items())]
    assert log[0].account.startswith("operator:") and log[0].mapping["file"] == str(mapping)
    where = (f"EPSG:{SRID} (CGCS2000 / 3-degree Gauss-Kruger CM 123E) → EPSG:{SRID} by no change (the same CRS); "
             "accuracy 0 m")
    assert log[0].lines()[1:4] == [f"  pipes → pipe: 2 inserted; {where}", f"  sources → station: 1 inserted; {where}",
                                   f"  valves → valve: 1 inserted; {where}"]


# -- datum honesty ----------------------------------------------------------------------------------
@pytest.mark.parametrize("epsg, datum", [(2438, "Beijing 1954"), (2386, "Xian 1980")])
def test_old_datums_are_refused_unless_a_shift_is_given_or_accepted(empty: sa.Engine, tmp_path: Path,
                                                                     mapping: Path, epsg: int, datum: str) -> None:
    """PROJ knows only a ballpark offset from Beijing 1954 and Xian 1980 to CGCS2000 (80.6 m and
    2.1 m off here): refused, every layer saying so; with --datum-shift the user's Helmert is used,
    with --accept-approximate-datum the ballpark, and the import log keeps which and its accuracy."""
    from ingest.datum import parse_datum_shift
    from ingest.import_log import entries
    from ingest.importer import DatumOptions

    path = model_file(tmp_path / "old.gpkg")
    for layer in ("pipes", "valves", "sources"):
        frame = gpd.read_file(path, layer=layer).set_crs(epsg, allow_override=True)
        frame.to_file(path, layer=layer, driver="GPKG")
    lines = refused(empty, path, enterprise=ENTERPRISE, mapping_file=mapping)
    assert [line.split(":", 3)[:3] for line in lines] == [[layer, "*", "geometry"]
                                                         for layer in ("pipes", "sources", "valves")]
    assert all(line.split(": ", 1)[1].startswith(f"EPSG:{epsg} {datum} / 3-degree Gauss-Kruger CM 123E: pyproj's "
                                                 "best transformation to EPSG:4550") and "accuracy unknown" in line
               and line.endswith("or accept the error with --accept-approximate-datum") for line in lines)
    approximate = imported(empty, path, enterprise=ENTERPRISE, mapping_file=mapping,
                           datum_options=DatumOptions(accept_approximate=True))
    assert "accuracy unknown" in approximate.layers[0].datum
    load(empty, Network(nodes={}, pipes={}))
    shifted = imported(empty, path, enterprise=ENTERPRISE, mapping_file=mapping,
                       datum_options=DatumOptions(parse_datum_shift("15.8,-154.4,-82.3,0,0,0,0")))
    assert "7-parameter Helmert given by --datum-shift" in shifted.layers[0].datum
    with empty.connect() as conn:
        log = entries(conn, 2)
    assert [(e.crs[0]["datum"]["approximate"], e.crs[0]["datum"]["user_given"], e.crs[0]["accuracy_m"])
            for e in log] == [(False, True, None), (True, False, None)]


# -- what used to pass silently -------------------------------------------------------------------
def check_valve_mapping(mapping: Path) -> Path:
    """The model mapping with valve_type taken from the file (a `kind` field)."""
    text = mapping.read_text(encoding="utf-8").replace("code: [valve_id],", "code: [valve_id], valve_type: [kind],")
    path = mapping.with_name("check.yaml")
    path.write_text(text, encoding="utf-8")
    return path


WRONG = {
    "valve node not an end": (dict(valves={**VALVES, "V4": ("P3", "A")}, valve_points={"V4": (X0 + 200, Y0)}),
                              ["valves:4:node_id: node 'A' is neither end of the valve's pipe "
                               "(from-node 'B', to-node 'C')"]),
    "valve off its pipe": (dict(valve_points={"V2": (X0 + 200, Y0 + 5000)}),
                           ["valves:2:geometry: 5,000.0 m from its pipe (tolerance 0.05 m)"]),
    "self-intersecting pipe": (dict(drawn={"P3": [at("B"), (X0 + 260, Y0 + 20), (X0 + 260, Y0 - 20),
                                                  (X0 + 230, Y0 + 10), at("C")]}),
                               ["pipes:3:geometry: the line crosses or touches itself at (500230.00, 4550010.00)"]),
    "two valves at one pipe end": (dict(valves={**VALVES, "V4": ("P3", "B")}),
                                   ["valves:4:node_id: a second valve at node 'B' of pipe 'P3' (the first is row 2)"]),
    "zero-length pipe": (dict(drawn={"P4": [at("B"), at("B")]}),
                         ["pipes:4:geometry: zero-length line"]),
}


@pytest.mark.parametrize("case", list(WRONG))
def test_wrong_networks_are_refused_with_their_line(empty: sa.Engine, tmp_path: Path, mapping: Path,
                                                    case: str) -> None:
    shape, lines = WRONG[case]
    path = model_file(tmp_path / "wrong.gpkg", **shape)  # type: ignore[arg-type]
    assert refused(empty, path, enterprise=ENTERPRISE, mapping_file=mapping) == lines


def test_a_check_valve_needs_a_direction_and_values_keep_their_checks(empty: sa.Engine, tmp_path: Path,
                                                                     mapping: Path) -> None:
    path = model_file(tmp_path / "check.gpkg")
    frame = gpd.read_file(path, layer="valves")
    frame["kind"] = ["check", "gate", "gate"]
    frame.to_file(path, layer="valves", driver="GPKG")
    assert refused(empty, path, enterprise=ENTERPRISE, mapping_file=check_valve_mapping(mapping)) == [
        "valves:1:check_direction: 止回方向 is empty: a check valve needs a direction (into_pipe or out_of_pipe)"]
    frame = gpd.read_file(path, layer="pipes")
    frame.loc[1, "diam"] = -110.0
    frame.to_file(path, layer="pipes", driver="GPKG")
    assert refused(empty, path, enterprise=ENTERPRISE, mapping_file=mapping) == [
        "pipes:2:diam: must be greater than 0: -110"]


def test_enterprises_come_in_with_their_network(empty: sa.Engine, tmp_path: Path, mapping: Path) -> None:
    """A file's `enterprises` sheet registers the enterprise its network names, in the same import."""
    path = model_file(tmp_path / "with_register.gpkg")
    credit = "91210302MA0000003" + credit_code_check_char("91210302MA0000003")
    register = {"企业唯一编码": "2103020003", "企业名称": "第三燃气", "统一社会信用代码": credit,
                "公司地址": "测试路3号",
                "法定代表人": "王五", "营业执照类型": "有限责任公司", "燃气经营许可证号": "T-3",
                "燃气经营许可证发证时间": "2021-01-01", "燃气经营许可证到期时间": "2031-01-01", "经营区域": "铁东区"}
    import pandas as pd
    import pyogrio

    pyogrio.write_dataframe(pd.DataFrame([register]), path, layer="enterprises", driver="GPKG")
    report = imported(empty, path, enterprise="2103020003", mapping_file=mapping)
    assert report.summary()[0] == f"{path}:enterprises → enterprise: 1 enterprises registered"
    assert count_sql(empty, "SELECT count(*) FROM pipe WHERE enterprise_code = '2103020003'") == 4
    assert count_sql(empty, "SELECT name FROM enterprise WHERE enterprise_code = '2103020003'") == "第三燃气"


def test_progress_is_a_bar_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal the steps of `./qiwang import` drive a progress bar (rich); else they are lines."""
    import io
    import sys

    from app.cli.files import import_progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with import_progress() as step:
        step("[1/2] reading model.gpkg:pipes → pipe")
        step("[2/2] writing 4 valve rows")
    shown = terminal.getvalue()
    assert "[2/2] writing 4 valve rows" in shown and "4/4" in shown and "━" in shown
    plain = io.StringIO()
    monkeypatch.setattr(sys, "stderr", plain)
    with import_progress() as step:
        step("[1/2] reading model.gpkg:pipes → pipe")
    assert plain.getvalue() == "[1/2] reading model.gpkg:pipes → pipe\n"
