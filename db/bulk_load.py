"""Bulk loading of whole tables with COPY, the way pg_restore does it.

Foreign keys, unique constraints and secondary indexes are dropped before the COPY and rebuilt
after it: one sort per index and one join per foreign key instead of a million row-by-row checks.
Everything happens in the caller's transaction, so a failure leaves the database as it was.
Geometries travel as hex EWKB (SRID included), which PostGIS parses directly.
"""
from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import Connection, text

COPY_CHUNK_ROWS = 200_000


@dataclass(frozen=True)
class _Deferred:
    """A constraint or index taken off a table during the load, with the DDL that restores it."""

    drop: str
    restore: str


def _deferrable_objects(conn: Connection, tables: Iterable[str]) -> list[_Deferred]:
    """Foreign keys that reference or leave the tables, their unique constraints and plain indexes."""
    names = list(tables)
    rows = conn.execute(
        text(
            """
            SELECT c.conrelid::regclass::text AS tbl, c.conname, pg_get_constraintdef(c.oid) AS def
            FROM pg_constraint c
            WHERE c.contype IN ('f', 'u')
              AND (c.conrelid = ANY (CAST(:names AS regclass[]))
                   OR (c.contype = 'f' AND c.confrelid = ANY (CAST(:names AS regclass[]))))
            """
        ),
        {"names": names},
    ).all()
    deferred = [
        _Deferred(
            f'ALTER TABLE {tbl} DROP CONSTRAINT "{name}"',
            f'ALTER TABLE {tbl} ADD CONSTRAINT "{name}" {definition}',
        )
        for tbl, name, definition in rows
    ]
    # Unique constraints must come back before the foreign keys that lean on them.
    deferred.sort(key=lambda d: " FOREIGN KEY " in d.restore)
    indexes = conn.execute(
        text(
            """
            SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
            FROM pg_index i
            WHERE i.indrelid = ANY (CAST(:names AS regclass[]))
              AND NOT i.indisprimary
              AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
            """
        ),
        {"names": names},
    ).all()
    deferred += [_Deferred(f"DROP INDEX {index}", definition) for index, definition in indexes]
    return deferred


@contextmanager
def constraints_deferred(conn: Connection, tables: Iterable[str], progress: Callable[[str], None] = lambda _: None
                         ) -> Iterator[None]:
    """Foreign keys, unique constraints and secondary indexes of `tables` off during the block and
    rebuilt (so checked) after it, in the caller's transaction."""
    deferred = _deferrable_objects(conn, tables)
    for item in reversed(deferred):
        conn.execute(text(item.drop))
    yield
    progress(f"rebuild {len(deferred)} indexes and constraints")
    for item in deferred:
        conn.execute(text(item.restore))


def to_copy_text(frame: pd.DataFrame, geometry_columns: Iterable[str] = ()) -> pd.DataFrame:
    """Frame ready for COPY text format: shapely geometries become hex EWKB, booleans t/f."""
    out = frame.copy(deep=False)
    for column in geometry_columns:
        values = np.asarray(out[column].to_numpy(), dtype=object)
        out[column] = shapely.to_wkb(values, hex=True, include_srid=True)
    for column in out.columns:
        if out[column].dtype == bool:
            out[column] = np.where(out[column].to_numpy(), "t", "f")
    return out


def copy_frame(conn: Connection, table: str, frame: pd.DataFrame) -> int:
    """COPY a frame (already converted by to_copy_text) into a table; returns rows written."""
    if frame.empty:
        return 0
    columns = ", ".join(f'"{c}"' for c in frame.columns)
    raw = conn.connection.driver_connection  # psycopg 3 connection inside SQLAlchemy's transaction
    assert raw is not None  # a live Connection always has its DBAPI connection
    # CSV (tab-separated) rather than COPY's text format: pandas quotes tabs, newlines, quotes and
    # backslashes the CSV way, so any text survives as it was.
    command = f"COPY {table} ({columns}) FROM STDIN (FORMAT csv, DELIMITER E'\\t', NULL '\\N')"
    with raw.cursor() as cursor, cursor.copy(command) as copy:
        for start in range(0, len(frame), COPY_CHUNK_ROWS):
            chunk = frame.iloc[start : start + COPY_CHUNK_ROWS]
            buffer = io.StringIO()
            chunk.to_csv(buffer, sep="\t", header=False, index=False, na_rep="\\N", lineterminator="\n")
            copy.write(buffer.getvalue().encode("utf-8"))
    return len(frame)


def replace_tables(
    conn: Connection,
    frames: dict[str, tuple[pd.DataFrame, tuple[str, ...]]],
    truncate: Iterable[str] = (),
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, int]:
    """Empty `truncate` and the tables of `frames`, then load each frame by COPY.

    frames maps a table to (frame, geometry column names). Identity sequences are moved past the
    largest id loaded. Returns rows loaded per table.
    """
    tables = list(frames)
    # No CASCADE: a table that references these and is not listed makes TRUNCATE fail loudly
    # instead of being emptied behind the caller's back.
    conn.execute(text(f"TRUNCATE {', '.join(dict.fromkeys([*truncate, *tables]))} RESTART IDENTITY"))
    counts: dict[str, int] = {}
    with constraints_deferred(conn, tables, progress):
        for table, (frame, geometry_columns) in frames.items():
            progress(f"copy {table}: {len(frame):,} rows")
            counts[table] = copy_frame(conn, table, to_copy_text(frame, geometry_columns))
    for table in tables:
        if "id" in frames[table][0].columns:
            conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"GREATEST((SELECT max(id) FROM {table}), 1))"
                )
            )
    progress("analyze")
    for table in tables:
        conn.execute(text(f"ANALYZE {table}"))
    return counts
