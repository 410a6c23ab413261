"""The network's consistency rules (network_analysis/consistency.py) on hand-made features: exact
rows, reasons and distances (m, storage CRS), the tolerance's own boundary allowed, missing inputs
breaking no rule; then a random network against plain loops, and a million pipes in seconds."""
from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest
import shapely
from shapely import LineString, Point

from core.errors import InvalidInput
from network_analysis.consistency import (
    Findings,
    disagreeing_node_positions,
    ends_off_nodes,
    node_not_an_end,
    non_simple_lines,
    points_off_lines,
    same_pressure_class,
    zero_length_lines,
)

pytestmark = pytest.mark.nodb

X0, Y0 = 41_500_000.0, 4_550_000.0  # inside EPSG:4550's zone, as stored coordinates are
ORIGIN = np.array([X0, Y0])


def line(*xy: tuple[float, ...]) -> LineString:
    return LineString([(X0 + p[0], Y0 + p[1], *p[2:]) for p in xy])


def point(x: float, y: float, *z: float) -> Point:
    return Point(X0 + x, Y0 + y, *z)


def geoms(*items: object) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = list(items)
    return out


def test_ends_off_nodes_names_the_end_its_node_and_the_distance() -> None:
    lines = geoms(line((0, 0), (10, 0)), line((0, 0), (10, 0)), line((0, 0, 5), (10, 0, 7)), None,
                  line((0, 0), (10, 0)))
    froms = geoms(point(0, 0), point(3, 4), point(0, 0.05), point(0, 0), point(0, 0))
    tos = geoms(point(10, 0), point(10.06, 0), point(3022.4, 0), point(99, 0), None)
    found = ends_off_nodes(lines, froms, tos, 0.05, from_codes=["J1", "J12", "J5", "J7", "J9"],
                           to_codes=["J2", "J13", None, "J8", "J10"])
    assert found.rows.tolist() == [1, 1, 2]
    assert found.ends.tolist() == ["from", "to", "to"]
    assert found.distances_m == pytest.approx([5.0, 0.06, 3012.4])
    assert found.reasons == [
        "from-node 'J12' is 5.0 m from the pipe's drawn start (tolerance 0.05 m)",
        "to-node 'J13' is 0.060 m from the pipe's drawn end (tolerance 0.05 m)",
        "to-node is 3,012.4 m from the pipe's drawn end (tolerance 0.05 m)",  # heights aside; no code given
    ]
    assert found.where(np.asarray(found.ends == "to")).rows.tolist() == [1, 2]
    assert found.codes.tolist() == [None, None, None]
    without_codes = ends_off_nodes(lines, froms, tos, 0.05)
    assert without_codes.reasons[0] == "from-node is 5.0 m from the pipe's drawn start (tolerance 0.05 m)"
    assert len(ends_off_nodes(lines, froms, tos, 3012.4)) == 0


def test_a_valve_node_that_is_not_an_end_of_its_pipe() -> None:
    found = node_not_an_end(["J7", "J1", "J2", None, 5, "J3"], ["J1", "J1", "J1", "J1", 4, None],
                            ["J2", "J2", "J2", "J2", 6, "J4"])
    assert found.rows.tolist() == [0, 4]
    assert found.reasons == ["node 'J7' is neither end of the valve's pipe (from-node 'J1', to-node 'J2')",
                             "node 5 is neither end of the valve's pipe (from-node 4, to-node 6)"]
    assert np.isnan(found.distances_m).all()
    ids = node_not_an_end(np.array([3, 8, 9]), np.array([3, 1, 2]), np.array([4, 8, 5]))
    assert ids.rows.tolist() == [2]


def test_points_off_their_lines() -> None:
    pipes = geoms(line((0, 0), (10, 0)), line((0, 0), (10, 0)), line((0, 0), (10, 0)), line((0, 0), (10, 0)))
    valves = geoms(point(5, 3.2), point(5, 0.05), point(-3, -4, 12), None)
    found = points_off_lines(valves, pipes, 0.05)
    assert found.rows.tolist() == [0, 2]
    assert found.distances_m == pytest.approx([3.2, 5.0])
    assert found.reasons == ["3.2 m from its pipe (tolerance 0.05 m)", "5.0 m from its pipe (tolerance 0.05 m)"]
    assert points_off_lines(valves, pipes, 5000, line_noun="main").reasons == []
    assert points_off_lines(valves[:1], pipes[:1], 0.5, line_noun="main").reasons == [
        "3.2 m from its main (tolerance 0.5 m)"]


def test_lines_that_cross_touch_or_run_along_themselves() -> None:
    lines = geoms(
        line((0, 0), (10, 0), (10, 10), (5, -5)),       # crosses its first segment at x = 6.666…
        line((0, 0), (10, 0), (10, 10), (0, 10), (0, 0)),  # closed: simple
        line((0, 0), (10, 0), (10, 10), (5, 0)),        # ends on its first segment
        line((0, 0), (10, 0), (4, 0)),                  # doubles back along itself
        line((0, 0), (0, 0), (5, 0)),                   # a repeated point is no crossing
        None,
    )
    found = non_simple_lines(lines)
    assert found.rows.tolist() == [0, 2, 3]
    assert found.reasons == [f"the line crosses or touches itself at ({X0 + 20 / 3:.2f}, {Y0:.2f})",
                             f"the line crosses or touches itself at ({X0 + 5:.2f}, {Y0:.2f})",
                             "the line runs along itself"]


def test_lines_of_no_length() -> None:
    lines = geoms(line((0, 0), (0, 0)), line((0, 0, 0), (0, 0, 5)), shapely.from_wkt("LINESTRING EMPTY"), None,
                  line((0, 0), (0.001, 0)))
    found = zero_length_lines(lines)
    assert found.rows.tolist() == [0, 1, 2]
    assert found.reasons == ["zero-length line (all its points at one place)",
                             "zero-length line (all its points at one place)",  # a riser has no length in plan
                             "empty line"]


def test_a_regulator_between_nodes_of_one_pressure_class() -> None:
    found = same_pressure_class([1, 2, None, 1.0, np.nan, 3], [1, 1, 1, 1, 1, 3])
    assert found.rows.tolist() == [0, 3, 5]
    assert found.reasons == [
        "inlet and outlet nodes are both of pressure class 1: a regulator joins two different classes",
        "inlet and outlet nodes are both of pressure class 1: a regulator joins two different classes",
        "inlet and outlet nodes are both of pressure class 3: a regulator joins two different classes"]
    assert len(same_pressure_class(np.array([1, 2]), np.array([2, 1]))) == 0
    nullable = pd.array([1, None, 2], dtype="Int16").to_numpy()  # the importer's dictionary columns: NA objects
    assert same_pressure_class(nullable, pd.array([1, 1, 1], dtype="Int16").to_numpy()).rows.tolist() == [0]
    assert node_not_an_end(pd.array(["J7", None], dtype="string").to_numpy(), ["J1", "J1"], ["J2", "J2"]
                           ).rows.tolist() == [0]


def test_pipe_ends_naming_one_node_in_two_places() -> None:
    codes = np.array([["J1", "J2"], ["J2", "J3"], ["J1", "J3"], [None, "J2"], ["J4", "J4"]], dtype=object)
    points = np.array([[point(0, 0), point(10, 0)],
                       [point(10, 0.05), point(20, 0)],   # J2 at the tolerance's edge: one place
                       [point(0, 3.2), point(20, 0)],     # J1 3.2 m from where pipe 1 starts
                       [point(0, 0), point(13, 4)],       # J2 5 m from pipe 1's end
                       [point(50, 0), None]], dtype=object)
    found = disagreeing_node_positions(codes, points, 0.05)
    assert found.rows.tolist() == [2, 3]
    assert found.ends.tolist() == ["from", "to"]
    assert found.codes.tolist() == ["J1", "J2"]
    assert found.distances_m == pytest.approx([3.2, 5.0])
    assert found.reasons == [
        "from-node 'J1' is 3.2 m from the same node at the from-end of feature 1 (tolerance 0.05 m)",
        "to-node 'J2' is 5.0 m from the same node at the to-end of feature 1 (tolerance 0.05 m)"]


def test_points_naming_one_node_in_two_places() -> None:
    found = disagreeing_node_positions(["A", "B", "A", 7, 7], geoms(point(0, 0), point(1, 1), point(0.3, 0.4),
                                                                     point(5, 5), point(5, 5)), 0.1)
    assert found.rows.tolist() == [2]
    assert found.ends.tolist() == [None]
    assert found.reasons == ["node 'A' is 0.50 m from the same node at feature 1 (tolerance 0.1 m)"]
    empty = disagreeing_node_positions([None], geoms(point(0, 0)), 0.1)
    assert (len(empty), empty.reasons) == (0, [])
    with pytest.raises(InvalidInput, match=r"^codes: shape \(1, 3\): give \(n,\) or \(n, 2\)"):
        disagreeing_node_positions(np.array([["A", "B", "C"]], dtype=object), np.array([[None] * 3]), 0.1)
    with pytest.raises(InvalidInput, match=r"^points: shape \(1,\): give the shape of codes, \(2,\)"):
        disagreeing_node_positions(["A", "B"], geoms(point(0, 0)), 0.1)
    with pytest.raises(InvalidInput, match=r"^tolerance_m: -1 m: give a finite distance of 0 m or more$"):
        ends_off_nodes(geoms(), geoms(), geoms(), -1)


def test_a_distance_equal_to_the_tolerance_is_within_it() -> None:
    """0.5 m is exact in binary, at these coordinates too: the boundary itself, not a rounding."""
    pipes = geoms(line((0, 0), (10, 0)))
    assert len(ends_off_nodes(pipes, geoms(point(0, 0.5)), geoms(point(10.5, 0)), 0.5)) == 0
    assert ends_off_nodes(pipes, geoms(point(0, 0.5)), geoms(point(10.5, 0)), 0.25).distances_m.tolist() == [0.5, 0.5]
    assert len(points_off_lines(geoms(point(5, 0.5)), pipes, 0.5)) == 0
    assert points_off_lines(geoms(point(5, 0.5)), pipes, 0.25).reasons == ["0.50 m from its pipe (tolerance 0.25 m)"]
    codes, ends = ["J1", "J1"], geoms(point(0, 0), point(0, 0.5))
    assert len(disagreeing_node_positions(codes, ends, 0.5)) == 0
    assert disagreeing_node_positions(codes, ends, 0.25).distances_m.tolist() == [0.5]


def test_findings_can_be_cut() -> None:
    found = Findings(np.array([1, 4]), ["a", "b"], np.array([1.0, 2.0]), np.array(["from", "to"], dtype=object),
                     np.array(["J1", "J2"], dtype=object))
    part = found.where(np.array([False, True]))
    assert (part.rows.tolist(), part.reasons, part.distances_m.tolist(), part.ends.tolist(),
            part.codes.tolist()) == ([4], ["b"], [2.0], ["to"], ["J2"])
    assert node_not_an_end(["J7"], ["J1"], ["J2"]).ends.tolist() == [None]


# -- a random network against plain loops ----------------------------------------------------------
def random_network(n: int, seed: int = 19) -> dict[str, np.ndarray]:
    """n pipes of 2–4 points, their nodes drawn on the ends or up to 0.2 m away, a few far off;
    node codes from a small pool so that codes repeat."""
    rng = np.random.default_rng(seed)
    vertices = rng.integers(2, 5, n)
    index = np.repeat(np.arange(n), vertices)
    coords = rng.uniform(0, 1000, (len(index), 2)) + ORIGIN
    lines = shapely.linestrings(coords, indices=index)
    starts = shapely.get_coordinates(shapely.get_point(lines, 0))
    ends = shapely.get_coordinates(shapely.get_point(lines, -1))
    shift = rng.choice([0.0, 0.02, 0.2, 3000.0], (n, 2), p=[0.6, 0.2, 0.15, 0.05])
    angle = rng.uniform(0, 2 * np.pi, (n, 2))
    froms = shapely.points(starts + shift[:, :1] * np.column_stack([np.cos(angle[:, 0]), np.sin(angle[:, 0])]))
    tos = shapely.points(ends + shift[:, 1:] * np.column_stack([np.cos(angle[:, 1]), np.sin(angle[:, 1])]))
    lines[rng.random(n) < 0.01] = None
    codes = rng.integers(0, n // 3, (n, 2)).astype(str).astype(object)
    codes[rng.random((n, 2)) < 0.02] = None
    return {"lines": lines, "froms": froms, "tos": tos, "codes": codes,
            "valves": shapely.points(rng.uniform(0, 1000, (n, 2)) + ORIGIN),
            "classes": rng.integers(0, 4, (n, 2)).astype(float)}


def test_a_random_network_against_plain_loops() -> None:
    net = random_network(3000)
    lines, tolerance = net["lines"], 0.05

    expected = []
    for row, pipe in enumerate(lines):
        if pipe is None:
            continue
        coords = list(pipe.coords)
        for end, (node, at) in enumerate(((net["froms"][row], coords[0]), (net["tos"][row], coords[-1]))):
            d = math.hypot(node.x - at[0], node.y - at[1])
            if d > tolerance:
                expected.append((row, ("from", "to")[end], d))
    found = ends_off_nodes(lines, net["froms"], net["tos"], tolerance)
    assert list(zip(found.rows.tolist(), found.ends.tolist(), strict=True)) == [(r, e) for r, e, _ in expected]
    assert found.distances_m == pytest.approx([d for *_, d in expected], abs=1e-6)
    assert 100 < len(found) < 2000

    off = [(row, pipe.distance(valve)) for row, (valve, pipe) in enumerate(zip(net["valves"], lines, strict=True))
           if pipe is not None and pipe.distance(valve) > 150]
    near = points_off_lines(net["valves"], lines, 150)
    assert near.rows.tolist() == [r for r, _ in off]
    assert near.distances_m == pytest.approx([d for _, d in off])

    assert non_simple_lines(lines).rows.tolist() == [r for r, g in enumerate(lines) if g is not None
                                                     and not g.is_simple]
    same = same_pressure_class(net["classes"][:, 0], net["classes"][:, 1])
    assert same.rows.tolist() == [r for r, (a, b) in enumerate(net["classes"]) if a == b]

    first: dict[str, tuple[int, float, float]] = {}
    disagreeing = []
    for row, pipe in enumerate(lines):
        for end in (0, 1):
            code = net["codes"][row, end]
            if pipe is None or code is None:
                continue
            x, y = pipe.coords[-end]
            if code not in first:
                first[code] = (row * 2 + end, x, y)
            elif (d := math.hypot(x - first[code][1], y - first[code][2])) > tolerance:
                disagreeing.append((row, ("from", "to")[end], code, d))
    ends = np.empty((len(lines), 2), dtype=object)
    ends[:, 0], ends[:, 1] = shapely.get_point(lines, 0), shapely.get_point(lines, -1)
    apart = disagreeing_node_positions(net["codes"], ends, tolerance)
    assert list(zip(apart.rows.tolist(), apart.ends.tolist(), apart.codes.tolist(), strict=True)) == [
        (r, e, c) for r, e, c, _ in disagreeing]
    assert apart.distances_m == pytest.approx([d for *_, d in disagreeing])
    assert len(apart) > 1000


def test_a_million_pipes_take_seconds() -> None:
    """A network as files bring them: pipes from node to node through a bend, valves on their
    pipes, a thousand ends and valves drawn 3 km off; every rule in seconds, finding just those."""
    n, bad = 1_000_000, 1000
    rng = np.random.default_rng(7)
    nodes = rng.uniform(0, 20_000, (n // 2, 2)) + ORIGIN
    pair = rng.integers(0, len(nodes), (n, 2))
    pair[pair[:, 0] == pair[:, 1], 1] = (pair[pair[:, 0] == pair[:, 1], 0] + 1) % len(nodes)
    a, b = nodes[pair[:, 0]], nodes[pair[:, 1]]
    bend = (a + b) / 2 + rng.uniform(-5, 5, (n, 2))
    lines = shapely.linestrings(np.stack([a, bend, b], axis=1))
    moved = rng.choice(n, bad, replace=False)
    froms = shapely.points(a + np.where(np.isin(np.arange(n), moved)[:, None], 3000.0, 0.0))
    tos = shapely.points(b)
    codes = np.char.add("J", pair.astype(str)).astype(object)
    valves = shapely.line_interpolate_point(lines, 0.5, normalized=True)
    valves[moved] = shapely.points(shapely.get_coordinates(valves[moved]) + np.array([0, 3000.0]))
    ends = np.empty((n, 2), dtype=object)
    ends[:, 0], ends[:, 1] = shapely.get_point(lines, 0), shapely.get_point(lines, -1)
    classes = rng.integers(0, 4, (n, 2))
    started = time.perf_counter()
    found = {"ends": ends_off_nodes(lines, froms, tos, 0.05, codes[:, 0], codes[:, 1]),
             "points": points_off_lines(valves, lines, 0.05),
             "simple": non_simple_lines(lines),
             "zero": zero_length_lines(lines),
             "classes": same_pressure_class(classes[:, 0], classes[:, 1]),
             "positions": disagreeing_node_positions(codes, ends, 0.05),
             "not_an_end": node_not_an_end(codes[:, 0], codes[:, 0], codes[:, 1])}
    took = time.perf_counter() - started
    assert found["ends"].rows.tolist() == sorted(moved.tolist())
    assert found["points"].rows.tolist() == sorted(moved.tolist())
    assert (len(found["simple"]), len(found["zero"]), len(found["positions"]), len(found["not_an_end"])) == (0,) * 4
    assert len(found["classes"]) == int((classes[:, 0] == classes[:, 1]).sum())
    assert took < 30, f"{took:.1f} s"  # seconds, not minutes, on two shared cores
