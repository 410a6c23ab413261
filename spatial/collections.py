"""The feature collections Qiwang publishes (OGC API, vector tiles, styles), read from the database.

Only what the catalogue cannot tell is written here: which table backs which collection, its titles,
which column identifies a feature, which time property `datetime` filters on, and which columns stay
private. Personal data is masked in the database itself: where migration 0011 made a view
`published.<table>` (staff names and phones, residents' addresses, credit codes of individuals),
items, filters, sorting and vector tiles read the view (`Collection.relation`), so no request sees,
filters or sorts on a raw value. Columns, their types and their descriptions (the Chinese COMMENTs of
the migrations), the geometry type, the storage SRID (db/catalog.py) and the extent all come from
PostgreSQL, so the API cannot drift from the schema.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa

from core.errors import QiwangError
from db import catalog


@dataclass(frozen=True)
class Layer:
    """What is fixed about one collection; `describe` adds what the database knows."""

    id: str                   # collection id in URLs and the MVT layer name
    table: str
    title_zh: str
    title_en: str
    id_column: str = "code"   # feature id in /items/{id}; unique within the table
    time_column: str = "updated_at"  # what `datetime` filters on
    hidden: tuple[str, ...] = ()     # never published (personal or internal data)
    group: str = "network"           # network | operations | context | admin (QGIS groups, map order)


# Internal keys and bookkeeping are never properties; geometry columns become the feature geometry.
ALWAYS_HIDDEN = ("id",)

LAYERS: dict[str, Layer] = {layer.id: layer for layer in (
    Layer("pipes", "pipe", "管线", "Pipes", time_column="survey_date"),
    Layer("nodes", "node", "管点", "Pipe nodes"),
    Layer("valves", "valve", "阀门", "Valves", time_column="inspected_on"),
    Layer("stations", "station", "场站", "Stations"),
    Layer("regulators", "regulator", "调压设施", "Regulators", time_column="inspected_on"),
    Layer("sentries", "sentry", "管网哨兵", "Sentries (leak monitors)", group="operations",
          time_column="last_reading_at"),
    # Personal data (ID numbers, contact phones) lives in customer_personal and is never joined here.
    Layer("customers", "customer", "燃气用户", "Customers", time_column="gas_on_date"),
    Layer("sensitive_sites", "sensitive_site", "敏感场所", "Sensitive sites", group="context"),
    Layer("roads", "road", "道路", "Roads", group="context"),
    Layer("railways", "railway", "铁路", "Railways", group="context"),
    Layer("rivers", "river", "河流", "Rivers", group="context"),
    Layer("hazards", "hazard", "隐患", "Hazards", group="operations", time_column="found_at"),
    Layer("alarms", "alarm", "报警", "Alarms", group="operations", time_column="raised_at"),
    Layer("incidents", "incident", "事故处置方案", "Incidents (stored burst analyses)", group="operations",
          time_column="created_at", hidden=("request", "result")),
    Layer("topology_issues", "topology_issue", "拓扑问题", "Topology issues", id_column="id",
          group="operations", time_column="found_at"),
    Layer("inspections", "inspection", "巡检记录", "Inspections", group="operations", time_column="inspected_at"),
    Layer("crew_bases", "crew_base", "抢修驻点", "Crew bases", group="operations"),
    Layer("enterprises", "enterprise", "燃气企业", "Gas enterprises", id_column="enterprise_code", group="admin"),
    Layer("admin_divisions", "admin_division", "行政区划", "Administrative divisions", id_column="admin_code",
          group="admin", time_column=""),
)}


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str        # PostgreSQL type name, e.g. 'numeric', 'timestamp with time zone'
    description: str     # the column COMMENT (Chinese), or ''
    json_type: str       # JSON Schema type: string | integer | number | boolean
    json_format: str | None = None  # date | date-time


@dataclass(frozen=True)
class Collection:
    """A published layer with everything the database knows about it."""

    layer: Layer
    description: str           # the table COMMENT
    columns: tuple[Column, ...]  # published properties, in table order
    geometry_column: str
    geometry_type: str         # PostGIS type, e.g. 'LINESTRINGZ', 'POINTZ', 'MULTIPOLYGON'
    srid: int                  # storage SRID, e.g. 4550
    primary_key: str = "id"    # the table's (single-column) primary key: keyset paging, MVT feature ids
    primary_key_type: str = "bigint"
    extent_crs84: tuple[float, float, float, float] | None = None
    column_index: dict[str, Column] = field(default_factory=dict, compare=False)
    masked: bool = False       # read through published.<table> (personal data masked)

    def __post_init__(self) -> None:
        self.column_index.update({c.name: c for c in self.columns})

    @property
    def id(self) -> str:
        return self.layer.id

    @property
    def relation(self) -> str:
        """The quoted, schema-qualified relation that queries read: the masked view or the table."""
        return f'{"published" if self.masked else "public"}."{self.layer.table}"'

    @property
    def time_column(self) -> str | None:
        return self.layer.time_column if self.layer.time_column in self.column_index else None


def _json_type(sql_type: str) -> tuple[str, str | None]:
    if sql_type in ("smallint", "integer", "bigint"):
        return "integer", None
    if sql_type in ("numeric", "real", "double precision"):
        return "number", None
    if sql_type == "boolean":
        return "boolean", None
    if sql_type == "date":
        return "string", "date"
    if sql_type.startswith("timestamp"):
        return "string", "date-time"
    return "string", None


def describe(conn: sa.Connection, layers: dict[str, Layer] | None = None) -> dict[str, Collection]:
    """Every layer whose table exists, described from the catalogue (columns, comments, geometry, extent).

    The extent is PostGIS's estimate from the planner statistics (instant on millions of rows), padded
    to whole 1e-6° and given in CRS84; None for an empty or never-analysed table.
    """
    layers = LAYERS if layers is None else layers
    tables = catalog.tables(conn, [layer.table for layer in layers.values()])
    masked = catalog.views(conn, "published")
    # A masked collection publishes what its view has: columns added to the table after the view was
    # made (the sealed personal data of migration 0018) are not published, and could not be read.
    view_columns = {name: {c.name for c in info.columns}
                    for name, info in catalog.tables(conn, masked, schema="published").items()}
    out: dict[str, Collection] = {}
    for layer in layers.values():
        table = tables.get(layer.table)
        g = table.geometry_column() if table is not None else None
        if table is None or g is None:
            continue
        if table.primary_key is None:  # keyset paging and MVT feature ids need one
            raise QiwangError(f"table {layer.table} has no single-column primary key: cannot publish {layer.id}")
        hidden = set(ALWAYS_HIDDEN) | set(layer.hidden)
        published = view_columns.get(layer.table)
        columns = [Column(c.name, c.base_type, c.comment, *_json_type(c.base_type))
                   for c in table.columns if c.base_type != "geometry" and c.name not in hidden
                   and (published is None or c.name in published)]
        geometry_type = g.type + ("Z" if g.coord_dimension == 3 and not g.type.endswith("Z") else "")
        key, key_type = table.primary_key
        out[layer.id] = Collection(layer, table.comment, tuple(columns), g.column, geometry_type, g.srid, key, key_type,
                                   _extent(conn, layer.table, g.column, g.srid), masked=layer.table in masked)
    return out


def _extent(conn: sa.Connection, table: str, column: str, srid: int) -> tuple[float, float, float, float] | None:
    try:
        with conn.begin_nested():
            box = conn.execute(sa.text(
                "SELECT ST_Transform(ST_SetSRID(ST_EstimatedExtent('public', :t, :c)::geometry, :srid), 4326)"
                "::box2d::text"), {"t": table, "c": column, "srid": srid}).scalar()
    except sa.exc.DBAPIError:  # no statistics yet (table never analysed)
        box = None
    if box is None:
        box = conn.execute(sa.text(
            f'SELECT {_crs84_box_sql(column, srid)} FROM "{table}"')).scalar()
    return _padded(box)


def _crs84_box_sql(column: str, srid: int) -> str:
    """SQL of the CRS84 box (box2d text) around the extent of `column` (storage SRID `srid`)."""
    return f'ST_Transform(ST_SetSRID(ST_Extent("{column}")::geometry, {int(srid)}), 4326)::box2d::text'


def _padded(box: str | None) -> tuple[float, float, float, float] | None:
    """(west, south, east, north) in degrees of a PostGIS box2d text, padded; None for None."""
    if box is None:
        return None
    lo, hi = box[4:-1].split(",")
    x1, y1 = (float(v) for v in lo.split())
    x2, y2 = (float(v) for v in hi.split())
    # A transformed box of a projected extent is not the extent of the transformed data: pad 1e-3°.
    return (round(x1 - 1e-3, 6), round(y1 - 1e-3, 6), round(x2 + 1e-3, 6), round(y2 + 1e-3, 6))


# The bbox of a collection with no feature to bound (OGC API Common requires one).
WORLD_CRS84 = (-180.0, -90.0, 180.0, 90.0)


@dataclass(frozen=True)
class ScopeSummary:
    """What one caller sees of a collection: its rows and their extent (CRS84, padded; None when none)."""

    count: int
    extent_crs84: tuple[float, float, float, float] | None


def scope_summaries(conn: sa.Connection, collections: Iterable[Collection]) -> dict[str, ScopeSummary]:
    """Rows and extent of each collection as `conn`'s role sees them: row-level security applies.

    One exact scan per table (``count(*)`` and ``ST_Extent``), in one statement: about 0.3 s for a
    million pipes. The callers cache the answer per role (app.ogc.scope).
    """
    wanted = list(collections)
    if not wanted:
        return {}
    parts = [f"SELECT {i} AS i, count(*) AS n, {_crs84_box_sql(c.geometry_column, c.srid)} AS box "
             f"FROM {c.relation}" for i, c in enumerate(wanted)]
    rows = conn.execute(sa.text(" UNION ALL ".join(parts))).all()
    return {wanted[i].id: ScopeSummary(int(n), _padded(box)) for i, n, box in rows}
