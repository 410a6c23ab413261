"""Throwaway databases for the tests and the benchmarks: made on the server the project uses, dropped after.

On the embedded cluster under ./var/ (started when needed), or, when DATABASE_URL is set, beside
that URL's database on the same server (QIWANG_APP_DATABASE_URL, when set, names the application's
login there). What goes into a database (the demo city, a hand-made network) is the caller's: this
layer knows the schema's migrations but nothing above them, so a loader is passed in.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from core.settings import Settings, load_settings
from db import migrate
from db.cluster import APP_ROLE, DROP_ACCOUNT_ROLES, EmbeddedCluster
from db.engine import normalise_url

PROJECT_ROOT = Path(__file__).resolve().parents[1]

Loader = Callable[[sa.Engine], object]


class ThrowawayDatabases:
    """Creates and drops scratch databases on the server the tests and benchmarks use.

    Parameters
    ----------
    root
        The checkout whose embedded cluster (``root/var``) is used when DATABASE_URL is not set.
    settings
        Where DATABASE_URL and QIWANG_APP_DATABASE_URL come from (default: read now, core.settings).
    """

    def __init__(self, root: Path = PROJECT_ROOT, settings: Settings | None = None) -> None:
        self.settings = settings or load_settings()
        external = self.settings.database_url
        self.external = normalise_url(external) if external else None
        self.cluster = None if self.external else EmbeddedCluster(root)
        if self.cluster:
            self.cluster.up()

    def _admin(self) -> sa.Engine:
        assert self.external is not None
        return sa.create_engine(
            make_url(self.external).set(database="postgres"), poolclass=NullPool, isolation_level="AUTOCOMMIT"
        )

    def url(self, name: str) -> str:
        """The owner's URL of database `name`, whether it exists or not (to reuse one kept earlier)."""
        if self.cluster:
            return self.cluster.url(name)
        assert self.external is not None
        return make_url(self.external).set(database=name).render_as_string(hide_password=False)

    def create(self, name: str) -> str:
        """Database `name` made afresh (dropped first if it exists) with PostGIS; returns its owner's URL."""
        self.drop(name)
        if self.cluster:
            return self.cluster.create_database(name)
        with self._admin().connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = self.url(name)
        with sa.create_engine(url, poolclass=NullPool).begin() as conn:
            conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS postgis"))
        return url

    def migrated(self, name: str, load: Loader | None = None) -> str:
        """Database `name` made afresh, its schema at head, then filled by `load` (if given).

        Parameters
        ----------
        name
            The database's name, used as given.
        load
            Called once with an engine on the new database (no pool: one connection at a time),
            e.g. ``lambda engine: load_demo(engine, pipes=3000, seed=7)``.

        Returns
        -------
        str
            The owner's URL of the database.
        """
        url = self.create(name)
        migrate.upgrade(url)
        if load is not None:
            engine = sa.create_engine(url, poolclass=NullPool)
            try:
                load(engine)
            finally:
                engine.dispose()
        return url

    def app_url(self, name: str) -> str:
        """Database `name` as the application role (external: QIWANG_APP_DATABASE_URL's login, if set)."""
        if self.cluster:
            return self.cluster.url(name, role=APP_ROLE)
        app = self.settings.app_database_url
        base = normalise_url(app) if app else self.external
        assert base is not None
        return make_url(base).set(database=name).render_as_string(hide_password=False)

    def drop(self, name: str) -> None:
        """Drop database `name` if it exists, ending its open connections."""
        if self.cluster:
            self.cluster.drop_database(name)
            return
        with self._admin().connect() as conn:
            exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
        if exists:
            with sa.create_engine(self.url(name), poolclass=NullPool).begin() as conn:
                conn.execute(sa.text(DROP_ACCOUNT_ROLES))
        with self._admin().connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def migrated_database(databases: ThrowawayDatabases, name: str) -> Iterator[sa.Engine]:
    """A scratch database with the schema (no data), named `name` and this process's id, dropped afterwards."""
    with loaded_database(databases, name) as url:
        engine = sa.create_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()


@contextmanager
def loaded_database(databases: ThrowawayDatabases, name: str, load: Loader | None = None) -> Iterator[str]:
    """A migrated scratch database filled by `load`, named `name` and this process's id (so that
    parallel runs never share one); yields its owner's URL and drops it afterwards."""
    name = f"{name}_{os.getpid()}"
    try:
        yield databases.migrated(name, load)
    finally:
        databases.drop(name)
