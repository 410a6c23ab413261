"""What the database says about itself: the one place that reads PostgreSQL's and PostGIS's catalog.

The storage CRS is the deployment's choice (a CGCS2000 3° Gauss-Krüger zone, the demo's EPSG:4550),
made once in the migrations; everything else reads it from here instead of repeating the number.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

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


# -- tables ------------------------------------------------------------------------------------------
# What the catalog says about tables: columns, geometry, keys, comments and CHECK constraints. The
# importer and exporter (ingest/field_mapping.table_schema) and the OGC collections
# (spatial/collections.describe) read it here, each taking what it needs.


@dataclass(frozen=True)
class ColumnInfo:
    """One column as PostgreSQL describes it."""

    name: str
    type: str            # format_type() with modifiers: 'numeric', 'geometry(PointZ,4550)', 't_admin_code'
    base_type: str       # the type below a domain, without modifiers: 'text', 'geometry', 'numeric'
    domain: str | None   # the column's domain type ('t_admin_code'), None for a plain type
    not_null: bool
    has_default: bool    # a default, an identity or a generated column: a row need not give it
    comment: str         # the column COMMENT ('' when none)


@dataclass(frozen=True)
class GeometryColumn:
    """One row of PostGIS's geometry_columns."""

    column: str
    type: str            # 'LINESTRING', 'POINT', 'MULTIPOLYGON', … (PostGIS writes 'POINTZ' for some)
    coord_dimension: int
    srid: int


@dataclass(frozen=True)
class ForeignKey:
    """A single-column foreign key: `column` references the primary key of `schema`.`table`."""

    column: str
    schema: str
    table: str


@dataclass(frozen=True)
class Condition:
    """One comparison of a simple CHECK: `op` is >, >=, <, <=, =, <>, 'in' (value: a tuple) or
    '~' (value: a regular expression, PostgreSQL's ARE)."""

    op: str
    value: float | str | tuple[float | str, ...]


@dataclass(frozen=True)
class SimpleCheck:
    """A CHECK on one column that is a conjunction of comparisons with constants."""

    column: str
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class CheckConstraint:
    """A CHECK constraint of a table, or of the domain of one of its columns.

    `definition` is pg_get_constraintdef()'s text (``CHECK ((diameter_mm > (0)::numeric))``);
    a domain's constraint says VALUE for the value, `columns` then names the column of that domain.
    """

    table: str
    name: str
    columns: tuple[str, ...]
    definition: str
    domain: str | None = None

    def simple(self) -> SimpleCheck | None:
        """The constraint as comparisons of one column with constants (``col > 0``, ``col BETWEEN
        a AND b``, ``col IN (…)``, ``col ~ 'regex'``), or None when it is any other expression."""
        return simple_check(self.definition, self.columns[0] if self.domain and len(self.columns) == 1 else None)


@dataclass(frozen=True)
class TableInfo:
    """One table (or view) as the catalog describes it."""

    name: str
    comment: str
    columns: tuple[ColumnInfo, ...]              # in table order
    geometry: tuple[GeometryColumn, ...] = ()
    primary_key: tuple[str, str] | None = None   # a single-column primary key: (column, type)
    foreign_keys: tuple[ForeignKey, ...] = ()
    checks: tuple[CheckConstraint, ...] = ()

    def column(self, name: str) -> ColumnInfo | None:
        return next((c for c in self.columns if c.name == name), None)

    def geometry_column(self, name: str | None = None) -> GeometryColumn | None:
        """The geometry column `name`; without a name the one a layer publishes: ``geom`` when the
        table has several (inspection: geom + track), else its only one."""
        by_name = {g.column: g for g in self.geometry}
        if name is not None:
            return by_name.get(name)
        return by_name.get("geom") or (self.geometry[0] if self.geometry else None)


def tables(conn: sa.Connection, names: Iterable[str], schema: str = "public") -> dict[str, TableInfo]:
    """What the catalog says about the tables `names` of `schema` (those that exist), keyed by name.

    Parameters
    ----------
    conn
        Any role that may read the catalog (the application role can: it is public).
    names
        Table or view names, unqualified.
    schema
        Their schema.
    """
    params = {"schema": schema, "tables": sorted(set(names))}
    where = "c.relnamespace = to_regnamespace(:schema) AND c.relname = ANY(:tables)"
    columns: dict[str, list[ColumnInfo]] = {}
    for r in conn.execute(sa.text(f"""
        SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
               format_type(coalesce(nullif(t.typbasetype, 0), a.atttypid), NULL),
               CASE WHEN t.typtype = 'd' THEN t.typname END,
               a.attnotnull, a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '',
               coalesce(col_description(a.attrelid, a.attnum), '')
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_type t ON t.oid = a.atttypid
        WHERE {where} AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY c.relname, a.attnum"""), params):
        columns.setdefault(r[0], []).append(ColumnInfo(*r[1:]))
    if not columns:
        return {}
    comments: dict[str, str] = dict(conn.execute(sa.text(
        f"SELECT c.relname, coalesce(obj_description(c.oid, 'pg_class'), '') FROM pg_class c WHERE {where}"),
        params).all())
    geometry: dict[str, list[GeometryColumn]] = {}
    for r in conn.execute(sa.text("""
        SELECT f_table_name, f_geometry_column, type, coord_dimension, srid FROM geometry_columns
        WHERE f_table_schema = :schema AND f_table_name = ANY(:tables)
        ORDER BY f_table_name, f_geometry_column"""), params):
        geometry.setdefault(r[0], []).append(GeometryColumn(r[1], str(r[2]), int(r[3]), int(r[4] or 0)))
    keys = {r[0]: (r[1], r[2]) for r in conn.execute(sa.text(f"""
        SELECT c.relname, a.attname, format_type(a.atttypid, NULL)
        FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0]
        WHERE i.indisprimary AND i.indnatts = 1 AND {where}"""), params)}
    foreign: dict[str, list[ForeignKey]] = {}
    for r in conn.execute(sa.text(f"""
        SELECT c.relname, a.attname, ns.nspname, ref.relname
        FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
        JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
        JOIN pg_class ref ON ref.oid = k.confrelid JOIN pg_namespace ns ON ns.oid = ref.relnamespace
        WHERE k.contype = 'f' AND cardinality(k.conkey) = 1 AND {where}
        ORDER BY c.relname, a.attnum"""), params):
        foreign.setdefault(r[0], []).append(ForeignKey(*r[1:]))
    checks: dict[str, list[CheckConstraint]] = {}
    for r in conn.execute(sa.text(f"""
        SELECT c.relname, k.conname, pg_get_constraintdef(k.oid),
               ARRAY(SELECT a.attname FROM unnest(k.conkey) WITH ORDINALITY u(n, i)
                     JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.i)
        FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
        WHERE k.contype = 'c' AND {where}
        ORDER BY c.relname, k.conname"""), params):
        checks.setdefault(r[0], []).append(CheckConstraint(r[0], r[1], tuple(r[3]), r[2]))
    by_domain = domain_checks(conn, {c.domain for cols in columns.values() for c in cols if c.domain})
    for table, cols in columns.items():
        for column in cols:
            checks.setdefault(table, []).extend(
                CheckConstraint(table, name, (column.name,), definition, column.domain)
                for name, definition in by_domain.get(column.domain or "", []))
    return {table: TableInfo(table, comments.get(table, ""), tuple(cols), tuple(geometry.get(table, ())),
                             keys.get(table), tuple(foreign.get(table, ())), tuple(checks.get(table, ())))
            for table, cols in columns.items()}


def domain_checks(conn: sa.Connection, domains: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
    """The CHECK constraints of the named domains: domain → [(constraint name, definition)]."""
    wanted = sorted(set(domains))
    if not wanted:
        return {}
    out: dict[str, list[tuple[str, str]]] = {}
    for domain, name, definition in conn.execute(sa.text("""
        SELECT t.typname, k.conname, pg_get_constraintdef(k.oid)
        FROM pg_constraint k JOIN pg_type t ON t.oid = k.contypid
        WHERE k.contype = 'c' AND t.typname = ANY(:domains) ORDER BY t.typname, k.conname"""), {"domains": wanted}):
        out.setdefault(domain, []).append((name, definition))
    return out


def views(conn: sa.Connection, schema: str) -> set[str]:
    """The names of the views of `schema` (empty when the schema does not exist)."""
    return set(conn.execute(sa.text(
        "SELECT relname FROM pg_class WHERE relnamespace = to_regnamespace(:schema) AND relkind = 'v'"),
        {"schema": schema}).scalars())


# -- simple CHECK expressions ------------------------------------------------------------------------
# pg_get_constraintdef prints a CHECK in a normal form: every comparison parenthesised, constants
# cast (``(0)::numeric``, ``'A'::text``), BETWEEN as two comparisons, IN as ``= ANY (ARRAY[…])``.
_COLUMN = r'(?P<column>VALUE|[a-z_][a-z0-9_]*|"(?:[^"]|"")+")'
_QUOTED = r"'(?:[^']|'')*'"
_CAST = r"(?:::[a-z][a-z ]*(?:\[\])?)?"
_LITERAL = rf"(?:\(?-?[0-9]+(?:\.[0-9]+)?\)?|{_QUOTED}){_CAST}"
_COMPARISON = re.compile(rf"{_COLUMN} (?P<op>>=|<=|<>|=|>|<) (?P<value>{_LITERAL})")
_IN = re.compile(rf"{_COLUMN} = ANY \(\(?ARRAY\[(?P<items>{_LITERAL}(?:, {_LITERAL})*)\](?:\){_CAST})?\)")
_MATCH = re.compile(rf"{_COLUMN} ~ (?P<value>{_QUOTED}){_CAST}")
_NUMERIC_CASTS = ("integer", "bigint", "smallint", "numeric", "double precision", "real")


def _outer_parentheses(text: str) -> str:
    """`text` without the parentheses that wrap all of it."""
    text = text.strip()
    while text.startswith("(") and text.endswith(")") and _depth_stays_open(text):
        text = text[1:-1].strip()
    return text


def _depth_stays_open(text: str) -> bool:
    """Whether the '(' at text[0] closes only at the last character (quotes respected)."""
    depth, quoted = 0, False
    for i, char in enumerate(text):
        if char == "'":
            quoted = not quoted
        elif not quoted and char in "()":
            depth += 1 if char == "(" else -1
            if depth == 0 and i < len(text) - 1:
                return False
    return True


def _top_level_split(text: str, word: str) -> list[str]:
    """`text` split at ` word ` outside parentheses and quotes."""
    parts, depth, quoted, start, i = [], 0, False, 0, 0
    while i < len(text):
        char = text[i]
        if char == "'":
            quoted = not quoted
        elif not quoted and char in "()":
            depth += 1 if char == "(" else -1
        elif not quoted and depth == 0 and text.startswith(f" {word} ", i):
            parts.append(text[start:i])
            i += len(word) + 2
            start = i
            continue
        i += 1
    return [*parts, text[start:]]


def _constant(literal: str) -> float | str:
    """A printed constant as a number or a string: ``(0)::numeric`` → 0.0, ``'A'::text`` → 'A'."""
    body, _, cast = literal.partition("::")
    body = body.strip()
    if body.startswith("'"):
        text = body[1:-1].replace("''", "'")
        return float(text) if cast.strip() in _NUMERIC_CASTS else text
    return float(body.strip("()"))


def _column_name(raw: str) -> str:
    return raw[1:-1].replace('""', '"') if raw.startswith('"') else raw


def simple_check(definition: str, value_column: str | None = None) -> SimpleCheck | None:
    """A CHECK's definition (pg_get_constraintdef) as comparisons of one column with constants.

    Parameters
    ----------
    definition
        ``CHECK (((build_year >= 1900) AND (build_year <= 2100)))`` and the like.
    value_column
        For a domain's constraint, the column that VALUE stands for.

    Returns
    -------
    SimpleCheck | None
        None when the expression is anything else (several columns, functions, OR, IS NULL):
        such a constraint needs a hand-written check.
    """
    text = definition.strip()
    if not text.startswith("CHECK ") or text.endswith(" NOT VALID"):
        return None
    column: str | None = None
    conditions = []
    for term in _top_level_split(_outer_parentheses(text.removeprefix("CHECK ")), "AND"):
        term = _outer_parentheses(term)
        if match := _IN.fullmatch(term):
            items = re.findall(_LITERAL, match["items"])
            condition = Condition("in", tuple(_constant(item) for item in items))
        elif match := _MATCH.fullmatch(term):
            condition = Condition("~", str(_constant(match["value"])))
        elif match := _COMPARISON.fullmatch(term):
            condition = Condition(match["op"], _constant(match["value"]))
        else:
            return None
        name = _column_name(match["column"])
        if name == "VALUE" and value_column is not None:
            name = value_column
        if column not in (None, name):
            return None
        column = name
        conditions.append(condition)
    return SimpleCheck(column, tuple(conditions)) if column is not None else None
