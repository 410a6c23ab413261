"""The analysis commands as a user runs them: ./qiwang near, stats, route, qa, incident (JSON and errors)."""
from __future__ import annotations

import json
import os
import subprocess

import pytest
import sqlalchemy as sa
from conftest import ROOT, scalar


def run(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ROOT / "qiwang"), *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "DATABASE_URL": db_url})


def ok_json(db_url: str, *args: str) -> dict:
    done = run(db_url, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def a_valve(engine: sa.Engine) -> tuple[float, float, str]:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT ST_X(geom), ST_Y(geom), code FROM valve ORDER BY id LIMIT 1")).one()


def test_near_finds_the_valve_it_stands_on(engine: sa.Engine, db_url: str) -> None:
    x, y, code = a_valve(engine)
    result = ok_json(db_url, "near", "--at", f"{x},{y}", "--radius", "30")
    first_valve = next(f for f in result["features"] if f["layer"] == "valve")
    assert (first_valve["code"], first_valve["distance_m"]) == (code, 0.0)
    assert result["counts"]["valve"] >= 1


def test_stats_total_is_the_pipe_table(engine: sa.Engine, db_url: str) -> None:
    result = ok_json(db_url, "stats")
    assert result["total"]["count"] == scalar(engine, "SELECT count(*) FROM pipe WHERE status <> 'abandoned'")
    assert result["total"]["length_km"] == pytest.approx(
        scalar(engine, "SELECT sum(length_m) / 1000 FROM pipe WHERE status <> 'abandoned'"), abs=0.001)


def test_route_from_the_nearest_crew_base(engine: sa.Engine, db_url: str) -> None:
    x, y, _ = a_valve(engine)
    result = ok_json(db_url, "route", "--to", f"{x},{y}")
    assert result["crew_base"]["code"].startswith("QX")
    assert result["route"]["length_m"] > 0 and result["route"]["minutes"] > 0


def test_qa_on_the_demo_city_is_clean(db_url: str) -> None:
    result = ok_json(db_url, "qa")
    assert sum(result["counts"].values()) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("near", "--at", "1,2", "--radius", "0"), "qiwang: error: invalid value for '--radius'"),
        (("near", "--at", "1,2", "--radius", "10", "--crs", "EPSG:nope"),
         "qiwang: error: --crs: unknown CRS 'EPSG:nope'"),
        (("route", "--to", "0,0"), "qiwang: error: --to: no road within 500 m of (0.0, 0.0)"),
        (("route", "--from", "0,0", "--to", "0,0", "--crs", "EPSG:nope"),
         "qiwang: error: --crs: unknown CRS 'EPSG:nope'"),
        (("stats", "--enterprise", "9999990001"), "qiwang: error: --enterprise: unknown enterprise code '9999990001'"),
        (("incident", "show", "SG000404"), "qiwang: error: unknown incident 'SG000404'"),
    ],
)
def test_bad_input_is_one_line(db_url: str, args: tuple[str, ...], message: str) -> None:
    done = run(db_url, *args)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith(message), done.stderr
