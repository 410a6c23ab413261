"""The generated QGIS project opened in QGIS 3.22 itself (Debian's python3-qgis, headless), signed in.

QGIS runs in /usr/bin/python3 (tests/qgis/open_project.py) against a Qiwang server of the test
database served here, whose requests are recorded: what QGIS asked for, as which account, and
what it was answered is seen on the server. QGIS signs in as a user would (issue 18): an
authentication configuration of method Basic in QGIS's authentication database (a temporary one,
opened with a master password from the environment), named by every layer of a project written
with that `authcfg`, as GET /qgis/project.qgs?authcfg=<id> writes it.
"""
from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
import subprocess
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote

import pytest
import requests
import sqlalchemy as sa
import waitress
from conftest import ROOT, demo_city_database
from lxml import etree
from signed_in import CITY, ENTERPRISE_A, ensure_account, forget
from sqlalchemy.pool import NullPool
from telemetry_support import conninfo, devices, raise_alarms

from app.qgis_project import RECORD_GEOMETRY, datasource, layer_id, write_project
from spatial.styles import palette

if TYPE_CHECKING:
    from signed_in import TestAccount  # not imported at run time: pytest would try to collect it

SYSTEM_PYTHON = "/usr/bin/python3"
QGIS_SCRIPT = ROOT / "tests" / "qgis" / "open_project.py"
EMPTY = ("incidents", "topology_issues")  # nothing writes them in the demo city


def qgis_available() -> bool:
    if not Path(SYSTEM_PYTHON).exists():
        return False
    return subprocess.run([SYSTEM_PYTHON, "-c", "import qgis.core"], capture_output=True).returncode == 0


# Not a skip: ./qiwang installs python3-qgis, and a machine without it must fail this test.
assert qgis_available(), "QGIS 3.22 is needed: apt-get install python3-qgis qgis-providers"


BEARER = "(bearer token)"  # the account of a request signed with a token: the test's own requests


@dataclass(frozen=True)
class Seen:
    """One request the server answered: the account named by its Basic credentials (BEARER for a
    token, None without credentials), path, query and status."""

    account: str | None
    path: str
    query: dict[str, list[str]]
    status: int


def basic_name(environ: dict) -> str | None:
    scheme, _, value = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "basic":
        return BEARER if scheme.lower() == "bearer" else None
    try:
        return base64.b64decode(value).decode().partition(":")[0]
    except (binascii.Error, UnicodeDecodeError):
        return None


class RecordingServer:
    """The Qiwang app over real HTTP (waitress), remembering every request and its answer's status."""

    def __init__(self, db_url: str, jobs: Path) -> None:
        from app.web import create_app

        self.requests: list[Seen] = []
        holder: dict = {}

        def app(environ, start_response):
            def recording_start(status: str, headers, *exc_info):
                self.requests.append(Seen(basic_name(environ), environ["PATH_INFO"],
                                          parse_qs(environ.get("QUERY_STRING", "")), int(status.split()[0])))
                return start_response(status, headers, *exc_info)

            return holder["app"](environ, recording_start)

        self.server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        holder["app"] = create_app(db_url, self.url, jobs)
        threading.Thread(target=self.server.run, daemon=True).start()

    def of(self, account: str) -> list[Seen]:
        return [r for r in self.requests if r.account == account]


@pytest.fixture(scope="module")
def city_url(databases) -> Iterator[str]:
    """A database of its own with a small demo city: nothing else writes incidents or alarms there."""
    with demo_city_database(databases, "qiwang_qgis") as url:
        yield url
    forget(url)


@pytest.fixture(scope="module")
def accounts(city_url: str) -> dict[str, TestAccount]:
    """This database's accounts: the city's regulator (every row), enterprise A's viewer, and a
    viewer whose password QGIS is given wrong (its own: failed logins count towards a lockout)."""
    return {"city_regulator": ensure_account(city_url, "qgis_city_regulator", ("regulator",), division=CITY),
            "a_viewer": ensure_account(city_url, "qgis_a_viewer", ("viewer",), enterprise=ENTERPRISE_A),
            "mistyped": ensure_account(city_url, "qgis_mistyped", ("viewer",), enterprise=ENTERPRISE_A)}


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


def open_in_qgis(work: Path, base_url: str, runs: dict[str, tuple[TestAccount, str | None]],
                 collections: list[str] | None = None, subset: tuple[str, str] | None = None) -> dict:
    """Open the project of `collections` (default all) in one QGIS session once per run: label →
    (account, password or None for the account's own), each run with a project of its own written
    with the run's authcfg; what QGIS made of each, by label."""
    spec = []
    for k, (label, (account, password)) in enumerate(runs.items()):
        authcfg = f"qiwang{k}"  # QGIS's configuration ids are seven characters
        project = write_project(work / f"{label}.qgs", base_url, collections, authcfg=authcfg)
        text = project.read_text(encoding="utf-8")
        assert f"authcfg%3D%27{authcfg}%27" in text or f"authcfg='{authcfg}'" in text
        assert account.password not in text and account.token not in text  # only QGIS's database has them
        spec.append({"label": label, "authcfg": authcfg, "username": account.name,
                     "password": password or account.password, "subset": subset, "project": str(project)})
    runs_file = work / "runs.json"
    runs_file.touch(mode=0o600)
    runs_file.write_text(json.dumps(spec))
    auth_dir = work / "qgis-auth"
    auth_dir.mkdir(mode=0o700)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": str(work),
           "QGIS_AUTH_DB_DIR_PATH": str(auth_dir), "QIWANG_QGIS_MASTER_PASSWORD": secrets.token_urlsafe(16)}
    env.pop("PYTHONPATH", None)
    done = subprocess.run([SYSTEM_PYTHON, str(QGIS_SCRIPT), str(runs_file)], capture_output=True, text=True,
                          timeout=600, env=env, cwd=work)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["qgis"].startswith("3.22.")
    return seen["runs"]


def served_count(base: str, collection: str, account: TestAccount) -> int:
    """Every feature of a collection the account may see, counted page by page (numberMatched is
    not always given). Signed in with the account's token, so that the recorded Basic requests
    are QGIS's."""
    total = 0
    url: str | None = f"{base}/ogc/collections/{collection}/items?limit=1000&f=json"
    while url:
        page = requests.get(url, headers=account.headers, timeout=60).json()
        total += page["numberReturned"]
        url = next((link["href"] for link in page["links"] if link["rel"] == "next"), None)
    return total


def owner_count(city_url: str, query: str, **params: object) -> int:
    engine = sa.create_engine(city_url, poolclass=NullPool)  # NullPool: no connection outlives the call
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(query), params).scalar_one()
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def opened(server: RecordingServer, accounts: dict[str, TestAccount],
           tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The whole project opened in one QGIS session as the city's regulator, enterprise A's
    viewer, and with a wrong password."""
    return open_in_qgis(tmp_path_factory.mktemp("qgis"), server.url,
                        {"city_regulator": (accounts["city_regulator"], None),
                         "a_viewer": (accounts["a_viewer"], None),
                         "mistyped": (accounts["mistyped"], "not-the-password")})


def read(seen: dict) -> dict[str, int]:
    """The features QGIS read, per collection."""
    return {c: seen["layers"][layer_id(c)]["features"] for c in palette()}


def reported(seen: dict, collections: Iterable[str] | None = None) -> dict[str, int]:
    """The feature count QGIS reports, per collection (by default all)."""
    return {c: seen["layers"][layer_id(c)]["count"] for c in (collections or palette())}


def test_qgis_3_22_opens_the_project_with_its_crs_every_layer_and_the_servers_counts(
        opened: dict, server: RecordingServer, accounts: dict[str, TestAccount], city_url: str) -> None:
    seen = opened["city_regulator"]
    assert seen["read"] is True
    assert seen["crs"] == "EPSG:3857"
    assert not [m for m in seen["messages"] if "newer version" in m], seen["messages"]
    assert sorted(seen["layers"]) == sorted(layer_id(c) for c in palette())
    expected = {c: served_count(server.url, c, accounts["city_regulator"]) for c in palette()}
    assert expected["alarms"] == 3 and all(expected[c] == 0 for c in EMPTY)
    assert expected["pipes"] == owner_count(city_url, "SELECT count(*) FROM pipe")  # the regulator sees all
    assert read(seen) == expected
    assert reported(seen) == expected
    for collection in palette():
        layer = seen["layers"][layer_id(collection)]
        assert layer["valid"] is True, collection
        if collection in RECORD_GEOMETRY:  # GDAL's OAPIF driver in a virtual layer (app/qgis_project.py)
            assert (layer["provider"], layer["crs"]) == ("virtual", "EPSG:4326"), collection
        else:
            assert (layer["provider"], layer["crs"]) == ("OAPIF", "OGC:CRS84"), collection
    # empty collections still have their geometry type (and so their CRS and style)
    assert {c: seen["layers"][layer_id(c)]["wkb_type"] for c in (*EMPTY, "alarms", "pipes")} == {
        "incidents": "Point", "topology_issues": "Point", "alarms": "PointZ", "pipes": "LineStringZ"}
    # every layer asked as the account of its authcfg, and was answered
    asked = server.of(accounts["city_regulator"].name)
    assert {r.path for r in asked} >= {f"/ogc/collections/{c}/items" for c in palette()}
    assert {r.status for r in asked} <= {200, 308}  # 308: QGIS asks {base}/ogc, the landing page is /ogc/
    # and nothing went out unsigned (GDAL's own feature count of an ogr layer would: see below)
    assert [r for r in server.requests if r.account is None] == []


def test_qgis_3_22_counts_the_records_layers_when_signed_in(opened: dict, server: RecordingServer,
                                                             accounts: dict[str, TestAccount]) -> None:
    """QGIS 3.22's ogr provider counts (QgsOgrProvider::recalculateFeatureCount) outside the GDAL HTTP
    callback that signs its other requests: alone, the alarms layer would report 0 (a 401 on the
    server). The virtual layer around it counts through its feature iterator, which is signed."""
    regulator = accounts["city_regulator"]
    expected = {c: served_count(server.url, c, regulator) for c in RECORD_GEOMETRY}
    assert expected == {"alarms": 3, "incidents": 0, "topology_issues": 0}
    assert reported(opened["city_regulator"], RECORD_GEOMETRY) == expected
    for collection in RECORD_GEOMETRY:
        items = [r for r in server.requests if r.path == f"/ogc/collections/{collection}/items"]
        gdal_pages = [r for r in items if r.account == regulator.name and r.query.get("limit") == ["1000"]]
        assert gdal_pages and {r.status for r in gdal_pages} == {200}, collection  # GDAL's pages, signed
        assert [r for r in items if r.account is None] == [], collection


def test_qgis_signed_in_as_an_enterprise_sees_its_scope(opened: dict, server: RecordingServer,
                                                        accounts: dict[str, TestAccount], city_url: str) -> None:
    seen = opened["a_viewer"]
    assert seen["read"] is True and all(layer["valid"] for layer in seen["layers"].values())
    viewer, everything = read(seen), read(opened["city_regulator"])
    expected = {c: served_count(server.url, c, accounts["a_viewer"]) for c in palette()}
    assert viewer == expected
    assert reported(seen) == expected
    for table, collection in (("pipe", "pipes"), ("valve", "valves"), ("customer", "customers")):
        assert viewer[collection] == owner_count(
            city_url, f"SELECT count(*) FROM {table} WHERE enterprise_code = :e", e=ENTERPRISE_A), collection
    assert 0 < viewer["pipes"] < everything["pipes"]
    assert all(viewer[c] <= everything[c] for c in palette())
    assert {r.status for r in server.of(accounts["a_viewer"].name)} <= {200, 308}


def test_qgis_with_a_wrong_password_gets_401_and_no_feature(opened: dict, server: RecordingServer,
                                                             accounts: dict[str, TestAccount]) -> None:
    seen = opened["mistyped"]
    assert {c: n for c, n in read(seen).items() if n} == {}  # not one feature read
    assert {c: n for c, n in reported(seen).items() if n > 0} == {}
    asked = server.of(accounts["mistyped"].name)
    assert asked and {r.status for r in asked} == {401}


def test_qgis_3_22_filters_locally_and_sends_no_filter_to_the_server(
        server: RecordingServer, tmp_path: Path, city_url: str, accounts: dict[str, TestAccount]) -> None:
    """What the README says of QGIS 3.22: a layer filter is applied to features downloaded whole."""
    regulator = accounts["city_regulator"]
    server.requests.clear()
    seen = open_in_qgis(tmp_path, server.url, {"filter": (regulator, None)}, ["valves"],
                        ("qiwang_valves", "\"operability\" <> 'operable'"))["filter"]
    engine = sa.create_engine(city_url, poolclass=NullPool)  # NullPool: no connection outlives the block
    with engine.connect() as conn:
        stuck = sorted(conn.execute(sa.text("SELECT code FROM valve WHERE operability <> 'operable'")).scalars())
    engine.dispose()
    assert seen["subset_accepted"] is True and seen["subset_features"] == stuck and len(stuck) > 1
    items = [r.query for r in server.of(regulator.name) if r.path == "/ogc/collections/valves/items"]
    assert items and not [q for q in items if {"filter", "filter-lang", "operability"} & set(q)]
    assert sum(int(q["limit"][0]) for q in items) >= served_count(server.url, "valves", regulator)


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


def test_records_layers_signing_in_are_virtual_layers_naming_only_the_authcfg(tmp_path: Path) -> None:
    from core.errors import QiwangError

    base = "http://127.0.0.1:5000"
    root = etree.parse(str(write_project(tmp_path / "p.qgs", base, ["alarms", "valves"], authcfg="qiwang9"))).getroot()
    layers = {m.findtext("id"): m for m in root.findall("projectlayers/maplayer")}
    alarms, valves = layers["qiwang_alarms"], layers["qiwang_valves"]
    assert (alarms.findtext("provider"), valves.findtext("provider")) == ("virtual", "OAPIF")
    assert alarms.findtext("srs/spatialrefsys/authid") == "EPSG:4326"
    source = alarms.findtext("datasource")
    assert source == datasource("alarms", base, "qiwang9")
    prefix, suffix = "?layer=ogr:", ":alarms:UTF-8"
    assert source.startswith(prefix) and source.endswith(suffix)
    embedded = source[len(prefix):-len(suffix)]
    assert ":" not in embedded and "'" not in embedded  # percent-encoded: the ':' of the parts stay separators
    assert unquote(embedded) == ("OAPIF:http://127.0.0.1:5000/ogc/collections/alarms|layername=alarms"
                                 "|geometrytype=Point25D|option:PAGE_SIZE=1000 authcfg='qiwang9'")
    assert valves.findtext("datasource") == (
        "authcfg='qiwang9' pagingEnabled='true' preferCoordinatesForWfsT11='false' restrictToRequestBBOX='1' "
        "srsname='OGC:CRS84' typename='valves' url='http://127.0.0.1:5000/ogc'")
    tree = {t.get("id"): t for t in root.iter("layer-tree-layer")}
    assert (tree["qiwang_alarms"].get("providerKey"), tree["qiwang_alarms"].get("source")) == ("virtual", source)
    for bad in ("qiwang", "qiwang9'", "qi wang"):  # not QGIS's ids: could not be quoted in a data source
        with pytest.raises(QiwangError, match="not a QGIS authentication configuration id"):
            write_project(tmp_path / "q.qgs", base, ["alarms"], authcfg=bad)
