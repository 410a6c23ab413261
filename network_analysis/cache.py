"""A per-database cache of things built from the database (topology, road graph), rebuilt only when
the version counter they depend on moved."""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

import sqlalchemy as sa

from db import acting

T = TypeVar("T")


class VersionedCache(Generic[T]):
    """One built object per database. A database is known by its URL and its OID: one dropped and
    created again under the same name starts its versions afresh and must not get the old object.

    `version_sql` returns one cheap scalar (a counter that triggers bump); `build` makes the object
    from a REPEATABLE READ connection, so that it sees one consistent snapshot."""

    def __init__(self, version_sql: str, build: Callable[[sa.Connection], T]) -> None:
        self._version_sql = sa.text(
            f"SELECT (SELECT oid FROM pg_database WHERE datname = current_database()), ({version_sql})")
        self._build = build
        self._lock = threading.Lock()
        self._cached: dict[str, tuple[int, object, T]] = {}

    def get(self, engine: sa.Engine) -> T:
        """The object built from the database behind `engine`, built again when its version moved.

        Parameters
        ----------
        engine
            The database.

        Returns
        -------
        T
            The cached object (the same one while the version counter stays).
        """
        url = engine.url.render_as_string(hide_password=False)
        # The whole network, whoever asks: answers are cut to the caller's scope afterwards.
        with acting.as_system():
            with engine.connect() as conn:
                oid, version = conn.execute(self._version_sql).one()
            with self._lock:
                cached = self._cached.get(url)
                if cached is not None and cached[:2] == (oid, version):
                    return cached[2]
                with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
                    built = self._build(conn)
                self._cached[url] = (oid, version, built)
                return built
