"""What the caller's scope holds of each collection: its rows and their extent, cached per role.

Row-level security decides what a role sees (migration 0016), so the counts and bounding boxes a
client is shown are computed under the caller's role, never taken from the whole table: the
collection documents' ``extent.spatial.bbox`` (QGIS zooms to it, GDAL reports it) and the landing
page's counts would otherwise tell an enterprise where and how large the others' networks are.
One exact scan per table (spatial.collections.scope_summaries) is cached per database role for
``scope_cache_seconds`` (300 s by default): an edit shows in a bbox within that time.
"""
from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from core.ttl_cache import TtlCache
from db import acting
from spatial.collections import Collection, ScopeSummary, scope_summaries


class ScopeSummaries:
    """Counts and CRS84 extents of collections as the current role sees them.

    Parameters
    ----------
    engine
        The application's engine (its transactions act as the role of db.acting).
    seconds
        How long one role's figures are reused, s (0: computed on every call).
    """

    def __init__(self, engine: sa.Engine, seconds: float) -> None:
        self.engine = engine
        self._cache: TtlCache[tuple[str, str], ScopeSummary] = TtlCache(seconds)

    def of(self, collections: Iterable[Collection]) -> dict[str, ScopeSummary]:
        """collection id -> its summary for the role the current request acts as."""
        now = acting.current()
        role = now.role if now else ""   # "": the login's own role (the CLI, tests without accounts)
        wanted = list(collections)
        found = {c.id: s for c in wanted if (s := self._cache.get((role, c.id))) is not None}
        missing = [c for c in wanted if c.id not in found]
        if missing:
            with self.engine.connect() as conn:
                fresh = scope_summaries(conn, missing)
            for key, summary in fresh.items():
                self._cache.put((role, key), summary)
            found |= fresh
        return {c.id: found[c.id] for c in wanted}
