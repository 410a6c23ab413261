"""What the database says about itself: the one place that reads PostgreSQL's and PostGIS's catalog.

The storage CRS is the deployment's choice (a CGCS2000 3° Gauss-Krüger zone, the demo's EPSG:4550),
made once in the migrations; everything else reads it from here instead of repeating the number.
"""

from __future__ import annotations

import functools

import sqlalchemy as sa

# The table whose geometry column fixes the storage CRS: every layer shares it (migration 0003).
_REFERENCE_TABLE = "pipe"


@functools.lru_cache(maxsize=16)
def _storage_srid(url: str) -> int:
    from db.engine import get_engine

    with get_engine(url).connect() as conn:
        return storage_srid_of(conn)


def storage_srid_of(conn: sa.Connection) -> int:
    """The SRID of the storage CRS (EPSG code), read from ``geometry_columns`` on `conn`."""
    srid = conn.execute(sa.text("SELECT srid FROM geometry_columns WHERE f_table_schema = 'public' "
                                "AND f_table_name = :table AND f_geometry_column = 'geom'"),
                        {"table": _REFERENCE_TABLE}).scalar_one()
    return int(srid)


def storage_srid(bind: sa.Engine | sa.Connection) -> int:
    """The SRID of the storage CRS (EPSG code) of the database behind `bind`.

    Parameters
    ----------
    bind
        An engine (the answer is cached per URL: the storage CRS changes only with a migration)
        or a connection (read on it, inside its transaction).
    """
    if isinstance(bind, sa.Connection):
        return storage_srid_of(bind)
    return _storage_srid(bind.url.render_as_string(hide_password=False))
