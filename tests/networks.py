"""Small hand-made networks for the analysis tests, written the way one sketches them on paper.

    Network(
        nodes={"S": (0, 0), "a": (100, 0)},          # name: (x, y) in metres, optional pressure class
        pipes={"p1": "S-a"},                         # name: "from-to [status]" (default in_service)
        valves={"v1": "p1@a"},                       # name: "pipe@node [closed] [inoperable|inaccessible]
                                                     #        [check:into_pipe|check:out_of_pipe]"
        sources={"G1": "S"},                         # stations: name: "outlet node [station type]"
                                                     #           (dt_pipe_station_type, default 0 门站)
        regulators={"R1": "ri>ro"},                  # inlet > outlet (one way)
        customers={"c1": "a"},                       # name: service node (residents; "name": "node shop")
    )

A network is drawn in EPSG:4550 around a fixed origin in Anshan. `tables(network)` gives its rows
as data frames, once, and both ways in use them: `model(network)` / `topology(network)` build the
analyses' model in memory (no database), `load(engine, network)` empties the network tables of a
database and writes the same rows there. Codes are the names used here. The staff phones of valves
and regulators are written as every writer writes them: sealed (accounts.personal_data.seal_frame).
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import shapely
import sqlalchemy as sa

from accounts.personal_data import load_keyring, seal_frame
from db.catalog import storage_srid
from network_analysis.model import NetworkModel, NetworkTables, build_model
from network_analysis.topology import Topology

ORIGIN = (500_000.0, 4_550_000.0)
SRID = 4550  # the CRS of ORIGIN and of every drawing: CGCS2000 3° Gauss-Krüger CM 123E, the demo's storage CRS
Z = 10.0  # every node, pipe and valve lies at this height (m)
ENTERPRISE, DIVISION = "2103020001", "210302"
VALVE_AT = 0.05  # a valve stands this share of its pipe's length from the node it cuts
DICTIONARIES = Path(__file__).resolve().parent.parent / "data" / "dictionaries.csv"
VALVE_PHONE, REGULATOR_PHONE = "13900000000", "13900000001"  # every valve's and regulator's responsible person


@dataclass
class Network:
    nodes: dict[str, tuple]
    pipes: dict[str, str]
    valves: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    regulators: dict[str, str] = field(default_factory=dict)
    customers: dict[str, str] = field(default_factory=dict)


# An example used by several tests: two tiers joined by a regulator cabinet.
# medium pressure                          low pressure
# S --m1--@ a --m2--@ ri  >R1>  ro --l1-- x @--l2-- y
#           |
#           m3 -- z   (customer cz on medium pressure)
TIERS = Network(
    nodes={"S": (0, 0, 1), "a": (100, 0, 1), "ri": (200, 0, 1), "ro": (205, 0, 0), "x": (300, 0, 0),
           "y": (400, 0, 0), "z": (100, -100, 1)},
    pipes={"m1": "S-a", "m2": "a-ri", "m3": "a-z", "l1": "ro-x", "l2": "x-y"},
    valves={"vm1": "m1@a", "vm2": "m2@ri", "vl2": "l2@x"},
    sources={"G1": "S"},
    regulators={"R1": "ri>ro"},
    customers={"cx": "x", "cy": "y", "cz": "z"},
)


def usertype_labels() -> dict[int, str]:
    """dt_usertype code → label, from the file migration 0001 fills the dictionary with."""
    with DICTIONARIES.open(encoding="utf-8") as f:
        return {int(row["code"]): row["label_zh"] for row in csv.DictReader(f) if row["dictionary"] == "dt_usertype"}


def tables(net: Network) -> NetworkTables:
    """The network's rows (ids from 1 in the order drawn), with the columns `build_model` reads and
    those `load` needs besides."""
    node_names = list(net.nodes)
    node_id = {name: k + 1 for k, name in enumerate(node_names)}
    xy = {name: (ORIGIN[0] + spec[0], ORIGIN[1] + spec[1]) for name, spec in net.nodes.items()}
    pclass = {name: spec[2] if len(spec) > 2 else 1 for name, spec in net.nodes.items()}
    stations = {name: spec.split() for name, spec in net.sources.items()}
    outlets = {spec.split(">")[1] for spec in net.regulators.values()}
    inlets = {spec.split(">")[0] for spec in net.regulators.values()}
    station_outlets = {parts[0] for parts in stations.values()}
    nodes = pd.DataFrame({
        "id": [node_id[n] for n in node_names], "code": node_names,
        "role": ["station_outlet" if n in station_outlets else "regulator_outlet" if n in outlets
                 else "regulator_inlet" if n in inlets else "junction" for n in node_names],
        "pressure_class": [pclass[n] for n in node_names],
        "x": [xy[n][0] for n in node_names], "y": [xy[n][1] for n in node_names]})
    pipe_rows, pipe_id = [], {}
    for k, (name, spec) in enumerate(net.pipes.items()):
        ends, *status = spec.split()
        a, b = ends.split("-")
        pipe_id[name] = k + 1
        pipe_rows.append({
            "id": k + 1, "code": name, "from_node_id": node_id[a], "to_node_id": node_id[b],
            "length_m": math.dist(xy[a], xy[b]), "diameter_mm": 200.0, "outside_diameter_mm": math.nan,
            "material": 20, "max_operating_pressure_mpa": 0.4, "pressure_class": pclass[a],
            "status": status[0] if status else "in_service",
            "geom": shapely.LineString([(*xy[a], Z), (*xy[b], Z)])})
    valve_rows = []
    for k, (name, spec) in enumerate(net.valves.items()):
        where, *flags = spec.split()
        pipe, node = where.split("@")
        a, b = net.pipes[pipe].split()[0].split("-")
        share = VALVE_AT if node == a else 1 - VALVE_AT
        check = next((f.split(":")[1] for f in flags if f.startswith("check:")), None)
        valve_rows.append({
            "id": k + 1, "code": name, "pipe_id": pipe_id[pipe], "node_id": node_id[node],
            "x": xy[a][0] + (xy[b][0] - xy[a][0]) * share, "y": xy[a][1] + (xy[b][1] - xy[a][1]) * share,
            "normal_state": "closed" if "closed" in flags else "open",
            "operability": next((f for f in flags if f in ("inoperable", "inaccessible")), "operable"),
            "check_direction": check, "valve_type": "check" if check else "ball"})
    regulator_rows = []
    for k, (name, spec) in enumerate(net.regulators.items()):
        inlet, outlet = spec.split(">")
        regulator_rows.append({"id": k + 1, "code": name, "inlet_node_id": node_id[inlet],
                               "outlet_node_id": node_id[outlet], "inlet_pressure_class": pclass[inlet],
                               "outlet_pressure_class": pclass[outlet]})
    station_rows = [{"id": k + 1, "code": name, "outlet_node_id": node_id[parts[0]],
                     "station_type": int(parts[1]) if len(parts) > 1 else 0}
                    for k, (name, parts) in enumerate(stations.items())]
    customer_rows = []
    for k, (name, spec) in enumerate(net.customers.items()):
        node, *kind = spec.split()
        resident = not kind
        customer_rows.append({"id": k + 1, "code": name, "service_node_id": node_id[node],
                              "user_type": 1 if resident else 3, "user_subtype": 1 if resident else 3,
                              "credit_code": None if resident else "92210302MA0000001X"})

    def frame(rows: list[dict], columns: str) -> pd.DataFrame:
        return pd.DataFrame(rows, columns=columns.split())

    return NetworkTables(
        nodes=nodes,
        pipes=frame(pipe_rows, "id code from_node_id to_node_id length_m diameter_mm outside_diameter_mm material "
                               "max_operating_pressure_mpa pressure_class status geom"),
        valves=frame(valve_rows, "id code pipe_id node_id x y normal_state operability check_direction valve_type"),
        regulators=frame(regulator_rows, "id code inlet_node_id outlet_node_id inlet_pressure_class "
                                         "outlet_pressure_class"),
        stations=frame(station_rows, "id code outlet_node_id station_type"),
        customers=frame(customer_rows, "id code service_node_id user_type user_subtype credit_code"),
    )


def model(net: Network, version: int = 1) -> NetworkModel:
    """The network's model, built in memory from `tables` (no database)."""
    return build_model(tables(net), srid=SRID, version=version, usertype_label=usertype_labels())


def topology(net: Network) -> Topology:
    """The network's topology, in memory (no database)."""
    return Topology(model(net))


def sealed(table: str, **values: str | None) -> dict[str, str | None]:
    """Query parameters for one row's personal columns as every writer stores them: each column
    `x` given masked, with `x_sealed` and `x_index` (bytea as hex text: write
    ``CAST(:x_sealed AS bytea)`` where the type is not the target column's)."""
    row = seal_frame(table, pd.DataFrame({column: [value] for column, value in values.items()}), load_keyring())
    return {column: row[column].iloc[0] for column in row.columns}


def _insert(conn: sa.Connection, sql: str, rows: pd.DataFrame, **constants: object) -> dict[int, int]:
    """Insert `rows` one by one with `sql` (… RETURNING id); the rows' ids → the database's."""
    ids = {}
    for row in rows.to_dict("records"):
        values = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        ids[row["id"]] = conn.execute(sa.text(sql), {**values, **constants}).scalar_one()
    return ids


def load(engine: sa.Engine, net: Network) -> None:
    """Empty the network tables of a migrated database and write the network's rows (`tables`)."""
    rows = tables(net)
    with engine.begin() as conn:
        assert storage_srid(conn) == SRID, "the hand-made networks are drawn in EPSG:4550"
        conn.execute(sa.text(
            "TRUNCATE customer, sentry, valve, regulator, pipe, station, node, enterprise, admin_division CASCADE"))
        conn.execute(sa.text(
            f"INSERT INTO admin_division (admin_code, name, level) VALUES ('{DIVISION}', '铁东区', 'county')"))
        conn.execute(sa.text(
            f"""INSERT INTO enterprise (enterprise_code, name, admin_code, address, legal_representative,
                    business_license_type, credit_code, gas_license_no, gas_license_issued_on,
                    gas_license_expires_on, operating_area)
                VALUES ('{ENTERPRISE}', '测试燃气', '{DIVISION}', '测试路1号', '张三', '有限责任公司',
                        '91210302MA0000000X', 'T-1', '2020-01-01', '2030-01-01', '铁东区')"""))
        biz = {"e": ENTERPRISE, "d": DIVISION, "srid": SRID, "z": Z}
        node = _insert(conn, """
            INSERT INTO node (code, role, pressure_class, geom, enterprise_code, admin_code)
            VALUES (:code, :role, :pressure_class, ST_SetSRID(ST_MakePoint(:x, :y, :z), :srid), :e, :d)
            RETURNING id""", rows.nodes, **biz)
        pipes = rows.pipes.drop(columns=["geom", "length_m"]).assign(
            from_node_id=rows.pipes["from_node_id"].map(node), to_node_id=rows.pipes["to_node_id"].map(node))
        pipe = _insert(conn, """
            INSERT INTO pipe (code, pipe_type, material, diameter_mm, outside_diameter_mm, start_elevation_m,
                   end_elevation_m, start_depth_m, end_depth_m, road_name, owner, build_year, survey_date,
                   status, pressure_class, max_operating_pressure_mpa, laying_type, from_node_id, to_node_id,
                   geom, enterprise_code, admin_code)
            SELECT :code, 'main', :material, :diameter_mm, :outside_diameter_mm, 11, 11, 1, 1, '测试路', '测试燃气',
                   2010, '2025-01-01', :status, :pressure_class, :max_operating_pressure_mpa, 1, f.id, t.id,
                   ST_MakeLine(f.geom, t.geom), :e, :d
            FROM node f, node t WHERE f.id = :from_node_id AND t.id = :to_node_id RETURNING id""", pipes, **biz)
        keyring = load_keyring()
        valves = seal_frame("valve", rows.valves.assign(
            pipe_id=rows.valves["pipe_id"].map(pipe), node_id=rows.valves["node_id"].map(node),
            responsible_phone=VALVE_PHONE), keyring)
        _insert(conn, """
            INSERT INTO valve (code, pipe_id, node_id, valve_type, check_direction, normal_state, operability,
                   name, model, manufacturer, responsible_person, responsible_phone, responsible_phone_sealed,
                   responsible_phone_index, commissioned_on, geom, enterprise_code, admin_code)
            VALUES (:code, :pipe_id, :node_id, :valve_type, :check_direction, :normal_state, :operability, '阀门',
                    'Q41F', '厂家', '李四', :responsible_phone, CAST(:responsible_phone_sealed AS bytea),
                    CAST(:responsible_phone_index AS bytea), '2015-01-01',
                    ST_SetSRID(ST_MakePoint(:x, :y, :z), :srid), :e, :d)
            RETURNING id""", valves, **biz)
        _insert(conn, """
            INSERT INTO station (code, name, station_type, address, equipment, outlet_node_id,
                   outlet_pressure_class, geom, enterprise_code, admin_code)
            SELECT :code, :code, :station_type, '测试', '调压撬', id, pressure_class, geom, :e, :d
            FROM node WHERE id = :outlet_node_id RETURNING id""",
                rows.stations.assign(outlet_node_id=rows.stations["outlet_node_id"].map(node)), **biz)
        _insert(conn, """
            INSERT INTO regulator (code, regulator_kind, inlet_node_id, outlet_node_id, inlet_pressure_class,
                   outlet_pressure_class, outlet_pressure_kpa, name, model, manufacturer, responsible_person,
                   responsible_phone, responsible_phone_sealed, responsible_phone_index, commissioned_on, geom,
                   enterprise_code, admin_code)
            SELECT :code, 'cabinet', :inlet_node_id, :outlet_node_id, :inlet_pressure_class, :outlet_pressure_class,
                   2.5, '调压柜', 'RTZ', '厂家', '王五', :responsible_phone, CAST(:responsible_phone_sealed AS bytea),
                   CAST(:responsible_phone_index AS bytea), '2015-01-01', geom, :e, :d
            FROM node WHERE id = :inlet_node_id RETURNING id""",
                seal_frame("regulator", rows.regulators.assign(
                    inlet_node_id=rows.regulators["inlet_node_id"].map(node),
                    outlet_node_id=rows.regulators["outlet_node_id"].map(node), responsible_phone=REGULATOR_PHONE),
                    keyring), **biz)
        _insert(conn, """
            INSERT INTO customer (code, name, credit_code, supplier, meter_reader, account_no, user_type,
                   user_subtype, street, community, address, service_node_id, geom, enterprise_code, admin_code)
            SELECT :code, :code, :credit_code, '测试燃气', '赵六', :code, :user_type, :user_subtype, '测试路',
                   '测试社区', '测试路', id, geom, :e, :d
            FROM node WHERE id = :service_node_id RETURNING id""",
                rows.customers.assign(service_node_id=rows.customers["service_node_id"].map(node)), **biz)
