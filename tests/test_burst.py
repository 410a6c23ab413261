"""Burst / valve isolation on hand-made networks: exact valves, pipes and customers.

Each network is drawn above its test; `@` marks where a valve sits (on the pipe, at that node),
`|x|` a normally closed valve, `S` a gate station (the source).
"""
from __future__ import annotations

import pytest
import sqlalchemy as sa
from networks import TIERS, Network, load

from network_analysis.api import burst_analysis
from network_analysis.burst import AnalysisError


def burst(engine: sa.Engine, net: Network, **kwargs) -> dict:
    load(engine, net)
    return burst_analysis(engine, **kwargs)


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


def test_loop_closes_two_valves_and_nothing_runs_dry(net_engine: sa.Engine) -> None:
    result = burst(net_engine, LOOP, pipe="p3")
    assert closing(result) == {"v1", "v2"}
    assert result["isolated_pipes"] == ["p2", "p3"]
    assert result["dry_pipes"] == []  # c and e stay fed round the loop
    assert result["affected_customers"] == {"count": 1, "by_type": {"居民": 1}, "list": ["c1"]}
    assert result["second_ring"] is None
    assert result["isolated_length_m"] == 200.0
    # 2 × 100 m of PE dn200 SDR11 (inner 200 · 9/11 mm) at 0.4 MPa gauge:
    # π/4 · 0.16364² · 200 · (0.4 + 0.101325) / 0.101325
    assert result["isolated_volume_m3"] == pytest.approx(20.81, abs=0.005)


def test_valves_report_where_they_stand(net_engine: sa.Engine) -> None:
    result = burst(net_engine, LOOP, pipe="p2")
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


def test_two_sources_keep_both_sides_fed(net_engine: sa.Engine) -> None:
    result = burst(net_engine, TWO_SOURCES, pipe="p2")
    assert closing(result) == {"v2", "v3"}
    assert (result["isolated_pipes"], result["dry_pipes"]) == (["p2"], [])
    assert result["affected_customers"]["count"] == 0


def test_with_one_source_the_far_side_runs_dry(net_engine: sa.Engine) -> None:
    one_source = Network(**{**TWO_SOURCES.__dict__, "sources": {"G1": "S1"}})
    result = burst(net_engine, one_source, pipe="p2")
    assert closing(result) == {"v2", "v3"}
    assert result["dry_pipes"] == ["p3"]
    assert result["affected_customers"]["list"] == ["cb"]


def test_low_pressure_burst_is_shut_upstream_of_the_regulator(net_engine: sa.Engine) -> None:
    result = burst(net_engine, TIERS, pipe="l1")
    # no valve at the regulator outlet: the feed is shut on the medium-pressure side
    assert closing(result) == {"vm2", "vl2"}
    assert result["isolated_pipes"] == ["l1"]
    assert result["dry_pipes"] == ["l2"]
    assert result["affected_customers"]["list"] == ["cx", "cy"]


def test_medium_pressure_burst_dries_the_low_pressure_side(net_engine: sa.Engine) -> None:
    result = burst(net_engine, TIERS, pipe="m3")
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


def test_a_check_valve_that_blocks_inflow_needs_no_closing(net_engine: sa.Engine) -> None:
    # out_of_pipe: gas may only leave p4 into c, never come back from c into p4
    result = burst(net_engine, check_network("out_of_pipe"), pipe="p4")
    assert closing(result) == {"v1"}
    assert result["isolated_pipes"] == ["p4"]
    assert result["check_valves_holding"] == ["ck"]
    assert result["dry_pipes"] == []


def test_a_check_valve_that_lets_gas_in_does_not_isolate(net_engine: sa.Engine) -> None:
    # into_pipe: c feeds p4 through the check valve, so the isolation goes on past it
    result = burst(net_engine, check_network("into_pipe"), pipe="p4")
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


def test_an_already_closed_valve_stays_closed_and_needs_no_crew(net_engine: sa.Engine) -> None:
    result = burst(net_engine, ALREADY_CLOSED, pipe="p3")
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


def test_a_failed_valve_grows_the_isolation_to_the_second_ring(net_engine: sa.Engine) -> None:
    first = burst(net_engine, FAILED, pipe="p2")
    assert closing(first) == {"v1", "v2"}
    assert (first["isolated_pipes"], first["dry_pipes"]) == (["p2", "p3"], ["p4"])

    second = burst_analysis(net_engine, pipe="p2", failed_valves=["v1"])
    assert closing(second) == {"va", "v2"}
    assert second["isolated_pipes"] == ["p2", "p3"]  # v1 fails, but va on p1's other end holds
    assert second["second_ring"] == {"failed_valves": ["v1"], "first_ring_valves": ["v1", "v2"],
                                     "added_valves": ["va"], "added_isolated_pipes": [], "added_dry_pipes": [],
                                     "added_customers": 0}
    third = burst_analysis(net_engine, pipe="p2", failed_valves=["v1", "va"])
    assert closing(third) == {"v0", "v2"}
    assert third["isolated_pipes"] == ["p1", "p2", "p3"]
    assert third["second_ring"]["added_isolated_pipes"] == ["p1"]
    assert third["affected_customers"]["list"] == ["cb", "cc", "cd"]


def test_inoperable_valves_in_the_database_count_as_failed(net_engine: sa.Engine) -> None:
    inoperable = Network(**{**FAILED.__dict__, "valves": {**FAILED.valves, "v1": "p2@a inoperable"}})
    result = burst(net_engine, inoperable, pipe="p2")
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


def test_mid_pipe_burst_snaps_to_the_point_on_the_pipe(net_engine: sa.Engine) -> None:
    result = burst(net_engine, LINE, at=(500_180.0, 4_550_003.0))
    assert result["burst"] == {"pipe": "p2", "fraction": 0.8, "point": [500_180.0, 4_550_000.0]}
    assert closing(result) == {"v0"}  # no valve on the line but the station's
    assert result["isolated_pipes"] == ["p1", "p2"]


def test_a_temporary_barrier_cuts_the_pipe_where_it_is_squeezed(net_engine: sa.Engine) -> None:
    result = burst(net_engine, LINE, at=(500_180.0, 4_550_000.0), barriers=[(500_130.0, 4_550_001.0)])
    assert closing(result) == set()
    assert result["barriers"] == [{"pipe": "p2", "fraction": 0.3, "point": [500_130.0, 4_550_000.0]}]
    assert result["isolated_pipes"] == ["p2"]
    assert result["isolated_length_m"] == 70.0  # from the barrier at 30 m to b
    assert result["affected_customers"]["list"] == ["cb"]
    assert result["dry_method"] == "pipe-flood"


def test_a_burst_next_to_a_source_shuts_the_station_outlet(net_engine: sa.Engine) -> None:
    result = burst(net_engine, FAILED, pipe="p1")
    assert closing(result) == {"v0", "va"}
    assert result["isolated_pipes"] == ["p1"]
    assert result["dry_pipes"] == ["p2", "p3", "p4"]  # the only source is cut off
    assert result["affected_customers"]["count"] == 3
    assert result["sources_to_shut"] == []
    no_outlet_valve = Network(**{**FAILED.__dict__, "valves": {k: v for k, v in FAILED.valves.items() if k != "v0"}})
    result = burst(net_engine, no_outlet_valve, pipe="p1")
    assert result["sources_to_shut"] == ["G1"]


def test_pipes_not_in_service_carry_no_gas(net_engine: sa.Engine) -> None:
    load(net_engine, LOOP)
    with net_engine.begin() as conn:
        conn.execute(sa.text("UPDATE pipe SET status = 'planned' WHERE code = 'p6'"))
    result = burst_analysis(net_engine, pipe="p3")
    # without p6 the loop is open: c and e hang on p3's side and go dry
    assert result["dry_pipes"] == ["p5"]
    assert result["affected_customers"]["list"] == ["c1", "c2", "c3"]


def test_a_regulator_behind_an_idle_pipe_is_no_source(net_engine: sa.Engine) -> None:
    load(net_engine, TIERS)
    with net_engine.begin() as conn:
        conn.execute(sa.text("UPDATE pipe SET status = 'idle' WHERE code = 'm2'"))
    result = burst_analysis(net_engine, pipe="l2")
    # m2 carries no gas, but it is there: R1 is fed from the main, not a source of its own, so
    # the low-pressure side has no gas before the burst and nobody more is cut off by it
    assert result["sources_to_shut"] == [] and result["dry_pipes"] == []
    assert result["affected_customers"]["list"] == ["cy"]


def test_only_gate_offtake_and_storage_stations_are_sources(net_engine: sa.Engine) -> None:
    metering = Network(nodes={"S": (0, 0), "a": (100, 0), "M": (200, 0), "c": (300, 0)},
                       pipes={"p1": "S-a", "p2": "a-M", "p3": "M-c"}, valves={"v1": "p2@a"},
                       sources={"G1": "S"}, customers={"cc": "c"})
    load(net_engine, metering)
    with net_engine.begin() as conn:  # a metering station (type 4) on the line feeds nothing itself
        conn.execute(sa.text("""INSERT INTO station (code, name, station_type, address, equipment, outlet_node_id,
                                    geom, enterprise_code, admin_code)
                                SELECT 'M1', '计量站', 4, '测试', '流量计', id, geom, enterprise_code, admin_code
                                FROM node WHERE code = 'M'"""))
    result = burst_analysis(net_engine, pipe="p1")
    assert result["dry_pipes"] == ["p2", "p3"]
    assert result["affected_customers"]["list"] == ["cc"]


def test_a_regulator_with_nothing_upstream_feeds_its_tier(net_engine: sa.Engine) -> None:
    # a low-pressure district imported with its regulator but without the mains: h --hs-- ri >R1> ro
    partial = Network(nodes={"h": (-20, 0, 1), "ri": (0, 0, 1), "ro": (5, 0, 0), "a": (100, 0, 0), "b": (200, 0, 0)},
                      pipes={"hs": "h-ri", "l1": "ro-a", "l2": "a-b"}, valves={"vl2": "l2@a"},
                      regulators={"R1": "ri>ro"}, customers={"ca": "a", "cb": "b"})
    result = burst(net_engine, partial, pipe="l1")
    assert result["dry_pipes"] == ["l2"]
    assert result["affected_customers"]["list"] == ["ca", "cb"]
    assert result["sources_to_shut"] == ["R1"]  # the isolation reaches the regulator feeding it


def test_a_regulator_cut_off_by_a_closed_valve_is_no_source(net_engine: sa.Engine) -> None:
    closed = Network(**{**TIERS.__dict__, "valves": {**TIERS.valves, "vm1": "m1@a closed"}})
    result = burst(net_engine, closed, pipe="l2")
    assert result["affected_customers"]["list"] == ["cy"]  # the low-pressure side is unfed anyway
    from network_analysis.topology import topologies

    topo = topologies.get(net_engine)
    assert not topo.supplied[topo.pipe_segment[topo.index_of("pipe", "l1")[0]]]


def test_a_barrier_on_a_network_without_valves(net_engine: sa.Engine) -> None:
    bare = Network(**{**LINE.__dict__, "valves": {}})
    result = burst(net_engine, bare, at=(500_180.0, 4_550_000.0), barriers=[(500_130.0, 4_550_000.0)])
    assert result["isolated_pipes"] == ["p2"] and result["dry_pipes"] == []
    assert result["isolated_length_m"] == 70.0


def test_criticality_of_hand_made_networks_matches_their_bursts(net_engine: sa.Engine) -> None:
    from network_analysis.burst import analyse_burst
    from network_analysis.criticality import criticality
    from network_analysis.topology import topologies

    # S --p0--@ A, ring A @--p1-- B --p2-- C --p3-- A: v1 has the ring's segment on both sides
    ring = Network(nodes={"S": (0, 0), "A": (100, 0), "B": (200, 0), "C": (150, 80)},
                   pipes={"p0": "S-A", "p1": "A-B", "p2": "B-C", "p3": "C-A"},
                   valves={"v0": "p0@A", "v1": "p1@A"}, sources={"G1": "S"}, customers={"cb": "B"})
    # TIERS with a low-pressure branch l3 off the regulator outlet that has no valve of its own
    tiers = Network(nodes={**TIERS.nodes, "w": (205, -100, 0)}, pipes={**TIERS.pipes, "l3": "ro-w"},
                    valves={"vm1": "m1@a", "vl1": "l1@ro", "vl2": "l2@x"}, sources=TIERS.sources,
                    regulators=TIERS.regulators, customers={**TIERS.customers, "cw": "w"})
    for net in (ring, tiers, ALREADY_CLOSED):
        load(net_engine, net)
        topo = topologies.get(net_engine)
        c = criticality(topo)
        for k, pipe in enumerate(c.segment_example_pipe.tolist()):
            burst_result = analyse_burst(topo, pipe, all_valves_work=True)
            assert (c.segment_valves_to_close[k], c.segment_customers_cut[k], c.segment_pipes[k]) == (
                len(burst_result.isolation.to_close), len(burst_result.affected_customers),
                len(burst_result.isolated_pipes)), topo.model.pipe_code[pipe]
    closed = topo.index_of("valve", "v3")[0]  # ALREADY_CLOSED's normally closed valve
    assert c.valve_extra_customers[closed] == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pipe": "nope"}, "unknown pipe code 'nope'"),
        ({"at": (505_000.0, 4_550_000.0)}, "is not on the network: the nearest pipe is 4,800 m away"),
        ({"pipe": "p2", "failed_valves": ["zz"]}, "unknown valve code 'zz'"),
        ({"pipe": "p2", "at": (0.0, 0.0)}, "give either a pipe code or a point, not both"),
        ({"at": (1.0, 2.0), "crs": "EPSG:999999"}, "unknown CRS 'EPSG:999999'"),
        ({"at": (500_000.0, 4_555_000.0)}, "the nearest pipe is 5,000 m away"),
    ],
)
def test_bad_input_is_a_clear_error(net_engine: sa.Engine, kwargs: dict, message: str) -> None:
    load(net_engine, LINE)
    with pytest.raises(AnalysisError, match=message.replace("(", r"\(").replace(")", r"\)")):
        burst_analysis(net_engine, **kwargs)
