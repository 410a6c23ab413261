"""The burst report on the demo city: sensitive sites, outage area, GeoJSON, stored incidents."""
from __future__ import annotations

import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
import shapely
import sqlalchemy as sa
from conftest import ROOT, scalar
from networks import ORIGIN, TIERS, load
from signed_in import ensure_account

from app.http_errors import not_permitted
from core.errors import Conflict, InvalidInput, NotFound
from db import migrate
from db.acting import acting_as
from db.engine import get_engine
from emergency.incidents import analyse_and_save, incident, incidents, set_incident_state
from network_analysis.api import burst_analysis


def school_feeder(engine: sa.Engine) -> tuple[str, str]:
    """(feeder pipe code, school code): the branch that feeds a school's regulator cabinet, with two
    working valves (one where it leaves the main, one at the cabinet)."""
    with engine.connect() as conn:
        return conn.execute(sa.text(
            """SELECT p.code, m.code FROM sentry s JOIN sensitive_site m ON m.id = s.sensitive_site_id
               JOIN pipe p ON p.id = s.pipe_id WHERE m.site_type = 10
                AND (SELECT count(*) FROM valve v WHERE v.pipe_id = p.id AND v.operability = 'operable'
                                                    AND v.normal_state = 'open') = 2
               ORDER BY m.id LIMIT 1""")).one()


def test_a_school_feeder_burst_puts_the_school_in_the_outage(engine: sa.Engine) -> None:
    feeder, school = school_feeder(engine)
    result = burst_analysis(engine, pipe=feeder)
    assert result["isolated_pipes"] == [feeder]  # valves at both ends of a branch
    assert len(result["valves_to_close"]) == 2
    assert len(result["dry_pipes"]) >= 10  # the school's yard network behind the cabinet
    sites = {s["code"]: s for s in result["sensitive_sites"]}
    assert sites[school]["in_outage_area"] is True and sites[school]["type"] == "学校"
    assert result["affected_customers"]["count"] == scalar(engine, """
        SELECT count(*) FROM customer c JOIN node n ON n.id = c.service_node_id
        WHERE n.id IN (SELECT to_node_id FROM pipe WHERE code = ANY(:dry))""", dry=result["dry_pipes"])
    assert result["outage_area"] is None and "features" not in result


def test_geometry_output_is_geojson_in_crs84(engine: sa.Engine) -> None:
    feeder, _ = school_feeder(engine)
    result = burst_analysis(engine, pipe=feeder, geometry=True)
    area = shapely.geometry.shape(result["outage_area"])
    assert area.geom_type in ("Polygon", "MultiPolygon") and area.is_valid
    lon, lat = area.centroid.x, area.centroid.y
    assert 122.9 < lon < 123.1 and 41.0 < lat < 41.2  # lon/lat order, in Anshan
    features = result["features"]
    assert [f["id"] for f in features["isolated_pipes"]["features"]] == result["isolated_pipes"]
    assert sorted(f["id"] for f in features["dry_pipes"]["features"]) == result["dry_pipes"]
    assert len(features["valves_to_close"]["features"]) == 2
    assert all(area.buffer(1e-6).contains(shapely.geometry.shape(f["geometry"]))
               for f in features["dry_pipes"]["features"])


def test_incidents_are_stored_recalled_and_move_forward_only(engine: sa.Engine) -> None:
    feeder, _ = school_feeder(engine)
    result = analyse_and_save(engine, "planned", "演练: 学校支管爆管", pipe=feeder)
    code = result["incident"]
    assert code.startswith("SG")
    assert result == {**burst_analysis(engine, pipe=feeder), "incident": code}  # no geometry asked for
    listed = {i["code"]: i for i in incidents(engine)}
    assert listed[code]["state"] == "planned" and listed[code]["pipe"] == feeder
    stored = incident(engine, code)
    assert stored["result"]["valves_to_close"] == result["valves_to_close"]
    assert stored["request"]["pipe"] == feeder
    assert scalar(engine, "SELECT ST_Area(outage_area) > 0 FROM incident WHERE code = :c", c=code)
    assert set_incident_state(engine, code, "active")["state"] == "active"
    assert set_incident_state(engine, code, "closed")["state"] == "closed"
    with pytest.raises(Conflict, match=f"^incident {code} is closed: it cannot go back to planned$"):
        set_incident_state(engine, code, "planned")
    with pytest.raises(NotFound, match=r"^unknown incident 'SG999999'$"):
        incident(engine, "SG999999")
    with pytest.raises(NotFound, match=r"^unknown incident 'SG999999'$"):
        set_incident_state(engine, "SG999999", "active")
    with pytest.raises(InvalidInput,
                       match=r"^state: incident state must be one of planned, active, closed, not 'gone'$"):
        set_incident_state(engine, code, "gone")
    with pytest.raises(InvalidInput, match=r"^save_as: an incident starts as planned or active, not 'closed'$"):
        analyse_and_save(engine, "closed", pipe=feeder)


def test_incident_codes_come_from_a_sequence_that_starts_past_the_codes_in_use(net_engine: sa.Engine) -> None:
    load(net_engine, TIERS)
    url = net_engine.url.render_as_string(hide_password=False)
    migrate.downgrade(url, "0014")  # incidents saved before 0015, numbered by count(*) + 1 and one deleted
    with net_engine.begin() as conn:
        conn.execute(sa.text(
            """INSERT INTO incident (code, request, result, network_version, valves_to_close, customers_out, geom,
                                     enterprise_code, admin_code)
               SELECT old.code, '{}', '{}', 1, 0, 0, ST_SetSRID(ST_MakePoint(:x, :y), 4550), enterprise_code,
                      admin_code
               FROM pipe, unnest(ARRAY['SG000001', 'SG000003', 'SG000007']) AS old (code) WHERE pipe.code = 'm1'"""),
            {"x": ORIGIN[0] + 50, "y": ORIGIN[1]})
    migrate.upgrade(url)
    assert analyse_and_save(net_engine, "active", pipe="m1")["incident"] == "SG000008"

    # dispatchers saving at the same moment each get a code of their own, in the sequence's order
    with ThreadPoolExecutor(max_workers=6) as pool:
        codes = list(pool.map(lambda _: analyse_and_save(net_engine, "planned", pipe="l2")["incident"], range(12)))
    assert sorted(codes) == [f"SG{n:06d}" for n in range(9, 21)]
    listed = sorted(i["code"] for i in incidents(net_engine, "planned"))
    assert listed == ["SG000001", "SG000003", "SG000007", *sorted(codes)]  # the old ones are planned too
    stored = incident(net_engine, "SG000008")
    assert stored["state"] == "active" and stored["request"] == {"pipe": "m1", "at": None, "crs": None,
                                                                 "failed_valves": [], "barriers": []}
    assert stored["result"]["incident"] == "SG000008" and stored["result"]["burst"]["pipe"] == "m1"
    assert scalar(net_engine, "SELECT enterprise_code FROM incident WHERE code = 'SG000008'") == "2103020001"


def test_a_dispatcher_saves_incidents_a_viewer_may_not(engine: sa.Engine, db_url: str, app_url: str) -> None:
    """The web app saves incidents as the signed-in account's role: a dispatcher of the burst
    pipe's enterprise may (and draws codes from the sequence); a viewer is refused by the database."""
    feeder, _ = school_feeder(engine)
    enterprise = scalar(engine, "SELECT enterprise_code FROM pipe WHERE code = :c", c=feeder)
    dispatcher = ensure_account(db_url, f"disp_{enterprise}", ("dispatcher",), enterprise=str(enterprise))
    viewer = ensure_account(db_url, f"view_{enterprise}", ("viewer",), enterprise=str(enterprise))
    app = get_engine(app_url)   # the app's engines switch roles per transaction (db/acting.py)
    with acting_as(dispatcher.db_role):
        code = analyse_and_save(app, "planned", pipe=feeder)["incident"]
        saved = incident(app, code)
        assert saved["result"]["burst"]["pipe"] == feeder
        assert (saved["created_by"], saved["state_changed_by"]) == (dispatcher.name, dispatcher.name)
    # the database records who, whatever the writer sends: a forged name is replaced, the saver kept
    other = ensure_account(db_url, f"disp2_{enterprise}", ("dispatcher",), enterprise=str(enterprise))
    with acting_as(other.db_role), app.begin() as conn:
        conn.execute(sa.text("UPDATE incident SET state = 'active', created_by = 'someone', state_changed_by = "
                             "'someone' WHERE code = :c"), {"c": code})
    with acting_as(other.db_role):
        moved = incident(app, code)
    assert (moved["state"], moved["created_by"], moved["state_changed_by"]) == ("active", dispatcher.name, other.name)
    assert moved["state_changed_at"] > saved["state_changed_at"]
    with acting_as(viewer.db_role), pytest.raises(sa.exc.ProgrammingError) as refused:
        analyse_and_save(app, "planned", pipe=feeder)
    assert refused.value.orig.sqlstate == "42501"
    assert not_permitted(refused.value).http_status == 403


def run(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ROOT / "qiwang"), *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "DATABASE_URL": db_url})


def test_cli_burst_json_is_the_api_report(engine: sa.Engine, db_url: str) -> None:
    feeder, _ = school_feeder(engine)
    done = run(db_url, "burst", "--pipe", feeder, "--json")
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    api = burst_analysis(engine, pipe=feeder)
    assert printed == {**api, "network_version": printed["network_version"]}
    human = run(db_url, "burst", "--pipe", feeder)
    assert "关阀 valves to close: 2" in human.stdout and "学校" in human.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("burst", "--pipe", "GX9999999"), "qiwang: error: --pipe: unknown pipe code 'GX9999999'"),
        (("burst", "--at", "0,0"), "qiwang: error: --at: point (0.0, 0.0) is not on the network: the nearest pipe is "),
        (("burst", "--pipe", "GX0000001", "--barrier", "1,1"),
         "qiwang: error: --barrier 1,1: point (1.0, 1.0) is not on the network: the nearest pipe is "),
        (("burst", "--at", "1,2", "--crs", "EPSG:nope"), "qiwang: error: --crs: unknown CRS 'EPSG:nope'"),
        (("burst", "--at", "1;2"), "qiwang: error: invalid value for --at: '1;2' is not X,Y"),
        (("burst", "--pipe", "GX0000001", "--failed-valve", "FM-NOPE"),
         "qiwang: error: --failed-valve FM-NOPE: unknown valve code 'FM-NOPE'"),
        (("burst",), "qiwang: error: give --pipe CODE or --at X,Y"),
    ],
)
def test_cli_burst_bad_input_is_one_line(db_url: str, args: tuple[str, ...], message: str) -> None:
    done = run(db_url, *args)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith(message), done.stderr


def test_cli_criticality_ranks_the_segment_next_to_the_gate_station_first(engine: sa.Engine, db_url: str) -> None:
    done = run(db_url, "criticality", "--json", "--top", "3")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    top = report["top_segments"][0]
    # the high-pressure line of the larger enterprise feeds all of its customers
    assert top["customers_cut"] == scalar(engine, "SELECT count(*) FROM customer WHERE enterprise_code = '2103020001'")
    assert report["segments"] > 100 and report["top_valves"][0]["bound"] == "lower"
