"""The generated QGIS project opened in QGIS 3.22 itself (Debian's python3-qgis, headless).

QGIS runs in /usr/bin/python3 (tests/qgis/open_project.py) against a Qiwang server of the test
database served here, whose requests are recorded: what QGIS asked for is seen on the server.
"""
from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import requests
import waitress
from conftest import ROOT, demo_city_database
from telemetry_support import conninfo, devices, raise_alarms

from app.qgis_project import RECORD_GEOMETRY, layer_id, write_project
from spatial.styles import palette

SYSTEM_PYTHON = "/usr/bin/python3"
QGIS_SCRIPT = ROOT / "tests" / "qgis" / "open_project.py"
EMPTY = ("incidents", "topology_issues")  # nothing writes them in the demo city


def qgis_available() -> bool:
    if not Path(SYSTEM_PYTHON).exists():
        return False
    return subprocess.run([SYSTEM_PYTHON, "-c", "import qgis.core"], capture_output=True).returncode == 0


# Not a skip: ./qiwang installs python3-qgis, and a machine without it must fail this test.
assert qgis_available(), "QGIS 3.22 is needed: apt-get install python3-qgis qgis-providers"


class RecordingServer:
    """The Qiwang app over real HTTP (waitress), remembering the path and query of every request."""

    def __init__(self, db_url: str, jobs: Path) -> None:
        from app.web import create_app

        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        holder: dict = {}

        def app(environ, start_response):
            self.requests.append((environ["PATH_INFO"], parse_qs(environ.get("QUERY_STRING", ""))))
            return holder["app"](environ, start_response)

        self.server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        holder["app"] = create_app(db_url, self.url, jobs)
        threading.Thread(target=self.server.run, daemon=True).start()


@pytest.fixture(scope="module")
def city_url(databases) -> Iterator[str]:
    """A database of its own with a small demo city: nothing else writes incidents or alarms there."""
    with demo_city_database(databases, "qiwang_qgis") as url:
        yield url


@pytest.fixture(scope="module")
def server(city_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RecordingServer]:
    # Alarms raised just now: their table has never been analysed, as on a demo that just started
    # (the server then gives no numberMatched, and QGIS's own provider would count 0).
    info = conninfo(city_url)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    raise_alarms(info, [(s, t0, {"ch4_lel": 30.0}) for s in devices(info, limit=3)])
    recording = RecordingServer(city_url, tmp_path_factory.mktemp("jobs"))
    yield recording
    recording.server.close()


def open_in_qgis(project: Path, *subset: str) -> dict:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": str(project.parent)}
    env.pop("PYTHONPATH", None)
    done = subprocess.run([SYSTEM_PYTHON, str(QGIS_SCRIPT), str(project), *subset], capture_output=True, text=True,
                          timeout=600, env=env, cwd=project.parent)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def served_count(base: str, collection: str) -> int:
    """Every feature of a collection, counted page by page (numberMatched is not always given)."""
    total = 0
    url: str | None = f"{base}/ogc/collections/{collection}/items?limit=1000&f=json"
    while url:
        page = requests.get(url, timeout=60).json()
        total += page["numberReturned"]
        url = next((link["href"] for link in page["links"] if link["rel"] == "next"), None)
    return total


def test_qgis_3_22_opens_the_project_with_its_crs_every_layer_and_the_servers_counts(
        server: RecordingServer, tmp_path: Path) -> None:
    project = write_project(tmp_path / "qiwang.qgs", server.url)
    seen = open_in_qgis(project)
    assert seen["qgis"].startswith("3.22.") and seen["read"] is True
    assert seen["crs"] == "EPSG:3857"
    assert not [m for m in seen["messages"] if "newer version" in m], seen["messages"]
    assert sorted(seen["layers"]) == sorted(layer_id(c) for c in palette())
    expected = {c: served_count(server.url, c) for c in palette()}
    assert expected["alarms"] == 3 and all(expected[c] == 0 for c in EMPTY)
    got = {c: (seen["layers"][layer_id(c)]["count"], seen["layers"][layer_id(c)]["features"]) for c in palette()}
    assert got == {c: (n, n) for c, n in expected.items()}
    for collection in palette():
        layer = seen["layers"][layer_id(collection)]
        assert layer["valid"] is True, collection
        if collection in RECORD_GEOMETRY:
            assert (layer["provider"], layer["crs"]) == ("ogr", "EPSG:4326"), collection
        else:
            assert (layer["provider"], layer["crs"]) == ("OAPIF", "OGC:CRS84"), collection
    # empty collections still have their geometry type (and so their CRS and style)
    assert {c: seen["layers"][layer_id(c)]["wkb_type"] for c in (*EMPTY, "alarms", "pipes")} == {
        "incidents": "Point", "topology_issues": "Point", "alarms": "PointZ", "pipes": "LineStringZ"}


def test_qgis_3_22_filters_locally_and_sends_no_filter_to_the_server(
        server: RecordingServer, tmp_path: Path, city_url: str) -> None:
    """What the README says of QGIS 3.22: a layer filter is applied to features downloaded whole."""
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    engine = sa.create_engine(city_url, poolclass=NullPool)  # NullPool: no connection outlives the block

    project = write_project(tmp_path / "qiwang.qgs", server.url, ["valves"])
    server.requests.clear()
    seen = open_in_qgis(project, "qiwang_valves", "\"operability\" <> 'operable'")
    with engine.connect() as conn:
        stuck = sorted(conn.execute(sa.text("SELECT code FROM valve WHERE operability <> 'operable'")).scalars())
    assert seen["subset_accepted"] is True and seen["subset_features"] == stuck and len(stuck) > 1
    items = [query for path, query in server.requests if path == "/ogc/collections/valves/items"]
    assert items and not [q for q in items if {"filter", "filter-lang", "operability"} & set(q)]
    assert sum(int(q["limit"][0]) for q in items) >= served_count(server.url, "valves")


def test_project_is_stamped_with_the_version_asked_and_keeps_its_crs(tmp_path: Path) -> None:
    from lxml import etree

    from core.errors import QiwangError

    for asked, stamp in (("3.22", "3.22.0-Białowieża"), ("3.28.4", "3.28.4-Firenze"), ("3.36", "3.36.0")):
        root = etree.parse(str(write_project(tmp_path / "p.qgs", "http://127.0.0.1:5000", ["alarms"], asked))).getroot()
        assert root.get("version") == stamp
        assert root.findtext("properties/SpatialRefSys/ProjectionsEnabled") == "1"
        assert root.find("projectlayers/maplayer/provider").text == "ogr"
        assert root.findtext("projectlayers/maplayer/datasource") == (
            "OAPIF:http://127.0.0.1:5000/ogc/collections/alarms|layername=alarms|geometrytype=Point25D"
            "|option:PAGE_SIZE=1000")
    for bad, message in (("3.16", "projects are written for QGIS 3.22 to 3.x"), ("latest", "give a QGIS version")):
        with pytest.raises(QiwangError, match=message):
            write_project(tmp_path / "q.qgs", "http://127.0.0.1:5000", None, bad)
