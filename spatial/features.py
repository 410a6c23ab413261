"""Feature queries for OGC API Features (Parts 1, 2 and 3), answered by PostGIS.

Everything per feature happens in SQL: the GeoJSON text (json_build_object + ST_AsGeoJSON), the
reprojection (ST_Transform, ST_FlipCoordinates for north-first CRSs), the bbox (transformed to the
storage CRS so the GiST index is used) and the CQL2 filter. Python only joins the rows' text.

Paging is by keyset: a page asks for `limit + 1` rows after the last sort key of the previous page,
so page 400 costs what page 1 costs. The `next` link carries that key as an opaque `cursor`.
`numberMatched` is given when PostgreSQL estimates at most COUNT_BELOW matches (then an exact count
is cheap) and omitted otherwise, never estimated.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from core.crs import ServedCrs, clip_box, densify_step, parse_crs, served_crs, storage_domain
from core.errors import InvalidInput
from core.text import unstorable
from spatial import cql2
from spatial.collections import Collection

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
COUNT_BELOW = 50_000
# OFFSET paging beyond this is refused (use the next links): PostgreSQL would read and drop every row.
MAX_OFFSET = 10_000_000
BIGINT_MAX = 2 ** 63 - 1

# Parameters the items endpoint understands; anything else that is not a queryable is an error.
ITEMS_PARAMETERS = frozenset({"f", "limit", "offset", "cursor", "bbox", "bbox-crs", "crs", "datetime", "filter",
                              "filter-lang", "filter-crs", "sortby", "properties", "skipGeometry", "lang"})
ITEM_PARAMETERS = frozenset({"f", "crs", "properties", "skipGeometry", "lang"})
FILTER_LANGS = ("cql2-text", "cql2-json")


class QueryError(InvalidInput, ValueError):
    """A request parameter that cannot be honoured: HTTP 400, naming the parameter (`field`)."""

    def __init__(self, parameter: str, message: str):
        super().__init__(parameter, message)
        self.parameter = parameter


@dataclass
class FeatureQuery:
    collection: Collection
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    cursor: list[Any] | None = None
    crs: ServedCrs = field(default_factory=lambda: served_crs("CRS84"))
    bbox: tuple[float, ...] | None = None
    bbox_crs: ServedCrs = field(default_factory=lambda: served_crs("CRS84"))
    datetime: tuple[str | None, str | None] | None = None  # closed interval; None = open end
    filter: cql2.SqlCondition | None = None
    equals: dict[str, str] = field(default_factory=dict)   # ?property=value
    sortby: list[tuple[str, bool]] = field(default_factory=list)  # (column, descending)
    properties: list[str] | None = None
    skip_geometry: bool = False


@dataclass
class Page:
    features_json: str          # the features array's content: "{...},{...}"
    number_returned: int
    number_matched: int | None
    next_cursor: str | None


# -- parameters ------------------------------------------------------------------------------------

def _number_list(parameter: str, text: str, lengths: tuple[int, ...]) -> list[float]:
    parts = text.split(",")
    if len(parts) not in lengths:
        raise QueryError(parameter, f"needs {' or '.join(map(str, lengths))} numbers, got {len(parts)}")
    try:
        numbers = [float(v) for v in parts]
    except ValueError:
        raise QueryError(parameter, f"{text[:100]!r} is not a comma-separated list of numbers") from None
    if not all(math.isfinite(v) for v in numbers):
        raise QueryError(parameter, "NaN and infinity are not coordinates")
    return numbers


def _bbox(text: str) -> tuple[float, ...]:
    """A bbox's 4 or 6 numbers, lower corner first on every axis (no antimeridian crossing here)."""
    b = _number_list("bbox", text, (4, 6))
    half = len(b) // 2
    if any(b[i] > b[i + half] for i in range(half)):
        raise QueryError("bbox", "the lower corner comes first: minimum values, then maximum values, on every axis")
    return tuple(b)


def _non_negative(parameter: str, text: str, largest: int, clip: bool) -> int:
    """An ASCII decimal integer ≥ 0, clipped to (or refused above) `largest` without converting a
    thousand-digit string (Python refuses int() beyond 4,300 digits)."""
    if not re.fullmatch(r"[0-9]+", text):
        raise QueryError(parameter, f"{text[:40]!r} is not a non-negative integer")
    digits = text.lstrip("0") or "0"
    value = int(digits) if len(digits) <= len(str(largest)) else largest + 1
    if value > largest:
        if clip:
            return largest
        raise QueryError(parameter, f"at most {largest:,}; page on with the next links instead")
    return value


def _datetime(text: str) -> tuple[str | None, str | None]:
    def one(part: str) -> str | None:
        if part in ("", ".."):
            return None
        try:
            dt.datetime.fromisoformat(part.replace("z", "Z"))
        except ValueError:
            raise QueryError("datetime", f"{part!r} is not an RFC 3339 date or date-time") from None
        return part
    if "/" in text:
        start, end = text.split("/", 1)
        if start in ("", "..") and end in ("", ".."):
            raise QueryError("datetime", "an interval needs at least one end")
        return one(start), one(end)
    instant = one(text)
    if instant is None:
        raise QueryError("datetime", "give an instant or an interval start/end")
    return instant, instant


def _limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    if not re.fullmatch(r"[0-9]+", text):
        raise QueryError("limit", f"{text[:40]!r} is not a positive integer")
    value = _non_negative("limit", text, MAX_LIMIT, clip=True)  # larger values are clipped, as Part 1 asks
    if value < 1:
        raise QueryError("limit", "must be at least 1")
    return value


def encode_cursor(values: list[Any]) -> str:
    raw = json.dumps([v.isoformat() if isinstance(v, (dt.date, dt.datetime)) else
                      str(v) if isinstance(v, decimal.Decimal) else v for v in values], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(text: str, size: int) -> list[Any]:
    try:
        values = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, TypeError):
        raise QueryError("cursor", "not a cursor from a next link of this server") from None
    if not isinstance(values, list) or len(values) != size:
        raise QueryError("cursor", "not a cursor from a next link of this server (or the sortby changed)")
    for value in values:  # what encode_cursor writes: one scalar per sort key
        if isinstance(value, (list, dict)) or (isinstance(value, str) and unstorable(value)) or \
                (isinstance(value, int) and not isinstance(value, bool) and abs(value) > BIGINT_MAX) or \
                (isinstance(value, float) and not math.isfinite(value)):
            raise QueryError("cursor", "not a cursor from a next link of this server")
    return values


def client_bbox(collection: Collection, args: Mapping[str, str]) -> tuple[tuple[float, ...], ServedCrs] | None:
    """The `bbox` of a request and its `bbox-crs` (default CRS84), checked; None without a bbox."""
    if "bbox" not in args:
        if "bbox-crs" in args:
            raise QueryError("bbox-crs", "given without bbox")
        return None
    crs = _crs("bbox-crs", args["bbox-crs"], collection.srid) if "bbox-crs" in args else served_crs("CRS84")
    return _bbox(args["bbox"]), crs


def parse_items_request(collection: Collection, args: Mapping[str, str], body: bytes | None = None
                        ) -> FeatureQuery:
    """A FeatureQuery from the query parameters of GET /collections/{id}/items.

    Raises QueryError (→ HTTP 400) for unknown parameters and values that cannot be honoured.
    """
    for name in args:
        if name not in ITEMS_PARAMETERS and name not in collection.column_index:
            raise QueryError(name[:100], "unknown query parameter (neither a standard parameter nor a queryable)")
        problem = unstorable(args[name])   # refused here, naming the parameter, not by PostgreSQL
        if problem:
            raise QueryError(name[:100], problem)
    q = FeatureQuery(collection, limit=_limit(args.get("limit")))
    srid = collection.srid
    if "crs" in args:
        q.crs = _crs("crs", args["crs"], srid)
    if (box := client_bbox(collection, args)) is not None:
        q.bbox, q.bbox_crs = box
    if "datetime" in args:
        if collection.time_column is None:
            raise QueryError("datetime", f"collection {collection.id} has no time property")
        q.datetime = _datetime(args["datetime"])
    if "offset" in args:
        q.offset = _non_negative("offset", args["offset"], MAX_OFFSET, clip=False)
    lang = args.get("filter-lang", "cql2-text")
    if lang not in FILTER_LANGS:
        raise QueryError("filter-lang", f"{lang!r} is not supported; use {' or '.join(FILTER_LANGS)}")
    if "filter" in args:
        filter_crs = _crs("filter-crs", args["filter-crs"], srid) if "filter-crs" in args else served_crs("CRS84")
        try:
            q.filter = cql2.to_sql(args["filter"], lang, collection, filter_crs)
        except cql2.FilterError as exc:
            raise QueryError("filter", str(exc)) from None
    for name, value in args.items():
        if name in collection.column_index:
            q.equals[name] = value
    if "sortby" in args:
        for item in args["sortby"].split(","):
            item = item.strip()
            descending = item.startswith("-")
            name = item.lstrip("+-").strip()
            if name not in collection.column_index:
                raise QueryError("sortby", f"unknown property {name!r}")
            q.sortby.append((name, descending))
    if "properties" in args:
        names = [p.strip() for p in args["properties"].split(",") if p.strip()]
        unknown = [p for p in names if p not in collection.column_index]
        if unknown:
            raise QueryError("properties", f"unknown properties {', '.join(unknown)}")
        q.properties = names
    if "skipGeometry" in args:
        if args["skipGeometry"].lower() not in ("true", "false"):
            raise QueryError("skipGeometry", "must be true or false")
        q.skip_geometry = args["skipGeometry"].lower() == "true"
    if "cursor" in args:
        if q.offset:
            raise QueryError("cursor", "cannot be combined with offset")
        q.cursor = decode_cursor(args["cursor"], 2 * len(q.sortby) + 1)  # keys of _order_and_keyset
    return q


def parse_crs_parameter(collection: Collection, value: str | None) -> ServedCrs:
    """The output CRS of a single-item request (`crs`, default CRS84)."""
    return served_crs("CRS84") if value is None else _crs("crs", value, collection.srid)


def _crs(parameter: str, value: str, srid: int) -> ServedCrs:
    try:
        return parse_crs(value, srid)
    except ValueError as exc:
        raise QueryError(parameter, str(exc)) from None


# -- SQL ---------------------------------------------------------------------------------------------

def _geometry_sql(collection: Collection, crs: ServedCrs) -> str:
    g = f't."{collection.geometry_column}"'
    if crs.srid != collection.srid:
        g = f"ST_Transform({g}, {crs.srid})"
    if crs.north_first:
        g = f"ST_FlipCoordinates({g})"
    return f"ST_AsGeoJSON({g}, {crs.decimals})::json"


def feature_sql(collection: Collection, crs: ServedCrs, properties: list[str] | None = None,
                skip_geometry: bool = False) -> str:
    """The SQL expression (on alias t) that yields one GeoJSON Feature as text."""
    names = properties if properties is not None else [c.name for c in collection.columns]
    pairs = ", ".join(f"'{n}', {_json_value(collection, n)}" for n in names)
    geometry = "NULL" if skip_geometry else _geometry_sql(collection, crs)
    return (f"json_build_object('type', 'Feature', 'id', t.\"{collection.layer.id_column}\", "
            f"'geometry', {geometry}, 'properties', json_build_object({pairs}))::text")


def where_clause(q: FeatureQuery, params: dict[str, Any]) -> list[str]:
    """The conditions of the query except the keyset (bbox, datetime, equality, CQL2)."""
    c = q.collection
    conditions: list[str] = []
    if q.bbox is not None:
        corners = q.bbox if len(q.bbox) == 4 else (q.bbox[0], q.bbox[1], q.bbox[3], q.bbox[4])
        if q.bbox_crs.north_first:
            corners = (corners[1], corners[0], corners[3], corners[2])
        b: tuple[float, float, float, float] | None = corners
        segment = None
        if q.bbox_crs.srid != c.srid and q.bbox_crs.is_geographic:
            # PROJ only ever sees the part of the box where the storage CRS is defined (and where
            # the features are): a world box becomes the zone's box, and holds every feature.
            b = clip_box(corners, storage_domain(c.srid, c.extent_crs84))
            segment = densify_step(b) if b is not None else None
        if b is None:
            conditions.append("false")
        else:
            params.update(bx1=b[0], by1=b[1], bx2=b[2], by2=b[3])
            box = f"ST_MakeEnvelope(:bx1, :by1, :bx2, :by2, {q.bbox_crs.srid})"
            if q.bbox_crs.srid != c.srid:
                if segment is not None:  # a degree box is curved in Gauss-Krüger: densify before transforming
                    box = f"ST_Segmentize({box}, {segment!r})"
                box = f"ST_Transform({box}, {c.srid})"
            conditions.append(f't."{c.geometry_column}" && {box} AND ST_Intersects(t."{c.geometry_column}", {box})')
    if q.datetime is not None:
        assert c.time_column is not None, "parse_items_request refuses datetime on a collection without time"
        column = c.column_index[c.time_column]
        cast = "date" if column.sql_type == "date" else "timestamptz"
        start, end = q.datetime
        if start is not None:
            params["dt_start"] = start
            conditions.append(f't."{column.name}" >= CAST(:dt_start AS {cast})')
        if end is not None:
            params["dt_end"] = end
            conditions.append(f't."{column.name}" <= CAST(:dt_end AS {cast})')
    for i, (name, value) in enumerate(q.equals.items()):
        column = c.column_index[name]
        params[f"eq{i}"] = value
        # Compare as text so '100' matches a numeric 100 and a bad value matches nothing instead of failing.
        conditions.append(f't."{name}"::text = :eq{i}' if column.json_type != "string" else f't."{name}" = :eq{i}')
    if q.filter is not None:
        params.update(q.filter.params)
        conditions.append(q.filter.sql)
    return conditions


def _json_value(collection: Collection, name: str) -> str:
    # Numbers always carry a decimal point (20000.0, not 20000): clients that type fields from the
    # first page (GDAL, QGIS) would otherwise make a numeric column Integer and truncate later pages.
    if collection.column_index[name].json_type == "number":
        return f't."{name}"::numeric + 0.0'
    return f't."{name}"'


def _order_and_keyset(q: FeatureQuery, params: dict[str, Any]) -> tuple[str, str | None, list[str]]:
    pk = q.collection.primary_key
    keys: list[tuple[str, bool]] = []
    types: list[str] = []
    for name, descending in q.sortby:
        keys += [(f'(t."{name}" IS NULL)', descending), (f't."{name}"', descending)]
        types += ["boolean", q.collection.column_index[name].sql_type]
    keys.append((f't."{pk}"', False))
    types.append(q.collection.primary_key_type)
    order = ", ".join(f"{expr} {'DESC' if desc else 'ASC'}" for expr, desc in keys)
    keyset = None
    if q.cursor is not None:
        # (k1 > v1) OR (k1 = v1 AND k2 > v2) OR …, with each key's own direction; a NULL value only
        # ever equals NULL (its rows all share key 1 = true), so it contributes no "after" term.
        alternatives: list[str] = []
        equal_so_far: list[str] = []
        for i, ((expr, desc), sql_type, value) in enumerate(zip(keys, types, q.cursor, strict=True)):
            name = f"k{i}"
            params[name] = value
            bound = f"CAST(:{name} AS {sql_type})"
            if value is not None:
                alternatives.append("(" + " AND ".join([*equal_so_far, f"{expr} {'<' if desc else '>'} {bound}"]) + ")")
            equal_so_far.append(f"{expr} IS NOT DISTINCT FROM {bound}")
        keyset = "(" + " OR ".join(alternatives) + ")" if alternatives else "false"
    return order, keyset, [expr for expr, _ in keys]


def query_page(conn: sa.Connection, q: FeatureQuery) -> Page:
    """One page of features (keyset after `q.cursor`, or OFFSET `q.offset`)."""
    c = q.collection
    params: dict[str, Any] = {}
    conditions = where_clause(q, params)
    order, keyset, key_exprs = _order_and_keyset(q, params)
    page_conditions = conditions + ([keyset] if keyset else [])
    where = " WHERE " + " AND ".join(page_conditions) if page_conditions else ""
    keys = ", ".join(f"{expr} AS k{i}" for i, expr in enumerate(key_exprs))
    params["limit"] = q.limit + 1
    sql = (f'SELECT {feature_sql(c, q.crs, q.properties, q.skip_geometry)} AS feature, {keys} '
           f'FROM {c.relation} t{where} ORDER BY {order} LIMIT :limit')
    if q.offset:
        sql += f" OFFSET {int(q.offset)}"
    rows = conn.execute(sa.text(sql), params).all()
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    next_cursor = encode_cursor(list(rows[-1][1:])) if more and rows else None
    count_params: dict[str, Any] = {}
    count_conditions = where_clause(q, count_params)
    return Page(",".join(r[0] for r in rows), len(rows), _cheap_count(conn, c, count_conditions, count_params),
                next_cursor)


def _cheap_count(conn: sa.Connection, c: Collection, conditions: list[str], params: dict[str, Any]) -> int | None:
    where = " WHERE " + " AND ".join(conditions) if conditions else ""
    sql = f'SELECT count(*) FROM {c.relation} t{where}'
    estimate = None
    if not conditions:
        # reltuples is -1 until the table's first ANALYZE (e.g. alarms, incidents): then ask the planner.
        estimate = conn.execute(sa.text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:t)"),
                                {"t": c.layer.table}).scalar()
    if estimate is None or estimate < 0:
        estimate = _estimated_rows(conn, f'SELECT 1 FROM {c.relation} t{where}', params)
    if estimate is not None and 0 <= estimate <= COUNT_BELOW:
        return conn.execute(sa.text(sql), params).scalar_one()
    return None


_PLAN_ROWS = re.compile(r"\brows=(\d+)")


def _estimated_rows(conn: sa.Connection, sql: str, params: dict[str, Any]) -> int | None:
    """The planner's row estimate of `sql`: the rows of the top node of its text plan.

    Only the first line is parsed (never a JSON plan, whose later nodes quote every constant of
    the query, e.g. a transformed polygon, once more per node); what the plan can quote is bounded
    by the limits on bbox and filter geometries (clipped and densified to at most a few thousand
    vertices).
    """
    result = conn.execute(sa.text("EXPLAIN " + sql), params)
    try:
        first = result.scalar()
    finally:
        result.close()
    m = _PLAN_ROWS.search(first or "")
    return int(m.group(1)) if m else None


def possible_feature_id(c: Collection, feature_id: str) -> bool:
    """Whether a feature of `c` can have this id (False: a code asked of a collection identified by
    numbers, so no such feature, 404). Raises QueryError ("featureId", 400) for an id no collection
    can have: a NUL character, or digits that are not ASCII or beyond a bigint id column."""
    problem = unstorable(feature_id)
    if problem:
        raise QueryError("featureId", problem)
    if c.layer.id_column != "id":
        return True
    if not feature_id.isdigit():
        return False
    if not re.fullmatch(r"[0-9]{1,19}", feature_id) or int(feature_id) > BIGINT_MAX:
        raise QueryError("featureId", f"{feature_id[:40]!r} is not an id: ASCII digits up to {BIGINT_MAX}")
    return True


def query_one(conn: sa.Connection, c: Collection, feature_id: str, crs: ServedCrs,
              properties: list[str] | None = None, skip_geometry: bool = False) -> str | None:
    """One feature as GeoJSON text, by its id (code), or None.

    Raises QueryError ("featureId") for an id no feature can have: a NUL character, or digits that
    are not ASCII or out of the range of a numeric id column.
    """
    id_column = c.layer.id_column
    if not possible_feature_id(c, feature_id):
        return None
    if id_column == "id":
        key = 't."id" = CAST(:fid AS bigint)'
    else:
        key = f't."{id_column}" = :fid'
    sql = f'SELECT {feature_sql(c, crs, properties, skip_geometry)} FROM {c.relation} t WHERE {key} LIMIT 2'
    rows = conn.execute(sa.text(sql), {"fid": feature_id}).scalars().all()
    # A code is unique per enterprise; across enterprises the first would be arbitrary: refuse.
    return rows[0] if len(rows) == 1 else None
