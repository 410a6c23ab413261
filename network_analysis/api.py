"""The burst analysis as a Python API on codes and coordinates, returning plain JSON-ready dicts.

Two ways in, one analysis:

- `burst_analysis(engine, …)`: the network of a database (its topology cached per network
  version), points snapped onto pipes in PostGIS, with the sensitive sites and, on request, the
  outage area and the GeoJSON of what is cut off;
- `burst_in_memory(topology, …)`: any topology, e.g. of a model built from plain data
  (`network_analysis.model.build_model`), points snapped in memory; the report without the parts
  that need the database.

The CLI and the OGC API processes call these; keys of the returned dicts are fixed so that tools
can rely on them. Coordinates are easting/northing in metres in the storage CRS (the model's
`srid`, the database's `db.catalog.storage_srid`) unless a `crs` is given. A bad input raises
`core.errors.InvalidInput` naming the parameter at fault (``pipe``, ``point``, ``crs``,
``failed_valves[k]``, ``barriers[k]``). Stored incidents are emergency/incidents.py's.
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TypedDict

import numpy as np
import shapely
import shapely.geometry
import shapely.ops
import sqlalchemy as sa

from core.crs import points_to_storage, transformer
from core.errors import InvalidInput
from db import acting
from network_analysis import scope
from network_analysis.burst import BurstResult, analyse_burst
from network_analysis.model import CLASS_MAX_PRESSURE_SQL, LIVE
from network_analysis.topology import Topology, topologies

SNAP_TOLERANCE_M = 50.0  # a burst or barrier point must lie this close to a pipe
OUTAGE_BUFFER_M = 15.0  # the outage area: this far around every isolated or dry pipe
LARGE_OUTAGE_PIPES = 5000  # beyond, the outage area is a hull and dry pipes are not listed as features

# (x, y) in the storage CRS → (pipe index, fraction along it, distance in m) of the nearest pipe in
# service, or None when there is no pipe at all
NearestPipe = Callable[[float, float], tuple[int, float, float] | None]


def nearest_pipe_in_database(conn: sa.Connection, x: float, y: float, srid: int) -> tuple[int, float, float] | None:
    """The pipe in service nearest to a point, by the database (its real geometry, its index).

    Parameters
    ----------
    conn
        A connection to the database.
    x, y
        Easting and northing in the storage CRS, m.
    srid
        EPSG code of the storage CRS.

    Returns
    -------
    tuple or None
        (pipe id, fraction along the pipe from its from-node, planar distance in m), or None when
        no pipe is in service.
    """
    row = conn.execute(sa.text(
        f"""
        SELECT id, ST_LineLocatePoint(ST_Force2D(geom), pt), ST_Distance(geom, pt)
        FROM pipe, ST_SetSRID(ST_MakePoint(:x, :y), :srid) AS pt
        WHERE {LIVE}  -- only pipes in service carry gas
        ORDER BY geom <-> pt LIMIT 1
        """), {"x": x, "y": y, "srid": srid}).first()
    return None if row is None else (int(row[0]), float(row[1]), float(row[2]))


def _snapped(nearest: NearestPipe, x: float, y: float, field: str) -> tuple[int, float]:
    """(pipe index, fraction) of the pipe under (x, y), or InvalidInput(field) when none is near."""
    hit = nearest(x, y)
    if hit is None or not hit[2] <= SNAP_TOLERANCE_M:
        far = "no pipe at all" if hit is None else f"the nearest pipe is {hit[2]:,.0f} m away"
        raise InvalidInput(field, f"point ({x:.1f}, {y:.1f}) is not on the network: {far} "
                                  f"(tolerance {SNAP_TOLERANCE_M:g} m)")
    return hit[0], hit[1]


def _pipe_by_code(topo: Topology, code: str) -> int:
    hits = topo.index_of("pipe", code)
    if len(hits) == 0:
        raise InvalidInput("pipe", f"unknown pipe code {code!r}")
    if len(hits) > 1:
        raise InvalidInput("pipe", f"pipe code {code!r} is used by {len(hits)} enterprises: give a point on the "
                                   f"pipe instead")
    return int(hits[0])


def _failed_valves(topo: Topology, codes: Sequence[str]) -> set[int]:
    """Valve indices of the codes given as failed; each must be a valve that is worked by hand."""
    m = topo.model
    failed = set()
    for k, code in enumerate(codes):
        field = f"failed_valves[{k}]"
        hits = topo.index_of("valve", code)
        if len(hits) != 1:
            raise InvalidInput(field, f"unknown valve code {code!r}" if len(hits) == 0 else
                                      f"valve code {code!r} is ambiguous ({len(hits)} valves)")
        v = int(hits[0])
        if m.valve_check[v]:
            raise InvalidInput(field, f"valve {m.valve_code[v]} is a check valve: it is not closed by hand, so it "
                                      f"cannot fail to close")
        if m.valve_closed[v]:
            raise InvalidInput(field, f"valve {m.valve_code[v]} is normally closed: it stays closed, it cannot "
                                      f"fail open")
        failed.add(v)
    return failed


def _analyse(topo: Topology, nearest: NearestPipe, pipe: str | None, point: tuple[float, float] | None,
             crs: str | None, failed_valves: Sequence[str], barriers: Sequence[tuple[float, float]]
             ) -> tuple[dict, BurstResult]:
    """The inputs checked and resolved to indices, the burst analysed, the report in codes."""
    if (pipe is None) == (point is None):
        raise InvalidInput(None, "give either a pipe code or a point, not both")
    m = topo.model
    failed = _failed_valves(topo, failed_valves)
    if pipe is not None:
        index, fraction = _pipe_by_code(topo, pipe), 0.5
    elif point is not None:
        (x, y), = points_to_storage([point], crs, m.srid)
        index, fraction = _snapped(nearest, x, y, "point")
    cuts: dict[int, list[float]] = {}
    for k, (bx, by) in enumerate(points_to_storage(barriers, crs, m.srid)):
        barrier, barrier_fraction = _snapped(nearest, bx, by, f"barriers[{k}]")
        cuts.setdefault(barrier, []).append(barrier_fraction)
    result = analyse_burst(topo, index, fraction, failed, cuts)
    return report(topo, result), result


def burst_in_memory(
    topology: Topology,
    pipe: str | None = None,
    point: tuple[float, float] | None = None,
    crs: str | None = None,
    failed_valves: Sequence[str] = (),
    barriers: Sequence[tuple[float, float]] = (),
) -> dict:
    """The burst analysis on a topology alone, without a database.

    Points are snapped onto the model's pipe geometry (straight lines between the end nodes when
    the model has none), within SNAP_TOLERANCE_M.

    Parameters
    ----------
    topology
        The network, e.g. ``Topology(build_model(tables, srid))``.
    pipe
        Code of the burst pipe (the burst is at its middle); or give `point`.
    point
        x, y of the burst in `crs`, snapped to the nearest pipe in service.
    crs
        CRS of `point` and `barriers` (east-first: easting or longitude first); None: the model's
        storage CRS (``topology.model.srid``, metres).
    failed_valves
        Codes of valves that cannot be closed: the isolation grows past them to the second ring.
    barriers
        x, y points (in `crs`) where a temporary squeeze-off cuts the pipe.

    Returns
    -------
    dict
        The fixed-key report of `report` (codes; coordinates in the storage CRS, m; lengths m,
        volumes m³ at standard conditions).

    Raises
    ------
    InvalidInput
        Naming the parameter: ``pipe``, ``point``, ``crs``, ``failed_valves[k]``, ``barriers[k]``
        (field None when both or neither of `pipe` and `point` are given).
    """
    out, _ = _analyse(topology, topology.model.nearest_pipe, pipe, point, crs, failed_valves, barriers)
    return out


class BurstArguments(TypedDict, total=False):
    """The keyword arguments of `burst_analysis` after the engine, for callers that pass them on
    (emergency.incidents.analyse_and_save)."""

    pipe: str | None
    point: tuple[float, float] | None
    crs: str | None
    failed_valves: Sequence[str]
    barriers: Sequence[tuple[float, float]]
    topology: Topology | None
    geometry: bool


def burst_analysis(
    engine: sa.Engine,
    pipe: str | None = None,
    point: tuple[float, float] | None = None,
    crs: str | None = None,
    failed_valves: Sequence[str] = (),
    barriers: Sequence[tuple[float, float]] = (),
    topology: Topology | None = None,
    geometry: bool = False,
) -> dict:
    """The burst analysis on the database's network, with what lies around the outage.

    Parameters
    ----------
    engine
        The database.
    pipe, point, crs, failed_valves, barriers
        As for `burst_in_memory`; points are snapped onto the pipes' geometry in the database.
    topology
        The topology to use (default: the database's, cached per network version).
    geometry
        Add the outage area (``outage_area``, a GeoJSON (Multi)Polygon) and the isolated and dry
        pipes and the valves to close (``features``: FeatureCollections), in CRS84 lon/lat.

    Returns
    -------
    dict
        The report of `burst_in_memory` plus ``sensitive_sites`` (schools, hospitals… in the outage
        area or the burst pipe's impact radius, nearest first, distances in m), ``outage_area``
        (None without `geometry`), ``features`` (with `geometry` only) and ``incident`` (None: an
        incident is stored by emergency.incidents.analyse_and_save).

    Raises
    ------
    InvalidInput
        As `burst_in_memory`.
    """
    topo = topology or topologies.get(engine)
    m = topo.model
    with engine.connect() as conn:
        def nearest(x: float, y: float) -> tuple[int, float, float] | None:
            hit = nearest_pipe_in_database(conn, x, y, m.srid)
            return None if hit is None else (m.pipe_index(hit[0]), hit[1], hit[2])

        out, result = _analyse(topo, nearest, pipe, point, crs, failed_valves, barriers)
        # Which sites are concerned is part of the analysis of the whole network: found as the
        # system (under row-level security these spatial joins cannot use the GiST indexes, as
        # ST_DWithin is not LEAKPROOF: a million pipes scanned per burst), then cut to the scope.
        with acting.system_within(conn):
            sites = sensitive_sites(conn, topo, result.pipe, np.union1d(result.isolated_pipes, result.dry_pipes))
        out["sensitive_sites"] = [entry for _, entry in sites]
        if acting.current() is not None:   # a request's account: list only what its scope holds
            scope.cut_to_scope(conn, topo, result, out, pipe is not None, list(failed_valves),
                               [site for site, _ in sites])
        if geometry:
            out["outage_area"], out["features"] = _outage_geometry(conn, topo, result)
        else:
            out["outage_area"] = None
    out["incident"] = None
    return out


def sensitive_sites(conn: sa.Connection, topo: Topology, burst_pipe: int,
                    affected: np.ndarray) -> list[tuple[int, dict]]:
    """Schools, hospitals, malls… within the outage area or the burst pipe's impact radius.

    The outage area is OUTAGE_BUFFER_M (15 m) around every isolated or dry pipe; the potential
    impact radius of the burst pipe is r = 0.099 · √(d² · p) (GB 32167; r in m, d the outside
    diameter in mm, p the maximum operating pressure in MPa). Driven from the sites near the affected
    area's bounding box, with the membership test done in memory, so that a city-wide outage costs
    one pass over the sites, not one look-up per pipe. Read as `conn`'s role sees the tables: the
    burst analysis asks as the system and cuts the answer to the caller's scope
    (network_analysis.scope).

    Parameters
    ----------
    conn
        A connection to the database of `topo`.
    topo
        The topology the indices refer to.
    burst_pipe
        Pipe index of the burst.
    affected
        Pipe indices of the isolated and dry pipes.

    Returns
    -------
    list of (int, dict)
        The site's database id and its entry: code, name, type (中文), in_outage_area,
        in_impact_radius, distance_m (to the burst pipe, m), impact_radius_m; nearest first.
    """
    m = topo.model
    ends = np.concatenate([m.pipe_from[affected], m.pipe_to[affected]])
    xy = m.node_xy[ends] if len(ends) else m.node_xy[[m.pipe_from[burst_pipe]]]
    (xmin, ymin), (xmax, ymax) = xy.min(axis=0), xy.max(axis=0)
    # Two statements, not one: with the affected pipes as a join condition PostgreSQL walks the
    # pipes by id for every site (30 ms per burst at a million pipes); membership is tested here.
    pairs = conn.execute(sa.text(
        """
        SELECT s.id, p.id FROM sensitive_site s
        JOIN pipe p ON ST_DWithin(s.geom, p.geom, :buffer)
        WHERE s.geom && ST_Expand(ST_MakeEnvelope(:xmin, :ymin, :xmax, :ymax, :srid), :buffer)
        """), {"buffer": OUTAGE_BUFFER_M, "xmin": float(xmin), "ymin": float(ymin), "xmax": float(xmax),
               "ymax": float(ymax), "srid": m.srid}).all()
    pairs_arr = np.array(pairs, np.int64).reshape(-1, 2)
    in_outage = np.unique(pairs_arr[np.isin(pairs_arr[:, 1], m.pipe_id[affected]), 0])
    rows = conn.execute(sa.text(
        f"""
        WITH burst AS (
            SELECT geom, 0.099 * sqrt(coalesce(outside_diameter_mm, diameter_mm) ^ 2
                                      * coalesce(max_operating_pressure_mpa, {CLASS_MAX_PRESSURE_SQL})) AS radius
            FROM pipe WHERE id = :burst
        ),
        near AS (SELECT s.id FROM sensitive_site s, burst b WHERE ST_DWithin(s.geom, b.geom, b.radius))
        SELECT s.id, s.code, s.name, d.label_zh, s.id = ANY(:outage), s.id IN (SELECT id FROM near),
               round(ST_Distance(s.geom, b.geom)::numeric, 1), round(b.radius::numeric, 1)
        FROM sensitive_site s JOIN dict.dt_usersubtype d ON d.code = s.site_type, burst b
        WHERE s.id = ANY(:outage) OR s.id IN (SELECT id FROM near)
        ORDER BY ST_Distance(s.geom, b.geom), s.code
        """), {"burst": int(m.pipe_id[burst_pipe]), "outage": in_outage.tolist()}).all()
    return [(int(site), {"code": code, "name": name, "type": label, "in_outage_area": bool(outage),
                         "in_impact_radius": bool(radius), "distance_m": float(distance), "impact_radius_m": float(r)})
            for site, code, name, label, outage, radius, distance, r in rows]


def _outage_geometry(conn: sa.Connection, topo: Topology, result: BurstResult) -> tuple[dict | None, dict]:
    """(outage area, {"isolated_pipes", "dry_pipes", "valves_to_close"} FeatureCollections), in CRS84.

    Up to LARGE_OUTAGE_PIPES affected pipes the area is the union of 15 m buffers round each pipe,
    in PostGIS. Beyond, it is the buffered convex hull of the pipes' end points, computed in memory,
    and the dry pipes are counted rather than listed as features (a city-wide outage would
    otherwise take minutes and tens of megabytes)."""
    m = topo.model
    isolated = m.pipe_id[result.isolated_pipes].tolist()
    dry = m.pipe_id[result.dry_pipes].tolist()
    if len(isolated) + len(dry) > LARGE_OUTAGE_PIPES:
        return _large_outage(conn, topo, result)
    valves = m.valve_id[sorted(result.isolation.to_close | result.isolation.already_closed)].tolist()
    row = conn.execute(sa.text(
        """
        SELECT ST_AsGeoJSON(ST_Transform(ST_Buffer(ST_Collect(ST_Force2D(geom)), :buffer, 'quad_segs=4'), 4326), 7)
               ::json,
               (SELECT json_build_object('type', 'FeatureCollection', 'features', coalesce(json_agg(json_build_object(
                    'type', 'Feature', 'id', code, 'properties', json_build_object('code', code, 'diameter_mm',
                    diameter_mm, 'pressure_class', pressure_class),
                    'geometry', ST_AsGeoJSON(ST_Transform(ST_Force2D(geom), 4326), 7)::json)), '[]'))
                FROM pipe WHERE id = ANY(:isolated)),
               (SELECT json_build_object('type', 'FeatureCollection', 'features', coalesce(json_agg(json_build_object(
                    'type', 'Feature', 'id', code, 'properties', json_build_object('code', code),
                    'geometry', ST_AsGeoJSON(ST_Transform(ST_Force2D(geom), 4326), 7)::json)), '[]'))
                FROM pipe WHERE id = ANY(:dry)),
               (SELECT json_build_object('type', 'FeatureCollection', 'features', coalesce(json_agg(json_build_object(
                    'type', 'Feature', 'id', code, 'properties', json_build_object('code', code, 'normal_state',
                    normal_state), 'geometry', ST_AsGeoJSON(ST_Transform(ST_Force2D(geom), 4326), 7)::json)), '[]'))
                FROM valve WHERE id = ANY(:valves))
        FROM pipe WHERE id = ANY(:all)
        """), {"buffer": OUTAGE_BUFFER_M, "isolated": isolated, "dry": dry, "valves": valves,
               "all": isolated + dry}).one()
    return row[0], {"isolated_pipes": row[1], "dry_pipes": row[2], "valves_to_close": row[3]}


def _large_outage(conn: sa.Connection, topo: Topology, result: BurstResult) -> tuple[dict | None, dict]:
    m = topo.model
    pipes = np.concatenate([result.isolated_pipes, result.dry_pipes])
    if acting.current() is not None:   # the hull of what the caller may see: none of another's geometry
        seen = scope.visible_ids(conn, "pipe", m.pipe_id[pipes])
        pipes = pipes[np.isin(m.pipe_id[pipes], np.fromiter(seen, np.int64, len(seen)))]
    if len(pipes) == 0:
        return None, {"isolated_pipes": None, "valves_to_close": None, "dry_pipes": None,
                      "dry_pipes_omitted": len(result.dry_pipes), "outage_area_approximate": True}
    xy = m.node_xy[np.unique(np.concatenate([m.pipe_from[pipes], m.pipe_to[pipes]]))]
    hull = shapely.buffer(shapely.convex_hull(shapely.multipoints(xy)), OUTAGE_BUFFER_M, quad_segs=4)
    to_lonlat = transformer(m.srid, 4326).transform
    area = shapely.geometry.mapping(shapely.ops.transform(to_lonlat, hull))
    isolated_only = {"isolated_pipes": None, "valves_to_close": None}
    if len(result.isolated_pipes) <= LARGE_OUTAGE_PIPES:  # the isolation itself is listed in full
        isolated_only = _outage_geometry(conn, topo, dataclasses.replace(result, dry_pipes=np.empty(0, np.int64)))[1]
    features = {**isolated_only, "dry_pipes": None, "dry_pipes_omitted": len(result.dry_pipes),
                "outage_area_approximate": True}
    return area, features


def _point(topo: Topology, pipe: int, fraction: float) -> list[float]:
    m = topo.model
    a, b = m.node_xy[m.pipe_from[pipe]], m.node_xy[m.pipe_to[pipe]]
    return [round(float(v), 3) for v in a + (b - a) * fraction]


def _valves(topo: Topology, valves: set[int], already_closed: bool) -> list[dict]:
    m = topo.model
    return [{"code": m.valve_code[v], "pipe": m.pipe_code[m.valve_pipe[v]],
             "x": round(float(m.valve_xy[v, 0]), 3), "y": round(float(m.valve_xy[v, 1]), 3),
             "already_closed": already_closed} for v in valves]


def report(topo: Topology, result: BurstResult) -> dict:
    """The burst result in codes and coordinates, keys fixed.

    Parameters
    ----------
    topo
        The topology `result` was computed on.
    result
        The analysis on indices (`network_analysis.burst.analyse_burst`).

    Returns
    -------
    dict
        network_version; burst {pipe, fraction, point}; valves_to_close [{code, pipe, x, y,
        already_closed}]; isolated_pipes, dry_pipes (codes); affected_customers {count, by_type,
        list}; isolated_length_m (m); isolated_volume_m3 (m³ at standard conditions); second_ring
        (None unless valves failed); barriers [{pipe, fraction, point}]; check_valves_holding;
        sources_to_shut (station or regulator codes); dry_method; outside_scope (how many of each
        list the caller's scope leaves out: all 0 here, network_analysis.scope fills it). Points
        and valve x, y are easting, northing in the storage CRS (``topo.model.srid``), m.
    """
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
            "first_ring_valves": sorted(m.valve_code[v] for v in first.isolation.to_close),
            "added_valves": sorted(m.valve_code[v] for v in iso.to_close - first.isolation.to_close),
            "added_isolated_pipes": sorted(m.pipe_code[np.setdiff1d(result.isolated_pipes, first.isolated_pipes)]),
            "added_dry_pipes": sorted(m.pipe_code[np.setdiff1d(result.dry_pipes, first.dry_pipes)]),
            "added_customers": len(np.setdiff1d(result.affected_customers, first.affected_customers)),
        }
    return {
        "network_version": m.version,
        "burst": {"pipe": m.pipe_code[result.pipe], "fraction": round(result.fraction, 6),
                  "point": _point(topo, result.pipe, result.fraction)},
        "valves_to_close": valves,
        "isolated_pipes": sorted(m.pipe_code[result.isolated_pipes].tolist()),
        "dry_pipes": sorted(m.pipe_code[result.dry_pipes].tolist()),
        "affected_customers": {"count": len(customers), "by_type": dict(sorted(by_type.items())),
                               "list": m.customer_code[customers].tolist()},
        "isolated_length_m": round(result.isolated_length_m, 2),
        "isolated_volume_m3": round(result.isolated_volume_m3, 2),
        "second_ring": second_ring,
        "barriers": [{"pipe": m.pipe_code[q], "fraction": round(f, 6), "point": _point(topo, q, f)}
                     for q, f in sorted(iso.barriers_used)],
        "check_valves_holding": sorted(m.valve_code[v] for v in iso.check_boundary),
        "sources_to_shut": sorted(topo.source_label[np.flatnonzero(topo.source_nodes == n)[0]] for n in iso.sources),
        "dry_method": result.dry_method,
        "outside_scope": scope.nothing_outside(),
    }
