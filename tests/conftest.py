"""Shared fixtures: a throwaway PostGIS database, migrated, with a small demo city loaded.

The database lives in the embedded cluster (or beside DATABASE_URL's database when that is set)
and is dropped at the end of the session. `db_url` is the owner's URL (migrations, loads, test
set-up); `app_url` the same database as the application role `qiwang_app`, which the live server
uses, so every HTTP test also checks that the application needs no more than its grants.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
import shapely
import sqlalchemy as sa
from signed_in import CITY, DISTRICT_OF_BOTH, ENTERPRISE_A, ENTERPRISE_B, TestAccount, ensure_account
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from app.background_server import LiveServer
from db import migrate
from db.bulk_load import copy_frame, to_copy_text
from db.catalog import storage_srid
from db.scratch import ThrowawayDatabases, loaded_database, migrated_database

# Test modules import these from here (`from conftest import LiveServer, migrated_database`).
__all__ = ["DEMO_PIPES", "DEMO_SEED", "ROOT", "LiveServer", "ThrowawayDatabases", "demo_city_database",
           "migrated_database", "scalar"]

ROOT = Path(__file__).resolve().parent.parent
DEMO_PIPES, DEMO_SEED = 3000, 7


@pytest.fixture(scope="session")
def databases() -> ThrowawayDatabases:
    return ThrowawayDatabases(ROOT)


@pytest.fixture(scope="session")
def db_url(databases: ThrowawayDatabases) -> Iterator[str]:
    """A migrated database holding the demo city (DEMO_PIPES pipes, seed DEMO_SEED)."""
    name = f"qiwang_test_{os.getpid()}"
    yield databases.migrated(name, load=demo_loader(DEMO_PIPES, DEMO_SEED))
    databases.drop(name)


@pytest.fixture(scope="session")
def app_url(databases: ThrowawayDatabases, db_url: str) -> str:
    """The demo-city database of `db_url`, as the application role."""
    name = make_url(db_url).database
    assert name is not None
    return databases.app_url(name)


@pytest.fixture(scope="session")
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def net_engine(databases: ThrowawayDatabases, request: pytest.FixtureRequest) -> Iterator[sa.Engine]:
    """A migrated, empty database per test module, for hand-made networks (tests/networks.py)."""
    with migrated_database(databases, f"qiwang_{request.module.__name__[-20:]}") as engine:
        yield engine


@pytest.fixture
def scratch_url(databases: ThrowawayDatabases, request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty database (PostGIS only) for one test."""
    name = f"qiwang_scratch_{os.getpid()}_{request.node.name[:30].lower()}"
    yield databases.create(name)
    databases.drop(name)


@pytest.fixture
def target(scratch_url: str, engine: sa.Engine) -> Iterator[sa.Engine]:
    """A migrated empty database holding the demo city's divisions and enterprises, no network."""
    migrate.upgrade(scratch_url)
    target = sa.create_engine(scratch_url, poolclass=NullPool)
    with engine.connect() as source, target.begin() as conn:
        srid = storage_srid(source)
        for table, order in (("admin_division", "array_position(ARRAY['province','city','county'], level)"),
                             ("enterprise", "enterprise_code")):
            frame = pd.read_sql(sa.text(f"SELECT *, ST_AsBinary(geom) AS wkb FROM {table} ORDER BY {order}"), source)
            frame["geom"] = shapely.set_srid(shapely.from_wkb(frame.pop("wkb").map(bytes)), srid)
            copy_frame(conn, table, to_copy_text(frame, ("geom",)))
    yield target
    target.dispose()


def scalar(engine: sa.Engine, query: str, **params: object) -> object:
    with engine.connect() as conn:
        return conn.execute(sa.text(query), params).scalar()


@pytest.fixture(scope="session")
def users(db_url: str) -> dict[str, TestAccount]:
    """The demo city's test accounts, by name: viewers and dispatchers of enterprises A and B, the
    regulator of the district holding both and of the city (who sees everything), an auditor."""
    specs: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
        "city_regulator": (("regulator",), {"division": CITY}),
        "district_regulator": (("regulator",), {"division": DISTRICT_OF_BOTH}),
        "a_viewer": (("viewer",), {"enterprise": ENTERPRISE_A}),
        "b_viewer": (("viewer",), {"enterprise": ENTERPRISE_B}),
        "a_dispatcher": (("dispatcher",), {"enterprise": ENTERPRISE_A}),
        "b_dispatcher": (("dispatcher",), {"enterprise": ENTERPRISE_B}),
        "auditor": (("auditor",), {"division": CITY}),
    }
    return {name: ensure_account(db_url, name, duties, **home) for name, (duties, home) in specs.items()}


@pytest.fixture(scope="session")
def http(users: dict[str, TestAccount]) -> requests.Session:
    """Requests signed as the city's regulator: reads every feature of the demo city."""
    return users["city_regulator"].session()


@pytest.fixture(scope="session")
def live_server(app_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(app_url, tmp_path_factory.mktemp("jobs"))
    yield server
    server.close()


def demo_loader(pipes: int, seed: int) -> Callable[[sa.Engine], object]:
    """Loads the demo city of `pipes` pipes (seed `seed`) silently: for ThrowawayDatabases.migrated."""
    from demo.city import load_demo

    return lambda engine: load_demo(engine, pipes=pipes, seed=seed, echo=lambda _: None)


@contextmanager
def demo_city_database(databases: ThrowawayDatabases, name: str, pipes: int = 300, seed: int = 3) -> Iterator[str]:
    """A migrated database of its own holding a small demo city (its URL), dropped afterwards: for
    tests that must know exactly what is in it (no other test writes alarms or incidents there)."""
    with loaded_database(databases, name, demo_loader(pipes, seed)) as url:
        yield url


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium (never a downloaded browser), headless, shared by the browser tests."""
    from browser_support import CHROMIUM
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), ("Debian's chromium is missing: run ./qiwang (APT_PACKAGES) "
                                     "or apt-get install chromium")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield chromium
        chromium.close()
