"""Shared fixtures: a throwaway PostGIS database, migrated, with a small demo city loaded.

The database lives in the embedded cluster (or beside DATABASE_URL's database when that is set)
and is dropped at the end of the session. `db_url` is the owner's URL (migrations, loads, test
set-up); `app_url` the same database as the application role `qiwang_app`, which the live server
uses, so every HTTP test also checks that the application needs no more than its grants.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import shapely
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from db import migrate
from db.bulk_load import copy_frame, to_copy_text
from db.cluster import APP_ROLE, EmbeddedCluster
from db.engine import normalise_url

ROOT = Path(__file__).resolve().parent.parent
DEMO_PIPES, DEMO_SEED = 3000, 7


class ThrowawayDatabases:
    """Creates and drops scratch databases on the server the tests use."""

    def __init__(self) -> None:
        external = os.environ.get("DATABASE_URL")
        self.external = normalise_url(external) if external else None
        self.cluster = None if self.external else EmbeddedCluster(ROOT)
        if self.cluster:
            self.cluster.up()

    def _admin(self) -> sa.Engine:
        return sa.create_engine(
            make_url(self.external).set(database="postgres"), poolclass=NullPool, isolation_level="AUTOCOMMIT"
        )

    def create(self, name: str) -> str:
        self.drop(name)
        if self.cluster:
            return self.cluster.create_database(name)
        with self._admin().connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = make_url(self.external).set(database=name).render_as_string(hide_password=False)
        with sa.create_engine(url, poolclass=NullPool).begin() as conn:
            conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS postgis"))
        return url

    def app_url(self, name: str) -> str:
        """Database `name` as the application role (external: QIWANG_APP_DATABASE_URL's login, if set)."""
        if self.cluster:
            return self.cluster.url(name, role=APP_ROLE)
        app = os.environ.get("QIWANG_APP_DATABASE_URL")
        base = normalise_url(app) if app else self.external
        return make_url(base).set(database=name).render_as_string(hide_password=False)

    def drop(self, name: str) -> None:
        if self.cluster:
            self.cluster.drop_database(name)
            return
        with self._admin().connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def databases() -> ThrowawayDatabases:
    return ThrowawayDatabases()


@pytest.fixture(scope="session")
def db_url(databases: ThrowawayDatabases) -> Iterator[str]:
    """A migrated database holding the demo city (DEMO_PIPES pipes, seed DEMO_SEED)."""
    from demo.city import load_demo

    name = f"qiwang_test_{os.getpid()}"
    url = databases.create(name)
    migrate.upgrade(url)
    engine = sa.create_engine(url, poolclass=NullPool)
    load_demo(engine, pipes=DEMO_PIPES, seed=DEMO_SEED, echo=lambda _: None)
    engine.dispose()
    yield url
    databases.drop(name)


@pytest.fixture(scope="session")
def app_url(databases: ThrowawayDatabases, db_url: str) -> str:
    """The demo-city database of `db_url`, as the application role."""
    return databases.app_url(make_url(db_url).database)


@pytest.fixture(scope="session")
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(db_url)
    yield engine
    engine.dispose()


@contextmanager
def migrated_database(databases: ThrowawayDatabases, name: str) -> Iterator[sa.Engine]:
    """A scratch database with the schema (no data), dropped afterwards."""
    name = f"{name}_{os.getpid()}"
    url = databases.create(name)
    engine = sa.create_engine(url)
    try:
        migrate.upgrade(url)
        yield engine
    finally:
        engine.dispose()
        databases.drop(name)


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
        for table, order in (("admin_division", "array_position(ARRAY['province','city','county'], level)"),
                             ("enterprise", "enterprise_code")):
            frame = pd.read_sql(sa.text(f"SELECT *, ST_AsBinary(geom) AS wkb FROM {table} ORDER BY {order}"), source)
            frame["geom"] = shapely.set_srid(shapely.from_wkb(frame.pop("wkb").map(bytes)), 4550)
            copy_frame(conn, table, to_copy_text(frame, ("geom",)))
    yield target
    target.dispose()


def scalar(engine: sa.Engine, query: str, **params: object) -> object:
    with engine.connect() as conn:
        return conn.execute(sa.text(query), params).scalar()


class LiveServer:
    """The Qiwang web app served by waitress on a free port in a background thread (real HTTP)."""

    def __init__(self, database_url: str, jobs_dir: Path):
        import threading

        import waitress

        from app.web import create_app

        app_holder: dict = {}
        # The app must know its public URL, and the port is known only once the socket is bound.
        self.server = waitress.create_server(lambda env, start: app_holder["app"](env, start),
                                             host="127.0.0.1", port=0, threads=6)
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        app_holder["app"] = create_app(database_url, self.url, jobs_dir)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.close()


@pytest.fixture(scope="session")
def live_server(app_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(app_url, tmp_path_factory.mktemp("jobs"))
    yield server
    server.close()


@contextmanager
def demo_city_database(databases: ThrowawayDatabases, name: str, pipes: int = 300, seed: int = 3) -> Iterator[str]:
    """A migrated database of its own holding a small demo city (its URL), dropped afterwards: for
    tests that must know exactly what is in it (no other test writes alarms or incidents there)."""
    from demo.city import load_demo

    name = f"{name}_{os.getpid()}"
    url = databases.create(name)
    try:
        migrate.upgrade(url)
        engine = sa.create_engine(url, poolclass=NullPool)
        load_demo(engine, pipes=pipes, seed=seed, echo=lambda _: None)
        engine.dispose()
        yield url
    finally:
        databases.drop(name)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium (never a downloaded browser), headless, shared by the browser tests."""
    from browser_support import CHROMIUM
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: run ./qiwang (APT_PACKAGES) or apt-get install chromium"
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield chromium
        chromium.close()
