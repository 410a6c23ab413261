"""Topology QA on hand-made networks (one defect kind per test, exact findings) and on the demo city.

The graph check (unfed) runs in memory on the model built from the drawing (marked `nodb`: no
PostgreSQL); the geometric checks are PostGIS queries and run there.

Every test starts from BASE (test_burst's TIERS), drawn below, with its ends declared (node type 3)
so that it is clean; a test adds one kind of defect with extra pipes or an UPDATE and asserts the
exact set of (kind, feature code) found — including the findings such a defect brings along.

    medium pressure (class 1)                      low pressure (class 0)
    S --m1--@ a --m2--@ ri  >R1>  ro --l1-- x @--l2-- y
              |
              m3          sentry s1 3 m beside m3, test post d1 2 m beside m1
              |
              z
"""
from __future__ import annotations

import pytest
import sqlalchemy as sa
from conftest import DEMO_PIPES, DEMO_SEED, migrated_database, scalar
from networks import DIVISION, ENTERPRISE, ORIGIN, Network, load, sealed, topology
from networks import TIERS as BASE  # its customers play no part here

from core.errors import InvalidInput
from network_analysis.qa import KINDS, run_qa, unfed

BASE_ENDS = ("y", "z")


def extend(nodes: dict | None = None, pipes: dict | None = None) -> Network:
    """BASE with more nodes and pipes."""
    return Network(nodes={**BASE.nodes, **(nodes or {})}, pipes={**BASE.pipes, **(pipes or {})},
                   valves=BASE.valves, sources=BASE.sources, regulators=BASE.regulators)


def build(engine: sa.Engine, net: Network = BASE, ends: tuple[str, ...] = ()) -> None:
    """Load `net`, declare BASE's ends and `ends` as ends, and place s1 and d1 beside their pipes."""
    load(engine, net)
    execute(engine, "UPDATE node SET node_type = 3 WHERE code = ANY (:codes)", codes=[*BASE_ENDS, *ends])
    add_sentry(engine, "s1", "m3", 103, -50)
    add_device(engine, "d1", "m1", 50, 2)


def execute(engine: sa.Engine, sql: str, **params: object) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(sql), params)


def point(x: float, y: float) -> str:
    """SQL for a point of the hand-made networks (metres from the test origin), Z = 10 like theirs."""
    return f"ST_SetSRID(ST_MakePoint({ORIGIN[0] + x}, {ORIGIN[1] + y}, 10), 4550)"


def add_sentry(engine: sa.Engine, code: str, pipe: str | None, x: float, y: float, valve: str | None = None) -> None:
    """A sentry at (x, y) naming `pipe`, or in the chamber of `valve`."""
    execute(engine, f"""
        INSERT INTO sentry (code, location_kind, pipe_id, valve_id, name, model, manufacturer, responsible_person,
                            responsible_phone, responsible_phone_sealed, responsible_phone_index, commissioned_on,
                            geom, enterprise_code, admin_code)
        VALUES (:code, CASE WHEN CAST(:valve AS text) IS NULL THEN 'adjacent_space' ELSE 'valve_chamber' END,
                (SELECT id FROM pipe WHERE code = :pipe), (SELECT id FROM valve WHERE code = :valve),
                '管网哨兵', 'GS-1', '厂家', '李四', :responsible_phone, CAST(:responsible_phone_sealed AS bytea),
                CAST(:responsible_phone_index AS bytea), '2023-01-01', {point(x, y)}, :e, :d)""",
            code=code, pipe=pipe, valve=valve, e=ENTERPRISE, d=DIVISION,
            **sealed("sentry", responsible_phone="13900000000"))


def add_device(engine: sa.Engine, code: str, pipe: str, x: float, y: float) -> None:
    """A cathodic-protection test post at (x, y) naming `pipe`."""
    execute(engine, f"""
        INSERT INTO device (code, device_type, pipe_id, name, model, manufacturer, responsible_person,
                            responsible_phone, responsible_phone_sealed, responsible_phone_index, commissioned_on,
                            geom, enterprise_code, admin_code)
        SELECT :code, '阴极保护测试桩', id, '阴极保护测试桩', 'CP-TS-2', '厂家', '李四', :responsible_phone,
               CAST(:responsible_phone_sealed AS bytea), CAST(:responsible_phone_index AS bytea),
               '2015-01-01', {point(x, y)}, enterprise_code, admin_code
        FROM pipe WHERE code = :pipe""", code=code, pipe=pipe, **sealed("device", responsible_phone="13900000000"))


def add_pipe(engine: sa.Engine, code: str, from_node: str, to_node: str, *via: tuple[float, float]) -> None:
    """A pipe like m1 (class of its from-node) from node to node through the `via` points."""
    vertices = ", ".join(["f.geom", *(point(x, y) for x, y in via), "t.geom"])
    execute(engine, f"""
        INSERT INTO pipe (code, pipe_type, material, diameter_mm, start_elevation_m, end_elevation_m,
                          start_depth_m, end_depth_m, road_name, owner, build_year, survey_date, pressure_class,
                          max_operating_pressure_mpa, laying_type, from_node_id, to_node_id, geom,
                          enterprise_code, admin_code)
        SELECT :code, p.pipe_type, p.material, p.diameter_mm, 11, 11, 1, 1, p.road_name, p.owner, p.build_year,
               p.survey_date, f.pressure_class, p.max_operating_pressure_mpa, p.laying_type, f.id, t.id,
               ST_MakeLine(ARRAY[{vertices}]), p.enterprise_code, p.admin_code
        FROM pipe p, node f, node t WHERE p.code = 'm1' AND f.code = :f AND t.code = :t""",
            code=code, f=from_node, t=to_node)


def findings(result: dict) -> set[tuple[str, str]]:
    return {(issue["kind"], issue["feature_code"]) for issue in result["issues"]}


def test_clean_network_has_no_findings(net_engine: sa.Engine) -> None:
    build(net_engine)
    result = run_qa(net_engine)
    assert result["counts"] == dict.fromkeys(KINDS, 0)
    assert result["issues"] == []
    assert result["network_version"] == scalar(net_engine, "SELECT version FROM network_version")


def unfed_codes(net: Network) -> dict[str, set[str]]:
    """What the in-memory check finds unfed, by code."""
    topo = topology(net)
    m, found = topo.model, unfed(topo)
    return {"pipes": set(m.pipe_code[found.pipes].tolist()), "valves": set(m.valve_code[found.valves].tolist()),
            "regulators": set(m.regulator_code[found.regulators].tolist())}


@pytest.mark.nodb
def test_unfed_behind_a_normally_closed_valve_in_memory() -> None:
    closed = Network(**{**BASE.__dict__, "valves": {**BASE.valves, "vm1": "m1@a closed"}})
    assert unfed_codes(closed) == {"pipes": {"m2", "m3", "l1", "l2"}, "valves": {"vm2", "vl2"},
                                   "regulators": {"R1"}}
    assert unfed_codes(BASE) == {"pipes": set(), "valves": set(), "regulators": set()}


@pytest.mark.nodb
def test_a_regulator_with_nothing_upstream_is_a_source_not_unfed() -> None:
    # R2's inlet e has no pipe at all: it feeds y from outside the network drawn
    bare_inlet = Network(nodes={**BASE.nodes, "e": (405, 0, 0)}, pipes=BASE.pipes, valves=BASE.valves,
                         sources=BASE.sources, regulators={**BASE.regulators, "R2": "e>y"})
    assert unfed_codes(bare_inlet) == {"pipes": set(), "valves": set(), "regulators": set()}
    # the low-pressure side without the mains and the gate station: R1 is its edge source
    district = Network(nodes={k: v for k, v in BASE.nodes.items() if k in ("ri", "ro", "x", "y")},
                       pipes={"l1": "ro-x", "l2": "x-y"}, valves={"vl2": "l2@x"}, regulators=BASE.regulators)
    assert unfed_codes(district) == {"pipes": set(), "valves": set(), "regulators": set()}
    # the same with its stub of main cut off by a closed valve: the tier has no gas
    stub = Network(nodes={**district.nodes, "h": (150, 0, 1), "h2": (100, 0, 1)},
                   pipes={**district.pipes, "hs": "h-ri", "h0": "h2-h"},
                   valves={**district.valves, "vh": "hs@h closed"}, sources={"G1": "h2"},
                   regulators=BASE.regulators)
    assert unfed_codes(stub) == {"pipes": {"hs", "l1", "l2"}, "valves": {"vh", "vl2"}, "regulators": {"R1"}}


def test_unfed_behind_a_normally_closed_valve(net_engine: sa.Engine) -> None:
    build(net_engine)
    execute(net_engine, "UPDATE valve SET normal_state = 'closed' WHERE code = 'vm1'")
    add_sentry(net_engine, "s3", None, 305, 0, valve="vl2")  # in vl2's chamber, naming no pipe of its own
    result = run_qa(net_engine)
    # everything past vm1, down through the regulator to the low-pressure side, with what is on it
    assert findings(result) == {("unfed", code)
                                for code in ("m2", "m3", "l1", "l2", "vm2", "vl2", "R1", "s1", "s3")}
    assert result["counts"]["unfed"] == 9
    detail = {i["feature_code"]: i["detail"] for i in result["issues"]}
    assert detail["m3"] == "无气源 / unfed: pipe m3 is in a valve segment that no source reaches"
    assert detail["s1"] == "无气源 / unfed: sentry s1 monitors unfed pipe m3"


def test_devices_off_the_network(net_engine: sa.Engine) -> None:
    net = Network(nodes={**BASE.nodes, "e": (405, 0, 0)}, pipes=BASE.pipes, valves=BASE.valves,
                  sources=BASE.sources, regulators={**BASE.regulators, "R2": "e>y"})
    build(net_engine, net)
    execute(net_engine, "UPDATE valve SET geom = ST_Translate(geom, 0, 2, 0) WHERE code = 'vl2'")  # 2 m off l2
    execute(net_engine, "UPDATE valve SET geom = ST_Translate(geom, 0, 0.4, 0) WHERE code = 'vm1'")  # within 0.5 m
    execute(net_engine, "UPDATE valve SET node_id = (SELECT id FROM node WHERE code = 'z') WHERE code = 'vm2'")
    execute(net_engine, "UPDATE regulator SET inlet_pressure_class = 2 WHERE code = 'R1'")  # ri has medium pipes
    add_sentry(net_engine, "s2", "m3", 112, -50)  # 12 m from m3
    add_device(net_engine, "d2", "m1", 50, -6)  # 6 m from m1
    result = run_qa(net_engine)
    # R2 (inlet e without any pipe) feeds y from outside the network: an edge source, not a defect
    assert findings(result) == {("device_off_network", code) for code in ("vl2", "vm2", "R1", "s2", "d2")}
    detail = {i["feature_code"]: i["detail"] for i in result["issues"]}
    assert detail["vl2"] == "设备脱网 / device off network: valve vl2 is 2.00 m from its pipe l2 (tolerance 0.5 m)"
    assert detail["vm2"] == ("设备脱网 / device off network: valve vm2 sits at node z, "
                             "which is not an end of its pipe m2")
    assert detail["R1"] == "设备脱网 / device off network: regulator R1 inlet node ri has no 次高压 pipe (class 2)"
    # a wider tolerance takes vl2 back
    assert ("device_off_network", "vl2") not in findings(run_qa(net_engine, tolerance_m=2.5))


def test_dangling_end(net_engine: sa.Engine) -> None:
    build(net_engine, extend({"w": (300, -50, 0)}, {"l3": "x-w"}))
    execute(net_engine, "UPDATE node SET node_type = NULL WHERE code = 'y'")
    execute(net_engine, "UPDATE node SET role = 'service_point' WHERE code = 'w'")
    result = run_qa(net_engine)
    # S, ri and ro have one pipe too, but say what they are (station outlet, regulator inlet, outlet)
    assert findings(result) == {("dangling_end", "y")}
    assert result["issues"][0]["detail"] == "末端未标注 / dangling end: node y has one pipe (l2) but is not an end"
    with net_engine.connect() as conn:
        row = conn.execute(sa.text(
            "SELECT feature_type, ST_AsText(geom), enterprise_code, admin_code, network_version FROM topology_issue"
        )).one()
    assert row == ("node", f"POINT({ORIGIN[0] + 400:.0f} {ORIGIN[1]:.0f})", "2103020001", "210302",
                   result["network_version"])


def test_near_miss(net_engine: sa.Engine) -> None:
    net = extend(
        nodes={"k": (150, -50, 1), "h": (150, -0.6, 1),  # h stops 0.6 m short of m2
               "z2": (100, -100.5, 1), "w": (100, -200, 1),  # z2 stops 0.5 m short of z
               "u": (299.5, -0.7, 1),  # a medium end 0.7 m from the low-pressure pipes at x: another tier
               "j1": (0, -50, 1), "j2": (0.5, -50, 1), "j3": (0.5, -100, 1)},  # j1 → j2: a 0.5 m pipe
        pipes={"m4": "k-h", "m6": "z2-w", "m7": "ri-u", "m8": "S-j1", "m9": "j1-j2", "m10": "j2-j3"})
    build(net_engine, net, ends=("k", "w", "u", "j3"))
    result = run_qa(net_engine)
    # the gap z2 ↔ z is one defect, reported at z (the lower id); the ends dangle, the pipes get no gas
    assert findings(result) == {("near_miss", "h"), ("near_miss", "z"), ("dangling_end", "h"),
                                ("dangling_end", "z2"), ("unfed", "m4"), ("unfed", "m6")}
    detail = {(i["kind"], i["feature_code"]): i["detail"] for i in result["issues"]}
    assert detail["near_miss", "h"] == ("近距未接 / near miss: node h (end of pipe m4) is 0.60 m from pipe m2 "
                                        "but not connected to it")
    assert ("near_miss", "h") not in findings(run_qa(net_engine, near_miss_m=0.55))


def test_duplicate_pipes(net_engine: sa.Engine) -> None:
    net = extend(nodes={"a2": (100, 0, 1)},  # a second node on top of a
                 pipes={"m2b": "ri-a", "m3b": "a2-z", "m1b": "S-a"})
    build(net_engine, net)
    execute(net_engine, "UPDATE pipe SET status = 'abandoned' WHERE code = 'm1b'")  # left in the ground
    result = run_qa(net_engine)
    # m3b lies on m3 from a node of its own, which is therefore unconnected and dangling
    assert findings(result) == {("duplicate_pipe", "m2b"), ("duplicate_pipe", "m3b"),
                                ("near_miss", "a2"), ("dangling_end", "a2")}
    detail = {(i["kind"], i["feature_code"]): i["detail"] for i in result["issues"]}
    assert detail["duplicate_pipe", "m2b"] == "重复管段 / duplicate pipe: pipe m2b joins the same nodes as pipe m2"
    assert detail["duplicate_pipe", "m3b"] == "重复管段 / duplicate pipe: pipe m3b has the same geometry as pipe m3"


def test_zero_length_pipe(net_engine: sa.Engine) -> None:
    net = extend(nodes={"z0": (100, -100, 1), "y1": (400.02, 0, 0)}, pipes={"zz": "z-z0", "yy": "y-y1"})
    build(net_engine, net, ends=("y1",))
    result = run_qa(net_engine)
    # yy (2 cm) is short but real; z0 hangs on the zero-length pipe undeclared
    assert findings(result) == {("zero_length", "zz"), ("dangling_end", "z0")}
    with net_engine.connect() as conn:
        geom = conn.execute(sa.text("SELECT ST_AsText(geom) FROM topology_issue WHERE kind = 'zero_length'")).scalar()
    assert geom == f"POINT({ORIGIN[0] + 100:.0f} {ORIGIN[1] - 100:.0f})"


def test_self_loop(net_engine: sa.Engine) -> None:
    build(net_engine)
    add_pipe(net_engine, "loop", "x", "x", (310, 10), (320, 10))
    result = run_qa(net_engine)
    assert findings(result) == {("self_loop", "loop")}
    assert result["issues"][0]["detail"] == "自环管段 / self-loop: pipe loop starts and ends at node x"


def test_pressure_change_without_regulator(net_engine: sa.Engine) -> None:
    build(net_engine, extend(pipes={"l3": "x-z"}))  # low-pressure pipe into the medium-pressure end z
    result = run_qa(net_engine)
    assert findings(result) == {("pressure_change_without_regulator", "z")}
    assert result["issues"][0]["detail"] == ("压力级制变化无调压 / pressure change without regulator: "
                                             "node z joins 低压 (class 0), 中压 (class 1) pipes")


def test_findings_are_replaced_and_bad_tolerances_refused(net_engine: sa.Engine) -> None:
    build(net_engine)
    execute(net_engine, "UPDATE node SET node_type = NULL WHERE code = 'y'")
    assert run_qa(net_engine)["counts"]["dangling_end"] == 1
    execute(net_engine, "UPDATE node SET node_type = 3 WHERE code = 'y'")
    assert run_qa(net_engine)["counts"]["dangling_end"] == 0
    assert scalar(net_engine, "SELECT count(*) FROM topology_issue") == 0
    for bad in (-1, float("nan"), "1"):
        with pytest.raises(InvalidInput, match=f"^tolerance_m: must be a distance in metres ≥ 0, not {bad!r}$"):
            run_qa(net_engine, tolerance_m=bad)  # type: ignore[arg-type]  # a string on purpose
    with pytest.raises(InvalidInput, match=r"^near_miss_m: must be a distance in metres ≥ 0, not -2$"):
        run_qa(net_engine, near_miss_m=-2)


@pytest.mark.parametrize(("pipes", "seed"), [(DEMO_PIPES, DEMO_SEED), (300, 21), (300, 26), (1000, 14), (3000, 26)])
def test_demo_city_is_clean(databases, pipes: int, seed: int) -> None:
    """A generated city (in a database of its own, since QA writes) has no finding of any kind. Its
    normally closed valves sit in the medium-pressure street mesh, where every segment keeps another
    way in; the other sizes and seeds are those where the generator once shut a station outlet or
    both valves of a crossing."""
    from demo.city import load_demo

    with migrated_database(databases, "qiwang_qa_demo") as engine:
        load_demo(engine, pipes=pipes, seed=seed, echo=lambda _: None)
        result = run_qa(engine)
        assert result["counts"] == dict.fromkeys(KINDS, 0)
        if (pipes, seed) != (DEMO_PIPES, DEMO_SEED):
            return
        closed = scalar(engine, "SELECT count(*) FROM valve WHERE normal_state = 'closed'")
        assert isinstance(closed, int) and closed > 0
        # one defect in the city is found, and only that one
        execute(engine, "UPDATE valve SET geom = ST_Translate(geom, 3, 3, 0) WHERE id = 1")
        code = scalar(engine, "SELECT code FROM valve WHERE id = 1")
        assert findings(run_qa(engine)) == {("device_off_network", code)}
