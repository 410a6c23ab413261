"""Consistency rules of a network, on plain arrays: whatever the path (a file import, an edit).

Each rule takes arrays, one entry per feature (pipes, valves, regulators, …), and returns the
features that break it as `Findings`: 0-based row indices into those arrays and one reason per
row, worded for a person, so that a caller turns them into its own lines (the importer's
``FILE:LAYER:FEATURE:FIELD: reason``) without computing anything more. No database, no pandas.

Geometries are shapely 2 geometries (a NumPy object array, a list, a GeoSeries' values) in the
storage CRS (EPSG:4550, metres); every distance is horizontal (2-D, heights ignored), in metres,
and tolerances are metres. A row whose inputs are missing (None geometry; None, NaN or pandas'
NA code or class) breaks no rule here: what is missing is another rule's business (mandatory
fields, broken geometry). Every rule is vectorised (shapely's array functions, NumPy sorting and grouping): a
million pipes take seconds; only the reasons of the rows found are formatted one by one.

Rules (issue 19, "Consistency, whatever the path"):

- `ends_off_nodes`: a pipe's drawn start and end lie on the nodes it names;
- `node_not_an_end`: a valve's node is one of its pipe's two nodes;
- `points_off_lines`: a valve (a device) lies on its pipe;
- `non_simple_lines`, `zero_length_lines`: a pipe does not cross itself and is longer than zero;
- `same_pressure_class`: a regulator joins nodes of two different pressure classes;
- `disagreeing_node_positions`: pipe ends naming one node code lie in one place.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely

from core.errors import InvalidInput

__all__ = ["Findings", "disagreeing_node_positions", "ends_off_nodes", "node_not_an_end", "non_simple_lines",
           "points_off_lines", "same_pressure_class", "zero_length_lines"]

END_NAMES = ("from", "to")  # the two ends of a pipe, in the order of its from/to node columns


@dataclass(frozen=True)
class Findings:
    """The rows that break one rule, in ascending order, with one reason each.

    Attributes
    ----------
    rows
        0-based indices (int64) into the rule's input arrays; a row appears once per way it breaks
        the rule (a pipe whose two ends are off their nodes twice: from-end first).
    reasons
        One reason per entry of `rows`, e.g. ``from-node 'J12' is 3,012.4 m from the pipe's drawn
        start (tolerance 0.05 m)``.
    distances_m
        Per entry, the distance the rule measured (metres, horizontal); NaN for rules that
        measure none.
    ends
        Per entry (object array), which end of the pipe it concerns, ``"from"`` or ``"to"``, for
        the rules about pipe ends; None for the others: the caller's field (from-node or to-node
        column) follows from it.
    codes
        Per entry (object array), the node code concerned (`disagreeing_node_positions`); None
        for the other rules.
    """

    rows: np.ndarray
    reasons: list[str]
    distances_m: np.ndarray
    ends: np.ndarray
    codes: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    def where(self, mask: np.ndarray) -> Findings:
        """The entries where `mask` (one boolean per entry) is true, e.g. ``f.where(f.ends == "to")``."""
        keep = np.flatnonzero(np.asarray(mask, dtype=bool))
        return Findings(self.rows[keep], [self.reasons[i] for i in keep], self.distances_m[keep],
                        self.ends[keep], self.codes[keep])


def _findings(rows: np.ndarray, reasons: list[str], distances_m: np.ndarray | None = None,
              ends: np.ndarray | None = None, codes: np.ndarray | None = None) -> Findings:
    rows = np.asarray(rows, dtype=np.int64)
    distances = np.full(len(rows), np.nan) if distances_m is None else np.asarray(distances_m, dtype=float)
    unnamed = np.full(len(rows), None, dtype=object)
    return Findings(rows, reasons, distances, unnamed if ends is None else ends,
                    unnamed.copy() if codes is None else codes)


# -- inputs and wording ----------------------------------------------------------------------------
def _geometries(values: Any) -> np.ndarray:
    """`values` as a 1-D object array of geometries (None where missing)."""
    out = np.empty(len(values), dtype=object)
    out[:] = list(values) if not isinstance(values, np.ndarray) else values
    return out


def _missing_value(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN
    except TypeError:  # pandas.NA: neither equal nor unequal to itself
        return True


_missing_values = np.frompyfunc(_missing_value, 1, 1)


def _missing(values: np.ndarray) -> np.ndarray:
    """True where a code or a class is missing: None, NaN or pandas' NA (a nullable column's
    ``to_numpy()``)."""
    if values.dtype.kind == "f":
        return np.isnan(values)
    if values.dtype.kind != "O":
        return np.zeros(values.shape, dtype=bool)
    return np.asarray(_missing_values(values), dtype=bool).reshape(values.shape)


def _equal(a: np.ndarray, b: np.ndarray, known: np.ndarray) -> np.ndarray:
    """a == b where `known` (both given), False elsewhere."""
    out = np.zeros(len(a), dtype=bool)
    out[known] = np.asarray(a[known] == b[known], dtype=bool)
    return out


def _shown(value: Any) -> str:
    """A code or class as reasons quote it: text in quotes, numbers bare (whole floats without '.0')."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):g}"
    return repr(str(value))


def _metres(distance: float, tolerance: float) -> str:
    """A distance with a thousands separator and as few decimals as show two significant digits
    (one decimal at least) and the distance beyond `tolerance`: 3,012.4 and 3.2 beside 0.05, but
    0.06 (not 0.1) and 0.052 (not 0.05)."""
    for decimals in range(1, 10):
        text = f"{distance:,.{decimals}f}"
        shown = float(text.replace(",", ""))
        if abs(shown) * 10 ** decimals >= 10 and shown > tolerance:
            return text
    return f"{distance:,.9f}"


def _tolerance(tolerance_m: float) -> float:
    tolerance = float(tolerance_m)
    if not np.isfinite(tolerance) or tolerance < 0:
        raise InvalidInput("tolerance_m", f"{tolerance_m!r} m: give a finite distance of 0 m or more")
    return tolerance


def _xy(points: np.ndarray) -> np.ndarray:
    """(n, 2) coordinates of points, NaN where a point is missing or empty."""
    out = np.full((len(points), 2), np.nan)
    present = ~shapely.is_missing(points) & ~shapely.is_empty(points)
    out[present, 0] = shapely.get_x(points[present])
    out[present, 1] = shapely.get_y(points[present])
    return out


# -- pipe ends and their nodes ---------------------------------------------------------------------
def ends_off_nodes(lines: Any, node_points_from: Any, node_points_to: Any, tolerance_m: float,
                   from_codes: Sequence[Any] | np.ndarray | None = None,
                   to_codes: Sequence[Any] | np.ndarray | None = None) -> Findings:
    """Pipes whose drawn start or end lies farther than `tolerance_m` from the node it names.

    Parameters
    ----------
    lines
        The pipes' lines (n), storage CRS (m); the start is the first point, the end the last.
    node_points_from, node_points_to
        The points of the nodes each pipe names as its from-node and to-node (n each).
    tolerance_m
        The largest allowed horizontal distance, metres (the snapping tolerance, e.g. 0.05).
    from_codes, to_codes
        The node codes, for the reasons (optional: without them the reason names no code).

    Returns
    -------
    Findings
        One entry per end off its node: `ends` "from" or "to", `distances_m` the horizontal
        distance (m) from the drawn end to the node, reasons like ``from-node 'J12' is 3,012.4 m
        from the pipe's drawn start (tolerance 0.05 m)``.
    """
    tolerance = _tolerance(tolerance_m)
    lines = _geometries(lines)
    measured = []
    for index, nodes in ((0, node_points_from), (-1, node_points_to)):
        with np.errstate(invalid="ignore"):
            measured.append(shapely.distance(shapely.get_point(lines, index), _geometries(nodes)))
    distances = np.column_stack(measured)  # (n, 2): NaN where a geometry is missing
    with np.errstate(invalid="ignore"):
        rows, end = np.nonzero(distances > tolerance)  # row-major: each row's from-end before its to-end
    given = [None if c is None else np.asarray(c, dtype=object) for c in (from_codes, to_codes)]
    drawn = ("start", "end")
    reasons = []
    for row, e in zip(rows.tolist(), end.tolist(), strict=True):
        codes = given[e]
        code = codes[row] if codes is not None else None
        named = "" if _missing_value(code) else f" {_shown(code)}"
        reasons.append(f"{END_NAMES[e]}-node{named} is {_metres(distances[row, e], tolerance)} m "
                       f"from the pipe's drawn {drawn[e]} (tolerance {tolerance:g} m)")
    return _findings(rows, reasons, distances[rows, end], np.array(END_NAMES, dtype=object)[end])


def node_not_an_end(valve_node_ids: Any, pipe_from_ids: Any, pipe_to_ids: Any) -> Findings:
    """Valves whose node is neither end of their pipe.

    Parameters
    ----------
    valve_node_ids
        Per valve, the node it names (an id or a code).
    pipe_from_ids, pipe_to_ids
        Per valve, the from-node and to-node of the pipe it names (same kind of value).

    Returns
    -------
    Findings
        Reasons like ``node 'J7' is neither end of the valve's pipe (from-node 'J1', to-node 'J2')``.
        A valve whose node or pipe ends are missing breaks no rule here.
    """
    node = np.asarray(valve_node_ids, dtype=object)
    start, end = np.asarray(pipe_from_ids, dtype=object), np.asarray(pipe_to_ids, dtype=object)
    known = ~(_missing(node) | _missing(start) | _missing(end))
    off = known & ~_equal(node, start, known) & ~_equal(node, end, known)
    rows = np.flatnonzero(off)
    return _findings(rows, [f"node {_shown(node[i])} is neither end of the valve's pipe "
                            f"(from-node {_shown(start[i])}, to-node {_shown(end[i])})" for i in rows])


def points_off_lines(points: Any, lines: Any, tolerance_m: float, line_noun: str = "pipe") -> Findings:
    """Points (valves, devices) lying farther than `tolerance_m` from the line (pipe) they name.

    Parameters
    ----------
    points
        The points (n), storage CRS (m).
    lines
        Per point, the line it names (n).
    tolerance_m
        The largest allowed horizontal distance from the point to the line, metres.
    line_noun
        What the lines are, for the reasons ("pipe").

    Returns
    -------
    Findings
        `distances_m` the horizontal distance (m) to the line; reasons like ``3.2 m from its pipe
        (tolerance 0.05 m)``.
    """
    tolerance = _tolerance(tolerance_m)
    with np.errstate(invalid="ignore"):
        distances = shapely.distance(_geometries(points), _geometries(lines))
        rows = np.flatnonzero(distances > tolerance)
    return _findings(rows, [f"{_metres(d, tolerance)} m from its {line_noun} (tolerance {tolerance:g} m)"
                            for d in distances[rows].tolist()], distances[rows])


# -- the lines themselves --------------------------------------------------------------------------
def _crossing(line: Any) -> tuple[float, float] | None:
    """A point where a non-simple line meets itself: a node that three or more pieces of the noded
    line end at (a passing crossing gives four, an end touching the line three), or None."""
    pieces = shapely.get_parts(shapely.node(line))
    if not len(pieces):
        return None
    ends = np.vstack([shapely.get_coordinates(shapely.get_point(pieces, 0)),
                      shapely.get_coordinates(shapely.get_point(pieces, -1))])
    places, counts = np.unique(ends, axis=0, return_counts=True)
    met = places[counts >= 3]
    return (float(met[0, 0]), float(met[0, 1])) if len(met) else None


def non_simple_lines(lines: Any) -> Findings:
    """Lines that cross, touch or run along themselves (``shapely.is_simple`` false).

    Parameters
    ----------
    lines
        The lines (n), storage CRS (m). A closed line (start = end) is simple when it crosses
        nothing else; that a pipe must not start and end on one node is another rule.

    Returns
    -------
    Findings
        Reasons ``the line crosses or touches itself at (x, y)`` (storage CRS, to the centimetre),
        or ``the line runs along itself`` when it overlaps itself without a single meeting point.
    """
    lines = _geometries(lines)
    rows = np.flatnonzero(~shapely.is_missing(lines) & ~shapely.is_simple(lines))
    reasons = []
    for line in lines[rows]:
        at = _crossing(line)
        reasons.append("the line runs along itself" if at is None
                       else f"the line crosses or touches itself at ({at[0]:.2f}, {at[1]:.2f})")
    return _findings(rows, reasons)


def zero_length_lines(lines: Any) -> Findings:
    """Lines of no length in plan: empty, or every point at one place (heights aside).

    Parameters
    ----------
    lines
        The lines (n), storage CRS (m).

    Returns
    -------
    Findings
        Reasons ``empty line`` or ``zero-length line (all its points at one place)``.
    """
    lines = _geometries(lines)
    present = ~shapely.is_missing(lines)
    empty = present & shapely.is_empty(lines)
    zero = present & ~empty & (shapely.length(lines) == 0)
    rows = np.flatnonzero(empty | zero)
    return _findings(rows, ["empty line" if empty[i] else "zero-length line (all its points at one place)"
                            for i in rows])


# -- regulators ------------------------------------------------------------------------------------
def same_pressure_class(inlet_classes: Any, outlet_classes: Any) -> Findings:
    """Regulators whose inlet and outlet nodes are of the same pressure class.

    Parameters
    ----------
    inlet_classes, outlet_classes
        Per regulator, the pressure class (dt_pipe_pressure_type code) of its inlet and outlet
        nodes.

    Returns
    -------
    Findings
        Reasons like ``inlet and outlet nodes are both of pressure class 1: a regulator joins two
        different classes``.
    """
    inlet, outlet = np.asarray(inlet_classes, dtype=object), np.asarray(outlet_classes, dtype=object)
    known = ~(_missing(inlet) | _missing(outlet))
    rows = np.flatnonzero(_equal(inlet, outlet, known))
    return _findings(rows, [f"inlet and outlet nodes are both of pressure class {_shown(inlet[i])}: "
                            "a regulator joins two different classes" for i in rows])


# -- one node code, one place ----------------------------------------------------------------------
def disagreeing_node_positions(codes: Any, points: Any, tolerance_m: float) -> Findings:
    """Ends naming the same node code whose positions disagree by more than `tolerance_m`.

    Every end naming a code is compared with the first end naming it (in row order, a row's
    from-end before its to-end); each end farther than the tolerance from that first position is
    one entry.

    Parameters
    ----------
    codes
        The node codes the ends name: shape (n,) for one end per row, or (n, 2) for pipes, the
        from-node and to-node columns side by side (``np.column_stack([from_codes, to_codes])``).
        Codes are compared as text.
    points
        The ends' positions, the same shape as `codes` (shapely points, e.g. the pipes' first and
        last points ``np.column_stack([shapely.get_point(lines, 0), shapely.get_point(lines, -1)])``).
    tolerance_m
        The largest allowed horizontal distance between two ends naming one node, metres.

    Returns
    -------
    Findings
        `rows` the row of each disagreeing end, `ends` "from"/"to" for (n, 2) input (else None's),
        `codes` the code, `distances_m` the horizontal distance (m) to the first position; reasons
        like ``to-node 'J12' is 3.2 m from the same node at the from-end of feature 1 (tolerance
        0.05 m)`` (features numbered from 1, as problem lines number them).
    """
    tolerance = _tolerance(tolerance_m)
    code_grid = np.asarray(codes, dtype=object)
    point_grid = np.asarray(points, dtype=object)
    two_ended = code_grid.ndim == 2
    width = 2 if two_ended else 1
    if code_grid.ndim not in (1, 2) or (two_ended and code_grid.shape[1] != 2):
        raise InvalidInput("codes", f"shape {code_grid.shape}: give (n,) or (n, 2) (from-node and to-node)")
    if point_grid.shape != code_grid.shape:
        raise InvalidInput("points", f"shape {point_grid.shape}: give the shape of codes, {code_grid.shape}")
    flat_codes, flat_points = code_grid.reshape(-1), point_grid.reshape(-1)
    xy = _xy(flat_points)
    known = np.flatnonzero(~_missing(flat_codes) & ~np.isnan(xy).any(axis=1))
    if not len(known):
        return _findings(np.empty(0, np.int64), [])
    _, first, group = np.unique(flat_codes[known].astype(str), return_index=True, return_inverse=True)
    group = group.reshape(-1)
    anchor = known[first][group]  # per known end: the flat index of its group's first end
    distances = np.hypot(*(xy[known] - xy[anchor]).T)
    bad = np.flatnonzero(distances > tolerance)  # `known` ascends: entries in row order
    where, anchors, found = known[bad], anchor[bad], distances[bad]
    rows = where // width
    reasons = []
    for flat, at, d in zip(where.tolist(), anchors.tolist(), found.tolist(), strict=True):
        own = f"{END_NAMES[flat % 2]}-node" if two_ended else "node"
        there = f"the {END_NAMES[at % 2]}-end of feature {at // 2 + 1}" if two_ended else f"feature {at + 1}"
        reasons.append(f"{own} {_shown(flat_codes[flat])} is {_metres(d, tolerance)} m from the same node at "
                       f"{there} (tolerance {tolerance:g} m)")
    ends = np.array(END_NAMES, dtype=object)[where % 2] if two_ended else None
    return _findings(rows, reasons, found, ends, flat_codes[where])
