"""Criticality of every valve segment and of every valve, for the whole network at once.

Per segment (what a burst anywhere in it costs when every valve works): pipes and length isolated,
valves to close, customers cut off — those of the segment and of every segment it dominates in the
supply graph (they lose their only way to a source). Computed for all segments together with prefix
sums over the dominator tree; segments whose isolation must reach past their own valves (a
regulator outlet without an outlet valve, a check valve letting gas in) go through the full burst
analysis instead.

Per valve (what its failure adds): a burst on either side needs the other side shut too, so the
outage grows at least to both segments and everything either dominates: a lower bound, reported as
such (the isolation may grow further, through a regulator outlet or to segments fed only through
the pair together). Normally closed and check valves are never worked by hand: they add nothing.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from network_analysis.burst import analyse_burst
from network_analysis.topology import Topology


@dataclass
class Criticality:
    """Arrays over segments that hold at least one pipe, and over valves."""

    segment: np.ndarray
    segment_pipes: np.ndarray
    segment_length_m: np.ndarray
    segment_valves_to_close: np.ndarray
    segment_customers_cut: np.ndarray
    segment_example_pipe: np.ndarray  # a pipe index in each segment
    valve_extra_customers: np.ndarray  # lower bound, worst of the two sides
    exact_segments: int
    analysed_segments: int  # went through the full burst analysis


def _subtree_sums(topo: Topology, per_segment: np.ndarray) -> np.ndarray:
    """For every segment, the sum of `per_segment` over its dominator subtree (itself included)."""
    n = topo.n_segments + 1
    values = np.zeros(n)
    values[: len(per_segment)] = per_segment
    prefix = np.concatenate([[0.0], np.cumsum(values[topo.idom_order])])
    tin, size = topo.idom_tin, topo.idom_size
    out = np.where(tin >= 0, prefix[np.maximum(tin, 0) + size] - prefix[np.maximum(tin, 0)], values)
    return out[: topo.n_segments]


def criticality(topo: Topology) -> Criticality:
    """Criticality of every valve segment and valve, all at once (see the module docstring).

    Parameters
    ----------
    topo
        The network's topology.

    Returns
    -------
    Criticality
        Per segment with pipes: pipes, length (m), valves to close and customers cut off by a
        burst in it when every valve works; per valve: the customers its failure adds at least.
    """
    m = topo.model
    n_seg = topo.n_segments
    customers = np.bincount(topo.node_segment[m.customer_node], minlength=n_seg).astype(float)
    cut = _subtree_sums(topo, customers)
    pipes = np.bincount(topo.pipe_segment, minlength=n_seg)
    length = np.bincount(topo.pipe_segment, weights=m.pipe_length_m, minlength=n_seg)

    # every valve bounds the segment on each of its sides; open ones must be shut
    seg_pipe, seg_node = topo.pipe_segment[m.valve_pipe], topo.node_segment[m.valve_node]
    # (a valve with the same segment on both sides — a loop goes round it — needs no closing)
    open_valve = ~m.valve_closed & (m.valve_check == 0) & (seg_pipe != seg_node)
    to_close = np.bincount(seg_pipe[open_valve], minlength=n_seg) + np.bincount(seg_node[open_valve], minlength=n_seg)

    # segments that the plain picture does not cover: inflow through a regulator outlet or a check valve
    special = np.zeros(n_seg, bool)
    special[topo.node_segment[m.regulator_outlet]] = True  # the isolation goes on upstream from there
    inflow_check = m.valve_check != 0
    special[seg_pipe[inflow_check]] = special[seg_node[inflow_check]] = True

    with_pipes = np.flatnonzero(pipes > 0)
    example = topo.segment_pipe_list[topo.segment_pipe_ptr[with_pipes]]
    seg_customers = cut[with_pipes].copy()
    seg_valves = to_close[with_pipes].copy()
    seg_pipes, seg_length = pipes[with_pipes].astype(float), length[with_pipes]
    redo = np.flatnonzero(special[with_pipes])
    for k in redo.tolist():
        result = analyse_burst(topo, int(example[k]), all_valves_work=True)
        seg_customers[k] = len(result.affected_customers)
        seg_valves[k] = len(result.isolation.to_close)
        seg_pipes[k] = len(result.isolated_pipes)
        seg_length[k] = result.isolated_length_m

    # a failed valve joins its two segments: customers cut off by either, without double counting
    tin, size = topo.idom_tin[seg_pipe], topo.idom_size[seg_pipe]
    tin_b, size_b = topo.idom_tin[seg_node], topo.idom_size[seg_node]
    a_over_b = (tin >= 0) & (tin <= tin_b) & (tin_b < tin + size)
    b_over_a = (tin_b >= 0) & (tin_b <= tin) & (tin < tin_b + size_b)
    joint = np.where(a_over_b, cut[seg_pipe], np.where(b_over_a, cut[seg_node], cut[seg_pipe] + cut[seg_node]))
    # a burst in the pipe-side segment, or in the node-side one when it holds pipes at all
    extra = np.maximum(joint - cut[seg_pipe], np.where(pipes[seg_node] > 0, joint - cut[seg_node], 0))
    extra[m.valve_closed | (m.valve_check != 0)] = 0  # never worked by hand: nothing to fail
    return Criticality(
        segment=with_pipes, segment_pipes=seg_pipes.astype(int), segment_length_m=seg_length,
        segment_valves_to_close=seg_valves.astype(int), segment_customers_cut=seg_customers.astype(int),
        segment_example_pipe=example, valve_extra_customers=extra.astype(int),
        exact_segments=len(with_pipes) - len(redo), analysed_segments=len(redo),
    )


def criticality_report(topo: Topology, top: int = 20,
                       visible: Callable[[str, Sequence[int]], set[int]] | None = None) -> dict:
    """The most critical segments and valves, in codes.

    Parameters
    ----------
    topo
        The network's topology.
    top
        How many segments and valves to list.
    visible
        For a caller with a scope: visible("pipe" | "valve", database ids) → the ids it may see
        (network_analysis.scope.visible_ids). The ranking is the whole network's; only segments
        whose example pipe and valves the caller may see are listed. None: everything.

    Returns
    -------
    dict
        network_version, segments, valves, segments_by_full_analysis,
        customers_cut_distribution {median, p95, max}, top_segments [{example_pipe, pipes,
        length_m (m), valves_to_close, customers_cut}], top_valves [{valve, pipe,
        extra_customers_if_it_fails, bound: "lower"}]; keys fixed.
    """
    m = topo.model
    c = criticality(topo)
    worst = np.argsort(-c.segment_customers_cut, kind="stable")
    worst_valves = np.argsort(-c.valve_extra_customers, kind="stable")
    if visible is None:
        worst, worst_valves = worst[:top], worst_valves[:top]
    else:
        worst = _first_visible(worst, m.pipe_id[c.segment_example_pipe[worst]], "pipe", top, visible)
        worst_valves = _first_visible(worst_valves, m.valve_id[worst_valves], "valve", top, visible)
    return {
        "network_version": m.version,
        "segments": len(c.segment),
        "valves": len(m.valve_id),
        "segments_by_full_analysis": c.analysed_segments,
        "customers_cut_distribution": {
            "median": float(np.median(c.segment_customers_cut)) if len(c.segment) else 0.0,
            "p95": float(np.percentile(c.segment_customers_cut, 95)) if len(c.segment) else 0.0,
            "max": int(c.segment_customers_cut.max()) if len(c.segment) else 0,
        },
        "top_segments": [{
            "example_pipe": m.pipe_code[c.segment_example_pipe[k]], "pipes": int(c.segment_pipes[k]),
            "length_m": round(float(c.segment_length_m[k]), 1), "valves_to_close": int(c.segment_valves_to_close[k]),
            "customers_cut": int(c.segment_customers_cut[k])} for k in worst.tolist()],
        "top_valves": [{
            "valve": m.valve_code[v], "pipe": m.pipe_code[m.valve_pipe[v]],
            "extra_customers_if_it_fails": int(c.valve_extra_customers[v]), "bound": "lower"}
            for v in worst_valves.tolist()],
    }


def _first_visible(order: np.ndarray, ids: np.ndarray, table: str, top: int,
                   visible: Callable[[str, Sequence[int]], set[int]]) -> np.ndarray:
    """The first `top` entries of `order` whose database id (`ids`, aligned with it) is visible,
    asking in growing batches: the most critical are usually found in the first."""
    kept: list[int] = []
    start, batch = 0, max(4 * top, 64)
    while len(kept) < top and start < len(order):
        chunk = slice(start, start + batch)
        seen = visible(table, ids[chunk].tolist())
        kept += [int(k) for k, i in zip(order[chunk].tolist(), ids[chunk].tolist(), strict=True) if i in seen]
        start, batch = start + batch, batch * 4
    return np.array(kept[:top], dtype=np.int64)
