"""The in-memory topology of the demo city: segments, supply and dominators, checked independently."""
from __future__ import annotations

import networkx as nx
import numpy as np
import sqlalchemy as sa

from network_analysis.model import load_model
from network_analysis.topology import _immediate_dominators, topologies


def test_dominators_match_networkx(engine: sa.Engine) -> None:
    topo = topologies.get(engine)
    root = topo.n_segments
    coo = topo.supply.tocoo()
    graph = nx.DiGraph()
    graph.add_nodes_from(range(root + 1))
    graph.add_edges_from(zip(coo.row.tolist(), coo.col.tolist()))
    expected = nx.immediate_dominators(graph, root)
    expected.pop(root, None)  # networkx ≥ 3.5 leaves the start vertex out
    ours = _immediate_dominators(topo.supply, root)
    assert ours[root] == root
    assert {v: int(ours[v]) for v in expected} == expected
    assert set(np.flatnonzero(ours >= 0).tolist()) == set(expected) | {root}


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
        code, a, b = conn.execute(sa.text(
            "SELECT p.code, f.code, t.code FROM pipe p JOIN node f ON f.id = p.from_node_id "
            "JOIN node t ON t.id = p.to_node_id WHERE p.id = 17")).one()
    assert (m.n_pipes, len(m.valve_id), len(m.customer_id)) == (pipes, valves, customers)
    k = m.pipe_index(17)
    assert m.pipe_code[k] == code
    assert (m.node_id[m.pipe_from[k]], m.node_id[m.pipe_to[k]]) != (None, None)
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
