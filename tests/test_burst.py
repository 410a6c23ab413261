"""Burst / valve isolation on hand-made networks: exact valves, pipes and customers.

Each network is drawn above its test; `@` marks where a valve sits (on the pipe, at that node),
`|x|` a normally closed valve, `S` a gate station (the source).

The analyses run in memory on the model built from the drawing (marked `nodb`: `pytest -m nodb`
needs no PostgreSQL); the round-trip tests at the end load the same drawings into PostGIS and check
that the database's path gives the same answers.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import sqlalchemy as sa
from networks import TIERS, Network, load, model, topology

from core.errors import InvalidInput
from network_analysis.api import burst_analysis, burst_in_memory
from network_analysis.model import load_model
from network_analysis.topology import Topology, topologies


def burst(net: Network | Topology, **kwargs) -> dict:
    return burst_in_memory(net if isinstance(net, Topology) else topology(net), **kwargs)


def closing(result: dict) -> set[str]:
    return {v["code"] for v in result["valves_to_close"] if not v["already_closed"]}


# S --p1-- a @--p2-- b --p3--@ c
#          |                   |
#          p4                  p5
#          |                   |
#          d -------p6-------- e
LOOP = Network(
    nodes={"S": (0, 0), "a": (100, 0), "b": (200, 0), "c": (300, 0), "d": (100, -100), "e": (300, -100)},
    pipes={"p1": "S-a", "p2": "a-b", "p3": "b-c", "p4": "a-d", "p5": "c-e", "p6": "d-e"},
    valves={"v1": "p2@a", "v2": "p3@c"},
    sources={"G1": "S"},
    customers={"c1": "b", "c2": "c", "c3": "e shop"},
)


@pytest.mark.nodb
def test_loop_closes_two_valves_and_nothing_runs_dry() -> None:
    result = burst(LOOP, pipe="p3")
    assert closing(result) == {"v1", "v2"}
    assert result["isolated_pipes"] == ["p2", "p3"]
    assert result["dry_pipes"] == []  # c and e stay fed round the loop
    assert result["affected_customers"] == {"count": 1, "by_type": {"居民": 1}, "list": ["c1"]}
    assert result["second_ring"] is None
    assert result["isolated_length_m"] == 200.0
    # 2 × 100 m of PE dn200 SDR11 (inner 200 · 9/11 mm) at 0.4 MPa gauge:
    # π/4 · 0.16364² · 200 · (0.4 + 0.101325) / 0.101325
    assert result["isolated_volume_m3"] == pytest.approx(20.81, abs=0.005)


@pytest.mark.nodb
def test_valves_report_where_they_stand() -> None:
    result = burst(LOOP, pipe="p2")
    v1 = next(v for v in result["valves_to_close"] if v["code"] == "v1")
    # 5 % along p2 from a (100, 0) towards b (200, 0), in EPSG:4550 around the test origin
    assert (v1["x"], v1["y"], v1["pipe"], v1["already_closed"]) == (500_105.0, 4_550_000.0, "p2", False)


# S1 --p1--@ a @--p2--@ b @--p3-- S2      (customers at a and b)
TWO_SOURCES = Network(
    nodes={"S1": (0, 0), "a": (100, 0), "b": (200, 0), "S2": (300, 0)},
    pipes={"p1": "S1-a", "p2": "a-b", "p3": "b-S2"},
    valves={"v1": "p1@a", "v2": "p2@a", "v3": "p2@b", "v4": "p3@b"},
    sources={"G1": "S1", "G2": "S2"},
    customers={"ca": "a", "cb": "b"},
)


@pytest.mark.nodb
def test_two_sources_keep_both_sides_fed() -> None:
    result = burst(TWO_SOURCES, pipe="p2")
    assert closing(result) == {"v2", "v3"}
    assert (result["isolated_pipes"], result["dry_pipes"]) == (["p2"], [])
    assert result["affected_customers"]["count"] == 0


@pytest.mark.nodb
def test_with_one_source_the_far_side_runs_dry() -> None:
    one_source = Network(**{**TWO_SOURCES.__dict__, "sources": {"G1": "S1"}})
    result = burst(one_source, pipe="p2")
    assert closing(result) == {"v2", "v3"}
    assert result["dry_pipes"] == ["p3"]
    assert result["affected_customers"]["list"] == ["cb"]


@pytest.mark.nodb
def test_low_pressure_burst_is_shut_upstream_of_the_regulator() -> None:
    result = burst(TIERS, pipe="l1")
    # no valve at the regulator outlet: the feed is shut on the medium-pressure side
    assert closing(result) == {"vm2", "vl2"}
    assert result["isolated_pipes"] == ["l1"]
    assert result["dry_pipes"] == ["l2"]
    assert result["affected_customers"]["list"] == ["cx", "cy"]


@pytest.mark.nodb
def test_medium_pressure_burst_dries_the_low_pressure_side() -> None:
    result = burst(TIERS, pipe="m3")
    assert closing(result) == {"vm1", "vm2"}
    assert result["isolated_pipes"] == ["m2", "m3"]
    assert result["dry_pipes"] == ["l1", "l2"]
    assert result["affected_customers"]["list"] == ["cx", "cy", "cz"]
    assert result["dry_method"] == "dominator"


# S --p1--@ a --p2-- b --p3-- c
#           |                 |
#           +-------p4-------<|c   check valve on p4 at c
def check_network(direction: str) -> Network:
    return Network(
        nodes={"S": (0, 0), "a": (100, 0), "b": (200, 0), "c": (300, 0)},
        pipes={"p1": "S-a", "p2": "a-b", "p3": "b-c", "p4": "a-c"},
        valves={"v1": "p4@a", "v2": "p2@a", "ck": f"p4@c check:{direction}"},
        sources={"G1": "S"},
        customers={"cb": "b"},
    )


@pytest.mark.nodb
def test_a_check_valve_that_blocks_inflow_needs_no_closing() -> None:
    # out_of_pipe: gas may only leave p4 into c, never come back from c into p4
    result = burst(check_network("out_of_pipe"), pipe="p4")
    assert closing(result) == {"v1"}
    assert result["isolated_pipes"] == ["p4"]
    assert result["check_valves_holding"] == ["ck"]
    assert result["dry_pipes"] == []


@pytest.mark.nodb
def test_a_check_valve_that_lets_gas_in_does_not_isolate() -> None:
    # into_pipe: c feeds p4 through the check valve, so the isolation goes on past it
    result = burst(check_network("into_pipe"), pipe="p4")
    assert closing(result) == {"v1", "v2"}
    assert result["isolated_pipes"] == ["p2", "p3", "p4"]
    assert result["check_valves_holding"] == []
    assert result["second_ring"] is None


# S --p1--@ a @--p2-- b --p3--|x| c --p4-- d     (v3 normally closed; d fed from S2 beyond)
ALREADY_CLOSED = Network(
    nodes={"S": (0, 0), "a": (100, 0), "b": (200, 0), "c": (300, 0), "d": (400, 0), "S2": (500, 0)},
    pipes={"p1": "S-a", "p2": "a-b", "p3": "b-c", "p4": "c-d", "p5": "d-S2"},
    valves={"v1": "p1@a", "v2": "p2@a", "v3": "p3@c closed"},
    sources={"G1": "S", "G2": "S2"},
    customers={"cb": "b", "cd": "d"},
)


@pytest.mark.nodb
def test_an_already_closed_valve_stays_closed_and_needs_no_crew() -> None:
    result = burst(ALREADY_CLOSED, pipe="p3")
    assert [(v["code"], v["already_closed"]) for v in result["valves_to_close"]] == [("v2", False), ("v3", True)]
    assert result["isolated_pipes"] == ["p2", "p3"]
    assert result["affected_customers"]["list"] == ["cb"]


# S @--p1--@ a @--p2-- b --p3--@ c --p4--@ d
FAILED = Network(
    nodes={"S": (0, 0), "a": (100, 0), "b": (200, 0), "c": (300, 0), "d": (400, 0)},
    pipes={"p1": "S-a", "p2": "a-b", "p3": "b-c", "p4": "c-d"},
    valves={"v0": "p1@S", "va": "p1@a", "v1": "p2@a", "v2": "p3@c", "v4": "p4@d"},
    sources={"G1": "S"},
    customers={"cb": "b", "cc": "c", "cd": "d"},
)


@pytest.mark.nodb
def test_a_failed_valve_grows_the_isolation_to_the_second_ring() -> None:
    first = burst(FAILED, pipe="p2")
    assert closing(first) == {"v1", "v2"}
    assert (first["isolated_pipes"], first["dry_pipes"]) == (["p2", "p3"], ["p4"])

    topo = topology(FAILED)
    second = burst(topo, pipe="p2", failed_valves=["v1"])
    assert closing(second) == {"va", "v2"}
    assert second["isolated_pipes"] == ["p2", "p3"]  # v1 fails, but va on p1's other end holds
    assert second["second_ring"] == {"failed_valves": ["v1"], "first_ring_valves": ["v1", "v2"],
                                     "added_valves": ["va"], "added_isolated_pipes": [], "added_dry_pipes": [],
                                     "added_customers": 0}
    third = burst(topo, pipe="p2", failed_valves=["v1", "va"])
    assert closing(third) == {"v0", "v2"}
    assert third["isolated_pipes"] == ["p1", "p2", "p3"]
    assert third["second_ring"]["added_isolated_pipes"] == ["p1"]
    assert third["affected_customers"]["list"] == ["cb", "cc", "cd"]


@pytest.mark.nodb
def test_inoperable_valves_in_the_database_count_as_failed() -> None:
    inoperable = Network(**{**FAILED.__dict__, "valves": {**FAILED.valves, "v1": "p2@a inoperable"}})
    result = burst(inoperable, pipe="p2")
    assert closing(result) == {"va", "v2"}
    assert result["second_ring"]["failed_valves"] == ["v1"]


# S --p1-- a --p2------------- b      (burst 80 m along p2; a squeeze-off at 30 m)
LINE = Network(
    nodes={"S": (0, 0), "a": (100, 0), "b": (200, 0)},
    pipes={"p1": "S-a", "p2": "a-b"},
    valves={"v0": "p1@S"},
    sources={"G1": "S"},
    customers={"ca": "a", "cb": "b"},
)


@pytest.mark.nodb
def test_mid_pipe_burst_snaps_to_the_point_on_the_pipe() -> None:
    result = burst(LINE, point=(500_180.0, 4_550_003.0))
    assert result["burst"] == {"pipe": "p2", "fraction": 0.8, "point": [500_180.0, 4_550_000.0]}
    assert closing(result) == {"v0"}  # no valve on the line but the station's
    assert result["isolated_pipes"] == ["p1", "p2"]


@pytest.mark.nodb
def test_a_temporary_barrier_cuts_the_pipe_where_it_is_squeezed() -> None:
    result = burst(LINE, point=(500_180.0, 4_550_000.0), barriers=[(500_130.0, 4_550_001.0)])
    assert closing(result) == set()
    assert result["barriers"] == [{"pipe": "p2", "fraction": 0.3, "point": [500_130.0, 4_550_000.0]}]
    assert result["isolated_pipes"] == ["p2"]
    assert result["isolated_length_m"] == 70.0  # from the barrier at 30 m to b
    assert result["affected_customers"]["list"] == ["cb"]
    assert result["dry_method"] == "pipe-flood"


@pytest.mark.nodb
def test_a_burst_next_to_a_source_shuts_the_station_outlet() -> None:
    result = burst(FAILED, pipe="p1")
    assert closing(result) == {"v0", "va"}
    assert result["isolated_pipes"] == ["p1"]
    assert result["dry_pipes"] == ["p2", "p3", "p4"]  # the only source is cut off
    assert result["affected_customers"]["count"] == 3
    assert result["sources_to_shut"] == []
    no_outlet_valve = Network(**{**FAILED.__dict__, "valves": {k: v for k, v in FAILED.valves.items() if k != "v0"}})
    result = burst(no_outlet_valve, pipe="p1")
    assert result["sources_to_shut"] == ["G1"]


LOOP_WITH_P6_PLANNED = Network(**{**LOOP.__dict__, "pipes": {**LOOP.pipes, "p6": "d-e planned"}})


@pytest.mark.nodb
def test_pipes_not_in_service_carry_no_gas() -> None:
    result = burst(LOOP_WITH_P6_PLANNED, pipe="p3")
    # without p6 the loop is open: c and e hang on p3's side and go dry
    assert result["dry_pipes"] == ["p5"]
    assert result["affected_customers"]["list"] == ["c1", "c2", "c3"]


TIERS_WITH_M2_IDLE = Network(**{**TIERS.__dict__, "pipes": {**TIERS.pipes, "m2": "a-ri idle"}})


@pytest.mark.nodb
def test_a_regulator_behind_an_idle_pipe_is_no_source() -> None:
    result = burst(TIERS_WITH_M2_IDLE, pipe="l2")
    # m2 carries no gas, but it is there: R1 is fed from the main, not a source of its own, so
    # the low-pressure side has no gas before the burst and nobody more is cut off by it
    assert result["sources_to_shut"] == [] and result["dry_pipes"] == []
    assert result["affected_customers"]["list"] == ["cy"]


# a metering station (type 4) M1 on the line feeds nothing itself
METERING = Network(nodes={"S": (0, 0), "a": (100, 0), "M": (200, 0), "c": (300, 0)},
                   pipes={"p1": "S-a", "p2": "a-M", "p3": "M-c"}, valves={"v1": "p2@a"},
                   sources={"G1": "S", "M1": "M 4"}, customers={"cc": "c"})


@pytest.mark.nodb
def test_only_gate_offtake_and_storage_stations_are_sources() -> None:
    result = burst(METERING, pipe="p1")
    assert result["dry_pipes"] == ["p2", "p3"]
    assert result["affected_customers"]["list"] == ["cc"]


@pytest.mark.nodb
def test_a_regulator_with_nothing_upstream_feeds_its_tier() -> None:
    # a low-pressure district imported with its regulator but without the mains: h --hs-- ri >R1> ro
    partial = Network(nodes={"h": (-20, 0, 1), "ri": (0, 0, 1), "ro": (5, 0, 0), "a": (100, 0, 0), "b": (200, 0, 0)},
                      pipes={"hs": "h-ri", "l1": "ro-a", "l2": "a-b"}, valves={"vl2": "l2@a"},
                      regulators={"R1": "ri>ro"}, customers={"ca": "a", "cb": "b"})
    result = burst(partial, pipe="l1")
    assert result["dry_pipes"] == ["l2"]
    assert result["affected_customers"]["list"] == ["ca", "cb"]
    assert result["sources_to_shut"] == ["R1"]  # the isolation reaches the regulator feeding it


@pytest.mark.nodb
def test_a_regulator_cut_off_by_a_closed_valve_is_no_source() -> None:
    closed = Network(**{**TIERS.__dict__, "valves": {**TIERS.valves, "vm1": "m1@a closed"}})
    topo = topology(closed)
    result = burst(topo, pipe="l2")
    assert result["affected_customers"]["list"] == ["cy"]  # the low-pressure side is unfed anyway
    assert not topo.supplied[topo.pipe_segment[topo.index_of("pipe", "l1")[0]]]


@pytest.mark.nodb
def test_a_barrier_on_a_network_without_valves() -> None:
    bare = Network(**{**LINE.__dict__, "valves": {}})
    result = burst(bare, point=(500_180.0, 4_550_000.0), barriers=[(500_130.0, 4_550_000.0)])
    assert result["isolated_pipes"] == ["p2"] and result["dry_pipes"] == []
    assert result["isolated_length_m"] == 70.0


@pytest.mark.nodb
def test_criticality_of_hand_made_networks_matches_their_bursts() -> None:
    from network_analysis.burst import analyse_burst
    from network_analysis.criticality import criticality

    # S --p0--@ A, ring A @--p1-- B --p2-- C --p3-- A: v1 has the ring's segment on both sides
    ring = Network(nodes={"S": (0, 0), "A": (100, 0), "B": (200, 0), "C": (150, 80)},
                   pipes={"p0": "S-A", "p1": "A-B", "p2": "B-C", "p3": "C-A"},
                   valves={"v0": "p0@A", "v1": "p1@A"}, sources={"G1": "S"}, customers={"cb": "B"})
    # TIERS with a low-pressure branch l3 off the regulator outlet that has no valve of its own
    tiers = Network(nodes={**TIERS.nodes, "w": (205, -100, 0)}, pipes={**TIERS.pipes, "l3": "ro-w"},
                    valves={"vm1": "m1@a", "vl1": "l1@ro", "vl2": "l2@x"}, sources=TIERS.sources,
                    regulators=TIERS.regulators, customers={**TIERS.customers, "cw": "w"})
    for net in (ring, tiers, ALREADY_CLOSED):
        topo = topology(net)
        c = criticality(topo)
        for k, pipe in enumerate(c.segment_example_pipe.tolist()):
            burst_result = analyse_burst(topo, pipe, all_valves_work=True)
            assert (c.segment_valves_to_close[k], c.segment_customers_cut[k], c.segment_pipes[k]) == (
                len(burst_result.isolation.to_close), len(burst_result.affected_customers),
                len(burst_result.isolated_pipes)), topo.model.pipe_code[pipe]
    closed = topo.index_of("valve", "v3")[0]  # ALREADY_CLOSED's normally closed valve
    assert c.valve_extra_customers[closed] == 0


# LINE with valves that cannot fail (v0b normally closed, ck a check valve), one that has (vi), and
# nodes c, d, e further east for pipes of other states; a shop beside cb
WITH_ODD_VALVES = Network(
    nodes={**LINE.nodes, "c": (300, 0), "d": (400, 0), "e": (500, 0)},
    pipes=LINE.pipes,
    valves={"v0": "p1@S", "v0b": "p1@a closed", "ck": "p2@b check:out_of_pipe", "vi": "p2@a inoperable"},
    sources=LINE.sources,
    customers={**LINE.customers, "cs": "b shop"},
)


@pytest.mark.nodb
@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"pipe": "nope"}, "pipe", "unknown pipe code 'nope'"),
        ({"point": (505_000.0, 4_550_000.0)}, "point", "point (505000.0, 4550000.0) is not on the network: the "
                                                       "nearest pipe is 4,800 m away (tolerance 50 m)"),
        ({"pipe": "p2", "failed_valves": ["zz"]}, "failed_valves[0]", "unknown valve code 'zz'"),
        ({"pipe": "p2", "failed_valves": ["v0", "v0b"]}, "failed_valves[1]",
         "valve v0b is normally closed: it stays closed, it cannot fail open"),
        ({"pipe": "p2", "failed_valves": ["ck"]}, "failed_valves[0]",
         "valve ck is a check valve: it is not closed by hand, so it cannot fail to close"),
        ({"pipe": "p2", "point": (0.0, 0.0)}, None, "give either a pipe code or a point, not both"),
        ({}, None, "give either a pipe code or a point, not both"),
        ({"point": (1.0, 2.0), "crs": "EPSG:999999"}, "crs", "unknown CRS 'EPSG:999999'"),
        ({"point": (500_000.0, 4_555_000.0)}, "point", "the nearest pipe is 5,000 m away"),
        ({"pipe": "p2", "barriers": [(500_130.0, 4_550_000.0), (500_150.0, 4_550_060.0)]}, "barriers[1]",
         "point (500150.0, 4550060.0) is not on the network: the nearest pipe is 60 m away"),
    ],
)
def test_bad_input_names_the_parameter(kwargs: dict, field: str | None, message: str) -> None:
    with pytest.raises(InvalidInput) as error:
        burst(WITH_ODD_VALVES, **kwargs)
    assert error.value.field == field
    assert message in error.value.reason
    assert str(error.value) == (f"{field}: {error.value.reason}" if field else error.value.reason)


@pytest.mark.nodb
def test_a_network_without_pipes_has_nothing_to_snap_to() -> None:
    with pytest.raises(InvalidInput, match=r"^point: point \(1\.0, 2\.0\) is not on the network: no pipe at all"):
        burst(Network(nodes={"S": (0, 0)}, pipes={}), point=(1.0, 2.0))


@pytest.mark.nodb
def test_points_in_another_crs_are_transformed_first() -> None:
    from pyproj import Transformer

    lon, lat = Transformer.from_crs(4550, "OGC:CRS84", always_xy=True).transform(500_180.0, 4_550_003.0)
    result = burst(LINE, point=(lon, lat), crs="OGC:CRS84")
    assert result["burst"]["pipe"] == "p2" and result["burst"]["fraction"] == pytest.approx(0.8, abs=1e-6)


# -- the database's path: the same drawings in PostGIS, the same answers ---------------------------

def without_database_parts(result: dict) -> dict:
    """The report of the analysis itself: what the database adds (sites, geometry, incident) and
    its network version counter left out."""
    return {k: v for k, v in result.items()
            if k not in ("network_version", "sensitive_sites", "outage_area", "features", "incident")}


@pytest.mark.parametrize(
    ("net", "kwargs"),
    [
        (LOOP, {"pipe": "p3"}),
        (TIERS, {"pipe": "m3"}),
        (FAILED, {"pipe": "p2", "failed_valves": ["v1", "va"]}),
        (check_network("into_pipe"), {"pipe": "p4"}),
        (ALREADY_CLOSED, {"pipe": "p3"}),
        (LINE, {"point": (500_180.0, 4_550_003.0), "barriers": [(500_130.0, 4_550_001.0)]}),
        (LOOP_WITH_P6_PLANNED, {"pipe": "p3"}),
        (TIERS_WITH_M2_IDLE, {"pipe": "l2"}),
        (METERING, {"pipe": "p1"}),
    ],
)
def test_the_database_path_gives_the_in_memory_answer(net_engine: sa.Engine, net: Network, kwargs: dict) -> None:
    load(net_engine, net)
    stored = burst_analysis(net_engine, **kwargs)
    assert stored["sensitive_sites"] == [] and stored["incident"] is None
    assert without_database_parts(stored) == without_database_parts(burst(net, **kwargs))


def test_the_model_read_from_the_database_is_the_one_built_from_the_drawing(net_engine: sa.Engine) -> None:
    # every rule of build_model at work: pipes planned, idle and abandoned, a closed, a check, an
    # inoperable valve, a metering station beside the gate station, residents and a shop
    net = Network(**{**WITH_ODD_VALVES.__dict__,
                     "pipes": {**WITH_ODD_VALVES.pipes, "p3": "b-c idle", "p4": "c-d abandoned", "p5": "d-e planned"},
                     "sources": {**WITH_ODD_VALVES.sources, "M1": "b 4"}})
    load(net_engine, net)
    with net_engine.connect() as conn:
        stored = load_model(conn)
        version = conn.execute(sa.text("SELECT version FROM network_version")).scalar_one()
    drawn = model(net, version=version)
    for f in dataclasses.fields(stored):
        if f.name.endswith("_id") or f.name.startswith("_") or f.name == "pipe_geometry":
            continue  # the database numbers rows its own way; it keeps the geometry itself
        a, b = getattr(stored, f.name), getattr(drawn, f.name)
        if isinstance(a, np.ndarray):
            assert a.shape == b.shape and np.array_equal(a, b), f.name
        else:
            assert a == b, f.name
    assert (stored.n_pipes, len(stored.idle_pipe_ends), len(stored.source_nodes)) == (2, 2, 1)
    assert stored.customer_type.tolist() == [1, 1, 3] and stored.usertype_label[3] == "非居民"
    assert stored.valve_check.tolist() == [0, 0, -1, 0] and stored.valve_usable.tolist() == [True, True, True, False]


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"point": (505_000.0, 4_550_000.0)}, "point", "point (505000.0, 4550000.0) is not on the network: the "
                                                       "nearest pipe is 4,800 m away (tolerance 50 m)"),
        ({"pipe": "p2", "barriers": [(500_130.0, 4_550_000.0), (500_150.0, 4_550_060.0)]}, "barriers[1]",
         "point (500150.0, 4550060.0) is not on the network: the nearest pipe is 60 m away"),
        ({"pipe": "p2", "failed_valves": ["zz"]}, "failed_valves[0]", "unknown valve code 'zz'"),
    ],
)
def test_the_database_path_names_the_parameter_too(net_engine: sa.Engine, kwargs: dict, field: str,
                                                   message: str) -> None:
    load(net_engine, WITH_ODD_VALVES)
    with pytest.raises(InvalidInput) as error:
        burst_analysis(net_engine, **kwargs)
    assert error.value.field == field and message in error.value.reason
    assert topologies.get(net_engine).model.srid == 4550
