"""The pipe network as plain NumPy arrays, read from the database in a handful of queries.

Everything the graph analyses need and nothing else: no geometry beyond end points, so that a
network of a million pipes fits in a few hundred megabytes and loads in seconds. Database ids are
kept in `*_id` arrays; the analyses work on dense 0-based indices into these arrays.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa

# Gas at standard conditions (GB/T 13610-style reference: 101.325 kPa, 20 °C); pressures are gauge.
ATMOSPHERE_MPA = 0.101325
# Stations that put gas into a city network (dt_pipe_station_type): gate 门站, offtake 分输站,
# storage 储气站. Regulator (1) and metering (4) stations are fed by the network itself.
SOURCE_STATION_TYPES = (0, 2, 3)
# Only pipes in service carry gas: planned, under construction, idle and abandoned ones do not.
LIVE = "status = 'in_service'"
# Without a recorded maximum operating pressure, the top of the pipe's class (GB 50028), MPa.
CLASS_MAX_PRESSURE_SQL = ("CASE pressure_class WHEN 0 THEN 0.01 WHEN 1 THEN 0.4 WHEN 2 THEN 1.6 "
                          "WHEN 3 THEN 4.0 ELSE 10.0 END")
PE = 20  # dt_pipe_material 聚乙烯: sized by outside diameter
PE_SDR = 11.0  # the usual PE gas pipe: wall = outside diameter / SDR


@dataclass
class NetworkModel:
    """Arrays of one network version. Node and pipe indices are positions in these arrays."""

    version: int
    node_id: np.ndarray  # int64, sorted
    node_xy: np.ndarray  # (n, 2) float64, EPSG:4550 easting/northing, m
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

    @property
    def n_nodes(self) -> int:
        return len(self.node_id)

    @property
    def n_pipes(self) -> int:
        return len(self.pipe_id)

    def pipe_index(self, pipe_id: int) -> int:
        k = int(np.searchsorted(self.pipe_id, pipe_id))
        if k >= len(self.pipe_id) or self.pipe_id[k] != pipe_id:
            raise KeyError(pipe_id)
        return k

    def pipe_volume_std_m3(self, pipes: np.ndarray) -> float:
        """Gas held by the pipes at standard conditions (m³): inner volume × absolute/atmospheric
        pressure at the maximum operating pressure (ideal gas, isothermal: an upper estimate)."""
        d = self.pipe_inner_diameter_mm[pipes] / 1000.0
        geometric = np.pi / 4.0 * d**2 * self.pipe_length_m[pipes]
        return float((geometric * (self.pipe_pressure_mpa[pipes] + ATMOSPHERE_MPA) / ATMOSPHERE_MPA).sum())


def _frame(conn: sa.Connection, sql: str) -> pd.DataFrame:
    """A query's rows through COPY … TO STDOUT (CSV): a million rows in about a second, where
    fetching row objects takes tens."""
    buffer = io.BytesIO()
    with conn.connection.driver_connection.cursor() as cursor:
        with cursor.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER true)") as copy:
            for chunk in copy:
                buffer.write(chunk)
    buffer.seek(0)
    return pd.read_csv(buffer, dtype={"code": object}, keep_default_na=False, na_values=[""])


def load_model(conn: sa.Connection) -> NetworkModel:
    """Read the network (in one REPEATABLE READ snapshot when the caller opened one)."""
    version = conn.execute(sa.text("SELECT version FROM network_version")).scalar_one()
    nodes = _frame(conn, "SELECT id, ST_X(geom) AS x, ST_Y(geom) AS y FROM node ORDER BY id")
    node_id = nodes["id"].to_numpy(np.int64)

    def node_index(ids: pd.Series) -> np.ndarray:
        return np.searchsorted(node_id, ids.to_numpy(np.int64))

    pipes = _frame(conn, f"""
        SELECT id, code, from_node_id, to_node_id, length_m, diameter_mm::float8 AS dn,
               coalesce(outside_diameter_mm, diameter_mm)::float8 AS od, material,
               coalesce(max_operating_pressure_mpa, {CLASS_MAX_PRESSURE_SQL})::float8 AS mop, pressure_class
        FROM pipe WHERE {LIVE} ORDER BY id""")
    pipe_id = pipes["id"].to_numpy(np.int64)
    valves = _frame(conn, f"""
        SELECT v.id, v.code, v.pipe_id, v.node_id, ST_X(v.geom) AS x, ST_Y(v.geom) AS y,
               (v.normal_state = 'closed')::int AS closed, (v.operability = 'operable')::int AS usable,
               CASE v.check_direction WHEN 'into_pipe' THEN 1 WHEN 'out_of_pipe' THEN -1 ELSE 0 END AS check_dir
        FROM valve v JOIN pipe p ON p.id = v.pipe_id AND p.{LIVE} ORDER BY v.id""")
    valves["code"] = valves["code"].astype(str)
    idle = _frame(conn, f"SELECT from_node_id, to_node_id FROM pipe WHERE NOT {LIVE} AND status <> 'abandoned'")
    regulators = _frame(conn, "SELECT code, inlet_node_id, outlet_node_id, inlet_pressure_class FROM regulator "
                              "ORDER BY id")
    stations = _frame(conn, f"""SELECT code, outlet_node_id FROM station WHERE outlet_node_id IS NOT NULL
                                AND station_type IN {SOURCE_STATION_TYPES}""")
    customers = _frame(conn, """
        SELECT id, code, service_node_id, user_type, user_subtype FROM customer
        WHERE service_node_id IS NOT NULL ORDER BY id""")

    pipe_from, pipe_to = node_index(pipes["from_node_id"]), node_index(pipes["to_node_id"])
    inlet, outlet = node_index(regulators["inlet_node_id"]), node_index(regulators["outlet_node_id"])
    material = pipes["material"].to_numpy(np.int16)
    od = pipes["od"].to_numpy(float)
    return NetworkModel(
        version=version,
        node_id=node_id,
        node_xy=nodes[["x", "y"]].to_numpy(float),
        pipe_id=pipe_id,
        pipe_code=pipes["code"].to_numpy(object),
        pipe_from=pipe_from,
        pipe_to=pipe_to,
        pipe_length_m=pipes["length_m"].to_numpy(float),
        pipe_inner_diameter_mm=np.where(material == PE, od * (1 - 2 / PE_SDR), pipes["dn"].to_numpy(float)),
        pipe_outside_diameter_mm=od,
        pipe_pressure_mpa=pipes["mop"].to_numpy(float),
        pipe_pressure_class=pipes["pressure_class"].to_numpy(np.int8),
        idle_pipe_ends=np.column_stack([node_index(idle["from_node_id"]), node_index(idle["to_node_id"])]),
        valve_id=valves["id"].to_numpy(np.int64),
        valve_code=valves["code"].to_numpy(object),
        valve_pipe=np.searchsorted(pipe_id, valves["pipe_id"].to_numpy(np.int64)),
        valve_node=node_index(valves["node_id"]),
        valve_xy=valves[["x", "y"]].to_numpy(float),
        valve_closed=valves["closed"].to_numpy(bool),
        valve_usable=valves["usable"].to_numpy(bool),
        valve_check=valves["check_dir"].to_numpy(np.int8),
        regulator_inlet=inlet,
        regulator_outlet=outlet,
        source_nodes=node_index(stations["outlet_node_id"]),
        source_station=stations["code"].to_numpy(object),
        regulator_code=regulators["code"].to_numpy(object),
        regulator_inlet_class=regulators["inlet_pressure_class"].to_numpy(np.int16),
        customer_id=customers["id"].to_numpy(np.int64),
        customer_code=customers["code"].to_numpy(object),
        customer_node=node_index(customers["service_node_id"]),
        customer_type=customers["user_type"].to_numpy(np.int16),
        customer_subtype=customers["user_subtype"].to_numpy(np.int16),
        usertype_label=dict(conn.execute(sa.text("SELECT code, label_zh FROM dict.dt_usertype")).all()),
    )
