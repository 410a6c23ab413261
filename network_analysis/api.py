"""The analyses as a Python API on codes and coordinates, returning plain JSON-ready dicts.

The CLI and the OGC API processes call these; keys of the returned dicts are fixed so that tools
can rely on them. Coordinates are EPSG:4550 easting/northing in metres unless a CRS is given.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import sqlalchemy as sa
from pyproj import CRS, Transformer

from network_analysis.burst import AnalysisError, BurstResult, analyse_burst
from network_analysis.topology import Topology, topologies

STORAGE_SRID = 4550
SNAP_TOLERANCE_M = 50.0  # a burst or barrier point must lie this close to a pipe


def _to_storage(points: Sequence[tuple[float, float]], crs: str | None) -> list[tuple[float, float]]:
    """Points given as x, y in `crs` (easting/northing or lon/lat order, whatever the CRS's
    authority says) → EPSG:4550 easting/northing."""
    if crs is None:
        return [(float(x), float(y)) for x, y in points]
    try:
        source = CRS.from_user_input(crs)
    except Exception:  # pyproj raises CRSError; anything else is still a bad CRS for the user
        raise AnalysisError(f"unknown CRS {crs!r}") from None
    transform = Transformer.from_crs(source, CRS.from_epsg(STORAGE_SRID), always_xy=True).transform
    return [tuple(map(float, transform(x, y))) for x, y in points]


def snap_to_pipe(conn: sa.Connection, x: float, y: float, tolerance_m: float = SNAP_TOLERANCE_M
                 ) -> tuple[int, float, float]:
    """The pipe nearest to (x, y) in EPSG:4550: (pipe id, fraction along it, distance in m)."""
    row = conn.execute(sa.text(
        """
        SELECT id, ST_LineLocatePoint(ST_Force2D(geom), pt), ST_Distance(geom, pt)
        FROM pipe, ST_SetSRID(ST_MakePoint(:x, :y), 4550) AS pt
        WHERE status <> 'abandoned'
        ORDER BY geom <-> pt LIMIT 1
        """), {"x": x, "y": y}).first()
    if row is None or row[2] > tolerance_m:
        far = "no pipe at all" if row is None else f"the nearest pipe is {row[2]:,.0f} m away"
        raise AnalysisError(f"point ({x:.1f}, {y:.1f}) is not on the network: {far} "
                            f"(tolerance {tolerance_m:g} m)")
    return int(row[0]), float(row[1]), float(row[2])


def _pipe_by_code(topo: Topology, code: str) -> int:
    hits = np.flatnonzero(topo.model.pipe_code == code)
    if len(hits) == 0:
        raise AnalysisError(f"unknown pipe code {code!r}")
    if len(hits) > 1:
        raise AnalysisError(f"pipe code {code!r} is used by {len(hits)} enterprises: give the pipe id instead")
    return int(hits[0])


def _valve_by_code(topo: Topology, code: str) -> int:
    hits = np.flatnonzero(topo.model.valve_code == code)
    if len(hits) != 1:
        raise AnalysisError(f"unknown valve code {code!r}" if len(hits) == 0 else
                            f"valve code {code!r} is ambiguous ({len(hits)} valves)")
    return int(hits[0])


def burst_analysis(
    engine: sa.Engine,
    pipe: str | None = None,
    at: tuple[float, float] | None = None,
    crs: str | None = None,
    failed_valves: Sequence[str] = (),
    barriers: Sequence[tuple[float, float]] = (),
    topology: Topology | None = None,
) -> dict:
    """Burst at pipe `pipe` (its middle) or at point `at`; valves in `failed_valves` (codes) cannot
    be closed; `barriers` are squeeze-off points (same CRS as `at`). Returns the fixed-key report."""
    if (pipe is None) == (at is None):
        raise AnalysisError("give either a pipe code or a point, not both")
    topo = topology or topologies.get(engine)
    m = topo.model
    failed = {_valve_by_code(topo, code) for code in failed_valves}
    with engine.connect() as conn:
        if at is not None:
            (x, y), = _to_storage([at], crs)
            pipe_id, fraction, _ = snap_to_pipe(conn, x, y)
            index = m.pipe_index(pipe_id)
        else:
            index, fraction = _pipe_by_code(topo, pipe), 0.5
        cuts: dict[int, list[float]] = {}
        for bx, by in _to_storage(barriers, crs):
            barrier_id, barrier_fraction, _ = snap_to_pipe(conn, bx, by)
            cuts.setdefault(m.pipe_index(barrier_id), []).append(barrier_fraction)
    result = analyse_burst(topo, index, fraction, failed, cuts)
    return report(topo, result, cuts)


def _point(topo: Topology, pipe: int, fraction: float) -> list[float]:
    m = topo.model
    a, b = m.node_xy[m.pipe_from[pipe]], m.node_xy[m.pipe_to[pipe]]
    return [round(float(v), 3) for v in a + (b - a) * fraction]


def _valves(topo: Topology, valves: set[int], already_closed: bool) -> list[dict]:
    m = topo.model
    return [{"code": m.valve_code[v], "pipe": m.pipe_code[m.valve_pipe[v]],
             "x": round(float(m.valve_xy[v, 0]), 3), "y": round(float(m.valve_xy[v, 1]), 3),
             "already_closed": already_closed} for v in valves]


def report(topo: Topology, result: BurstResult, barriers: dict[int, list[float]] | None = None) -> dict:
    """The burst result in codes and coordinates (EPSG:4550), keys fixed."""
    m = topo.model
    iso = result.isolation
    customers = result.affected_customers
    by_type = Counter(m.usertype_label.get(int(t), str(t)) for t in m.customer_type[customers].tolist())
    valves = sorted(_valves(topo, iso.to_close, False) + _valves(topo, iso.already_closed, True),
                    key=lambda v: v["code"])
    second_ring = None
    if result.first_ring is not None:
        first = result.first_ring
        second_ring = {
            "failed_valves": sorted(m.valve_code[v] for v in result.failed_valves if m.valve_check[v] == 0),
            "first_ring_valves": sorted(m.valve_code[v] for v in first.to_close),
            "added_valves": sorted(m.valve_code[v] for v in iso.to_close - first.to_close),
            "added_isolated_pipes": sorted(m.pipe_code[q] for q in set(iso.pieces) - set(first.pieces)),
        }
    return {
        "network_version": m.version,
        "burst": {"pipe": m.pipe_code[result.pipe], "fraction": round(result.fraction, 6),
                  "point": _point(topo, result.pipe, result.fraction)},
        "valves_to_close": valves,
        "isolated_pipes": sorted(m.pipe_code[result.isolated_pipes].tolist()),
        "dry_pipes": sorted(m.pipe_code[result.dry_pipes].tolist()),
        "affected_customers": {"count": int(len(customers)), "by_type": dict(sorted(by_type.items())),
                               "list": m.customer_code[customers].tolist()},
        "isolated_length_m": round(result.isolated_length_m, 2),
        "isolated_volume_m3": round(result.isolated_volume_m3, 2),
        "second_ring": second_ring,
        "barriers": [{"pipe": m.pipe_code[q], "fraction": round(f, 6), "point": _point(topo, q, f)}
                     for q, f in sorted(iso.barriers_used)],
        "check_valves_holding": sorted(m.valve_code[v] for v in iso.check_boundary),
        "sources_to_shut": sorted(m.source_station[np.flatnonzero(m.source_nodes == n)[0]] for n in iso.sources),
        "dry_method": result.dry_method,
    }
