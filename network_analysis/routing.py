"""Fastest routes over the road layer: between two points, and from the nearest crew base.

The road graph is built from table `road` (LineStrings in the storage CRS) into networkx: vertices are
road end points (ends closer than 0.01 m merged), one directed edge per direction a road may be
driven (one-way roads only in their digitised direction), weighted by travel time at the road's
`speed_kmh`. It is cached per database and rebuilt only when the road table changed.

A point is snapped onto the nearest road (at most 500 m away); that road is split virtually at
the snapped point by temporary vertices, so that a route starts and ends exactly there rather than
at a road end. The walk between the point and the road is reported apart, as `access_m`.

A route between two points is an A* search (the straight line at the fastest road's speed bounds
the time left: exact, and about half the work of a Dijkstra); the nearest crew base is one Dijkstra
from the incident over the reversed graph, which times every base at once. Temporary vertices are
added to the shared graph under its lock, so routes on one graph run one at a time.

All lengths are metres, times seconds (minutes in results), coordinates easting/northing in the
storage CRS (the demo's EPSG:4550) unless a `crs` is given for the input points.
"""
from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar, cast

import networkx as nx
import numpy as np
import shapely
import shapely.ops
import sqlalchemy as sa
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from core.crs import points_to_storage
from core.errors import Conflict, InvalidInput
from db.catalog import storage_srid
from network_analysis.cache import VersionedCache

SNAP_LIMIT_M = 500.0  # a point farther than this from every road cannot be routed
MERGE_M = 0.01  # road ends closer than this are one vertex

_VERSION_SQL = "SELECT version FROM road_version"  # bumped by a trigger on every write to road (0007)

_START, _END = "start", "end"  # temporary vertices; road vertices are ints
Tag = TypeVar("Tag", bound=Hashable)  # the caller's names for the temporary start vertices


@dataclass(frozen=True)
class Snap:
    """A point snapped onto a road: road index, distance along it from its first vertex (m),
    the point on the road and the walk from the given point to it (m), storage CRS."""

    road: int
    along_m: float
    point: tuple[float, float]
    access_m: float


@dataclass
class RoadGraph:
    """The road layer of one database at one version, as a directed networkx graph.

    Edge attributes: `time` (s), `length` (m), `road` (index into the arrays here), `from_m`,
    `to_m` (the stretch of that road driven, m from its first vertex; from_m > to_m when driven
    against its digitised direction).
    """

    version: int
    road_id: np.ndarray
    code: np.ndarray  # object
    name: np.ndarray  # object
    oneway: np.ndarray  # bool
    geom: np.ndarray  # shapely LineStrings, 2D, storage CRS
    length: np.ndarray  # m
    seconds: np.ndarray  # travel time over the whole road, s
    srid: int  # EPSG code of the storage CRS the geometries are in
    first: np.ndarray = field(init=False)  # vertex of the first point of each road
    last: np.ndarray = field(init=False)
    vertex_xy: np.ndarray = field(init=False)
    graph: nx.DiGraph = field(init=False)
    lock: threading.Lock = field(init=False, default_factory=threading.Lock)  # guards temporary vertices
    _tree: shapely.STRtree = field(init=False)
    _drivable: np.ndarray = field(init=False)  # road indices in the STRtree (length > 0)
    top_speed_ms: float = field(init=False)  # the fastest road's speed, m/s

    def __post_init__(self) -> None:
        n = len(self.geom)
        ends = np.vstack([shapely.get_coordinates(shapely.get_point(self.geom, 0)).reshape(-1, 2),
                          shapely.get_coordinates(shapely.get_point(self.geom, -1)).reshape(-1, 2)])
        label = np.empty(0, np.int64)
        if n:
            # ends within MERGE_M are one vertex, transitively (digitising noise at intersections)
            pairs = cKDTree(ends).query_pairs(MERGE_M, output_type="ndarray")
            near = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(2 * n, 2 * n))
            _, label = connected_components(near, directed=False)
        self.first, self.last = label[:n], label[n:]
        self.vertex_xy = np.zeros((int(label.max(initial=-1)) + 1, 2))
        self.vertex_xy[label] = ends
        self._drivable = np.flatnonzero(self.length > 0)
        self.top_speed_ms = float(np.max(self.length[self._drivable] / self.seconds[self._drivable], initial=1.0))
        self._tree = shapely.STRtree(self.geom[self._drivable])
        self.graph = nx.DiGraph()
        self.graph.add_nodes_from(range(len(self.vertex_xy)))
        edges = []
        for r in self._drivable.tolist():
            u, v, length = int(self.first[r]), int(self.last[r]), float(self.length[r])
            if u == v:
                continue  # a closed ring never shortens a route; it can still be snapped onto
            edges.append((u, v, self._stretch(r, 0.0, length)))
            if not self.oneway[r]:
                edges.append((v, u, self._stretch(r, length, 0.0)))
        _add_fastest(self.graph, edges)

    @classmethod
    def load(cls, conn: sa.Connection) -> RoadGraph:
        """Read the road table (call inside one snapshot so that version and rows agree)."""
        version = conn.execute(sa.text(_VERSION_SQL)).scalar_one()
        rows = conn.execute(sa.text(
            "SELECT id, code, name, speed_kmh, oneway, ST_AsBinary(ST_Force2D(geom)) FROM road ORDER BY id")).all()
        cols = list(zip(*rows, strict=True)) if rows else [()] * 6
        geom = shapely.from_wkb(np.array(cols[5], dtype=object)).reshape(-1)
        length = shapely.length(geom).reshape(-1)
        speed_ms = np.asarray(cols[3], dtype=float) / 3.6  # km/h → m/s
        return cls(version=version, road_id=np.asarray(cols[0], dtype=np.int64),
                   code=np.asarray(cols[1], dtype=object), name=np.asarray(cols[2], dtype=object),
                   oneway=np.asarray(cols[4], dtype=bool), geom=geom, length=length, seconds=length / speed_ms,
                   srid=storage_srid(conn))

    def _stretch(self, road: int, from_m: float, to_m: float) -> dict:
        """Edge attributes for driving `road` from `from_m` to `to_m` (m along it)."""
        part = abs(to_m - from_m)
        return {"time": float(self.seconds[road]) * part / float(self.length[road]), "length": part,
                "road": road, "from_m": from_m, "to_m": to_m}

    # --- snapping ---------------------------------------------------------------------------

    def snap(self, points: np.ndarray) -> list[Snap | None]:
        """Each (x, y) point (storage CRS) snapped onto its nearest road; None beyond SNAP_LIMIT_M."""
        points = np.asarray(points, dtype=float).reshape(-1, 2)
        result: list[Snap | None] = [None] * len(points)
        if len(self._drivable) == 0 or len(points) == 0:
            return result
        pts = shapely.points(points)
        (which, hit), dist = self._tree.query_nearest(pts, max_distance=SNAP_LIMIT_M, return_distance=True,
                                                      all_matches=False)
        roads = self._drivable[hit]
        along = shapely.line_locate_point(self.geom[roads], pts[which])
        on_road = shapely.get_coordinates(shapely.line_interpolate_point(self.geom[roads], along))
        for i, r, a, xy, d in zip(which.tolist(), roads.tolist(), along.tolist(), on_road.tolist(), dist.tolist(),
                                  strict=True):
            result[i] = Snap(r, a, (xy[0], xy[1]), d)
        return result

    def snap_one(self, x: float, y: float, name: str = "point") -> Snap:
        """(x, y) in the storage CRS snapped onto the nearest road.

        Parameters
        ----------
        x, y
            Easting and northing in the storage CRS (`srid`), m.
        name
            The caller's parameter that gave the point: the field of the InvalidInput raised when
            no road lies within SNAP_LIMIT_M (500 m) of it or it is not finite.

        Returns
        -------
        Snap
            The nearest point on a drivable road. Conflict when there is no road at all.
        """
        if not (np.isfinite(x) and np.isfinite(y)):
            raise InvalidInput(name, f"point ({x}, {y}) is not a finite coordinate in EPSG:{self.srid}")
        if not len(self._drivable):
            raise Conflict("the road table is empty: nothing to route on")
        snap = self.snap(np.array([[x, y]]))[0]
        if snap is None:
            raise InvalidInput(name, f"no road within {SNAP_LIMIT_M:g} m of ({x:.1f}, {y:.1f}) "
                                    f"(EPSG:{self.srid})")
        return snap

    # --- temporary vertices for snapped points ----------------------------------------------

    def _departures(self, snap: Snap, tag: Hashable) -> list[tuple]:
        """Edges from the temporary vertex `tag` at `snap` to the ends of its road it may drive to."""
        r, a = snap.road, snap.along_m
        edges = [(tag, int(self.last[r]), self._stretch(r, a, float(self.length[r])))]
        if not self.oneway[r]:
            edges.append((tag, int(self.first[r]), self._stretch(r, a, 0.0)))
        return edges

    def _arrivals(self, snap: Snap, tag: Hashable) -> list[tuple]:
        """Edges into the temporary vertex `tag` at `snap` from the ends of its road."""
        r, a = snap.road, snap.along_m
        edges = [(int(self.first[r]), tag, self._stretch(r, 0.0, a))]
        if not self.oneway[r]:
            edges.append((int(self.last[r]), tag, self._stretch(r, float(self.length[r]), a)))
        return edges

    def _direct(self, start: Snap, start_tag: Hashable, end: Snap, end_tag: Hashable) -> list[tuple]:
        """The edge along one road between two snapped points on it, when it may be driven so."""
        if start.road != end.road or (self.oneway[start.road] and end.along_m < start.along_m):
            return []
        return [(start_tag, end_tag, self._stretch(start.road, start.along_m, end.along_m))]

    # --- results ----------------------------------------------------------------------------

    def legs(self, path: Sequence[Hashable]) -> list[dict]:
        """Edge attributes along a vertex path (copied: temporary edges vanish afterwards)."""
        return [dict(self.graph.edges[a, b]) for a, b in itertools.pairwise(path)]

    def describe(self, legs: list[dict], start: Snap, end: Snap) -> dict:
        """The route report: length (m), minutes, road names, GeoJSON LineString (storage CRS)."""
        coords: list[list[float]] = []
        names: list[str] = []
        for leg in legs:
            if leg["length"] <= 0:
                continue  # a snapped point on a road end: nothing driven
            r, a, b = leg["road"], leg["from_m"], leg["to_m"]
            full = {a, b} == {0.0, float(self.length[r])}
            part = self.geom[r] if full else shapely.ops.substring(self.geom[r], a, b)
            xy = shapely.get_coordinates(part)
            if full and a > b:
                xy = xy[::-1]
            coords.extend(xy.tolist() if not coords else xy[1:].tolist())  # first = last of previous leg
            if not names or names[-1] != self.name[r]:
                names.append(str(self.name[r]))
        if len(coords) < 2:  # start and end at the same place on the road
            coords = [list(start.point), list(end.point)]
            names = [str(self.name[start.road])]
        return {
            "length_m": round(sum(leg["length"] for leg in legs), 2),
            "minutes": round(sum(leg["time"] for leg in legs) / 60.0, 1),
            "roads": names,
            "geometry": {"type": "LineString", "coordinates": [[round(x, 3), round(y, 3)] for x, y in coords]},
            "start": [round(start.point[0], 3), round(start.point[1], 3)],
            "end": [round(end.point[0], 3), round(end.point[1], 3)],
            "access_m": {"start": round(start.access_m, 2), "end": round(end.access_m, 2)},
        }

    def _time_bound(self, start: Snap, end: Snap) -> Callable[[Hashable, Hashable], float]:
        """A* heuristic: straight-line distance to `end` at the fastest road speed (s), never more
        than the true time (vertex positions are within MERGE_M of the road ends: allowed for)."""
        ex, ey = end.point
        xy = self.vertex_xy

        def bound(u: Hashable, _target: Hashable) -> float:
            if u == _END:
                return 0.0
            x, y = start.point if u == _START else xy[cast(int, u)]  # the others are road vertices
            return max(0.0, math.hypot(x - ex, y - ey) - MERGE_M) / self.top_speed_ms

        return bound

    def fastest(self, start: Snap, end: Snap) -> list[dict]:
        """Legs of the fastest path from one snapped point to another; InvalidInput("end") if none."""
        temporary = self._departures(start, _START) + self._arrivals(end, _END) + self._direct(start, _START, end, _END)
        with self.lock:
            _add_fastest(self.graph, temporary)
            try:
                path = nx.astar_path(self.graph, _START, _END, heuristic=self._time_bound(start, end), weight="time")
                return self.legs(path)
            except nx.NetworkXNoPath:
                raise InvalidInput(
                    "end", f"no road path from ({start.point[0]:.1f}, {start.point[1]:.1f}) to "
                    f"({end.point[0]:.1f}, {end.point[1]:.1f}): the roads there are not connected "
                    "(or one-way streets lead away)") from None
            finally:
                self.graph.remove_nodes_from([_START, _END])

    def fastest_from_any(self, starts: dict[Tag, Snap], end: Snap) -> tuple[dict[Tag, float], Tag | None, list[dict]]:
        """One Dijkstra from `end` over the reversed graph: travel time (s) from each start that
        can reach `end` (in the order of `starts`), the fastest start (the first one on a tie)
        and the legs of its path."""
        temporary = self._arrivals(end, _END)
        for tag, snap in starts.items():
            temporary += self._departures(snap, tag) + self._direct(snap, tag, end, _END)
        with self.lock:
            _add_fastest(self.graph, temporary)
            try:
                # start vertices only have out-edges: no route passes through another start
                pred, dist = nx.dijkstra_predecessor_and_distance(self.graph.reverse(copy=False), _END, weight="time")
                times = {tag: dist[tag] for tag in starts if tag in dist}
                if not times:
                    return times, None, []
                best = min(times, key=times.__getitem__)
                path = [best]
                while path[-1] != _END:
                    path.append(pred[path[-1]][0])
                return times, best, self.legs(path)
            finally:
                self.graph.remove_nodes_from([_END, *starts])


def _add_fastest(graph: nx.DiGraph, edges: list[tuple]) -> None:
    """Add edges; of parallel ones (same vertices, same direction) the fastest is kept."""
    for u, v, attrs in sorted(edges, key=lambda e: -e[2]["time"]):
        graph.add_edge(u, v, **attrs)


road_graphs: VersionedCache[RoadGraph] = VersionedCache(_VERSION_SQL, RoadGraph.load)


def route(engine: sa.Engine, start: tuple[float, float], end: tuple[float, float], crs: str | None = None,
          graph: RoadGraph | None = None) -> dict:
    """The fastest route by road between two points.

    Parameters
    ----------
    engine
        The database (its road layer).
    start, end
        x, y in `crs`, east-first (easting or longitude first).
    crs
        CRS of the points; None: the storage CRS (`db.catalog.storage_srid`).
    graph
        The road graph to use (default: the database's, cached per road version).

    Returns
    -------
    dict
        length_m (m), minutes (at road speeds, 1 decimal), roads (names in order), geometry
        (GeoJSON LineString, storage CRS), start, end (where the route meets the roads, storage
        CRS), access_m {start, end} (walk from the given points to the roads, m).

    Raises
    ------
    InvalidInput
        Naming `crs` (unknown), `start` or `end` (no road within 500 m; `end` for no road path
        either).
    Conflict
        The road table is empty.
    """
    (sx, sy), (ex, ey) = points_to_storage([start, end], crs, storage_srid(engine))
    graph = graph or road_graphs.get(engine)
    a, b = graph.snap_one(sx, sy, "start"), graph.snap_one(ex, ey, "end")
    return graph.describe(graph.fastest(a, b), a, b)


def route_from_nearest_crew_base(engine: sa.Engine, end: tuple[float, float], crs: str | None = None,
                                 graph: RoadGraph | None = None) -> dict:
    """The crew base (抢修站) with the shortest travel time to a point, and its route.

    Parameters
    ----------
    engine
        The database (its road layer and crew bases).
    end
        The incident: x, y in `crs`, east-first.
    crs
        CRS of the point; None: the storage CRS.
    graph
        The road graph to use (default: the database's, cached per road version).

    Returns
    -------
    dict
        crew_base {code, name, phone (masked), crew_count, point}; route (as `route` gives it);
        others (reachable bases ranked by minutes); unreachable (codes of bases with no road
        within 500 m or no road path).

    Raises
    ------
    InvalidInput
        Naming `crs` (unknown) or `end` (no road within 500 m, no crew base can reach it).
    Conflict
        No roads, or no crew base at all.
    """
    (x, y), = points_to_storage([end], crs, storage_srid(engine))
    graph = graph or road_graphs.get(engine)
    target = graph.snap_one(x, y, "end")
    with engine.connect() as conn:
        # The route process is public: the duty phone is read masked (138****0000) from the
        # published view, like the crew_bases collection, until accounts give scoped access.
        bases = conn.execute(sa.text(
            "SELECT code, name, phone, crew_count, ST_X(geom), ST_Y(geom) FROM published.crew_base ORDER BY code"
        )).all()
    if not bases:
        raise Conflict("no crew base in the database: nothing to route from")
    snaps = graph.snap(np.array([(b[4], b[5]) for b in bases]))
    starts = {("base", i): s for i, s in enumerate(snaps) if s is not None}
    times, best, legs = graph.fastest_from_any(starts, target)
    if best is None:
        raise InvalidInput("end", f"no crew base can reach ({x:.1f}, {y:.1f}) by road")
    ranked = sorted(times, key=times.__getitem__)  # stable: ties stay in code order, best first

    def base(i: int) -> dict:
        code, name, phone, crew_count, bx, by = bases[i]
        return {"code": code, "name": name, "phone": phone, "crew_count": crew_count,
                "point": [round(bx, 3), round(by, 3)]}

    return {
        "crew_base": base(best[1]),
        "route": graph.describe(legs, starts[best], target),
        "others": [{**base(tag[1]), "minutes": round(times[tag] / 60.0, 1)} for tag in ranked[1:]],
        "unreachable": [bases[i][0] for i in range(len(bases)) if ("base", i) not in times],
    }
