"""CQL2 filters (OGC API Features Part 3) turned into a parameterised SQL condition.

pygeofilter parses CQL2 text and CQL2 JSON into one syntax tree; this module walks that tree and
writes SQL in which every literal is a bound parameter and every property is checked against the
collection's queryables, so a filter can select rows but never change the statement. Spatial
literals arrive in `filter-crs` (CRS84 by default) and are transformed to the storage CRS in SQL, so
the GiST index on the geometry is used.

Supported (and declared in /conformance): basic CQL2 (comparisons, AND/OR/NOT, IS NULL), advanced
comparisons (LIKE, BETWEEN, IN), spatial functions (S_INTERSECTS, S_DISJOINT, S_CONTAINS, S_WITHIN,
S_TOUCHES, S_CROSSES, S_OVERLAPS, S_EQUALS) on points, lines, polygons and BBOX/ENVELOPE literals.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
import shapely.geometry
from pygeofilter import ast, values
from pygeofilter.backends.evaluator import Evaluator, handle
from pygeofilter.parsers.cql2_json import parse as parse_cql2_json
from pygeofilter.parsers.cql2_text import parse as parse_cql2_text

from core.crs import ServedCrs, clip_box, densify_step, storage_domain
from core.text import unstorable
from spatial.collections import Collection

GEOMETRY_QUERYABLE = "geometry"


def _not(node: ast.Between | ast.Like | ast.In | ast.IsNull) -> str:
    """``NOT `` for the negated form of a predicate (x NOT BETWEEN …, NOT LIKE, NOT IN, IS NOT NULL)."""
    return "NOT " if node.not_ else ""


_COMPARISON = {ast.Equal: "=", ast.NotEqual: "<>", ast.LessThan: "<", ast.LessEqual: "<=",
               ast.GreaterThan: ">", ast.GreaterEqual: ">="}
_SPATIAL = {ast.GeometryIntersects: "ST_Intersects", ast.GeometryDisjoint: "ST_Disjoint",
            ast.GeometryContains: "ST_Contains", ast.GeometryWithin: "ST_Within",
            ast.GeometryTouches: "ST_Touches", ast.GeometryCrosses: "ST_Crosses",
            ast.GeometryOverlaps: "ST_Overlaps", ast.GeometryEquals: "ST_Equals"}


# Clipping a literal to the storage CRS's domain keeps these predicates' answers on features that lie
# inside it: symmetric ones, and containment with the literal as the container (side 0 = first argument).
_CLIPPABLE = (ast.GeometryIntersects, ast.GeometryDisjoint)
_CLIPPABLE_SIDE = {ast.GeometryWithin: 1, ast.GeometryContains: 0}
MAX_POSITIONS = 10_000   # positions in all geometry literals of one filter


class FilterError(ValueError):
    """A filter that cannot be parsed or refers to something that does not exist."""


@dataclass
class SqlCondition:
    sql: str
    params: dict[str, Any] = field(default_factory=dict)


class _Sql:
    """A fragment of SQL with its own parameters; `Literal` marks values still to be bound."""

    def __init__(self, sql: str, kind: str = "expr", sql_type: str | None = None):
        self.sql, self.kind, self.sql_type = sql, kind, sql_type


class _ToSql(Evaluator):
    def __init__(self, collection: Collection, filter_crs: ServedCrs, params: dict[str, Any], prefix: str):
        self.collection, self.filter_crs, self.params, self.prefix = collection, filter_crs, params, prefix
        self.positions = 0

    # -- values ---------------------------------------------------------------------------------
    def bind(self, value: Any, sql_type: str | None = None) -> str:
        name = f"{self.prefix}{len(self.params)}"
        self.params[name] = value
        return f"CAST(:{name} AS {sql_type})" if sql_type else f":{name}"

    def literal(self, value: Any, against: _Sql | None) -> str:
        """Bind `value`, cast to the type of the column it is compared with."""
        if isinstance(value, _Sql):
            return value.sql
        if isinstance(value, (dt.date, dt.datetime)):
            value = value.isoformat()
        elif isinstance(value, bool) or value is None:
            pass
        elif not isinstance(value, (str, int, float)):
            raise FilterError(f"unsupported literal {value!r}")
        sql_type = against.sql_type if against is not None and against.kind == "column" else None
        if sql_type is not None:
            self.check_type(value, sql_type)
        return self.bind(value, sql_type)

    @staticmethod
    def check_type(value: Any, sql_type: str) -> None:
        numeric = sql_type in ("smallint", "integer", "bigint", "numeric", "real", "double precision")
        if numeric and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise FilterError(f"a {sql_type} property is compared with {value!r}, which is not a number")
        if sql_type == "boolean" and not isinstance(value, bool):
            raise FilterError(f"a boolean property is compared with {value!r}")
        if sql_type in ("date",) or sql_type.startswith("timestamp"):
            if not isinstance(value, str):
                raise FilterError(f"a {sql_type} property is compared with {value!r}")
            try:
                dt.datetime.fromisoformat(value)
            except ValueError:
                raise FilterError(f"{value!r} is not an ISO 8601 date or timestamp") from None

    def geometry(self, geojson: dict, clip: bool) -> str:
        """A GeoJSON literal in filter-crs → storage CRS, in SQL.

        The literal is checked here (shape, finite coordinates, at most MAX_POSITIONS positions in
        the whole filter) and, in a geographic filter-crs, clipped to the part of the world where
        the storage CRS is defined before PostGIS transforms it: PROJ fails (and logs) point by
        point outside. `clip` says whether clipping keeps the predicate's answer (a feature lies
        inside that part, so it meets, or lies within, the literal only where the literal does);
        where it does not, a literal reaching outside is refused.
        """
        try:
            g = shapely.geometry.shape(geojson)
        except Exception as exc:  # noqa: BLE001 - shapely raises several types for malformed GeoJSON
            raise FilterError(f"not a valid geometry: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                              ) from None
        self.positions += shapely.get_num_coordinates(g)
        if self.positions > MAX_POSITIONS:
            raise FilterError(f"more than {MAX_POSITIONS:,} positions in the filter's geometries")
        xy = shapely.get_coordinates(g)
        if g.is_empty or not np.isfinite(xy).all():
            raise FilterError("a geometry needs finite coordinates (no NaN, no infinity, not empty)")
        if self.filter_crs.north_first:  # (lat, lon) or (northing, easting): PostGIS is x first
            g = shapely.transform(g, lambda c: c[:, ::-1])
        srid = self.filter_crs.srid
        sql = f"ST_GeomFromWKB({self.bind(shapely.to_wkb(g, output_dimension=2))}, {srid})"
        if srid == self.collection.srid:
            return sql
        if self.filter_crs.is_geographic:
            bounds = tuple(g.bounds)
            domain = storage_domain(self.collection.srid, self.collection.extent_crs84)
            if clip_box(bounds, domain) != bounds:
                if not clip:
                    raise FilterError(f"the geometry reaches outside {domain} (west, south, east, north), where "
                                      f"EPSG:{self.collection.srid} is defined; only S_INTERSECTS, S_DISJOINT "
                                      "and S_WITHIN take such geometries")
                # ClipByBox2D never fails on an invalid polygon (ST_Intersection would).
                sql = f"ST_ClipByBox2D({sql}, ST_MakeEnvelope({', '.join(map(repr, domain))}, {srid}))"
                bounds = clip_box(bounds, domain) or domain
            # Follow meridians and parallels, not straight chords (at most a few hundred segments a
            # side, and a bounded number in all however the literal zig-zags).
            sql = f"ST_Segmentize({sql}, {densify_step(bounds, length=float(shapely.length(g)))!r})"
        return f"ST_Transform({sql}, {self.collection.srid})"

    # -- tree -----------------------------------------------------------------------------------
    @handle(ast.Attribute)
    def attribute(self, node: ast.Attribute) -> _Sql:
        name = node.name
        if name in (GEOMETRY_QUERYABLE, self.collection.geometry_column):
            return _Sql(f't."{self.collection.geometry_column}"', "geometry")
        column = self.collection.column_index.get(name)
        if column is None:
            raise FilterError(f"unknown property {name!r}; see the collection's queryables")
        return _Sql(f't."{column.name}"', "column", column.sql_type)

    @handle(ast.And, ast.Or, ast.Not)
    def logical(self, node: ast.Combination | ast.Not, *operands: _Sql) -> _Sql:
        if isinstance(node, ast.Not):
            return _Sql(f"(NOT {operands[0].sql})", "condition")
        lhs, rhs = operands
        return _Sql(f"({lhs.sql} {node.op.value} {rhs.sql})", "condition")

    @handle(*_COMPARISON)
    def comparison(self, node: ast.Comparison, lhs: Any, rhs: Any) -> _Sql:
        left = lhs if isinstance(lhs, _Sql) else None
        right = rhs if isinstance(rhs, _Sql) else None
        a = self.literal(lhs, right)
        b = self.literal(rhs, left)
        return _Sql(f"({a} {_COMPARISON[type(node)]} {b})", "condition")

    @handle(ast.Between)
    def between(self, node: ast.Between, lhs: _Sql, low: Any, high: Any) -> _Sql:
        return _Sql(f"({lhs.sql} {_not(node)}BETWEEN {self.literal(low, lhs)} "
                    f"AND {self.literal(high, lhs)})", "condition")

    @handle(ast.Like)
    def like(self, node: ast.Like, lhs: _Sql) -> _Sql:
        if not isinstance(node.pattern, str):
            raise FilterError("LIKE needs a text pattern")
        # CQL2 wildcards are SQL's own ('%', '_', backslash escape); cast so numbers can be matched too.
        op = "ILIKE" if node.nocase else "LIKE"
        return _Sql(f"({lhs.sql}::text {_not(node)}{op} {self.bind(node.pattern)})", "condition")

    @handle(ast.In)
    def in_(self, node: ast.In, lhs: _Sql, *items: Any) -> _Sql:
        bound = ", ".join(self.literal(v, lhs) for v in items)
        return _Sql(f"({lhs.sql} {_not(node)}IN ({bound}))", "condition")

    @handle(ast.IsNull)
    def is_null(self, node: ast.IsNull, lhs: _Sql) -> _Sql:
        return _Sql(f"({lhs.sql} IS {_not(node)}NULL)", "condition")

    @handle(*_SPATIAL)
    def spatial(self, node: ast.SpatialComparisonPredicate, lhs: Any, rhs: Any) -> _Sql:
        kind = type(node)
        a, b = (v.sql if isinstance(v, _Sql) else
                self.geometry(self.as_geojson(v), kind in _CLIPPABLE or _CLIPPABLE_SIDE.get(kind) == side)
                for v, side in ((lhs, 0), (rhs, 1)))
        return _Sql(f"{_SPATIAL[type(node)]}({a}, {b})", "condition")

    @handle(ast.Function)
    def function(self, node: ast.Function, *args: Any) -> Any:
        if node.name.lower() in ("bbox", "envelope") and len(args) in (4, 6):
            if not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
                raise FilterError(f"{node.name} takes 4 or 6 numbers")
            numbers = [float(a) for a in args]
            x1, y1, x2, y2 = numbers if len(numbers) == 4 else numbers[0:2] + numbers[3:5]
            return values.Envelope(x1, x2, y1, y2)
        raise FilterError(f"unsupported function {node.name!r}")

    @handle(values.Geometry, values.Envelope)
    def geometry_value(self, node: Any) -> Any:
        return node

    @handle(*values.LITERALS)
    def plain(self, node: Any) -> Any:
        return node

    @staticmethod
    def as_geojson(value: Any) -> dict:
        if isinstance(value, (values.Geometry, values.Envelope)):
            return value.geometry
        raise FilterError(f"a spatial function needs a geometry, not {value!r}")

    def adopt(self, node: Any, *sub_args: Any) -> Any:
        raise FilterError(f"unsupported CQL2 element {type(node).__name__}")


def _fix_json_bboxes(node: Any) -> Any:
    """Turn CQL2 JSON {"bbox": [minx, miny, maxx, maxy]} into a GeoJSON polygon.

    pygeofilter 0.4 reads the four numbers in the wrong order (x1, x2, y1, y2), so it never sees a bbox.
    """
    if isinstance(node, dict):
        if set(node) == {"bbox"} and isinstance(node["bbox"], list) and len(node["bbox"]) in (4, 6):
            b = node["bbox"]
            x1, y1, x2, y2 = b if len(b) == 4 else b[0:2] + b[3:5]
            return {"type": "Polygon", "coordinates": [[[x1, y1], [x2, y1], [x2, y2], [x1, y2], [x1, y1]]]}
        return {k: _fix_json_bboxes(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_fix_json_bboxes(v) for v in node]
    return node


MAX_DEPTH = 200   # nesting of the filter's syntax tree; deeper trees would also make deep SQL


def _depth(tree: Any) -> int:
    """The depth of a pygeofilter tree, walked without recursion."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(node, ast.Node):
            stack.extend((child, depth + 1) for child in node.get_sub_nodes() or () if child is not None)
    return deepest


def to_sql(text: str, lang: str, collection: Collection, filter_crs: ServedCrs, prefix: str = "f") -> SqlCondition:
    """The SQL condition (on table alias `t`) for a CQL2 filter in `lang` ('cql2-text' or 'cql2-json')."""
    # pygeofilter parses and walks the tree recursively: a chain of a few hundred ANDs, or JSON
    # nested as deep, exhausts Python's stack (RecursionError) — the client's doing, so a 400.
    too_deep = FilterError(f"nested too deeply (an AND/OR chain or nesting of more than about "
                           f"{MAX_DEPTH} terms); use IN (...) for many values")
    try:
        if lang == "cql2-json":
            tree = parse_cql2_json(_fix_json_bboxes(json.loads(text)))
        else:
            tree = parse_cql2_text(text)
    except FilterError:
        raise
    except RecursionError:
        raise too_deep from None
    except Exception as exc:  # noqa: BLE001 - lark and json raise many types; all mean the same thing here
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FilterError(f"malformed {lang} filter: {first[:300]}") from None
    if _depth(tree) > MAX_DEPTH:
        raise too_deep
    params: dict[str, Any] = {}
    try:
        result = _ToSql(collection, filter_crs, params, prefix).evaluate(tree)
    except RecursionError:
        raise too_deep from None
    if not isinstance(result, _Sql) or result.kind != "condition":
        raise FilterError("the filter is not a condition (true or false for each feature)")
    for value in params.values():   # string literals (cql2-json "\ud800" decodes to a lone surrogate)
        for item in value if isinstance(value, (list, tuple)) else (value,):
            problem = unstorable(item) if isinstance(item, str) else None
            if problem:
                raise FilterError(f"a string literal {problem}")
    return SqlCondition(result.sql, params)
