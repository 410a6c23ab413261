"""The analyses as OGC API processes: each processor against the real database, inputs checked and
errors naming the input (a bad value of every input), asynchronous jobs kept in PostgreSQL through
pygeoapi's manager and pruned (`./qiwang jobs prune`), synchronous executions kept nowhere, the jobs
migration.

The processors only wrap network_analysis, so each result is compared with a direct call of the
function it wraps, for the same inputs; the analyses themselves are tested elsewhere.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import ROOT, migrated_database, scalar
from flask import Flask, request
from networks import ORIGIN, TIERS, load
from pygeoapi.api import API, APIRequest
from pygeoapi.api.processes import describe_processes, execute_process, get_oas_30
from pygeoapi.plugin import load_plugin
from pygeoapi.process.base import ProcessorExecuteError
from pygeoapi.process.manager.base import get_manager
from pygeoapi.util import JobStatus, RequestedProcessExecutionMode
from pyproj import Transformer

from app.processes import PROCESSES, manager_definition, process_resources
from app.processes.base import checked_inputs
from app.processes.jobs import QiwangJobManager, prune_jobs
from db import migrate
from network_analysis import routing
from network_analysis.api import burst_analysis
from network_analysis.criticality import criticality_report
from network_analysis.radius import near
from network_analysis.statistics import network_statistics
from network_analysis.topology import topologies

TO_CRS84 = Transformer.from_crs(4550, "OGC:CRS84", always_xy=True).transform
FAR_EAST = Transformer.from_crs("OGC:CRS84", 4550, always_xy=True).transform(110.0, 35.0)   # no road near


def url_of(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def processor(url: str, process_id: str):
    """The processor as pygeoapi's manager builds it: from the resource entry, by dotted path."""
    return load_plugin("process", process_resources(url)[process_id]["processor"])


def run(url: str, process_id: str, inputs: dict) -> dict:
    mimetype, result = processor(url, process_id).execute(inputs)
    assert mimetype == "application/json"
    return result


@pytest.fixture(scope="module")
def tiers(net_engine: sa.Engine) -> str:
    """The two-tier hand-made network (tests/networks.py TIERS); its database URL."""
    load(net_engine, TIERS)
    return url_of(net_engine)


# --- metadata -------------------------------------------------------------------------------------

@pytest.mark.parametrize("process_id", sorted(PROCESSES))
def test_metadata_declares_every_input_and_a_valid_example(process_id: str) -> None:
    p = processor("postgresql+psycopg://nobody@/nowhere", process_id)  # no connection until executed
    md = p.metadata
    assert md["id"] == process_id
    assert md["jobControlOptions"] == ["sync-execute", "async-execute"]
    assert set(md["title"]) == set(md["description"]) == {"en", "zh"}
    for name, spec in md["inputs"].items():
        assert {"title", "description", "schema", "minOccurs", "maxOccurs"} <= set(spec), name
    assert list(md["outputs"]) == ["report"]
    assert md["outputs"]["report"]["schema"]["contentMediaType"] == "application/json"
    checked_inputs(md, md["example"]["inputs"])  # the example passes the declared schemas


def test_process_resources_and_manager_definition(tmp_path: Path) -> None:
    resources = process_resources("postgresql+psycopg://qiwang@/qiwang?host=/tmp")
    assert list(resources) == ["burst-analysis", "criticality", "radius-query", "route", "topology-check",
                               "network-statistics"]
    assert resources["route"] == {"type": "process", "processor": {
        "name": "app.processes.route.RouteProcessor", "database_url": "postgresql+psycopg://qiwang@/qiwang?host=/tmp"}}
    assert manager_definition("postgresql+psycopg://qiwang@/qiwang", tmp_path) == {
        "name": "app.processes.jobs.QiwangJobManager", "connection": "postgresql+psycopg://qiwang@/qiwang",
        "output_dir": str(tmp_path)}


# --- burst-analysis on a hand-made network ----------------------------------------------------------

def test_burst_by_pipe_is_the_analysis_report(tiers: str, net_engine: sa.Engine) -> None:
    result = run(tiers, "burst-analysis", {"pipe": "m2"})
    direct = burst_analysis(net_engine, pipe="m2")
    assert {v["code"] for v in result["valves_to_close"]} == {v["code"] for v in direct["valves_to_close"]}
    assert result == direct


def test_burst_at_a_crs84_point_with_a_failed_valve_and_geometry(tiers: str, net_engine: sa.Engine) -> None:
    lon, lat = TO_CRS84(ORIGIN[0] + 150, ORIGIN[1])  # middle of m2 (a → ri)
    result = run(tiers, "burst-analysis", {"point": {"type": "Point", "coordinates": [lon, lat]},
                                           "failed_valves": "vm2", "geometry": True})
    direct = burst_analysis(net_engine, point=(lon, lat), crs="OGC:CRS84", failed_valves=["vm2"], geometry=True)
    assert result == direct
    assert result["burst"]["pipe"] == "m2" and result["second_ring"]["failed_valves"] == ["vm2"]
    assert result["outage_area"]["type"] in ("Polygon", "MultiPolygon")
    assert {f["id"] for f in result["features"]["valves_to_close"]["features"]} == {
        v["code"] for v in result["valves_to_close"]}


def test_burst_at_a_storage_crs_point_given_as_a_pair(tiers: str, net_engine: sa.Engine) -> None:
    point = (ORIGIN[0] + 150, ORIGIN[1] + 2)
    barrier = (ORIGIN[0] + 250, ORIGIN[1])  # on l1
    result = run(tiers, "burst-analysis", {"point": {"value": list(point)}, "crs": "EPSG:4550",
                                           "barriers": [list(barrier)]})
    assert result == burst_analysis(net_engine, point=point, crs="EPSG:4550", barriers=[barrier])
    assert result["burst"]["pipe"] == "m2"


@pytest.mark.parametrize(("inputs", "named", "says"), [
    ({"pipe": "NOPE"}, "'pipe'", "unknown pipe code 'NOPE'"),
    ({}, "'pipe'", "exactly one"),
    ({"pipe": "m1", "point": [123.0, 41.0]}, "'point'", "exactly one"),
    ({"pipe": "m1", "colour": "red"}, "'colour'", "unknown input"),
    ({"pipe": 12}, "'pipe'", "is not of type 'string'"),
    ({"pipe": "m1", "geometry": "yes"}, "'geometry'", "is not of type 'boolean'"),
    ({"pipe": "m1", "save_as": "closed"}, "'save_as'", "is not one of"),
    ({"pipe": "m1", "failed_valves": ["vm2", "NOPE"]}, "'failed_valves[1]'", "unknown valve code 'NOPE'"),
    ({"pipe": "m1", "failed_valves": [7]}, "'failed_valves[0]'", "is not of type 'string'"),
    ({"point": [ORIGIN[0] + 50, ORIGIN[1] + 500], "crs": "EPSG:4550"}, "'point'", "not on the network"),
    ({"point": {"type": "Point", "coordinates": ["a", 1]}}, "'point' at coordinates[0]", "is not of type 'number'"),
    ({"pipe": "m1", "barriers": [[ORIGIN[0], ORIGIN[1] - 900]], "crs": "EPSG:4550"}, "'barriers[0]'",
     "not on the network"),
    ({"pipe": "m1", "barriers": [[1, 2]], "crs": "EPSG:999999"}, "'crs'", "unknown CRS"),
])
def test_bad_burst_inputs_name_the_input(tiers: str, inputs: dict, named: str, says: str) -> None:
    with pytest.raises(ProcessorExecuteError) as caught:
        run(tiers, "burst-analysis", inputs)
    message = str(caught.value)
    assert named in message and says in message
    assert caught.value.message == message and caught.value.http_status_code == 400


# --- the other processes on the demo city -----------------------------------------------------------

def pipe_midpoint_crs84(engine: sa.Engine) -> tuple[float, float]:
    with engine.connect() as conn:
        x, y = conn.execute(sa.text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_LineInterpolatePoint(ST_Force2D(geom), 0.5) AS p FROM pipe "
            "WHERE status = 'in_service' ORDER BY id LIMIT 1) s")).one()
    return TO_CRS84(x, y)


def road_points(engine: sa.Engine) -> list[tuple[float, float]]:
    """Midpoints of two roads far apart, in EPSG:4550."""
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_LineInterpolatePoint(geom, 0.5) AS p, id FROM road) s "
            "ORDER BY id LIMIT 2 OFFSET 0")).all()] + [tuple(r) for r in conn.execute(sa.text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_LineInterpolatePoint(geom, 0.5) AS p, id FROM road) s "
            "ORDER BY id DESC LIMIT 1")).all()]


def test_radius_query(db_url: str, engine: sa.Engine) -> None:
    lon, lat = pipe_midpoint_crs84(engine)
    result = run(db_url, "radius-query", {"point": [lon, lat], "radius_m": 150, "limit_per_layer": 5})
    with engine.connect() as conn:
        assert result == near(conn, lon, lat, 150, crs="OGC:CRS84", limit_per_layer=5)
    assert result["counts"]["pipe"] >= 1 and set(result) == {"center", "radius_m", "features", "counts"}


def test_route_from_a_point_and_from_the_nearest_crew_base(db_url: str, engine: sa.Engine) -> None:
    start, _, end = road_points(engine)
    given = run(db_url, "route", {"from": list(start), "to": list(end), "crs": "EPSG:4550"})
    assert given == routing.route(engine, start, end, crs="EPSG:4550")
    assert given["length_m"] > 0 and given["geometry"]["type"] == "LineString"
    lon, lat = TO_CRS84(*end)
    nearest = run(db_url, "route", {"to": {"type": "Point", "coordinates": [lon, lat]}})
    assert nearest == routing.route_from_nearest_crew_base(engine, (lon, lat), crs="OGC:CRS84")
    assert set(nearest) == {"crew_base", "route", "others", "unreachable"}


def test_network_statistics(db_url: str, engine: sa.Engine) -> None:
    admin = scalar(engine, "SELECT admin_code FROM pipe ORDER BY id LIMIT 1")
    result = run(db_url, "network-statistics", {"admin_code": admin, "as_of_year": 2020})
    with engine.connect() as conn:
        assert result == network_statistics(conn, admin_code=admin, as_of_year=2020)
    assert result["total"]["count"] > 0


def test_criticality(db_url: str, engine: sa.Engine) -> None:
    result = run(db_url, "criticality", {"top": 3})
    assert result == criticality_report(topologies.get(engine), 3)
    assert len(result["top_segments"]) == 3


def test_topology_check(db_url: str, engine: sa.Engine) -> None:
    result = run(db_url, "topology-check", {})
    assert set(result) == {"network_version", "counts", "issues"}
    assert sum(result["counts"].values()) == scalar(engine, "SELECT count(*) FROM topology_issue")


@pytest.mark.parametrize(("process_id", "inputs", "named", "says"), [
    ("radius-query", {"point": [123.0, 41.1]}, "'radius_m'", "is required"),
    ("radius-query", {"point": [123.0, 41.1], "radius_m": 0}, "'radius_m'", "more than 0"),
    ("radius-query", {"point": [123.0, 41.1], "radius_m": 9000}, "'radius_m'", "maximum"),
    ("radius-query", {"point": [100.0, 30.0], "radius_m": 100}, "'point'", "outside the deployment area"),
    ("radius-query", {"point": [123.0, 41.1], "radius_m": 100, "crs": "EPSG:nope"}, "'crs'", "unknown CRS"),
    ("route", {"from": [110.0, 35.0], "to": [123.0, 41.1]}, "'from'", "no road within"),
    ("route", {"to": [110.0, 35.0]}, "'to'", "no road within"),
    ("route", {"from": [123.0, 41.1]}, "'to'", "is required"),
    ("network-statistics", {"enterprise_code": "9999999999"}, "'enterprise_code'", "unknown enterprise code"),
    ("network-statistics", {"admin_code": "21"}, "'admin_code'", "does not match"),
    ("network-statistics", {"as_of_year": "2020"}, "'as_of_year'", "is not of type 'integer'"),
    ("criticality", {"top": 0}, "'top'", "minimum"),
    ("topology-check", {"tolerance_m": -1}, "'tolerance_m'", "minimum"),
    ("topology-check", "tolerance", "inputs", "JSON object"),
])
def test_bad_inputs_name_the_input(db_url: str, process_id: str, inputs: dict, named: str, says: str) -> None:
    with pytest.raises(ProcessorExecuteError) as caught:
        run(db_url, process_id, inputs)
    assert named in str(caught.value) and says in str(caught.value)


# --- jobs in PostgreSQL through pygeoapi's manager ----------------------------------------------------

@pytest.fixture
def manager(tiers: str, tmp_path: Path) -> QiwangJobManager:
    """The manager as pygeoapi's get_manager builds it from the configuration the blueprint writes."""
    config = {"server": {"manager": manager_definition(tiers, tmp_path / "jobs")},
              "resources": process_resources(tiers)}
    built = get_manager(config)
    assert isinstance(built, QiwangJobManager) and built.is_async
    return built


def wait_for(manager: QiwangJobManager, job_id: str, timeout_s: float = 60) -> dict:
    deadline = time.monotonic() + timeout_s
    while (job := manager.get_job(job_id))["status"] in ("accepted", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    return job


def test_async_job_round_trip(manager: QiwangJobManager, net_engine: sa.Engine) -> None:
    sync = run(url_of(net_engine), "burst-analysis", {"pipe": "m3"})
    job_id, _, outputs, status, headers = manager.execute_process(
        "burst-analysis", {"pipe": "m3"}, execution_mode=RequestedProcessExecutionMode.respond_async)
    assert status == JobStatus.accepted and outputs is None
    assert headers == {"Preference-Applied": "respond-async"}
    job = wait_for(manager, job_id)
    assert job["status"] == "successful" and job["progress"] == 100, job
    assert job["process_id"] == "burst-analysis" and job["finished"].endswith("Z")
    assert manager.get_job_result(job_id) == ("application/json", sync)
    row = scalar(net_engine, "SELECT status || ' ' || mimetype FROM jobs WHERE identifier = :id", id=job_id)
    assert row == "successful application/json"
    listed = manager.get_jobs(limit=1)
    assert listed["jobs"][0]["identifier"] == job_id and listed["numberMatched"] >= 1
    assert manager.delete_job(job_id) and not Path(job["location"]).exists()


def test_failing_async_job_ends_failed_with_the_message(manager: QiwangJobManager, net_engine: sa.Engine) -> None:
    job_id, *_ = manager.execute_process("burst-analysis", {"pipe": "NOPE"},
                                         execution_mode=RequestedProcessExecutionMode.respond_async)
    job = wait_for(manager, job_id)
    assert job["status"] == "failed"
    assert "input 'pipe': unknown pipe code 'NOPE'" in job["message"]
    assert scalar(net_engine, "SELECT status FROM jobs WHERE identifier = :id", id=job_id) == "failed"
    assert manager.get_job_result(job_id) == (None,)


def test_sync_execution_through_the_manager(manager: QiwangJobManager, net_engine: sa.Engine) -> None:
    """What pygeoapi answers synchronously: the report (200), or for bad input the failure JSON (400);
    neither is recorded as a job."""
    job_id, mimetype, outputs, status, headers = manager.execute_process("burst-analysis", {"pipe": "m1"})
    assert status == JobStatus.successful and outputs == burst_analysis(net_engine, pipe="m1")
    assert headers is None and mimetype == "application/json"
    failed_id, _, outputs, status, headers = manager.execute_process(
        "burst-analysis", {"pipe": "m1", "top": 3}, execution_mode=RequestedProcessExecutionMode.wait)
    assert status == JobStatus.failed and headers == {"Preference-Applied": "wait"}
    assert outputs == {"type": "InvalidParameterValue", "code": "InvalidParameterValue",
                       "description": "Error executing process: unknown input 'top': burst-analysis takes pipe, "
                                      "point, crs, failed_valves, barriers, geometry, save_as, title"}
    assert scalar(net_engine, "SELECT count(*) FROM jobs WHERE identifier IN (:a, :b)", a=job_id, b=failed_id) == 0
    assert list(manager.output_dir.iterdir()) == []


# --- the migration --------------------------------------------------------------------------------

def test_jobs_migration_goes_up_and_down(databases) -> None:
    with migrated_database(databases, "qiwang_jobs_migration") as engine:
        url = url_of(engine)
        with engine.connect() as conn:
            columns = dict(conn.execute(sa.text(
                "SELECT attname, col_description(attrelid, attnum) FROM pg_attribute "
                "WHERE attrelid = 'jobs'::regclass AND attnum > 0 AND NOT attisdropped")).all())
        assert set(columns) == {"identifier", "type", "process_id", "status", "message", "progress", "mimetype",
                                "location", "created", "started", "updated", "finished", "owner_role"}
        assert all(columns.values()) and scalar(engine, "SELECT obj_description('jobs'::regclass)")
        # 0016 (accounts) added the job's owner, which row-level security keeps each account to
        assert scalar(engine, "SELECT relrowsecurity FROM pg_class WHERE oid = 'jobs'::regclass") is True
        migrate.downgrade(url, "0015")
        assert scalar(engine, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'jobs'::regclass "
                              "AND attname = 'owner_role' AND NOT attisdropped") == 0
        assert scalar(engine, "SELECT relrowsecurity FROM pg_class WHERE oid = 'jobs'::regclass") is False
        migrate.downgrade(url, "0007")
        assert scalar(engine, "SELECT to_regclass('jobs')") is None
        migrate.upgrade(url)
        assert scalar(engine, "SELECT to_regclass('jobs')") == "jobs"


@pytest.mark.parametrize("process_id", sorted(PROCESSES))
def test_the_documented_example_runs_on_the_demo_city(db_url: str, process_id: str) -> None:
    p = processor(db_url, process_id)
    _, result = p.execute(p.metadata["example"]["inputs"])
    assert isinstance(result, dict) and result


# --- what pygeoapi's API answers (its own request handling, without the Qiwang blueprint) -----------

@pytest.fixture
def ogc_api(tiers: str, tmp_path: Path) -> API:
    config = {"server": {"url": "http://localhost/ogc", "mimetype": "application/json; charset=UTF-8",
                         "encoding": "utf-8", "languages": ["en-US"], "limits": {"default_items": 10,
                         "max_items": 100}, "manager": manager_definition(tiers, tmp_path / "jobs")},
              "logging": {"level": "ERROR"}, "metadata": {}, "resources": process_resources(tiers)}
    return API(config, {})


def execute_over_http(api: API, process_id: str, body: dict, prefer: str | None = None
                      ) -> tuple[dict, int, dict | None]:
    """pygeoapi's execute handler on a Flask request, as a blueprint calls it."""
    with Flask(__name__).test_request_context(f"/processes/{process_id}/execution", method="POST",
                                              json=body, headers={"Prefer": prefer} if prefer else {}):
        headers, status, content = execute_process(api, APIRequest.from_flask(request, api.locales), process_id)
    return headers, int(status), json.loads(content) if content else None


def test_pygeoapi_answers_bad_input_with_400_and_async_with_201(ogc_api: API, net_engine: sa.Engine) -> None:
    headers, status, body = execute_over_http(ogc_api, "burst-analysis", {"inputs": {"pipe": "m1"}})
    assert status == 200 and body == burst_analysis(net_engine, pipe="m1")
    headers, status, body = execute_over_http(ogc_api, "burst-analysis", {"inputs": {"pipe": "NOPE"}})
    assert status == 400 and body["code"] == "InvalidParameterValue"
    assert body["description"] == "Error executing process: input 'pipe': unknown pipe code 'NOPE'"
    headers, status, body = execute_over_http(ogc_api, "burst-analysis", {"inputs": {"pipe": "m1"}},
                                              prefer="respond-async")
    assert status == 201 and headers["Location"].startswith("http://localhost/ogc/jobs/")
    assert headers["Preference-Applied"] == "respond-async"
    assert wait_for(ogc_api.manager, headers["Location"].rsplit("/", 1)[1])["status"] == "successful"


def test_pygeoapi_describes_the_processes_and_their_openapi(ogc_api: API) -> None:
    with Flask(__name__).test_request_context("/processes/radius-query?f=json"):
        _, status, content = describe_processes(ogc_api, APIRequest.from_flask(request, ogc_api.locales),
                                                "radius-query")
    described = json.loads(content)
    assert status == 200 and described["jobControlOptions"] == ["sync-execute", "async-execute"]
    assert described["inputs"]["radius_m"]["minOccurs"] == 1
    _, oas = get_oas_30(ogc_api.config, "en-US")
    for process_id in PROCESSES:
        post = oas["paths"][f"/processes/{process_id}/execution"]["post"]
        assert post["responses"]["200"]["content"]["application/json"]["schema"] == {"type": "object"}
        assert "example" in post["requestBody"]["content"]["application/json"]


# --- a bad value of every input names the input (the analysis's InvalidInput field, or the schema) ---

# (process, input, inputs with a bad value of that input): for each input a value the declared schema
# refuses and, where the analysis checks more than the schema can, a value only the analysis refuses.
FAR = [ORIGIN[0] + 50, ORIGIN[1] + 500]             # 500 m from every pipe of TIERS
BAD_VALUES: list[tuple[str, str, dict]] = [
    ("burst-analysis", "pipe", {"pipe": "NOPE"}),
    ("burst-analysis", "pipe", {"pipe": 12}),
    ("burst-analysis", "pipe", {"pipe": ""}),
    ("burst-analysis", "point", {"point": FAR, "crs": "EPSG:4550"}),
    ("burst-analysis", "point", {"point": [1.0]}),
    ("burst-analysis", "point", {"point": {"type": "LineString", "coordinates": [[1, 2], [3, 4]]}}),
    ("burst-analysis", "crs", {"point": [123.0, 41.1], "crs": "EPSG:999999"}),
    ("burst-analysis", "crs", {"pipe": "m1", "crs": 4550}),
    ("burst-analysis", "failed_valves", {"pipe": "m1", "failed_valves": ["NOPE"]}),
    ("burst-analysis", "failed_valves", {"pipe": "m1", "failed_valves": ["vm2", 7]}),
    ("burst-analysis", "barriers", {"pipe": "m1", "barriers": [FAR], "crs": "EPSG:4550"}),
    ("burst-analysis", "barriers", {"pipe": "m1", "barriers": [[ORIGIN[0] + 250, ORIGIN[1]], FAR], "crs": "EPSG:4550"}),
    ("burst-analysis", "barriers", {"pipe": "m1", "barriers": ["here"]}),
    ("burst-analysis", "geometry", {"pipe": "m1", "geometry": "yes"}),
    ("burst-analysis", "save_as", {"pipe": "m1", "save_as": "closed"}),
    ("burst-analysis", "title", {"pipe": "m1", "save_as": "planned", "title": 5}),
    ("criticality", "top", {"top": 0}),
    ("criticality", "top", {"top": "3"}),
    ("radius-query", "point", {"point": [100.0, 30.0], "radius_m": 100}),
    ("radius-query", "point", {"point": "here", "radius_m": 100}),
    ("radius-query", "point", {"radius_m": 100}),
    ("radius-query", "radius_m", {"point": [123.0, 41.1], "radius_m": 0}),
    ("radius-query", "radius_m", {"point": [123.0, 41.1], "radius_m": 9000}),
    ("radius-query", "crs", {"point": [123.0, 41.1], "radius_m": 100, "crs": "EPSG:nope"}),
    ("radius-query", "crs", {"point": [123.0, 41.1], "radius_m": 100, "crs": ["EPSG:4326"]}),
    ("radius-query", "limit_per_layer", {"point": [123.0, 41.1], "radius_m": 100, "limit_per_layer": 0}),
    ("radius-query", "limit_per_layer", {"point": [123.0, 41.1], "radius_m": 100, "limit_per_layer": 1.5}),
    ("route", "to", {"to": [110.0, 35.0]}),
    ("route", "to", {"to": {"type": "Point"}}),
    ("route", "to", {"from": [123.0, 41.1]}),
    ("route", "from", {"from": [110.0, 35.0], "to": [123.0, 41.1]}),
    ("route", "from", {"from": [110.0, "35"], "to": [123.0, 41.1]}),
    ("route", "crs", {"to": [123.0, 41.1], "crs": "EPSG:nope"}),
    ("route", "crs", {"to": [123.0, 41.1], "crs": 4490}),
    ("network-statistics", "enterprise_code", {"enterprise_code": "9999999999"}),
    ("network-statistics", "enterprise_code", {"enterprise_code": "99"}),
    ("network-statistics", "admin_code", {"admin_code": "999999"}),
    ("network-statistics", "admin_code", {"admin_code": "21"}),
    ("network-statistics", "as_of_year", {"as_of_year": 1800}),
    ("network-statistics", "as_of_year", {"as_of_year": "2020"}),
    ("topology-check", "tolerance_m", {"tolerance_m": -1}),
    ("topology-check", "tolerance_m", {"tolerance_m": "1"}),
    ("topology-check", "near_miss_m", {"near_miss_m": 101}),
    ("topology-check", "near_miss_m", {"near_miss_m": "1"}),
]


def _api(database_url: str, jobs_dir: Path) -> API:
    config = {"server": {"url": "http://localhost/ogc", "mimetype": "application/json; charset=UTF-8",
                         "encoding": "utf-8", "languages": ["en-US"], "limits": {"default_items": 10,
                         "max_items": 100}, "manager": manager_definition(database_url, jobs_dir)},
              "logging": {"level": "ERROR"}, "metadata": {}, "resources": process_resources(database_url)}
    return API(config, {})


@pytest.fixture(scope="module")
def apis(tiers: str, db_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, API]:
    """pygeoapi's API per process: burst-analysis on TIERS, the others on the demo city."""
    on_tiers, on_city = _api(tiers, tmp_path_factory.mktemp("jobs")), _api(db_url, tmp_path_factory.mktemp("jobs"))
    return {pid: on_tiers if pid == "burst-analysis" else on_city for pid in PROCESSES}


def test_every_input_of_every_process_has_bad_values_below() -> None:
    declared = {(pid, name) for pid in PROCESSES
                for name in processor("postgresql+psycopg://nobody@/nowhere", pid).metadata["inputs"]}
    assert {(pid, name) for pid, name, _ in BAD_VALUES} == declared


@pytest.mark.parametrize(("process_id", "name", "inputs"), BAD_VALUES,
                         ids=[f"{p}-{n}-{k}" for k, (p, n, _) in enumerate(BAD_VALUES)])
def test_a_bad_value_of_every_input_is_400_naming_it(apis: dict[str, API], process_id: str, name: str,
                                                      inputs: dict) -> None:
    """Over HTTP as pygeoapi answers: 400, the description starting with the input (an item of a
    list input by its index; a schema error then says where in the value; a missing one is required)."""
    _, status, body = execute_over_http(apis[process_id], process_id, {"inputs": inputs})
    assert status == 400, body
    assert body["code"] == "InvalidParameterValue"
    named = rf"Error executing process: input '{re.escape(name)}(\[\d+\])?'(( at \S+)?: \S| is required$)"
    assert re.match(named, body["description"]), body["description"]


@pytest.mark.parametrize(("process_id", "inputs", "description"), [
    ("burst-analysis", {"pipe": "NOPE"}, "input 'pipe': unknown pipe code 'NOPE'"),
    ("burst-analysis", {"pipe": "m1", "failed_valves": ["vm2", "NOPE"]},
     "input 'failed_valves[1]': unknown valve code 'NOPE'"),
    ("burst-analysis", {"pipe": "m1", "barriers": [[ORIGIN[0] + 250, ORIGIN[1]], FAR], "crs": "EPSG:4550"},
     f"input 'barriers[1]': point ({FAR[0]:.1f}, {FAR[1]:.1f}) is not on the network: the nearest pipe is 500 m "
     "away (tolerance 50 m)"),
    ("burst-analysis", {"point": [123.0, 41.1], "crs": "EPSG:999999"}, "input 'crs': unknown CRS 'EPSG:999999'"),
    ("radius-query", {"point": [123.0, 41.1], "radius_m": 0},
     "input 'radius_m': must be more than 0 and at most 5000 m, not 0"),
    ("route", {"from": [110.0, 35.0], "to": [123.0, 41.1]},
     f"input 'from': no road within 500 m of ({FAR_EAST[0]:.1f}, {FAR_EAST[1]:.1f}) (EPSG:4550)"),
    ("network-statistics", {"admin_code": "999999"}, "input 'admin_code': unknown admin code '999999'"),
])
def test_the_analysis_reason_follows_the_input_name(apis: dict[str, API], process_id: str, inputs: dict,
                                                    description: str) -> None:
    """The input named from the error's field, the rest the analysis's own words (no message parsed)."""
    _, status, body = execute_over_http(apis[process_id], process_id, {"inputs": inputs})
    assert (status, body["description"]) == (400, f"Error executing process: {description}")


def test_a_network_without_roads_is_a_conflict_not_the_clients_fault(ogc_api: API) -> None:
    """TIERS has pipes and no road: routing there is refused as the data stands (409), whatever the input."""
    _, status, body = execute_over_http(ogc_api, "route", {"inputs": {"to": [123.0, 41.1]}})
    assert (status, body) == (409, {"code": "Conflict", "type": "Conflict",
                                    "description": "the road table is empty: nothing to route on"})


def test_a_database_away_is_503(tmp_path: Path, tiers: str) -> None:
    """The processes' database unreachable (here: a database that does not exist) is the server's trouble."""
    away = sa.make_url(tiers).set(database="qiwang_no_such_database").render_as_string(hide_password=False)
    with pytest.raises(ProcessorExecuteError) as caught:
        run(away, "topology-check", {})
    assert caught.value.http_status_code == 503 and caught.value.ogc_exception_code == "ServiceUnavailable"
    assert re.fullmatch(r'database: .*"qiwang_no_such_database" does not exist; try again later', caught.value.message)


# --- jobs: synchronous executions are not kept; old asynchronous ones are pruned -----------------------

def test_fifty_synchronous_bursts_leave_no_job_and_no_file(ogc_api: API, net_engine: sa.Engine) -> None:
    jobs_dir = ogc_api.manager.output_dir
    before = scalar(net_engine, "SELECT count(*) FROM jobs")
    answers = []
    for k in range(50):
        inputs = {"pipe": "NOPE"} if k % 10 == 9 else {"pipe": ("m1", "m2", "m3")[k % 3]}
        _, status, body = execute_over_http(ogc_api, "burst-analysis", {"inputs": inputs},
                                            prefer=("wait", None)[k % 2])
        answers.append(status)
        if status == 200:
            assert body["burst"]["pipe"] == inputs["pipe"]
    assert answers.count(200) == 45 and answers.count(400) == 5
    assert scalar(net_engine, "SELECT count(*) FROM jobs") == before
    assert list(jobs_dir.iterdir()) == []
    # while an asynchronous execution is a job, with its result file
    headers, status, _ = execute_over_http(ogc_api, "burst-analysis", {"inputs": {"pipe": "m1"}},
                                           prefer="respond-async")
    job = wait_for(ogc_api.manager, headers["Location"].rsplit("/", 1)[1])
    assert status == 201 and job["status"] == "successful"
    assert scalar(net_engine, "SELECT count(*) FROM jobs") == before + 1
    assert [p.name for p in jobs_dir.iterdir()] == [f"burst-analysis-{job['identifier']}"]


def prune(database_url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`./qiwang jobs prune` (what ./qiwang runs once its environment is set up: python -m app)."""
    environ = {k: v for k, v in os.environ.items() if k != "QIWANG_JOBS_RETENTION_DAYS"}
    return subprocess.run([sys.executable, "-m", "app", "jobs", "prune", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env={**environ, "DATABASE_URL": database_url, **env})


def age(engine: sa.Engine, job_id: str, days: float) -> None:
    """Make the job look `days` days old (all its times moved back)."""
    with engine.begin() as conn:
        conn.execute(sa.text(
            "UPDATE jobs SET created = created - d, started = started - d, updated = updated - d, "
            "finished = finished - d FROM (SELECT :days * interval '1 day' AS d) AS shift WHERE identifier = :id"),
            {"days": days, "id": job_id})


def test_jobs_prune_removes_the_old_jobs_and_their_files(manager: QiwangJobManager, net_engine: sa.Engine,
                                                         tiers: str) -> None:
    def job(inputs: dict) -> dict:
        job_id, *_ = manager.execute_process("burst-analysis", inputs,
                                             execution_mode=RequestedProcessExecutionMode.respond_async)
        return wait_for(manager, job_id)

    with net_engine.begin() as conn:  # earlier tests' jobs of this database: not this test's to count
        conn.execute(sa.text("DELETE FROM jobs"))
    old, old_failed, recent, fresh = (job({"pipe": pipe}) for pipe in ("m1", "NOPE", "m2", "m3"))
    assert [j["status"] for j in (old, old_failed, recent, fresh)] == ["successful", "failed", "successful",
                                                                       "successful"]
    age(net_engine, old["identifier"], 8)
    age(net_engine, old_failed["identifier"], 30)
    age(net_engine, recent["identifier"], 5)
    files = {j["identifier"]: Path(j["location"]) for j in (old, recent, fresh)}
    assert all(f.is_file() for f in files.values())

    done = prune(tiers)
    assert (done.returncode, done.stdout, done.stderr) == (0, "removed 2 jobs and 1 result file older than 7 days\n",
                                                           "")
    with net_engine.connect() as conn:
        kept = set(conn.execute(sa.text("SELECT identifier FROM jobs")).scalars())
    assert kept == {recent["identifier"], fresh["identifier"]}
    assert [f.is_file() for f in files.values()] == [False, True, True]

    done = prune(tiers, QIWANG_JOBS_RETENTION_DAYS="4")        # the retention from the environment
    assert (done.returncode, done.stdout) == (0, "removed 1 job and 1 result file older than 4 days\n")
    done = prune(tiers, "--older-than", "0.5", QIWANG_JOBS_RETENTION_DAYS="4")     # the option wins
    assert (done.returncode, done.stdout) == (0, "removed 0 jobs and 0 result files older than 0.5 days\n")
    assert [f.is_file() for f in files.values()] == [False, False, True]
    assert manager.get_job_result(fresh["identifier"])[0] == "application/json"


@pytest.mark.parametrize(("args", "env", "message"), [
    (("--older-than", "0"), {}, "qiwang: error: invalid value for '--older-than': 0.0 is not in the range x>0"),
    (("--older-than", "soon"), {}, "qiwang: error: invalid value for '--older-than': 'soon' is not a valid float"),
    ((), {"QIWANG_JOBS_RETENTION_DAYS": "a week"},
     "qiwang: error: QIWANG_JOBS_RETENTION_DAYS: 'a week' is not a positive number of days"),
    ((), {"QIWANG_JOBS_RETENTION_DAYS": "-1"},
     "qiwang: error: QIWANG_JOBS_RETENTION_DAYS: '-1' is not a positive number of days"),
])
def test_jobs_prune_refuses_a_retention_that_is_no_number_of_days(tiers: str, args: tuple[str, ...], env: dict,
                                                                 message: str) -> None:
    done = prune(tiers, *args, **env)
    assert done.returncode != 0 and done.stdout == ""
    assert done.stderr.splitlines()[0].startswith(message) and len(done.stderr.splitlines()) == 1, done.stderr


def test_prune_leaves_files_it_did_not_write(net_engine: sa.Engine, tmp_path: Path) -> None:
    """A location altered in the table (pointing at another file) removes the row, never that file."""
    other = tmp_path / "precious.txt"
    other.write_text("keep me")
    long_ago = datetime.now(UTC) - timedelta(days=30)
    with net_engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM jobs"))
        conn.execute(sa.text(
            "INSERT INTO jobs (identifier, process_id, status, location, created, updated, finished) "
            "VALUES ('j1', 'burst-analysis', 'successful', :loc, :t, :t, :t)"), {"loc": str(other), "t": long_ago})
    assert prune_jobs(net_engine, 7) == (1, 0)
    assert other.read_text() == "keep me"
