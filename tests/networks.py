"""Small hand-made networks for the analysis tests, written the way one sketches them on paper.

    Network(
        nodes={"S": (0, 0), "a": (100, 0)},          # name: (x, y) in metres, optional pressure class
        pipes={"p1": "S-a"},                         # name: "from-to"
        valves={"v1": "p1@a"},                       # name: "pipe@node [closed] [inoperable|inaccessible]
                                                     #        [check:into_pipe|check:out_of_pipe]"
        sources={"G1": "S"},                         # gate stations: name: outlet node
        regulators={"R1": "ri>ro"},                  # inlet > outlet (one way)
        customers={"c1": "a"},                       # name: service node (residents; "name": "node shop")
    )

`load(engine, network)` empties the network tables and writes the network in EPSG:4550 around a
fixed origin in Anshan; codes in the database are the names used here.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

ORIGIN = (500_000.0, 4_550_000.0)
ENTERPRISE, DIVISION = "2103020001", "210302"


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


def load(engine: sa.Engine, net: Network) -> None:
    with engine.begin() as conn:
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
        biz = {"e": ENTERPRISE, "d": DIVISION}
        outlets = {n for spec in net.regulators.values() for n in [spec.split(">")[1]]}
        inlets = {n for spec in net.regulators.values() for n in [spec.split(">")[0]]}
        ids: dict[str, int] = {}
        for name, spec in net.nodes.items():
            x, y, *rest = spec
            role = ("station_outlet" if name in net.sources.values() else "regulator_outlet" if name in outlets
                    else "regulator_inlet" if name in inlets else "junction")
            ids[name] = conn.execute(sa.text(
                """INSERT INTO node (code, role, pressure_class, geom, enterprise_code, admin_code)
                   VALUES (:code, :role, :pc, ST_SetSRID(ST_MakePoint(:x, :y, 10), 4550), :e, :d) RETURNING id"""),
                {"code": name, "role": role, "pc": rest[0] if rest else 1, "x": ORIGIN[0] + x,
                 "y": ORIGIN[1] + y, **biz}).scalar_one()
        pipe_ids: dict[str, int] = {}
        for name, spec in net.pipes.items():
            a, b = spec.split("-")
            pclass = net.nodes[a][2] if len(net.nodes[a]) > 2 else 1
            pipe_ids[name] = conn.execute(sa.text(
                """INSERT INTO pipe (code, pipe_type, material, diameter_mm, start_elevation_m, end_elevation_m,
                       start_depth_m, end_depth_m, road_name, owner, build_year, survey_date, pressure_class,
                       max_operating_pressure_mpa, laying_type, from_node_id, to_node_id, geom,
                       enterprise_code, admin_code)
                   SELECT :code, 'main', 20, 200, 11, 11, 1, 1, '测试路', '测试燃气', 2010, '2025-01-01', :pc,
                          0.4, 1, f.id, t.id, ST_MakeLine(f.geom, t.geom), :e, :d
                   FROM node f, node t WHERE f.id = :a AND t.id = :b RETURNING id"""),
                {"code": name, "pc": pclass, "a": ids[a], "b": ids[b], **biz}).scalar_one()
        for name, spec in net.valves.items():
            where, *flags = spec.split()
            pipe, node = where.split("@")
            check = next((f.split(":")[1] for f in flags if f.startswith("check:")), None)
            operability = next((f for f in flags if f in ("inoperable", "inaccessible")), "operable")
            conn.execute(sa.text(
                """INSERT INTO valve (code, pipe_id, node_id, valve_type, check_direction, normal_state, operability,
                       name, model, manufacturer, responsible_person, responsible_phone, commissioned_on, geom,
                       enterprise_code, admin_code)
                   SELECT :code, :p, :n, :vt, :check, :state, :op, '阀门', 'Q41F', '厂家', '李四', '13900000000',
                          '2015-01-01', ST_LineInterpolatePoint(p.geom,
                              CASE WHEN p.from_node_id = :n THEN 0.05 ELSE 0.95 END), :e, :d
                   FROM pipe p WHERE p.id = :p"""),
                {"code": name, "p": pipe_ids[pipe], "n": ids[node], "vt": "check" if check else "ball",
                 "check": check, "state": "closed" if "closed" in flags else "open", "op": operability, **biz})
        for name, node in net.sources.items():
            conn.execute(sa.text(
                """INSERT INTO station (code, name, station_type, address, equipment, outlet_node_id,
                       outlet_pressure_class, geom, enterprise_code, admin_code)
                   SELECT :code, :code, 0, '测试', '调压撬', id, pressure_class, geom, :e, :d FROM node WHERE id = :n"""),
                {"code": name, "n": ids[node], **biz})
        for name, spec in net.regulators.items():
            inlet, outlet = spec.split(">")
            conn.execute(sa.text(
                """INSERT INTO regulator (code, regulator_kind, inlet_node_id, outlet_node_id, inlet_pressure_class,
                       outlet_pressure_class, outlet_pressure_kpa, name, model, manufacturer, responsible_person,
                       responsible_phone, commissioned_on, geom, enterprise_code, admin_code)
                   SELECT :code, 'cabinet', i.id, o.id, i.pressure_class, o.pressure_class, 2.5, '调压柜', 'RTZ',
                          '厂家', '王五', '13900000001', '2015-01-01', i.geom, :e, :d
                   FROM node i, node o WHERE i.id = :i AND o.id = :o"""),
                {"code": name, "i": ids[inlet], "o": ids[outlet], **biz})
        for name, spec in net.customers.items():
            node, *kind = spec.split()
            resident = not kind
            conn.execute(sa.text(
                """INSERT INTO customer (code, name, credit_code, supplier, meter_reader, account_no, user_type,
                       user_subtype, street, community, address, service_node_id, geom, enterprise_code, admin_code)
                   SELECT :code, :code, :credit, '测试燃气', '赵六', :code, :ut, :ust, '测试路', '测试社区', '测试路',
                          id, geom, :e, :d FROM node WHERE id = :n"""),
                {"code": name, "n": ids[node], "ut": 1 if resident else 3, "ust": 1 if resident else 3,
                 "credit": None if resident else "92210302MA0000001X", **biz})
