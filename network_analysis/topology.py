"""The in-memory topology: pipe ends, valve segments and who feeds whom.

Two graphs are built once per network version:

- the pipe-end graph: vertices are nodes and pipes, an edge is one end of a pipe at a node; a valve
  sits on such an end (a cut), a regulator is an arc inlet → outlet (gas never flows back);
- the segment graph: valve segments (what stays connected when every valve is shut) as vertices,
  open valves as edges, check valves and regulators as arcs, plus a root feeding every source.
  Its dominator tree answers "what loses gas if this segment is cut out" with a subtree lookup.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import breadth_first_order, connected_components

from network_analysis.cache import VersionedCache
from network_analysis.model import NetworkModel, load_model


def _csr_index(keys: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(ptr, order): the positions of `keys` grouped by key value 0..n-1 (a CSR row index)."""
    order = np.argsort(keys, kind="stable")
    ptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(keys, minlength=n), out=ptr[1:])
    return ptr, order


@dataclass
class Topology:
    """Graphs of one network version (see module docstring). Indices are NetworkModel positions."""

    model: NetworkModel
    # pipe ends: end e belongs to pipe e % P; e < P is the from-end, e >= P the to-end
    end_valve: np.ndarray = field(init=False)  # valve index on each end, -1 when none
    node_end_ptr: np.ndarray = field(init=False)
    node_ends: np.ndarray = field(init=False)  # ends at each node (CSR by node)
    outlet_ptr: np.ndarray = field(init=False)
    outlet_regulators: np.ndarray = field(init=False)  # regulators by outlet node (CSR)
    node_customer_ptr: np.ndarray = field(init=False)
    node_customers: np.ndarray = field(init=False)  # customers by service node (CSR)
    is_source: np.ndarray = field(init=False)  # per node
    source_nodes: np.ndarray = field(init=False)  # station outlets, then regulators fed from nowhere
    source_label: np.ndarray = field(init=False)  # station or regulator code of each source node
    pipe_segment: np.ndarray = field(init=False)
    node_segment: np.ndarray = field(init=False)
    n_segments: int = field(init=False)
    supply: csr_matrix = field(init=False)  # segment graph arcs; vertex n_segments is the root
    supplied: np.ndarray = field(init=False)  # bool per segment: reached from a source as built
    idom_order: np.ndarray = field(init=False)  # segments in dominator-tree preorder
    idom_tin: np.ndarray = field(init=False)  # preorder position of each segment (-1: unsupplied)
    idom_size: np.ndarray = field(init=False)  # dominator-subtree size of each segment
    segment_pipe_ptr: np.ndarray = field(init=False)
    segment_pipe_list: np.ndarray = field(init=False)  # pipes by segment (CSR)
    segment_node_ptr: np.ndarray = field(init=False)
    segment_node_list: np.ndarray = field(init=False)  # nodes by segment (CSR)
    _pipe_supply: csr_matrix | None = field(init=False, default=None)
    _supply_lists: tuple[list[int], list[int], list[int], list[int]] | None = field(init=False, default=None)
    _codes: dict[str, dict[str, list[int]]] = field(init=False, default_factory=dict)
    tree_parent: np.ndarray = field(init=False)  # a breadth-first supply tree: one way each segment is fed
    unusable_valves: frozenset[int] = field(init=False)  # not operable in the database
    check_valves: frozenset[int] = field(init=False)

    def __post_init__(self) -> None:
        m = self.model
        P, N = m.n_pipes, m.n_nodes
        end_node = np.concatenate([m.pipe_from, m.pipe_to])
        self.end_valve = np.full(2 * P, -1, np.int64)
        at_to_end = (m.pipe_to[m.valve_pipe] == m.valve_node) & (m.pipe_from[m.valve_pipe] != m.valve_node)
        self.end_valve[m.valve_pipe + P * at_to_end] = np.arange(len(m.valve_id))
        self.node_end_ptr, self.node_ends = _csr_index(end_node, N)
        self.outlet_ptr, self.outlet_regulators = _csr_index(m.regulator_outlet, N)
        self.node_customer_ptr, self.node_customers = _csr_index(m.customer_node, N)
        self.unusable_valves = frozenset(np.flatnonzero(~m.valve_usable).tolist())
        self.check_valves = frozenset(np.flatnonzero(m.valve_check != 0).tolist())
        self._segments(end_node)
        self._supply_graph(end_node)
        self.is_source = np.zeros(N, bool)
        self.is_source[self.source_nodes] = True
        self._dominators()

    # -- construction ----------------------------------------------------------------------------
    def _segments(self, end_node: np.ndarray) -> None:
        """Valve segments: components of nodes and pipes joined by the pipe ends without a valve."""
        m = self.model
        P, N = m.n_pipes, m.n_nodes
        open_end = self.end_valve < 0
        ends = np.flatnonzero(open_end)
        graph = csr_matrix((np.ones(len(ends), np.int8), (end_node[ends], N + ends % P)), shape=(N + P, N + P))
        self.n_segments, labels = connected_components(graph, directed=False)
        self.node_segment, self.pipe_segment = labels[:N], labels[N:]
        self.segment_pipe_ptr, self.segment_pipe_list = _csr_index(self.pipe_segment, self.n_segments)
        self.segment_node_ptr, self.segment_node_list = _csr_index(self.node_segment, self.n_segments)

    def _supply_graph(self, end_node: np.ndarray) -> None:
        """Arcs between segments along which gas can flow, and which segments gas reaches today."""
        m = self.model
        P = m.n_pipes
        ends = np.flatnonzero(self.end_valve >= 0)
        valve = self.end_valve[ends]
        seg_node = self.node_segment[end_node[ends]]
        seg_pipe = self.pipe_segment[ends % P]
        check = m.valve_check[valve]
        flows = ~m.valve_closed[valve]
        forward = flows & (check >= 0)  # node side → pipe side
        backward = flows & (check <= 0)  # pipe side → node side
        root = self.n_segments
        n = root + 1
        inlet_seg, outlet_seg = self.node_segment[m.regulator_inlet], self.node_segment[m.regulator_outlet]
        arcs_src = np.concatenate([seg_node[forward], seg_pipe[backward], inlet_seg])
        arcs_dst = np.concatenate([seg_pipe[forward], seg_node[backward], outlet_seg])
        edge = self._edge_regulators(seg_node, seg_pipe)
        sources = np.concatenate([m.source_nodes, m.regulator_outlet[edge]])
        src = np.concatenate([arcs_src, np.full(len(sources), root)])
        dst = np.concatenate([arcs_dst, self.node_segment[sources]])
        keep = src != dst
        self.supply = csr_matrix((np.ones(keep.sum(), np.int8), (src[keep], dst[keep])), shape=(n, n))
        self.supply.sum_duplicates()
        reached, parent = breadth_first_order(self.supply, root, directed=True, return_predecessors=True)
        self.supplied = np.zeros(n, bool)
        self.supplied[reached] = True
        self.tree_parent = parent
        self.source_nodes = sources
        self.source_label = np.concatenate([m.source_station, m.regulator_code[edge]])

    def _edge_regulators(self, seg_node: np.ndarray, seg_pipe: np.ndarray) -> np.ndarray:
        """Regulators that feed their tier by themselves: nothing upstream of them could ever bring
        gas, whatever the valves and pipe states (the edge of a partial network, e.g. a low-pressure district
        imported without its medium-pressure mains). A regulator cut off only by closed valves is
        not one of them: its tier is then unfed. Decided tier by tier from the top, so that one
        regulator fed by another does not count."""
        m = self.model
        n = self.n_segments
        # parts of the network joined by pipes (in service or not) and valves of any state, regulators
        # left out: a pipe out of service still says where this part's gas would come from
        idle = self.node_segment[m.idle_pipe_ends].reshape(-1, 2)
        rows, cols = np.concatenate([seg_node, idle[:, 0]]), np.concatenate([seg_pipe, idle[:, 1]])
        joined = csr_matrix((np.ones(len(rows), np.int8), (rows, cols)), shape=(n, n))
        n_parts, part = connected_components(joined, directed=False)
        inlet, outlet = part[self.node_segment[m.regulator_inlet]], part[self.node_segment[m.regulator_outlet]]
        edge = np.zeros(len(inlet), bool)
        while True:
            roots = np.concatenate([part[self.node_segment[m.source_nodes]], outlet[edge]])
            graph = csr_matrix((np.ones(len(inlet) + len(roots), np.int8),
                                (np.concatenate([inlet, np.full(len(roots), n_parts)]),
                                 np.concatenate([outlet, roots]))),
                               shape=(n_parts + 1, n_parts + 1))
            sourced = np.zeros(n_parts + 1, bool)
            sourced[breadth_first_order(graph, n_parts, directed=True, return_predecessors=False)] = True
            orphan = ~sourced[inlet] & ~edge
            if not orphan.any():
                return edge
            edge |= orphan & (m.regulator_inlet_class == m.regulator_inlet_class[orphan].max())

    def _dominators(self) -> None:
        """Dominator tree of the supply graph from the root, flattened to preorder intervals."""
        root = self.n_segments
        idom = _immediate_dominators(self.supply, root)
        children = np.flatnonzero((idom >= 0) & (np.arange(len(idom)) != root))
        child_ptr, child_order = _csr_index(idom[children], len(idom))
        n = root + 1
        self.idom_tin = np.full(n, -1, np.int64)
        self.idom_size = np.zeros(n, np.int64)
        order: list[int] = []
        tin, size = self.idom_tin, self.idom_size
        stack = [(root, False)]
        while stack:
            v, done = stack.pop()
            if done:
                size[v] = len(order) - tin[v]
                continue
            tin[v] = len(order)
            order.append(v)
            stack.append((v, True))
            stack.extend((int(c), False) for c in children[child_order[child_ptr[v]: child_ptr[v + 1]]])
        self.idom_order = np.array(order, np.int64)

    # -- queries ---------------------------------------------------------------------------------
    def dominated(self, segment: int) -> np.ndarray:
        """Segments that lose gas when one segment is cut out.

        Parameters
        ----------
        segment
            A segment index.

        Returns
        -------
        np.ndarray
            Its dominator subtree, itself excluded (empty for a segment no source reaches).
        """
        tin = self.idom_tin[segment]
        if tin < 0:
            return np.empty(0, np.int64)
        return self.idom_order[tin + 1: tin + self.idom_size[segment]]

    def segment_pipes(self, segments: np.ndarray) -> np.ndarray:
        """Pipe indices of the given segments, concatenated."""
        return gather(self.segment_pipe_ptr, self.segment_pipe_list, segments)

    def segment_nodes(self, segments: np.ndarray) -> np.ndarray:
        """Node indices of the given segments, concatenated."""
        return gather(self.segment_node_ptr, self.segment_node_list, segments)

    def index_of(self, kind: str, code: str) -> list[int]:
        """Indices of the pipes or valves with a code.

        Parameters
        ----------
        kind
            'pipe' or 'valve'.
        code
            The code (unique per enterprise only: several enterprises may use it).

        Returns
        -------
        list of int
            The indices, empty when no pipe or valve has the code.
        """
        if kind not in self._codes:
            codes = self.model.pipe_code if kind == "pipe" else self.model.valve_code
            index: dict[str, list[int]] = {}
            for i, c in enumerate(codes.tolist()):
                index.setdefault(c, []).append(i)
            self._codes[kind] = index
        return self._codes[kind].get(code, [])

    def cut_off_by(self, segments: np.ndarray) -> np.ndarray:
        """Segments supplied today that no source reaches once `segments` are cut out.

        Exact, and local: everything a single removed segment dominates is lost outright; a segment
        that several removed ones only cut off together must have lost its feed next to them, so
        the out-neighbours of the lost area are tried one by one with a backward search for a
        source that avoids the lost area. A failed search proves everything it saw lost too.
        The search stops early at any segment whose way in the breadth-first supply tree avoids
        the lost area: that way still feeds it.

        Parameters
        ----------
        segments
            Segment indices taken out (an isolation).

        Returns
        -------
        np.ndarray
            Segment indices, ascending, `segments` themselves excluded.
        """
        root = self.n_segments
        if self._supply_lists is None:
            back = self.supply.transpose().tocsr()
            self._supply_lists = (self.supply.indptr.tolist(), self.supply.indices.tolist(),
                                  back.indptr.tolist(), back.indices.tolist())
        succ_ptr, succ, pred_ptr, pred = self._supply_lists
        parent = self.tree_parent
        clear: dict[int, bool] = {}

        def tree_way_is_clear(u: int) -> bool:
            path = []
            while u != root and u not in clear:
                if u in blocked or u < 0:
                    clear[u] = False
                    break
                path.append(u)
                u = int(parent[u])
            verdict = True if u == root else clear[u]
            for w in path:
                clear[w] = verdict  # a clear way stays clear: what it passes is fed, never lost later
            return verdict

        removed = set(np.asarray(segments).tolist())
        lost: set[int] = set()
        for s in removed:
            lost.update(self.dominated(s).tolist())
        lost -= removed
        blocked = removed | lost
        fed: set[int] = set()
        frontier = [w for v in blocked for w in succ[succ_ptr[v]: succ_ptr[v + 1]] if w not in blocked]
        while frontier:
            start = frontier.pop()
            if start in blocked or start in fed:
                continue
            seen, queue, found = {start}, [start], tree_way_is_clear(start)
            while queue and not found:
                v = queue.pop()
                for u in pred[pred_ptr[v]: pred_ptr[v + 1]]:
                    if u == root or u in fed or (u not in blocked and tree_way_is_clear(u)):
                        found = True
                        break
                    if u not in blocked and u not in seen:
                        seen.add(u)
                        queue.append(u)
            if found:
                fed.add(start)
            else:
                lost |= seen
                blocked |= seen
                frontier.extend(w for v in seen for w in succ[succ_ptr[v]: succ_ptr[v + 1]] if w not in blocked)
        lost.discard(root)
        return np.array(sorted(v for v in lost if self.supplied[v]), np.int64)

    def unsupplied_without(self, segments: np.ndarray) -> np.ndarray:
        """Segments supplied today that no source reaches once `segments` are cut out (a flood of
        the whole segment graph: the plain way, kept to check cut_off_by against).

        Parameters
        ----------
        segments
            Segment indices taken out.

        Returns
        -------
        np.ndarray
            Segment indices, ascending, `segments` themselves excluded.
        """
        mask = np.ones(self.supply.shape[0], bool)
        mask[segments] = False
        graph = self.supply.copy()
        graph.data = graph.data * mask[graph.indices]  # no arc may enter a removed segment
        graph.eliminate_zeros()
        reached = breadth_first_order(graph, self.n_segments, directed=True, return_predecessors=False)
        alive = np.zeros(len(mask), bool)
        alive[reached] = True
        lost = self.supplied & ~alive & mask
        lost[self.n_segments] = False
        return np.flatnonzero(lost)


    def pipe_level_unsupplied(self, removed_nodes: np.ndarray, removed_pipes: np.ndarray
                              ) -> tuple[np.ndarray, np.ndarray]:
        """Nodes and pipes supplied today that no source reaches once the given ones are taken out:
        a flood of the whole pipe graph (the slow, general way; also the baseline).

        Parameters
        ----------
        removed_nodes, removed_pipes
            Node and pipe indices taken out.

        Returns
        -------
        tuple of np.ndarray
            (node indices, pipe indices), ascending, the removed ones excluded.
        """
        m = self.model
        N, P = m.n_nodes, m.n_pipes
        if self._pipe_supply is None:
            self._pipe_supply = self._pipe_graph()
            self._pipe_supplied = self._flood(self._pipe_supply)
        mask = np.ones(N + P + 1, bool)
        mask[removed_nodes] = False
        mask[N + removed_pipes] = False
        graph = self._pipe_supply.copy()
        graph.data = graph.data * mask[graph.indices]
        graph.eliminate_zeros()
        lost = self._pipe_supplied & ~self._flood(graph) & mask
        return np.flatnonzero(lost[:N]), np.flatnonzero(lost[N: N + P])

    def _pipe_graph(self) -> csr_matrix:
        """Nodes, then pipes, then the root, as one directed graph of where gas can flow."""
        m = self.model
        N, P = m.n_nodes, m.n_pipes
        ends = np.arange(2 * P)
        node = np.concatenate([m.pipe_from, m.pipe_to])
        pipe = N + ends % P
        valve = self.end_valve
        # index -1 (no valve) picks the appended "open, not a check valve" entry
        closed = np.append(m.valve_closed, False)[valve]
        check = np.append(m.valve_check, 0)[valve]
        forward = ~closed & (check >= 0)  # node → pipe
        backward = ~closed & (check <= 0)
        root = N + P
        src = np.concatenate([node[forward], pipe[backward], m.regulator_inlet, np.full(len(self.source_nodes), root)])
        dst = np.concatenate([pipe[forward], node[backward], m.regulator_outlet, self.source_nodes])
        n = root + 1
        return csr_matrix((np.ones(len(src), np.int8), (src, dst)), shape=(n, n))

    @staticmethod
    def _flood(graph: csr_matrix) -> np.ndarray:
        reached = breadth_first_order(graph, graph.shape[0] - 1, directed=True, return_predecessors=False)
        alive = np.zeros(graph.shape[0], bool)
        alive[reached] = True
        return alive


def _immediate_dominators(graph: csr_matrix, root: int) -> np.ndarray:
    """Immediate dominator of every vertex reachable from `root` (-1 elsewhere; root → root).

    The iterative algorithm of Cooper, Harvey and Kennedy ("A Simple, Fast Dominance Algorithm",
    2001) on plain lists: a few passes in reverse postorder. networkx's version of the same
    algorithm spends its time in dict look-ups (20 s on a million-pipe city; this takes ~3 s)."""
    n = graph.shape[0]
    succ_ptr, succ = graph.indptr.tolist(), graph.indices.tolist()
    preds_csr = graph.transpose().tocsr()
    pred_ptr, pred = preds_csr.indptr.tolist(), preds_csr.indices.tolist()
    # iterative depth-first postorder
    post = [-1] * n
    postorder: list[int] = []
    seen = [False] * n
    seen[root] = True
    stack = [(root, succ_ptr[root])]
    while stack:
        v, i = stack[-1]
        if i < succ_ptr[v + 1]:
            stack[-1] = (v, i + 1)
            w = succ[i]
            if not seen[w]:
                seen[w] = True
                stack.append((w, succ_ptr[w]))
        else:
            stack.pop()
            post[v] = len(postorder)
            postorder.append(v)
    idom = [-1] * n
    idom[root] = root
    reverse_postorder = postorder[::-1][1:]
    changed = True
    while changed:
        changed = False
        for v in reverse_postorder:
            new = -1
            for k in range(pred_ptr[v], pred_ptr[v + 1]):
                p = pred[k]
                if idom[p] < 0:
                    continue
                if new < 0:
                    new = p
                    continue
                a, b = p, new
                while a != b:
                    while post[a] < post[b]:
                        a = idom[a]
                    while post[b] < post[a]:
                        b = idom[b]
                new = a
            if idom[v] != new:
                idom[v] = new
                changed = True
    return np.array(idom, np.int64)


def gather(ptr: np.ndarray, values: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Concatenated CSR rows `keys` of (ptr, values)."""
    if len(keys) == 0:
        return np.empty(0, np.int64)
    starts, stops = ptr[keys], ptr[np.asarray(keys) + 1]
    lengths = stops - starts
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return values[np.arange(lengths.sum()) + offsets]


# The topology of a database, rebuilt when an edit of pipes, nodes, valves or regulators bumped the
# network version. (A version read just before the snapshot is taken: an edit in between only
# means one more rebuild on the next call.)
topologies: VersionedCache[Topology] = VersionedCache(
    "SELECT version FROM network_version", lambda conn: Topology(load_model(conn)))
