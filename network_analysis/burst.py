"""Burst / valve isolation on the in-memory topology.

A burst at a point of a pipe must be cut off from every way gas can flow into it:

- the isolation spreads from the burst point along pipes and through nodes until it meets a valve
  on a pipe end (a cut) that can be closed; a normally closed valve is a cut that needs no action;
- a valve that cannot be worked (inoperable, inaccessible, or reported failed) does not stop it:
  the isolation grows through it to the next ring of valves;
- a check valve stops the isolation only where it blocks flow *into* the isolated area;
- a regulator passes gas one way: an isolation that reaches a regulator outlet continues upstream
  from its inlet (the feed must be shut there), while one that reaches an inlet stops — the
  downstream side then goes dry unless fed otherwise;
- a temporary barrier (squeeze-off) anywhere on a pipe is a cut at that point.

Pipes that lose their supply because of the isolation, without being in it, are `dry_pipes`:
cheap when the isolation is one valve segment (a dominator-subtree lookup), a local search next to
the isolation when failed valves merged several, a flood of the pipe graph when barriers split pipes.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

import numpy as np

from network_analysis.topology import Topology, gather


@dataclass
class Isolation:
    """What the isolation touched: pieces of pipes, nodes, and the valves on its edge."""

    pieces: dict[int, set[int]] = field(default_factory=dict)  # pipe index → isolated piece numbers
    nodes: set[int] = field(default_factory=set)
    to_close: set[int] = field(default_factory=set)  # valve indices to shut
    already_closed: set[int] = field(default_factory=set)
    check_boundary: set[int] = field(default_factory=set)  # check valves that block inflow by themselves
    failed_passed: set[int] = field(default_factory=set)  # unusable valves the isolation grew through
    barriers_used: set[tuple[int, float]] = field(default_factory=set)
    regulators_upstream: set[int] = field(default_factory=set)
    sources: set[int] = field(default_factory=set)  # source nodes inside the isolation


def _breakpoints(barriers: dict[int, list[float]], pipe: int) -> list[float]:
    return [0.0, *sorted(barriers.get(pipe, ())), 1.0]


def isolate(
    topo: Topology,
    pipe: int,
    fraction: float = 0.5,
    unusable: set[int] | frozenset[int] | None = None,
    barriers: dict[int, list[float]] | None = None,
) -> Isolation:
    """The isolation of a burst: spread from the burst point until every way in is cut.

    Parameters
    ----------
    topo
        The network's topology.
    pipe
        Pipe index of the burst.
    fraction
        Where along the pipe (0 = from-node, 1 = to-node).
    unusable
        Valve indices that cannot be closed (default: those not operable in the database).
    barriers
        Pipe index → fractions along the pipe where a squeeze-off cuts it.

    Returns
    -------
    Isolation
        The pipe pieces and nodes isolated, and the valves on its edge: to close, already closed,
        check valves holding by themselves, failed ones it grew through.
    """
    m = topo.model
    P = m.n_pipes
    barriers = barriers or {}
    if unusable is None:
        unusable = topo.unusable_valves
    result = Isolation()
    points = _breakpoints(barriers, pipe)
    start = max(0, int(np.searchsorted(points, fraction, side="right")) - 1)
    queue: deque[tuple[str, int, int]] = deque([("pipe", pipe, min(start, len(points) - 2))])
    result.pieces.setdefault(pipe, set()).add(queue[0][2])

    def through_end(end: int, into_pipe_side: bool) -> bool:
        """Does the isolation pass this pipe end? `into_pipe_side`: it comes from the node side."""
        valve = int(topo.end_valve[end])
        if valve < 0:
            return True
        if m.valve_closed[valve]:
            result.already_closed.add(valve)
            return False
        check = int(m.valve_check[valve])
        if check:
            # inflow into the isolated side is flow from the far side towards where we stand
            inflow = check == (-1 if into_pipe_side else 1)
            if inflow:
                result.failed_passed.add(valve)
                return True
            result.check_boundary.add(valve)
            return False
        if valve in unusable:
            result.failed_passed.add(valve)
            return True
        result.to_close.add(valve)
        return False

    def enter_pipe(q: int, from_end: bool) -> None:
        piece = 0 if from_end else len(_breakpoints(barriers, q)) - 2
        taken = result.pieces.setdefault(q, set())
        if piece not in taken:
            taken.add(piece)
            queue.append(("pipe", q, piece))

    def enter_node(n: int) -> None:
        if n not in result.nodes:
            result.nodes.add(n)
            queue.append(("node", n, 0))

    while queue:
        kind, k, piece = queue.popleft()
        if kind == "pipe":
            cuts = _breakpoints(barriers, k)
            last = len(cuts) - 2
            for towards_from in (True, False):
                if towards_from and piece > 0:
                    result.barriers_used.add((k, cuts[piece]))
                elif not towards_from and piece < last:
                    result.barriers_used.add((k, cuts[piece + 1]))
                else:
                    end = k if towards_from else k + P
                    if through_end(end, into_pipe_side=False):
                        enter_node(int(m.pipe_from[k] if towards_from else m.pipe_to[k]))
            continue
        if topo.is_source[k]:
            result.sources.add(k)
        for end in topo.node_ends[topo.node_end_ptr[k]: topo.node_end_ptr[k + 1]]:
            end = int(end)
            if through_end(end, into_pipe_side=True):
                enter_pipe(end % P, from_end=end < P)
        for reg in topo.outlet_regulators[topo.outlet_ptr[k]: topo.outlet_ptr[k + 1]]:
            result.regulators_upstream.add(int(reg))
            enter_node(int(m.regulator_inlet[reg]))

    # A valve reached from one side may end up with the isolation on both sides (a loop came round):
    # it is then inside the isolated area and nobody needs to touch it.
    def inside(valve: int) -> bool:
        q, n = int(m.valve_pipe[valve]), int(m.valve_node[valve])
        piece = 0 if m.pipe_from[q] == n else len(_breakpoints(barriers, q)) - 2
        return n in result.nodes and piece in result.pieces.get(q, ())

    for boundary in (result.to_close, result.already_closed, result.check_boundary):
        boundary.difference_update({v for v in boundary if inside(v)})
    return result


@dataclass
class BurstResult:
    """Indices of everything a burst touches, before it is turned into codes and geometry."""

    pipe: int
    fraction: float
    isolation: Isolation
    first_ring: BurstResult | None  # the analysis had every valve worked, when some could not
    failed_valves: list[int]
    isolated_pipes: np.ndarray  # pipes with at least one isolated piece
    isolated_length_m: float
    isolated_volume_m3: float
    dry_pipes: np.ndarray
    affected_customers: np.ndarray  # customer indices
    dry_method: str  # "dominator", "local-search" or "pipe-flood"


def _isolated_extent(topo: Topology, iso: Isolation, barriers: dict[int, list[float]]
                     ) -> tuple[np.ndarray, float, float]:
    m = topo.model
    pipes = np.fromiter(iso.pieces, np.int64, len(iso.pieces))
    share = np.empty(len(pipes))
    for i, q in enumerate(pipes.tolist()):
        cuts = _breakpoints(barriers, q)
        share[i] = sum(cuts[j + 1] - cuts[j] for j in iso.pieces[q])
    length = float((m.pipe_length_m[pipes] * share).sum())
    volume = m.pipe_volume_std_m3(pipes) if np.all(share == 1.0) else float(sum(
        m.pipe_volume_std_m3(np.array([q])) * s for q, s in zip(pipes.tolist(), share.tolist(), strict=True)))
    return np.sort(pipes), length, volume


def analyse_burst(
    topo: Topology,
    pipe: int,
    fraction: float = 0.5,
    failed_valves: AbstractSet[int] = frozenset(),
    barriers: dict[int, list[float]] | None = None,
    all_valves_work: bool = False,
) -> BurstResult:
    """The full burst analysis on indices (`network_analysis.api` gives it in codes and coordinates).

    Parameters
    ----------
    topo, pipe, fraction, barriers
        As for `isolate`.
    failed_valves
        Valve indices reported as failing to close, besides those not operable in the database.
    all_valves_work
        Ignore the operability recorded in the database (design criticality).

    Returns
    -------
    BurstResult
        Isolated and dry pipes, customers cut off, isolated length (m) and gas volume (m³ at
        standard conditions), and the first ring when failed valves made the isolation grow.
    """
    barriers = barriers or {}
    unusable = (frozenset() if all_valves_work else topo.unusable_valves) | frozenset(failed_valves)
    iso = isolate(topo, pipe, fraction, unusable, barriers)
    first_ring = None
    if iso.failed_passed - topo.check_valves:
        # what every valve working would have cost, for the second ring's "what failure added"
        first_ring = analyse_burst(topo, pipe, fraction, barriers=barriers, all_valves_work=True)
    pipes, length, volume = _isolated_extent(topo, iso, barriers)
    nodes = np.fromiter(iso.nodes, np.int64, len(iso.nodes))

    split = [q for q in iso.pieces if q in barriers]
    if split:
        dry_pipes, dry_nodes = _pipe_flood(topo, iso, barriers)
        method = "pipe-flood"
    else:
        segments = np.unique(np.concatenate([topo.pipe_segment[pipes], topo.node_segment[nodes]]))
        if len(segments) == 1:
            lost, method = topo.dominated(int(segments[0])), "dominator"
        else:
            lost, method = topo.cut_off_by(segments), "local-search"
        dry_pipes = topo.segment_pipes(lost)
        dry_nodes = topo.segment_nodes(lost)
    out_nodes = np.concatenate([nodes, dry_nodes])
    customers = gather(topo.node_customer_ptr, topo.node_customers, out_nodes)
    return BurstResult(
        pipe=pipe, fraction=fraction, isolation=iso, first_ring=first_ring,
        failed_valves=sorted(iso.failed_passed), isolated_pipes=pipes, isolated_length_m=length,
        isolated_volume_m3=volume, dry_pipes=np.sort(dry_pipes), affected_customers=np.sort(customers),
        dry_method=method,
    )


def _pipe_flood(topo: Topology, iso: Isolation, barriers: dict[int, list[float]]) -> tuple[np.ndarray, np.ndarray]:
    """Dry pipes and nodes when barriers split pipes: flood the pipe graph without the isolation.
    A partly isolated pipe keeps its outer pieces, which share the fate of the node they touch."""
    m = topo.model
    removed_pipes = np.fromiter(iso.pieces, np.int64, len(iso.pieces))
    removed_nodes = np.fromiter(iso.nodes, np.int64, len(iso.nodes))
    lost_nodes, lost_pipes = topo.pipe_level_unsupplied(removed_nodes, removed_pipes)
    dry = set(lost_pipes.tolist())
    lost_node_set = set(lost_nodes.tolist())
    for q, taken in iso.pieces.items():
        last = len(_breakpoints(barriers, q)) - 2
        if 0 not in taken and int(m.pipe_from[q]) in lost_node_set:
            dry.add(q)
        if last not in taken and int(m.pipe_to[q]) in lost_node_set:
            dry.add(q)
    dry -= set(iso.pieces)  # a pipe partly isolated is reported as isolated
    return np.array(sorted(dry), np.int64), lost_nodes
