"""The Flask app factory: landing page, health check, the OGC API (/ogc), styles (/styles), the map (/map)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from flask import Flask, jsonify, render_template
from flask_cors import CORS

from spatial.db import database_url, get_engine

# Business tables shown on the landing page: name -> (中文, English).
TABLES = {
    "pipe": ("管线", "Pipes"),
    "node": ("节点", "Nodes"),
    "valve": ("阀门", "Valves"),
    "station": ("场站", "Stations"),
    "customer": ("用户", "Customers"),
}
# Above this many rows (by the planner's estimate) show the estimate: count(*) would take seconds.
EXACT_COUNT_BELOW = 1_000_000


def table_counts(conn: sa.Connection) -> dict[str, tuple[int, bool] | None]:
    """table -> (rows, is_estimate), or None when the table does not exist yet."""
    counts: dict[str, tuple[int, bool] | None] = {}
    for table in TABLES:
        estimate = conn.execute(
            sa.text("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(:t)"), {"t": table}
        ).scalar()
        if estimate is None:
            counts[table] = None
        elif estimate >= EXACT_COUNT_BELOW:
            counts[table] = (estimate, True)
        else:
            counts[table] = (conn.execute(sa.text(f'SELECT count(*) FROM "{table}"')).scalar_one(), False)
    return counts


def _db_error(exc: sa.exc.SQLAlchemyError) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


DEFAULT_PUBLIC_URL = "http://127.0.0.1:5000"


def create_app(url: str | None = None, public_url: str | None = None, jobs_dir: Path | None = None) -> Flask:
    """The WSGI app for the database at `url` (default: spatial.db.database_url()).

    `public_url` is where clients reach the app (links in OGC API documents are absolute; `serve`
    passes $QIWANG_PUBLIC_URL or its own address). `jobs_dir` keeps asynchronous process results
    (default ./var/jobs).
    """
    from app.alarms_api import alarms_blueprint
    from app.map import map_blueprint
    from app.ogc import ogc_blueprint
    from app.styles import styles_blueprint

    url = url or database_url()
    public_url = (public_url or DEFAULT_PUBLIC_URL).rstrip("/")
    app = Flask(__name__)
    app.json.ensure_ascii = False
    engine = get_engine(url)
    # Web maps on other origins (and MapLibre in a worker) read features and tiles: allow CORS.
    CORS(app, expose_headers=["Content-Crs", "Location", "Preference-Applied"])
    app.register_blueprint(ogc_blueprint(url, public_url, jobs_dir or Path("var/jobs").resolve()))
    app.register_blueprint(styles_blueprint)
    app.register_blueprint(map_blueprint)
    app.register_blueprint(alarms_blueprint(engine))

    @app.get("/")
    def index():
        try:
            with engine.connect() as conn:
                versions = conn.execute(
                    sa.text("SELECT current_setting('server_version'), postgis_lib_version()")
                ).one()
                counts = table_counts(conn)
        except sa.exc.SQLAlchemyError as exc:
            return render_template("index.html", tables=TABLES, error=_db_error(exc)), 503
        return render_template("index.html", tables=TABLES, counts=counts, versions=versions)

    @app.get("/health")
    def health():
        """Database, and the telemetry ingest when one runs in this process (`./qiwang demo`):
        its parts' restarts and last failures; 503 while a part is down."""
        from ingest.telemetry.health import ingest_report

        ingest = ingest_report()
        extra = {} if ingest is None else {"ingest": ingest}
        try:
            with engine.connect() as conn:
                pipes = table_counts(conn)["pipe"]
        except sa.exc.SQLAlchemyError as exc:
            return jsonify(status="error", database="unreachable", error=_db_error(exc), **extra), 503
        if ingest is not None and ingest["status"] != "running":
            return jsonify(status="error", database="ok", pipes=pipes[0] if pipes else 0, **extra), 503
        return jsonify(status="ok", database="ok", pipes=pipes[0] if pipes else 0, **extra)

    return app
