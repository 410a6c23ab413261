"""The generated demo city, checked as a network engineer would check survey data."""
from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import time

import networkx as nx
import pytest
import requests
import shapely
import sqlalchemy as sa
from conftest import DEMO_PIPES, ROOT, scalar
from pyproj import Transformer
from sqlalchemy.engine import make_url

from demo.accounts import DEMO_ACCOUNTS
from demo.city import CITY_CENTRE_LONLAT, generate
from telemetry.broker import project_broker_dir

SRID = 4550  # the storage CRS the migrations declare (load_demo reads it from the schema)


def number(engine: sa.Engine, query: str) -> float:
    """The one number a query answers."""
    value = scalar(engine, query)
    assert isinstance(value, int | float), value
    return value


def test_pipe_count_is_exactly_what_was_asked(engine: sa.Engine) -> None:
    assert scalar(engine, "SELECT count(*) FROM pipe") == DEMO_PIPES


@pytest.mark.parametrize(("pipes", "seed"), [(300, 42), (400, 42), (1000, 42), (850, 7), (7777, 1), (40000, 1)])
def test_generator_hits_any_size_exactly(pipes: int, seed: int) -> None:
    tables = generate(pipes, seed=seed, srid=SRID).tables
    assert len(tables["pipe"][0]) == pipes
    # even the smallest city has both enterprises' schools, hospitals and malls
    sites = tables["sensitive_site"][0]
    assert set(zip(sites["enterprise_code"], sites["site_type"], strict=True)) == {
        (e, t) for e in ("2103020001", "2103110001") for t in (10, 13, 85)}


def test_generator_is_deterministic_for_a_seed() -> None:
    first, again, other = (generate(1500, seed=s, srid=SRID).tables for s in (3, 3, 4))
    for table in ("pipe", "valve", "customer"):
        a, b = first[table][0], again[table][0]
        assert a.drop(columns="geom").equals(b.drop(columns="geom")), table
        assert shapely.equals_exact(a["geom"].to_numpy(), b["geom"].to_numpy(), 0).all(), table
    assert not shapely.equals_exact(first["pipe"][0]["geom"].to_numpy()[:100],
                                    other["pipe"][0]["geom"].to_numpy()[:100], 0).all()


def test_every_pipe_is_a_3d_linestring_in_epsg_4550(engine: sa.Engine) -> None:
    bad = scalar(engine, "SELECT count(*) FROM pipe WHERE GeometryType(geom) <> 'LINESTRING' "
                         "OR ST_NDims(geom) <> 3 OR ST_SRID(geom) <> 4550 OR NOT ST_IsValid(geom)")
    assert bad == 0


def test_pipe_ends_coincide_with_their_nodes_in_3d(engine: sa.Engine) -> None:
    mismatched = scalar(engine, """
        SELECT count(*) FROM pipe p
        JOIN node f ON f.id = p.from_node_id JOIN node t ON t.id = p.to_node_id
        WHERE NOT (ST_X(ST_StartPoint(p.geom)) = ST_X(f.geom) AND ST_Y(ST_StartPoint(p.geom)) = ST_Y(f.geom)
                   AND ST_Z(ST_StartPoint(p.geom)) = ST_Z(f.geom)
               AND ST_X(ST_EndPoint(p.geom)) = ST_X(t.geom) AND ST_Y(ST_EndPoint(p.geom)) = ST_Y(t.geom)
                   AND ST_Z(ST_EndPoint(p.geom)) = ST_Z(t.geom))""")
    assert mismatched == 0
    # Z is the pipe-top elevation: ground elevation minus burial depth, at both ends
    off = number(engine, """
        SELECT count(*) FROM pipe
        WHERE abs(ST_Z(ST_StartPoint(geom)) - (start_elevation_m - start_depth_m)) > 0.01
           OR abs(ST_Z(ST_EndPoint(geom)) - (end_elevation_m - end_depth_m)) > 0.01""")
    assert off == 0


def tier_graph(engine: sa.Engine) -> tuple[nx.Graph, dict[int, set], dict[str, int]]:
    """Pipes as graph vertices between their nodes; a normally closed valve cuts its pipe end.
    Returns the graph, the source nodes of each pressure class and each vertex's pressure class."""
    with engine.connect() as conn:
        pipes = conn.execute(sa.text("SELECT id, from_node_id, to_node_id, pressure_class FROM pipe")).all()
        closed = set(conn.execute(sa.text(
            "SELECT pipe_id, node_id FROM valve WHERE normal_state = 'closed'")).all())
        sources = conn.execute(sa.text(
            """SELECT n.id, n.pressure_class FROM node n
               WHERE n.id IN (SELECT outlet_node_id FROM station WHERE station_type = 0)
                  OR n.id IN (SELECT outlet_node_id FROM regulator)""")).all()
    graph = nx.Graph()
    tier: dict[str, int] = {}
    for pipe, a, b, pclass in pipes:
        tier[f"p{pipe}"] = pclass
        graph.add_node(f"p{pipe}")
        for node in (a, b):
            if (pipe, node) not in closed:
                graph.add_edge(f"p{pipe}", f"n{node}:{pclass}")
    by_class: dict[int, set] = {}
    for node, pclass in sources:
        by_class.setdefault(pclass, set()).add(f"n{node}:{pclass}")
    return graph, by_class, tier


def test_each_pressure_tier_is_fed_by_a_source(engine: sa.Engine) -> None:
    graph, sources, tier = tier_graph(engine)
    assert set(sources) == {0, 1, 2, 3}  # low, medium, sub-high, high all have sources
    unfed = []
    for component in nx.connected_components(graph):
        pipes = [v for v in component if v.startswith("p")]
        pclass = tier[pipes[0]]
        if not component & sources[pclass]:
            unfed += pipes
    assert unfed == []


def test_tiers_meet_only_at_regulators(engine: sa.Engine) -> None:
    mixed = scalar(engine, """
        SELECT count(*) FROM pipe p JOIN node n ON n.id IN (p.from_node_id, p.to_node_id)
        WHERE n.pressure_class <> p.pressure_class""")
    assert mixed == 0
    wrong_side = scalar(engine, """
        SELECT count(*) FROM regulator r JOIN node i ON i.id = r.inlet_node_id JOIN node o ON o.id = r.outlet_node_id
        WHERE i.pressure_class <> r.inlet_pressure_class OR o.pressure_class <> r.outlet_pressure_class
           OR r.outlet_pressure_class >= r.inlet_pressure_class""")
    assert wrong_side == 0


def test_valves_sit_on_an_end_of_their_pipe(engine: sa.Engine) -> None:
    off = number(engine, """
        SELECT count(*) FROM valve v JOIN pipe p ON p.id = v.pipe_id JOIN node n ON n.id = v.node_id
        WHERE v.node_id NOT IN (p.from_node_id, p.to_node_id)
           OR ST_Distance(v.geom, n.geom) > 2.0 OR ST_Distance(v.geom, p.geom) > 0.001""")
    assert off == 0
    assert number(engine, "SELECT count(*) FROM valve WHERE normal_state = 'closed'") > 0
    assert number(engine, "SELECT count(*) FROM valve WHERE operability <> 'operable'") > 0


def test_customers_hang_on_service_points(engine: sa.Engine) -> None:
    assert scalar(engine, """
        SELECT count(*) FROM customer c LEFT JOIN node n ON n.id = c.service_node_id
        WHERE n.role IS DISTINCT FROM 'service_point'""") == 0
    assert scalar(engine, "SELECT count(DISTINCT user_type) FROM customer") == 2
    assert scalar(engine, "SELECT count(*) FROM customer_personal") == scalar(engine, "SELECT count(*) FROM customer")
    # residents' names are personal data: the public table shows 张**, customer_personal the name
    assert scalar(engine, """SELECT count(*) FROM customer c JOIN customer_personal p ON p.customer_id = c.id
                             WHERE c.user_type = 1 AND (c.name !~ '^.\\*\\*$' OR p.contact_person !~ '^.{2,3}$'
                                                        OR left(p.contact_person, 1) <> left(c.name, 1))""") == 0


def test_mains_cross_the_railway_and_river_in_casings_with_valves_on_both_sides(engine: sa.Engine) -> None:
    for layer in ("railway", "river"):
        with engine.connect() as conn:
            crossings = conn.execute(sa.text(f"""
                SELECT p.pressure_class, p.laying_type, (SELECT count(*) FROM valve v WHERE v.pipe_id = p.id)
                FROM pipe p JOIN {layer} x ON ST_Intersects(p.geom, x.geom)""")).all()
        assert len(crossings) >= 5, layer
        assert {pclass for pclass, _, _ in crossings} >= {1, 2}, layer  # medium and sub-high mains
        assert [c for c in crossings if c[1] != 2 or c[2] != 2] == [], layer


def test_no_node_sits_on_a_pipe_of_its_tier_without_joining_it(engine: sa.Engine) -> None:
    near_miss = scalar(engine, """
        SELECT count(*) FROM node n JOIN pipe p
          ON p.pressure_class = n.pressure_class AND ST_DWithin(p.geom, n.geom, 0.5)
             AND n.id NOT IN (p.from_node_id, p.to_node_id)""")
    assert near_miss == 0


def test_materials_and_ages_make_old_iron_and_steel(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        old: dict[int, int] = dict(conn.execute(sa.text(
            "SELECT material, count(*) FROM pipe WHERE build_year <= 2005 GROUP BY 1")).all())
        materials = set(conn.execute(sa.text("SELECT DISTINCT material FROM pipe")).scalars())
    assert old.get(10, 0) > 0 and old.get(1, 0) > 0  # grey cast iron and steel over 20 years old
    assert materials == {1, 10, 11, 20}


def test_sentries_hazards_and_sensitive_sites_are_placed(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        kinds: dict[str, int] = dict(conn.execute(sa.text(
            "SELECT location_kind, count(*) FROM sentry GROUP BY 1")).all())
        sites: dict[int, int] = dict(conn.execute(sa.text(
            "SELECT site_type, count(*) FROM sensitive_site GROUP BY 1")).all())
    assert kinds.get("valve_chamber", 0) > 0 and kinds.get("sensitive_site", 0) > 0 and kinds.get("station", 0) > 0
    assert set(sites) <= {10, 13, 85} and len(sites) >= 2
    # a sensitive-site sentry stands inside or at the edge of its site (≤ 40 m)
    assert number(engine, """SELECT max(ST_Distance(s.geom, m.geom)) FROM sentry s
                             JOIN sensitive_site m ON m.id = s.sensitive_site_id""") <= 40
    assert number(engine, "SELECT count(*) FROM hazard WHERE check_status < 4") > 0


def test_generator_places_the_city_in_the_crs_it_is_given() -> None:
    """Another CGCS2000 zone (EPSG:4549, CM 120°E) than the schema's: the same city, there."""
    home, elsewhere = (generate(300, seed=42, srid=srid).tables for srid in (SRID, 4549))
    for table, (frame, geometry_columns) in elsewhere.items():
        for column in geometry_columns:
            assert set(shapely.get_srid(frame[column].dropna().to_numpy())) == {4549}, (table, column)
        assert frame.drop(columns=list(geometry_columns)).equals(
            home[table][0].drop(columns=list(geometry_columns))), table
    x, y = shapely.get_coordinates(shapely.centroid(shapely.multilinestrings(elsewhere["pipe"][0]["geom"]))).T
    lon, lat = Transformer.from_crs("EPSG:4549", "EPSG:4490", always_xy=True).transform(x[0], y[0])
    assert abs(lon - CITY_CENTRE_LONLAT[0]) < 0.05 and abs(lat - CITY_CENTRE_LONLAT[1]) < 0.05


def test_the_city_lies_in_anshan(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        x, y = conn.execute(sa.text("SELECT ST_X(c), ST_Y(c) "
                                    "FROM (SELECT ST_Centroid(ST_Extent(geom)) c FROM pipe) s")).one()
        districts = set(conn.execute(sa.text("SELECT DISTINCT admin_code FROM pipe")).scalars())
    lon, lat = Transformer.from_crs("EPSG:4550", "EPSG:4490", always_xy=True).transform(x, y)
    assert 122.9 < lon < 123.1 and 41.0 < lat < 41.2
    assert districts == {"210302", "210303", "210304", "210311"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_load_demo_and_demo_commands_work_end_to_end(scratch_url: str, databases) -> None:
    # an external database, as an operator would give it: the owner's URL, and the authenticator's
    # login for the server (without it, serve and demo refuse to start: tests/test_cli.py)
    app_url = databases.app_url(make_url(scratch_url).database)
    env = {**os.environ, "DATABASE_URL": scratch_url, "QIWANG_APP_DATABASE_URL": app_url}
    done = subprocess.run([str(ROOT / "qiwang"), "load-demo", "--pipes", "1000", "--seed", "5"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    engine = sa.create_engine(scratch_url)
    assert scalar(engine, "SELECT count(*) FROM pipe") == 1000
    engine.dispose()
    port = free_port()
    server = subprocess.Popen([str(ROOT / "qiwang"), "demo", "--port", str(port)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                page = requests.get(f"http://127.0.0.1:{port}/", timeout=5)
                break
            except requests.ConnectionError:
                assert server.poll() is None, server.stderr and server.stderr.read()
                assert time.monotonic() < deadline, "demo did not start serving"
                time.sleep(0.3)
        assert page.status_code == 401   # nothing but the login page, assets and /health without signing in
        signed_in = sign_in_as_demo_account(f"http://127.0.0.1:{port}", "city_regulator")
        page = signed_in.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert page.status_code == 200
        assert "气网" in page.text and "1,000" in page.text  # the demo kept the loaded city (1,000 pipes)
        health = requests.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
        ingest = health.pop("ingest")
        assert health == {"status": "ok", "database": "ok"}
        # the demo's supervised ingest and mosquitto, none restarted
        assert (ingest.pop("status"), ingest.pop("failing")) == ("running", [])
        assert {name: (part["alive"], part["restarts"]) for name, part in ingest.items()} == {
            "writer": (True, 0), "mqtt": (True, 0), "mosquitto": (True, 0)}
        # mosquitto dies: the demo reaps it (no zombie), starts it again and says so at /health
        [broker_pid] = mosquitto_processes(project_broker_dir(ROOT))
        os.kill(broker_pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while (mosquitto := requests.get(f"http://127.0.0.1:{port}/health", timeout=5).json()["ingest"]["mosquitto"]
               )["restarts"] == 0:
            assert time.monotonic() < deadline, "the demo did not restart mosquitto"
            time.sleep(0.2)
        assert (mosquitto["alive"], mosquitto["restarts"], mosquitto["last_failure"]) == (
            True, 1, "mosquitto exited with status -9")
        assert not os.path.exists(f"/proc/{broker_pid}")          # reaped, not a zombie
        assert len(mosquitto_processes(project_broker_dir(ROOT))) == 1
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert mosquitto_processes(project_broker_dir(ROOT)) == [], "the demo left its mosquitto running"


def sign_in_as_demo_account(base: str, name: str) -> requests.Session:
    """Sign in with a demo account's first password from var/demo-accounts.txt, which the demo
    wrote (mode 0600) with every account of demo.accounts; change the password as the first
    login demands; return the signed-in session."""
    listing = ROOT / "var" / "demo-accounts.txt"
    assert stat.S_IMODE(listing.stat().st_mode) == 0o600
    rows = {line.split()[0]: line.split()[-1] for line in listing.read_text(encoding="utf-8").splitlines()[2:]}
    assert set(rows) == {name for name, *_ in DEMO_ACCOUNTS}
    first = rows[name]
    # the first password works, but for nothing else than changing it
    refused = requests.get(f"{base}/", auth=(name, first), timeout=5)
    assert (refused.status_code, refused.json()["code"]) == (403, "Forbidden")
    assert refused.json()["description"].startswith("the password must be changed first")
    session = requests.Session()
    login = session.post(f"{base}/login", data={"name": name, "password": first, "next": "/"},
                         allow_redirects=False, timeout=5)
    assert (login.status_code, login.headers["Location"]) == (303, "/login/password")
    token = session.get(f"{base}/api/session", timeout=5).json()["csrf_token"]
    changed = session.post(f"{base}/login/password", data={"current": first, "new": "Demo-Change-2026",
                                                            "repeat": "Demo-Change-2026", "csrf_token": token},
                           allow_redirects=False, timeout=5)
    assert (changed.status_code, changed.headers["Location"]) == (303, "/map/")
    return session


def mosquitto_processes(data_dir) -> list[int]:
    """PIDs of mosquitto processes started with the config in `data_dir`."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
        except OSError:
            continue
        if argv[0].endswith(b"mosquitto") and f"{data_dir}/mosquitto.conf".encode() in argv:
            pids.append(int(entry))
    return pids
