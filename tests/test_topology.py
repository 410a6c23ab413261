"""The in-memory topology: segments, supply and dominators, checked independently.

First on hand-made networks, built in memory (marked `nodb`: no PostgreSQL), then on the demo city.
"""
from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest
import sqlalchemy as sa
from networks import TIERS, Network, topology

from network_analysis.model import load_model
from network_analysis.topology import Topology, _immediate_dominators, topologies

# S1 --p1--@ a @--p2-- b --p3--@ c --p4-- S2     two sources, a loop a--p5--d--p6--c, a check valve
#                      |                          on p7 letting gas only out of b's side, one valve
#                      p7 (check at b) -- e       normally closed on p6
HAND_MADE = {
    "tiers": TIERS,
    "two sources, a loop, a check valve": Network(
        nodes={"S1": (0, 0), "a": (100, 0), "b": (200, 0), "c": (300, 0), "S2": (400, 0), "d": (200, -100),
               "e": (200, 100)},
        pipes={"p1": "S1-a", "p2": "a-b", "p3": "b-c", "p4": "c-S2", "p5": "a-d", "p6": "d-c", "p7": "b-e"},
        valves={"v1": "p1@a", "v2": "p2@a", "v3": "p3@c", "v6": "p6@d closed", "ck": "p7@b check:into_pipe"},
        sources={"G1": "S1", "G2": "S2"},
        customers={"ce": "e", "cd": "d"},
    ),
}


def codes(topo: Topology, segment: int) -> set[str]:
    """Codes of the pipes of one valve segment."""
    return set(topo.model.pipe_code[topo.segment_pipes(np.array([segment]))].tolist())


def segment_of(topo: Topology, pipe: str) -> int:
    return int(topo.pipe_segment[topo.index_of("pipe", pipe)[0]])


@pytest.mark.nodb
def test_valve_segments_and_who_feeds_whom_on_the_tiers() -> None:
    topo = topology(TIERS)
    # S --m1--@ a --m2--@ ri >R1> ro --l1-- x @--l2-- y: the valves cut m1|a, m2|ri, x|l2
    pipe_segments = sorted(sorted(codes(topo, k)) for k in np.unique(topo.pipe_segment).tolist())
    assert pipe_segments == [["l1"], ["l2"], ["m1"], ["m2", "m3"]]
    assert topo.n_segments == 5  # and ri alone, between m2's valve and the regulator
    assert topo.supplied[: topo.n_segments].all()
    # everything below m2's segment hangs on it: the regulator's inlet, the low-pressure side
    assert {frozenset(codes(topo, s)) for s in topo.dominated(segment_of(topo, "m2")).tolist()} == {
        frozenset(), frozenset({"l1"}), frozenset({"l2"})}
    assert topo.dominated(segment_of(topo, "l2")).tolist() == []
    assert sorted(topo.source_label.tolist()) == ["G1"]


@pytest.mark.nodb
@pytest.mark.parametrize("name", HAND_MADE)
def test_dominators_of_hand_made_networks_match_networkx(name: str) -> None:
    assert_dominators_match_networkx(topology(HAND_MADE[name]))


@pytest.mark.nodb
@pytest.mark.parametrize("name", HAND_MADE)
def test_local_cut_off_search_equals_a_full_flood_on_hand_made_networks(name: str) -> None:
    topo = topology(HAND_MADE[name])
    lost_somewhere = 0
    for size in (1, 2, 3):
        for removed in itertools.combinations(range(topo.n_segments), size):
            expected = topo.unsupplied_without(np.array(removed))
            assert topo.cut_off_by(np.array(removed)).tolist() == expected.tolist(), removed
            lost_somewhere += len(expected) > 0
    assert lost_somewhere > 5


@pytest.mark.nodb
def test_a_check_valve_and_a_closed_valve_bound_segments_one_way() -> None:
    topo = topology(HAND_MADE["two sources, a loop, a check valve"])
    a, b, c, e = (segment_of(topo, pipe) for pipe in ("p5", "p2", "p6", "p7"))
    assert [sorted(codes(topo, s)) for s in (a, b, c, e)] == [["p5"], ["p2", "p3"], ["p4", "p6"], ["p7"]]
    assert (topo.supply[b, e], topo.supply[e, b]) == (1, 0)  # into_pipe: b's side feeds p7, never back
    assert (topo.supply[a, c], topo.supply[c, a]) == (0, 0)  # v6 is normally closed: d and c are apart
    # e hangs on b's segment alone; a's segment is fed from S1, and from S2 through b's
    assert topo.dominated(b).tolist() == [e]
    assert topo.dominated(segment_of(topo, "p1")).tolist() == []


def assert_dominators_match_networkx(topo: Topology) -> None:
    """Our immediate dominators of the supply graph are networkx's, for every vertex it reaches."""
    root = topo.n_segments
    coo = topo.supply.tocoo()
    graph = nx.DiGraph()
    graph.add_nodes_from(range(root + 1))
    graph.add_edges_from(zip(coo.row.tolist(), coo.col.tolist(), strict=True))
    expected = nx.immediate_dominators(graph, root)
    expected.pop(root, None)  # networkx ≥ 3.5 leaves the start vertex out
    ours = _immediate_dominators(topo.supply, root)
    assert ours[root] == root
    assert {v: int(ours[v]) for v in expected} == expected
    assert set(np.flatnonzero(ours >= 0).tolist()) == set(expected) | {root}


def test_dominators_match_networkx(engine: sa.Engine) -> None:
    assert_dominators_match_networkx(topologies.get(engine))


def test_every_segment_is_supplied_and_valves_bound_segments(engine: sa.Engine) -> None:
    topo = topologies.get(engine)
    m = topo.model
    assert topo.supplied[: topo.n_segments].all()  # the demo city has no unfed segment
    # a valve always separates two different segments; pipe ends without one never do
    seg_pipe = topo.pipe_segment[m.valve_pipe]
    seg_node = topo.node_segment[m.valve_node]
    assert (seg_pipe != seg_node).all()
    ends = np.flatnonzero(topo.end_valve < 0)
    end_node = np.concatenate([m.pipe_from, m.pipe_to])[ends]
    assert (topo.pipe_segment[ends % m.n_pipes] == topo.node_segment[end_node]).all()


def test_cache_rebuilds_only_when_the_network_changes(engine: sa.Engine) -> None:
    first = topologies.get(engine)
    assert topologies.get(engine) is first
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE valve SET remarks = remarks WHERE id = 1"))  # any write bumps the version
    second = topologies.get(engine)
    assert second is not first and second.model.version == first.model.version + 1


def test_model_reads_the_database_exactly(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        m = load_model(conn)
        pipes, valves, customers = conn.execute(sa.text(
            "SELECT (SELECT count(*) FROM pipe), (SELECT count(*) FROM valve), (SELECT count(*) FROM customer)")).one()
        code, from_node, to_node = conn.execute(sa.text(
            "SELECT code, from_node_id, to_node_id FROM pipe WHERE id = 17")).one()
    assert (m.n_pipes, len(m.valve_id), len(m.customer_id)) == (pipes, valves, customers)
    k = m.pipe_index(17)
    assert m.pipe_code[k] == code
    assert (m.node_id[m.pipe_from[k]], m.node_id[m.pipe_to[k]]) == (from_node, to_node)
    assert len(m.source_nodes) == 2  # one gate station per enterprise; every regulator is fed from upstream


def test_criticality_agrees_with_the_burst_analysis(engine: sa.Engine) -> None:
    from network_analysis.burst import analyse_burst
    from network_analysis.criticality import criticality

    topo = topologies.get(engine)
    c = criticality(topo)
    assert len(c.segment) == len(np.unique(topo.pipe_segment))
    rng = np.random.default_rng(3)
    for k in rng.choice(len(c.segment), 60, replace=False).tolist():
        result = analyse_burst(topo, int(c.segment_example_pipe[k]), all_valves_work=True)
        assert c.segment_customers_cut[k] == len(result.affected_customers)
        assert c.segment_valves_to_close[k] == len(result.isolation.to_close)
        assert c.segment_pipes[k] == len(result.isolated_pipes)


def test_a_failed_valve_adds_at_least_the_dominator_bound(engine: sa.Engine) -> None:
    from network_analysis.burst import analyse_burst
    from network_analysis.criticality import criticality

    topo = topologies.get(engine)
    m = topo.model
    c = criticality(topo)
    rng = np.random.default_rng(5)
    for v in rng.choice(len(m.valve_id), 40, replace=False).tolist():
        if m.valve_closed[v]:
            continue
        pipe = int(m.valve_pipe[v])  # burst on the pipe side with the valve failed, then the node side
        worst = 0
        for side_pipe in (pipe, *topo.segment_pipes(np.array([topo.node_segment[m.valve_node[v]]])).tolist()[:1]):
            base = analyse_burst(topo, side_pipe, all_valves_work=True)
            failed = analyse_burst(topo, side_pipe, failed_valves={v}, all_valves_work=True)
            worst = max(worst, len(failed.affected_customers) - len(base.affected_customers))
        assert c.valve_extra_customers[v] <= worst


def test_local_cut_off_search_equals_a_full_flood(engine: sa.Engine) -> None:
    topo = topologies.get(engine)
    m = topo.model
    rng = np.random.default_rng(11)
    # the two segments on either side of a valve (what a failed valve merges), and random triples
    pairs = [np.array([topo.pipe_segment[m.valve_pipe[v]], topo.node_segment[m.valve_node[v]]])
             for v in rng.choice(len(m.valve_id), 150, replace=False).tolist()]
    triples = [rng.choice(topo.n_segments, 3, replace=False) for _ in range(50)]
    checked_nonempty = 0
    for removed in pairs + triples:
        expected = topo.unsupplied_without(removed)
        assert topo.cut_off_by(removed).tolist() == expected.tolist()
        checked_nonempty += len(expected) > 0
    assert checked_nonempty > 20
