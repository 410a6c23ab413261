"""The analyses as a Python API on codes and coordinates, returning plain JSON-ready dicts.

The CLI and the OGC API processes call these; keys of the returned dicts are fixed so that tools
can rely on them. Coordinates are EPSG:4550 easting/northing in metres unless a CRS is given.
"""
from __future__ import annotations

import dataclasses
import json
import threading
from collections import Counter
from collections.abc import Sequence

import numpy as np
import shapely
import shapely.geometry
import shapely.ops
import sqlalchemy as sa
from pyproj import CRS, Transformer

from network_analysis.burst import AnalysisError, BurstResult, analyse_burst
from network_analysis.model import CLASS_MAX_PRESSURE_SQL
from network_analysis.topology import Topology, topologies

STORAGE_SRID = 4550
SNAP_TOLERANCE_M = 50.0  # a burst or barrier point must lie this close to a pipe
OUTAGE_BUFFER_M = 15.0  # the outage area: this far around every isolated or dry pipe
LARGE_OUTAGE_PIPES = 5000  # beyond, the outage area is a hull and dry pipes are not listed as features
INCIDENT_STATES = ("planned", "active", "closed")


def points_to_storage(points: Sequence[tuple[float, float]], crs: str | None) -> list[tuple[float, float]]:
    """Points given as x, y in `crs` (easting/northing or lon/lat order, whatever the CRS's
    authority says) → EPSG:4550 easting/northing."""
    if crs is None or not points:
        return [(float(x), float(y)) for x, y in points]
    transform = transformer(crs, STORAGE_SRID).transform
    return [tuple(map(float, transform(x, y))) for x, y in points]


_transformers = threading.local()


def transformer(source: str | int, target: str | int) -> Transformer:
    """An always_xy Transformer, kept per thread: building one costs ≈ 0.4 s (PROJ database
    lookups), and pyproj transformers are not to be shared between threads."""
    cache = _transformers.__dict__.setdefault("by_crs", {})
    key = (str(source), str(target))
    if key not in cache:
        try:
            src = CRS.from_user_input(source)
        except Exception:  # pyproj raises CRSError; anything else is still a bad CRS for the user
            raise AnalysisError(f"unknown CRS {source!r}") from None
        cache[key] = Transformer.from_crs(src, CRS.from_user_input(target), always_xy=True)
    return cache[key]


def snap_to_pipe(conn: sa.Connection, x: float, y: float, tolerance_m: float = SNAP_TOLERANCE_M
                 ) -> tuple[int, float, float]:
    """The pipe nearest to (x, y) in EPSG:4550: (pipe id, fraction along it, distance in m)."""
    row = conn.execute(sa.text(
        """
        SELECT id, ST_LineLocatePoint(ST_Force2D(geom), pt), ST_Distance(geom, pt)
        FROM pipe, ST_SetSRID(ST_MakePoint(:x, :y), 4550) AS pt
        WHERE status = 'in_service'  -- only pipes in service carry gas (model.LIVE)
        ORDER BY geom <-> pt LIMIT 1
        """), {"x": x, "y": y}).first()
    if row is None or row[2] > tolerance_m:
        far = "no pipe at all" if row is None else f"the nearest pipe is {row[2]:,.0f} m away"
        raise AnalysisError(f"point ({x:.1f}, {y:.1f}) is not on the network: {far} "
                            f"(tolerance {tolerance_m:g} m)")
    return int(row[0]), float(row[1]), float(row[2])


def _pipe_by_code(topo: Topology, code: str) -> int:
    hits = topo.index_of("pipe", code)
    if len(hits) == 0:
        raise AnalysisError(f"unknown pipe code {code!r}")
    if len(hits) > 1:
        raise AnalysisError(f"pipe code {code!r} is used by {len(hits)} enterprises: give the pipe id instead")
    return int(hits[0])


def _valve_by_code(topo: Topology, code: str) -> int:
    hits = topo.index_of("valve", code)
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
    geometry: bool = False,
    save_as: str | None = None,
    title: str | None = None,
) -> dict:
    """Burst at pipe `pipe` (its middle) or at point `at`; valves in `failed_valves` (codes) cannot
    be closed; `barriers` are squeeze-off points (same CRS as `at`). Returns the fixed-key report.

    `geometry`: add the outage area and the isolated and dry pipes as GeoJSON (CRS84).
    `save_as`: store the result as an incident in that state ('planned' or 'active').
    """
    if save_as is not None and save_as not in INCIDENT_STATES[:2]:
        raise AnalysisError(f"an incident starts as planned or active, not {save_as!r}")
    if (pipe is None) == (at is None):
        raise AnalysisError("give either a pipe code or a point, not both")
    topo = topology or topologies.get(engine)
    m = topo.model
    failed = {_valve_by_code(topo, code) for code in failed_valves}
    for v in failed:
        if m.valve_check[v]:
            raise AnalysisError(f"valve {m.valve_code[v]} is a check valve: it is not closed by hand, so it cannot "
                                f"fail to close")
        if m.valve_closed[v]:
            raise AnalysisError(f"valve {m.valve_code[v]} is normally closed: it stays closed, it cannot fail open")
    with engine.connect() as conn:
        if at is not None:
            (x, y), = points_to_storage([at], crs)
            pipe_id, fraction, _ = snap_to_pipe(conn, x, y)
            index = m.pipe_index(pipe_id)
        else:
            index, fraction = _pipe_by_code(topo, pipe), 0.5
        cuts: dict[int, list[float]] = {}
        for bx, by in points_to_storage(barriers, crs):
            barrier_id, barrier_fraction, _ = snap_to_pipe(conn, bx, by)
            cuts.setdefault(m.pipe_index(barrier_id), []).append(barrier_fraction)
    result = analyse_burst(topo, index, fraction, failed, cuts)
    out = report(topo, result, cuts)
    affected = np.union1d(result.isolated_pipes, result.dry_pipes)
    with engine.begin() as conn:
        out["sensitive_sites"] = sensitive_sites(conn, topo, index, affected)
        outage, features = _outage_geometry(conn, topo, result) if geometry or save_as else (None, None)
        out["outage_area"] = outage if geometry else None
        if geometry:
            out["features"] = features
        out["incident"] = None
        if save_as:
            request = {"pipe": pipe, "at": list(at) if at else None, "crs": crs, "failed_valves": list(failed_valves),
                       "barriers": [list(b) for b in barriers]}
            out["incident"] = _save_incident(conn, int(m.pipe_id[index]), request, out, outage, save_as, title)
    return out


def sensitive_sites(conn: sa.Connection, topo: Topology, burst_pipe: int, affected: np.ndarray) -> list[dict]:
    """Schools, hospitals, malls… within the outage area (15 m of an isolated or dry pipe) or within
    the potential impact radius of the burst pipe, r = 0.099 · √(d² · p) (GB 32167; r in m, d the
    outside diameter in mm, p the maximum operating pressure in MPa).

    Driven from the sites near the affected area's bounding box, with the membership test done in
    memory, so that a city-wide outage costs one pass over the sites, not one look-up per pipe."""
    m = topo.model
    ends = np.concatenate([m.pipe_from[affected], m.pipe_to[affected]])
    xy = m.node_xy[ends] if len(ends) else m.node_xy[[m.pipe_from[burst_pipe]]]
    (xmin, ymin), (xmax, ymax) = xy.min(axis=0), xy.max(axis=0)
    pairs = conn.execute(sa.text(
        """
        SELECT s.id, p.id FROM sensitive_site s
        JOIN pipe p ON ST_DWithin(s.geom, p.geom, :buffer)
        WHERE s.geom && ST_Expand(ST_MakeEnvelope(:xmin, :ymin, :xmax, :ymax, 4550), :buffer)
        """), {"buffer": OUTAGE_BUFFER_M, "xmin": float(xmin), "ymin": float(ymin), "xmax": float(xmax),
               "ymax": float(ymax)}).all()
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
        SELECT s.code, s.name, d.label_zh, s.id = ANY(:outage), s.id IN (SELECT id FROM near),
               round(ST_Distance(s.geom, b.geom)::numeric, 1), round(b.radius::numeric, 1)
        FROM sensitive_site s JOIN dict.dt_usersubtype d ON d.code = s.site_type, burst b
        WHERE s.id = ANY(:outage) OR s.id IN (SELECT id FROM near)
        ORDER BY ST_Distance(s.geom, b.geom), s.code
        """), {"burst": int(m.pipe_id[burst_pipe]), "outage": in_outage.tolist()}).all()
    return [{"code": code, "name": name, "type": label, "in_outage_area": bool(outage),
             "in_impact_radius": bool(radius), "distance_m": float(distance), "impact_radius_m": float(r)}
            for code, name, label, outage, radius, distance, r in rows]


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


def _large_outage(conn: sa.Connection, topo: Topology, result: BurstResult) -> tuple[dict, dict]:
    m = topo.model
    pipes = np.concatenate([result.isolated_pipes, result.dry_pipes])
    xy = m.node_xy[np.unique(np.concatenate([m.pipe_from[pipes], m.pipe_to[pipes]]))]
    hull = shapely.buffer(shapely.convex_hull(shapely.multipoints(xy)), OUTAGE_BUFFER_M, quad_segs=4)
    to_lonlat = transformer(STORAGE_SRID, 4326).transform
    area = shapely.geometry.mapping(shapely.ops.transform(to_lonlat, hull))
    isolated_only = {"isolated_pipes": None, "valves_to_close": None}
    if len(result.isolated_pipes) <= LARGE_OUTAGE_PIPES:  # the isolation itself is listed in full
        isolated_only = _outage_geometry(conn, topo, dataclasses.replace(result, dry_pipes=np.empty(0, np.int64)))[1]
    features = {**isolated_only, "dry_pipes": None, "dry_pipes_omitted": len(result.dry_pipes),
                "outage_area_approximate": True}
    return area, features


def _save_incident(conn: sa.Connection, pipe_id: int, request: dict, out: dict, outage: dict | None, state: str,
                   title: str | None) -> str:
    number = conn.execute(sa.text("SELECT count(*) + 1 FROM incident")).scalar_one()
    code = f"SG{number:06d}"
    point = out["burst"]["point"]
    conn.execute(sa.text(
        """
        INSERT INTO incident (code, state, title, request, result, network_version, valves_to_close, customers_out,
                              geom, outage_area, enterprise_code, admin_code)
        SELECT :code, :state, :title, CAST(:request AS jsonb), CAST(:result AS jsonb), :version, :valves,
               :customers, ST_SetSRID(ST_MakePoint(:x, :y), 4550),
               ST_Multi(ST_Transform(ST_SetSRID(ST_GeomFromGeoJSON(:area), 4326), 4550)),
               enterprise_code, admin_code
        FROM pipe WHERE id = :pipe
        """), {"code": code, "state": state, "title": title, "request": json.dumps(request, ensure_ascii=False),
               "result": json.dumps({**out, "incident": code}, ensure_ascii=False), "version": out["network_version"],
               "valves": sum(not v["already_closed"] for v in out["valves_to_close"]),
               "customers": out["affected_customers"]["count"], "x": point[0], "y": point[1],
               "area": json.dumps(outage) if outage else None, "pipe": pipe_id})
    return code


def incidents(engine: sa.Engine, state: str | None = None) -> list[dict]:
    """Stored incidents, newest first: code, state, title, counts, when."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            """SELECT code, state, title, valves_to_close, customers_out, result -> 'burst' ->> 'pipe', created_at
               FROM incident WHERE CAST(:state AS text) IS NULL OR state = :state ORDER BY created_at DESC, id DESC"""),
            {"state": state}).all()
    return [{"code": c, "state": s, "title": t, "valves_to_close": v, "customers_out": n, "pipe": p,
             "created_at": at.isoformat()} for c, s, t, v, n, p, at in rows]


def incident(engine: sa.Engine, code: str) -> dict:
    """One stored incident: its state and the burst report as it was computed."""
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT state, title, request, result, created_at, updated_at FROM incident "
                                   "WHERE code = :code"), {"code": code}).first()
    if row is None:
        raise AnalysisError(f"unknown incident {code!r}")
    state, title, request, result, created, updated = row
    return {"code": code, "state": state, "title": title, "request": request, "result": result,
            "created_at": created.isoformat(), "updated_at": updated.isoformat()}


def set_incident_state(engine: sa.Engine, code: str, state: str) -> dict:
    """Move an incident planned → active → closed (never back)."""
    if state not in INCIDENT_STATES:
        raise AnalysisError(f"incident state must be one of {', '.join(INCIDENT_STATES)}, not {state!r}")
    with engine.begin() as conn:
        current = conn.execute(sa.text("SELECT state FROM incident WHERE code = :code FOR UPDATE"),
                               {"code": code}).scalar()
        if current is None:
            raise AnalysisError(f"unknown incident {code!r}")
        if INCIDENT_STATES.index(state) < INCIDENT_STATES.index(current):
            raise AnalysisError(f"incident {code} is {current}: it cannot go back to {state}")
        conn.execute(sa.text("UPDATE incident SET state = :state, updated_at = now() WHERE code = :code"),
                     {"state": state, "code": code})
    return incident(engine, code)


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
    }
