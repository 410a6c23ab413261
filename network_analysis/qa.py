"""Topology QA (`./qiwang qa`): find what is wrong with the network and store it as features.

Every run replaces the content of `topology_issue` in one transaction and returns a summary. The
checks (one `kind` each, as in migration 0006):

- unfed: pipes in valve segments that no source reaches today (normally closed valves closed), and
  the valves, regulators and sentries on them — from the in-memory topology (a graph question);
- device_off_network: valves away from their pipe or not on one of its ends, regulators whose inlet
  or outlet has no pipe of the regulator's pressure class, sentries and other devices away from the
  pipe they name;
- dangling_end: a node with one pipe that is not declared an end (node type 3) nor a service point,
  station outlet or regulator inlet/outlet;
- near_miss: a pipe end close to another pipe of the same tier it is not connected to;
- duplicate_pipe, zero_length, self_loop: pipes joining the same two nodes or lying on each other,
  pipes shorter than 1 cm, pipes from a node back to itself;
- pressure_change_without_regulator: a node where pipes of different pressure classes meet.

Abandoned pipes are out of the network here as in the topology (model.py). A regulator whose inlet
has no pipe at all is accepted: the topology treats it as the source of a partial network's edge.
Geometries are stored 2-D (the column is), in the storage CRS (metres); distances are horizontal.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa

from core.errors import InvalidInput
from db import acting
from network_analysis.model import load_model
from network_analysis.topology import Topology, topologies

KINDS = ("unfed", "device_off_network", "dangling_end", "near_miss", "duplicate_pipe", "zero_length",
         "pressure_change_without_regulator", "self_loop")
SENTRY_TOLERANCE_M = 10.0  # a sentry monitors the pipe beside its chamber or space, not on it
DEVICE_TOLERANCE_M = 5.0  # test posts and other devices stand beside the pipe
ZERO_LENGTH_M = 0.01
SAME_GEOMETRY_M = 0.001  # coordinates equal to the millimetre make the same geometry
ISSUES_RETURNED = 1000
END = 3  # dt_pipeline_node_type 末端

_INSERT = """
    INSERT INTO topology_issue (kind, network_version, feature_type, feature_id, feature_code, detail, geom,
                                enterprise_code, admin_code)
    SELECT :kind, :version, feature_type, feature_id, feature_code, detail, ST_Force2D(geom),
           enterprise_code, admin_code
    FROM ({select}) AS found (feature_type, feature_id, feature_code, detail, geom, enterprise_code, admin_code)
"""

# Pipe ends of the live network: one row per (node, pipe) end; a self-loop gives two.
_ENDS = """
    SELECT from_node_id AS node_id, id AS pipe_id, code, pressure_class FROM pipe WHERE status <> 'abandoned'
    UNION ALL
    SELECT to_node_id, id, code, pressure_class FROM pipe WHERE status <> 'abandoned'
"""

# Sentries and other devices name the pipe they stand beside.
_BESIDE_PIPE = """
    SELECT '{table}', d.id, d.code,
           '设备脱网 / device off network: {table} ' || d.code || ' is '
           || round(ST_Distance(d.geom, p.geom)::numeric, 2) || ' m from its pipe ' || p.code
           || ' (tolerance ' || :{tol} || ' m)',
           d.geom, d.enterprise_code, d.admin_code
    FROM {table} d JOIN pipe p ON p.id = d.pipe_id
    WHERE NOT ST_DWithin(d.geom, p.geom, :{tol})
"""

# One SELECT per SQL check, each giving the columns _INSERT expects. :tol, :near are the caller's
# tolerances (m), :sentry_tol, :device_tol, :zero, :grid the module constants.
_SQL_CHECKS: dict[str, list[str]] = {
    "device_off_network": [
        """
        SELECT 'valve' AS feature_type, v.id AS feature_id, v.code AS feature_code,
               '设备脱网 / device off network: valve ' || v.code || ' ' || concat_ws('; ',
                   CASE WHEN v.node_id NOT IN (p.from_node_id, p.to_node_id)
                        THEN 'sits at node ' || n.code || ', which is not an end of its pipe ' || p.code END,
                   CASE WHEN NOT ST_DWithin(v.geom, p.geom, :tol)
                        THEN 'is ' || round(ST_Distance(v.geom, p.geom)::numeric, 2) || ' m from its pipe '
                             || p.code || ' (tolerance ' || :tol || ' m)' END) AS detail,
               v.geom, v.enterprise_code, v.admin_code
        FROM valve v JOIN pipe p ON p.id = v.pipe_id JOIN node n ON n.id = v.node_id
        WHERE v.node_id NOT IN (p.from_node_id, p.to_node_id) OR NOT ST_DWithin(v.geom, p.geom, :tol)
        """,
        # A bare inlet (no pipe at all) is a partial network's edge source; see the module docstring.
        """
        SELECT 'regulator', r.id, r.code,
               '设备脱网 / device off network: regulator ' || r.code || ' ' || concat_ws('; ',
                   CASE WHEN c.inlet_piped AND NOT c.inlet_ok
                        THEN 'inlet node ' || i.code || ' has no ' || ic.label_zh || ' pipe (class '
                             || r.inlet_pressure_class || ')' END,
                   CASE WHEN NOT c.outlet_ok
                        THEN 'outlet node ' || o.code || ' has no ' || oc.label_zh || ' pipe (class '
                             || r.outlet_pressure_class || ')' END),
               r.geom, r.enterprise_code, r.admin_code
        FROM regulator r
        JOIN node i ON i.id = r.inlet_node_id
        JOIN node o ON o.id = r.outlet_node_id
        JOIN dict.dt_pipe_pressure_type ic ON ic.code = r.inlet_pressure_class
        JOIN dict.dt_pipe_pressure_type oc ON oc.code = r.outlet_pressure_class
        CROSS JOIN LATERAL (SELECT
            EXISTS (SELECT FROM pipe p WHERE p.status <> 'abandoned'
                    AND (p.from_node_id = r.inlet_node_id OR p.to_node_id = r.inlet_node_id)) AS inlet_piped,
            EXISTS (SELECT FROM pipe p WHERE p.status <> 'abandoned' AND p.pressure_class = r.inlet_pressure_class
                    AND (p.from_node_id = r.inlet_node_id OR p.to_node_id = r.inlet_node_id)) AS inlet_ok,
            EXISTS (SELECT FROM pipe p WHERE p.status <> 'abandoned' AND p.pressure_class = r.outlet_pressure_class
                    AND (p.from_node_id = r.outlet_node_id OR p.to_node_id = r.outlet_node_id)) AS outlet_ok) c
        WHERE (c.inlet_piped AND NOT c.inlet_ok) OR NOT c.outlet_ok
        """,
        _BESIDE_PIPE.format(table="sentry", tol="sentry_tol"),
        _BESIDE_PIPE.format(table="device", tol="device_tol"),
    ],
    "dangling_end": [
        f"""
        SELECT 'node', n.id, n.code,
               '末端未标注 / dangling end: node ' || n.code || ' has one pipe (' || e.code || ') but is not an end',
               n.geom, n.enterprise_code, n.admin_code
        FROM (SELECT node_id, min(code) AS code FROM ({_ENDS}) ends GROUP BY node_id HAVING count(*) = 1) e
        JOIN node n ON n.id = e.node_id
        WHERE n.node_type IS DISTINCT FROM {END} AND n.role = 'junction'
          AND NOT EXISTS (SELECT FROM station s WHERE s.outlet_node_id = n.id)
          AND NOT EXISTS (SELECT FROM regulator r WHERE n.id IN (r.inlet_node_id, r.outlet_node_id))
        """,
    ],
    # Per node: the nearest pipe of the same tier that neither touches the node nor is one pipe
    # away from it (a short pipe to a neighbour within the tolerance is a connection, not a miss).
    # Two ends missing each other are one defect: it is reported at the lower node id.
    "near_miss": [
        """
        WITH hits AS MATERIALIZED (
            SELECT n.id, n.code, n.geom, n.enterprise_code, n.admin_code, hit.pipe_code, hit.other_code,
                   hit.distance, hit.partner
            FROM node n CROSS JOIN LATERAL (  -- per node, so that the GiST index on pipe is probed
                SELECT e.code AS pipe_code, q.code AS other_code, ST_Distance(n.geom, q.geom) AS distance,
                       (SELECT m.id FROM node m  -- the other pipe's end it stops short of, if any
                        WHERE m.id IN (q.from_node_id, q.to_node_id) AND ST_DWithin(n.geom, m.geom, :near)
                        ORDER BY ST_Distance(n.geom, m.geom), m.id LIMIT 1) AS partner
                FROM pipe q
                JOIN pipe e ON (e.from_node_id = n.id OR e.to_node_id = n.id) AND e.status <> 'abandoned'
                           AND e.pressure_class = q.pressure_class
                WHERE ST_DWithin(n.geom, q.geom, :near) AND q.status <> 'abandoned'
                  AND n.id <> q.from_node_id AND n.id <> q.to_node_id
                  AND NOT EXISTS (
                      SELECT FROM pipe r WHERE r.status <> 'abandoned'
                        AND ((r.from_node_id = n.id AND r.to_node_id IN (q.from_node_id, q.to_node_id))
                          OR (r.to_node_id = n.id AND r.from_node_id IN (q.from_node_id, q.to_node_id))))
                ORDER BY distance, q.id, e.id
                LIMIT 1) hit
        )
        SELECT 'node', h.id, h.code,
               '近距未接 / near miss: node ' || h.code || ' (end of pipe ' || h.pipe_code || ') is '
               || round(h.distance::numeric, 2) || ' m from pipe ' || h.other_code || ' but not connected to it',
               h.geom, h.enterprise_code, h.admin_code
        FROM hits h
        WHERE NOT EXISTS (SELECT FROM hits g WHERE g.id = h.partner AND g.id < h.id)
        """,
    ],
    # Each duplicate is reported once, against the lowest-id pipe it repeats.
    "duplicate_pipe": [
        """
        WITH live AS (
            SELECT id, least(from_node_id, to_node_id) AS a, greatest(from_node_id, to_node_id) AS b,
                   -- direction-free shape, to the millimetre: a hash key instead of a spatial self-join
                   -- (zero-length pipes have their own finding; snapped, they would all look alike)
                   CASE WHEN length_m >= :zero
                        THEN ST_AsBinary(ST_Normalize(ST_SnapToGrid(ST_Force2D(geom), :grid))) END AS shape
            FROM pipe WHERE status <> 'abandoned'
        ),
        pairs AS (
            SELECT first_value(id) OVER (PARTITION BY a, b ORDER BY id) AS original_id, id AS duplicate_id,
                   'joins the same nodes as' AS why
            FROM live
            UNION ALL
            SELECT first_value(id) OVER (PARTITION BY shape ORDER BY id), id, 'has the same geometry as'
            FROM live WHERE shape IS NOT NULL
        ),
        earliest AS (SELECT DISTINCT ON (duplicate_id) * FROM pairs WHERE original_id <> duplicate_id
                     ORDER BY duplicate_id, original_id, why DESC)
        SELECT 'pipe', q.id, q.code,
               '重复管段 / duplicate pipe: pipe ' || q.code || ' ' || f.why || ' pipe ' || p.code,
               q.geom, q.enterprise_code, q.admin_code
        FROM earliest f JOIN pipe q ON q.id = f.duplicate_id JOIN pipe p ON p.id = f.original_id
        """,
    ],
    "zero_length": [
        """
        SELECT 'pipe', id, code,
               '零长度管段 / zero-length pipe: pipe ' || code || ' is ' || round(length_m::numeric, 4) || ' m long',
               ST_StartPoint(geom), enterprise_code, admin_code
        FROM pipe WHERE status <> 'abandoned' AND length_m < :zero
        """,
    ],
    "pressure_change_without_regulator": [
        f"""
        SELECT 'node', n.id, n.code,
               '压力级制变化无调压 / pressure change without regulator: node ' || n.code || ' joins '
               || (SELECT string_agg(d.label_zh || ' (class ' || d.code || ')', ', ' ORDER BY d.code)
                   FROM dict.dt_pipe_pressure_type d WHERE d.code = ANY (e.classes))
               || ' pipes',
               n.geom, n.enterprise_code, n.admin_code
        FROM (SELECT node_id, array_agg(DISTINCT pressure_class) AS classes FROM ({_ENDS}) ends
              GROUP BY node_id HAVING count(DISTINCT pressure_class) > 1) e
        JOIN node n ON n.id = e.node_id
        """,
    ],
    "self_loop": [
        """
        SELECT 'pipe', p.id, p.code,
               '自环管段 / self-loop: pipe ' || p.code || ' starts and ends at node ' || n.code,
               p.geom, p.enterprise_code, p.admin_code
        FROM pipe p JOIN node n ON n.id = p.from_node_id
        WHERE p.status <> 'abandoned' AND p.from_node_id = p.to_node_id
        """,
    ],
}

# Features on unfed pipes, by id lists computed from the topology.
_UNFED = [
    """
    SELECT 'pipe' AS feature_type, id AS feature_id, code AS feature_code,
           '无气源 / unfed: pipe ' || code || ' is in a valve segment that no source reaches' AS detail,
           geom, enterprise_code, admin_code
    FROM pipe WHERE id = ANY (:pipes)
    """,
    """
    SELECT 'valve', v.id, v.code, '无气源 / unfed: valve ' || v.code || ' is on unfed pipe ' || p.code,
           v.geom, v.enterprise_code, v.admin_code
    FROM valve v JOIN pipe p ON p.id = v.pipe_id WHERE v.id = ANY (:valves)
    """,
    """
    SELECT 'regulator', r.id, r.code,
           '无气源 / unfed: regulator ' || r.code || ': no source reaches its inlet node ' || n.code,
           r.geom, r.enterprise_code, r.admin_code
    FROM regulator r JOIN node n ON n.id = r.inlet_node_id WHERE r.id = ANY (:regulators)
    """,
    """
    SELECT 'sentry', s.id, s.code, '无气源 / unfed: sentry ' || s.code || ' monitors unfed pipe ' || p.code,
           s.geom, s.enterprise_code, s.admin_code
    FROM sentry s  -- a chamber sentry without a pipe of its own watches its valve's pipe
    JOIN pipe p ON p.id = coalesce(s.pipe_id, (SELECT v.pipe_id FROM valve v WHERE v.id = s.valve_id))
    WHERE p.id = ANY (:pipes)
    """,
]


@dataclass(frozen=True)
class Unfed:
    """Indices (into the model's arrays) of what no source reaches today."""

    pipes: np.ndarray
    valves: np.ndarray
    regulators: np.ndarray


def unfed(topo: Topology) -> Unfed:
    """The pipes in valve segments that no source reaches today, and the valves and regulators on them.

    The graph part of the QA, in memory: normally closed valves closed, check valves and regulators
    one way. A regulator is unfed when no source reaches its inlet; one whose inlet has no pipe at
    all is itself a source (the edge of a partial network, see topology.py) and so never unfed.

    Parameters
    ----------
    topo
        The topology of the network checked, as it is operated today.

    Returns
    -------
    Unfed
        Pipe, valve and regulator indices, ascending.
    """
    m = topo.model
    dry = ~topo.supplied[: topo.n_segments]
    dry_pipe = dry[topo.pipe_segment]
    degree = np.diff(topo.node_end_ptr)
    dry_regulator = dry[topo.node_segment[m.regulator_inlet]] & (degree[m.regulator_inlet] > 0)
    return Unfed(pipes=np.flatnonzero(dry_pipe), valves=np.flatnonzero(dry_pipe[m.valve_pipe]),
                 regulators=np.flatnonzero(dry_regulator))


def _topology(engine: sa.Engine, conn: sa.Connection, version: int) -> Topology:
    """The cached topology when it is of this snapshot's network version, else one built in it."""
    topo = topologies.get(engine)
    if topo.model.version == version:
        return topo
    return Topology(load_model(conn))


def run_qa(engine: sa.Engine, tolerance_m: float = 0.5, near_miss_m: float = 1.0) -> dict:
    """Check the network, replace the stored findings (`topology_issue`) and summarise them.

    Parameters
    ----------
    engine
        The database (the findings are written to it, in one transaction).
    tolerance_m
        How far a valve may lie from its pipe, m (planar, in the storage CRS).
    near_miss_m
        How close a pipe end may come to an unconnected pipe of its tier, m.

    Returns
    -------
    dict
        network_version; counts (every kind in KINDS, zeros included); issues (the first 1000 as
        kind, feature_type, feature_code, detail).

    Raises
    ------
    InvalidInput
        Naming `tolerance_m` or `near_miss_m` when it is not a distance ≥ 0.
    """
    for name, value in (("tolerance_m", tolerance_m), ("near_miss_m", near_miss_m)):
        if not (isinstance(value, numbers.Real) and not isinstance(value, bool)
                and math.isfinite(value) and value >= 0):
            raise InvalidInput(name, f"must be a distance in metres ≥ 0, not {value!r}")
    params = {"tol": float(tolerance_m), "near": float(near_miss_m), "sentry_tol": SENTRY_TOLERANCE_M,
              "device_tol": DEVICE_TOLERANCE_M, "zero": ZERO_LENGTH_M, "grid": SAME_GEOMETRY_M}
    # The findings are the whole network's (written as the app's own role when a request's account
    # asked); what the caller is told is read back afterwards under its role: its scope's.
    with acting.as_system(), engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn, \
            conn.begin():
        # Locked before the first query, so the snapshot is taken after any concurrent run committed
        # (it would otherwise leave its findings beside ours). Readers are not blocked.
        conn.execute(sa.text("LOCK TABLE topology_issue IN SHARE ROW EXCLUSIVE MODE"))
        # Many cheap index probes: JIT compilation would cost seconds and save nothing.
        conn.execute(sa.text("SET LOCAL jit = off"))
        version = conn.execute(sa.text("SELECT version FROM network_version")).scalar_one()
        topo = _topology(engine, conn, version)
        conn.execute(sa.text("DELETE FROM topology_issue"))
        found, m = unfed(topo), topo.model
        ids = {"pipes": m.pipe_id[found.pipes].tolist(), "valves": m.valve_id[found.valves].tolist(),
               "regulators": m.regulator_id[found.regulators].tolist()}
        for select in _UNFED:
            conn.execute(sa.text(_INSERT.format(select=select)), {"kind": "unfed", "version": version, **ids})
        for kind, selects in _SQL_CHECKS.items():
            for select in selects:
                conn.execute(sa.text(_INSERT.format(select=select)), {"kind": kind, "version": version, **params})
    with engine.connect() as conn:
        counts = dict.fromkeys(KINDS, 0)
        counts.update(conn.execute(sa.text("SELECT kind, count(*) FROM topology_issue GROUP BY kind")).all())
        issues = [row._asdict() for row in conn.execute(sa.text(
            "SELECT kind, feature_type, feature_code, detail FROM topology_issue ORDER BY id LIMIT :n"),
            {"n": ISSUES_RETURNED})]
    return {"network_version": version, "counts": counts, "issues": issues}
