"""The pipe network as plain NumPy arrays, built from the network's tables.

Everything the graph analyses need and nothing else: no geometry beyond end points, so that a
network of a million pipes fits in a few hundred megabytes and loads in seconds. Database ids are
kept in `*_id` arrays; the analyses work on dense 0-based indices into these arrays.

The tables come either from PostGIS (`load_model`: a handful of COPY queries) or as plain data
frames (`build_model`: a hand-drawn network, a test, another store). Both go through
`build_model`, so the rules that turn table rows into the model (which pipes carry gas, which
stations are sources, the PE inner diameter, the class pressure when none is recorded) are
written once, here.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import shapely
import sqlalchemy as sa

from db.catalog import storage_srid

# Gas at standard conditions (GB/T 13610-style reference: 101.325 kPa, 20 °C); pressures are gauge.
ATMOSPHERE_MPA = 0.101325
# Stations that put gas into a city network (dt_pipe_station_type): gate 门站, offtake 分输站,
# storage 储气站. Regulator (1) and metering (4) stations are fed by the network itself.
SOURCE_STATION_TYPES = (0, 2, 3)
# Only pipes in service carry gas: planned, under construction, idle and abandoned ones do not.
LIVE_STATUS = "in_service"
LIVE = f"status = '{LIVE_STATUS}'"
# Abandoned pipes are out of the network altogether; idle, planned ones still say what is upstream.
ABANDONED_STATUS = "abandoned"
# Without a recorded maximum operating pressure, the top of the pipe's class (GB 50028), MPa.
CLASS_MAX_PRESSURE_MPA = {0: 0.01, 1: 0.4, 2: 1.6, 3: 4.0}
OTHER_CLASS_MAX_PRESSURE_MPA = 10.0
CLASS_MAX_PRESSURE_SQL = ("CASE pressure_class "
                          + " ".join(f"WHEN {c} THEN {p}" for c, p in CLASS_MAX_PRESSURE_MPA.items())
                          + f" ELSE {OTHER_CLASS_MAX_PRESSURE_MPA} END")
PE = 20  # dt_pipe_material 聚乙烯: sized by outside diameter
PE_SDR = 11.0  # the usual PE gas pipe: wall = outside diameter / SDR
CHECK_DIRECTION = {"into_pipe": 1, "out_of_pipe": -1}  # valve.check_direction → NetworkModel.valve_check


@dataclass
class NetworkModel:
    """Arrays of one network version. Node and pipe indices are positions in these arrays.

    Coordinates are in the storage CRS `srid` (easting, northing in metres); lengths in m,
    diameters in mm, pressures in MPa (gauge).
    """

    version: int
    srid: int  # EPSG code of node_xy, valve_xy and pipe_geometry
    node_id: np.ndarray  # int64, sorted
    node_xy: np.ndarray  # (n, 2) float64, easting/northing in the storage CRS, m
    pipe_id: np.ndarray  # int64, sorted
    pipe_code: np.ndarray  # object
    pipe_from: np.ndarray  # node index
    pipe_to: np.ndarray  # node index
    pipe_length_m: np.ndarray
    pipe_inner_diameter_mm: np.ndarray  # steel, iron: the nominal DN; PE: OD · (1 − 2/SDR11)
    pipe_outside_diameter_mm: np.ndarray
    pipe_pressure_mpa: np.ndarray  # maximum operating pressure, gauge, MPa
    pipe_pressure_class: np.ndarray  # dt_pipe_pressure_type
    idle_pipe_ends: np.ndarray  # (k, 2) node indices of pipes that exist but carry no gas today
    #                             (planned, under construction, idle): they still tell what is upstream
    valve_id: np.ndarray
    valve_code: np.ndarray
    valve_pipe: np.ndarray  # pipe index
    valve_node: np.ndarray  # node index: the valve cuts this end of the pipe
    valve_xy: np.ndarray
    valve_closed: np.ndarray  # bool: normally closed
    valve_usable: np.ndarray  # bool: operable (not inaccessible / inoperable)
    valve_check: np.ndarray  # int8: 0 not a check valve, +1 passes node → pipe only, -1 pipe → node only
    regulator_id: np.ndarray
    regulator_inlet: np.ndarray  # node index
    regulator_outlet: np.ndarray  # node index
    source_nodes: np.ndarray  # node indices where gas enters: outlets of gate, offtake and storage
    #                           stations (the topology adds regulators fed from nowhere upstream)
    source_station: np.ndarray  # object: code of the station behind each source node
    regulator_code: np.ndarray
    regulator_inlet_class: np.ndarray  # dt_pipe_pressure_type of the inlet
    customer_id: np.ndarray
    customer_code: np.ndarray
    customer_node: np.ndarray  # node index of the service point
    customer_type: np.ndarray  # dt_usertype
    customer_subtype: np.ndarray  # dt_usersubtype
    usertype_label: dict[int, str]  # dt_usertype code → 中文
    # shapely LineStrings of the pipes, storage CRS; None when the database holds them (it snaps)
    pipe_geometry: np.ndarray | None = None
    _pipe_lines: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)
    _pipe_tree: shapely.STRtree | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def n_nodes(self) -> int:
        return len(self.node_id)

    @property
    def n_pipes(self) -> int:
        return len(self.pipe_id)

    def pipe_index(self, pipe_id: int) -> int:
        """The index of the pipe with database id `pipe_id` (KeyError when it carries no gas)."""
        k = int(np.searchsorted(self.pipe_id, pipe_id))
        if k >= len(self.pipe_id) or self.pipe_id[k] != pipe_id:
            raise KeyError(pipe_id)
        return k

    def pipe_volume_std_m3(self, pipes: np.ndarray) -> float:
        """Gas held by pipes at standard conditions.

        Parameters
        ----------
        pipes
            Pipe indices.

        Returns
        -------
        float
            m³ at standard conditions: inner volume × absolute / atmospheric pressure at the maximum
            operating pressure (ideal gas, isothermal: an upper estimate).
        """
        d = self.pipe_inner_diameter_mm[pipes] / 1000.0
        geometric = np.pi / 4.0 * d**2 * self.pipe_length_m[pipes]
        return float((geometric * (self.pipe_pressure_mpa[pipes] + ATMOSPHERE_MPA) / ATMOSPHERE_MPA).sum())

    def nearest_pipe(self, x: float, y: float) -> tuple[int, float, float] | None:
        """The pipe nearest to a point, in memory (the database's own answer, on the pipes' real
        geometry, is `network_analysis.api.nearest_pipe_in_database`).

        Parameters
        ----------
        x, y
            Easting and northing in the storage CRS `srid`, m.

        Returns
        -------
        tuple or None
            (pipe index, fraction along the pipe from its from-node, 0…1, planar distance in m), or
            None for a network without pipes. Pipes without recorded geometry are taken as straight
            lines between their end nodes.
        """
        if self.n_pipes == 0:
            return None
        lines, tree = self._pipe_index()
        point = shapely.Point(x, y)
        hits, distances = tree.query_nearest(point, return_distance=True, all_matches=False)
        k = int(hits[0])
        return k, float(shapely.line_locate_point(lines[k], point, normalized=True)), float(distances[0])

    def _pipe_index(self) -> tuple[np.ndarray, shapely.STRtree]:
        """The pipes as 2D lines and a spatial index over them, built on first use."""
        if self._pipe_lines is None or self._pipe_tree is None:
            lines = self.pipe_geometry
            if lines is None:  # straight between the end nodes
                ends = np.stack([self.node_xy[self.pipe_from], self.node_xy[self.pipe_to]], axis=1)
                lines = shapely.linestrings(ends)
            self._pipe_lines = shapely.force_2d(lines)
            self._pipe_tree = shapely.STRtree(self._pipe_lines)
        return self._pipe_lines, self._pipe_tree


@dataclass
class NetworkTables:
    """The network's rows as data frames, one per table, with the columns `build_model` reads.

    - nodes: id, x, y (storage CRS, m)
    - pipes: id, code, from_node_id, to_node_id, length_m, diameter_mm, outside_diameter_mm (may be
      NaN), material, max_operating_pressure_mpa (may be NaN), pressure_class, status; optionally
      geom (shapely LineStrings, storage CRS)
    - valves: id, code, pipe_id, node_id, x, y, normal_state, operability, check_direction (NaN or
      None unless a check valve)
    - regulators: id, code, inlet_node_id, outlet_node_id, inlet_pressure_class
    - stations: code, outlet_node_id (may be NaN), station_type
    - customers: id, code, service_node_id (may be NaN), user_type, user_subtype

    Every frame is in id order (stations: any order). Rows are taken as the tables hold them: which
    pipes carry gas, which stations feed the network and so on is decided by `build_model`.
    """

    nodes: pd.DataFrame
    pipes: pd.DataFrame
    valves: pd.DataFrame
    regulators: pd.DataFrame
    stations: pd.DataFrame
    customers: pd.DataFrame


def build_model(tables: NetworkTables, srid: int, version: int = 0,
                usertype_label: dict[int, str] | None = None) -> NetworkModel:
    """The network model of a set of table rows, without a database.

    Parameters
    ----------
    tables
        The rows (see `NetworkTables` for the columns).
    srid
        EPSG code of the coordinates (the storage CRS: easting, northing in m).
    version
        The network version the rows are of (`network_version.version` in the database).
    usertype_label
        dt_usertype code → label, for the customer counts by type (codes are shown without).

    Returns
    -------
    NetworkModel
        Pipes in service only (with the valves on them); idle, planned and under-construction
        pipes as `idle_pipe_ends`; abandoned ones left out.
    """
    nodes, pipes, valves = tables.nodes, tables.pipes, tables.valves
    node_id = nodes["id"].to_numpy(np.int64)

    def node_index(ids: pd.Series) -> np.ndarray:
        return np.searchsorted(node_id, ids.to_numpy(np.int64))

    status = pipes["status"]
    live = (status == LIVE_STATUS).to_numpy(bool)
    idle = pipes[~live & (status != ABANDONED_STATUS).to_numpy(bool)]
    pipes = pipes[live]
    pipe_id = pipes["id"].to_numpy(np.int64)
    valves = valves[np.isin(valves["pipe_id"].to_numpy(np.int64), pipe_id)]
    stations = tables.stations
    stations = stations[stations["outlet_node_id"].notna() & stations["station_type"].isin(SOURCE_STATION_TYPES)]
    customers = tables.customers
    customers = customers[customers["service_node_id"].notna()]
    regulators = tables.regulators

    pressure_class = pipes["pressure_class"].to_numpy(np.int8)
    class_pressure = pipes["pressure_class"].map(CLASS_MAX_PRESSURE_MPA).fillna(OTHER_CLASS_MAX_PRESSURE_MPA)
    mop = pipes["max_operating_pressure_mpa"].to_numpy(float)
    dn = pipes["diameter_mm"].to_numpy(float)
    od = pipes["outside_diameter_mm"].to_numpy(float)
    od = np.where(np.isnan(od), dn, od)
    material = pipes["material"].to_numpy(np.int16)
    check = valves["check_direction"].map(CHECK_DIRECTION).fillna(0)
    return NetworkModel(
        version=int(version),
        srid=int(srid),
        node_id=node_id,
        node_xy=nodes[["x", "y"]].to_numpy(float),
        pipe_id=pipe_id,
        pipe_code=pipes["code"].to_numpy(object),
        pipe_from=node_index(pipes["from_node_id"]),
        pipe_to=node_index(pipes["to_node_id"]),
        pipe_length_m=pipes["length_m"].to_numpy(float),
        pipe_inner_diameter_mm=np.where(material == PE, od * (1 - 2 / PE_SDR), dn),
        pipe_outside_diameter_mm=od,
        pipe_pressure_mpa=np.where(np.isnan(mop), class_pressure.to_numpy(float), mop),
        pipe_pressure_class=pressure_class,
        idle_pipe_ends=np.column_stack([node_index(idle["from_node_id"]), node_index(idle["to_node_id"])]),
        valve_id=valves["id"].to_numpy(np.int64),
        valve_code=valves["code"].astype(str).to_numpy(object),
        valve_pipe=np.searchsorted(pipe_id, valves["pipe_id"].to_numpy(np.int64)),
        valve_node=node_index(valves["node_id"]),
        valve_xy=valves[["x", "y"]].to_numpy(float),
        valve_closed=(valves["normal_state"] == "closed").to_numpy(bool),
        valve_usable=(valves["operability"] == "operable").to_numpy(bool),
        valve_check=check.to_numpy(np.int8),
        regulator_id=regulators["id"].to_numpy(np.int64),
        regulator_inlet=node_index(regulators["inlet_node_id"]),
        regulator_outlet=node_index(regulators["outlet_node_id"]),
        source_nodes=node_index(stations["outlet_node_id"]),
        source_station=stations["code"].to_numpy(object),
        regulator_code=regulators["code"].to_numpy(object),
        regulator_inlet_class=regulators["inlet_pressure_class"].to_numpy(np.int16),
        customer_id=customers["id"].to_numpy(np.int64),
        customer_code=customers["code"].to_numpy(object),
        customer_node=node_index(customers["service_node_id"]),
        customer_type=customers["user_type"].to_numpy(np.int16),
        customer_subtype=customers["user_subtype"].to_numpy(np.int16),
        usertype_label=dict(usertype_label or {}),
        pipe_geometry=pipes["geom"].to_numpy(object) if "geom" in pipes.columns else None,
    )


def _frame(conn: sa.Connection, sql: str) -> pd.DataFrame:
    """A query's rows through COPY … TO STDOUT (CSV): a million rows in about a second, where
    fetching row objects takes tens."""
    buffer = io.BytesIO()
    driver = conn.connection.driver_connection
    if driver is None:  # only a connection already closed has none
        raise sa.exc.ResourceClosedError("the connection is closed")
    with driver.cursor() as cursor:
        with cursor.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER true)") as copy:
            for chunk in copy:
                buffer.write(chunk)
    buffer.seek(0)
    return pd.read_csv(buffer, dtype={"code": object}, keep_default_na=False, na_values=[""])


def read_tables(conn: sa.Connection) -> NetworkTables:
    """The network's rows from the database, in id order (see `NetworkTables`)."""
    return NetworkTables(
        nodes=_frame(conn, "SELECT id, ST_X(geom) AS x, ST_Y(geom) AS y FROM node ORDER BY id"),
        pipes=_frame(conn, """
            SELECT id, code, from_node_id, to_node_id, length_m, diameter_mm::float8 AS diameter_mm,
                   outside_diameter_mm::float8 AS outside_diameter_mm, material,
                   max_operating_pressure_mpa::float8 AS max_operating_pressure_mpa, pressure_class, status
            FROM pipe ORDER BY id"""),
        valves=_frame(conn, """
            SELECT id, code, pipe_id, node_id, ST_X(geom) AS x, ST_Y(geom) AS y, normal_state, operability,
                   check_direction
            FROM valve ORDER BY id"""),
        regulators=_frame(conn, "SELECT id, code, inlet_node_id, outlet_node_id, inlet_pressure_class "
                                "FROM regulator ORDER BY id"),
        stations=_frame(conn, "SELECT code, outlet_node_id, station_type FROM station ORDER BY id"),
        customers=_frame(conn, "SELECT id, code, service_node_id, user_type, user_subtype FROM customer ORDER BY id"),
    )


def load_model(conn: sa.Connection) -> NetworkModel:
    """The network model read from the database (in one REPEATABLE READ snapshot when the caller
    opened one).

    Parameters
    ----------
    conn
        A connection to a migrated Qiwang database.

    Returns
    -------
    NetworkModel
        As `build_model` makes it from the tables, in the storage CRS of the database, without pipe
        geometry (the database snaps points to pipes).
    """
    version = conn.execute(sa.text("SELECT version FROM network_version")).scalar_one()
    labels: dict[int, str] = dict(conn.execute(sa.text("SELECT code, label_zh FROM dict.dt_usertype")).all())
    return build_model(read_tables(conn), srid=storage_srid(conn), version=version, usertype_label=labels)
