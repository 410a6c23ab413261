"""The Flask app factory: landing page, health check, the OGC API (/ogc), styles (/styles), the map (/map)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from flask import Flask, Response, jsonify, render_template, request
from flask.json.provider import DefaultJSONProvider
from flask_cors import CORS
from werkzeug.exceptions import RequestEntityTooLarge

from app import limits as request_limits
from app.auth import install_auth
from app.http_errors import error_response, not_permitted, response_for, unavailable
from app.scope_summaries import ScopeSummaries
from core.errors import QiwangError
from core.settings import Settings, load_settings
from db.acting import SYSTEM_ROLE, acting_as
from db.engine import database_url, get_engine
from spatial.ogc_provider import collections_of

# Business tables shown on the landing page: name -> (中文, English).
TABLES = {
    "pipe": ("管线", "Pipes"),
    "node": ("节点", "Nodes"),
    "valve": ("阀门", "Valves"),
    "station": ("场站", "Stations"),
    "customer": ("用户", "Customers"),
}


def _db_error(exc: sa.exc.SQLAlchemyError) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


DEFAULT_PUBLIC_URL = "http://127.0.0.1:5000"


def create_app(url: str | None = None, public_url: str | None = None, jobs_dir: Path | None = None,
               settings: Settings | None = None) -> Flask:
    """The WSGI app for the database at `url`.

    Parameters
    ----------
    url
        SQLAlchemy URL of the database (default: db.engine.database_url(settings)).
    public_url
        Where clients reach the app: links in OGC API documents are absolute (default: the
        public_url setting, else http://127.0.0.1:5000; `serve` passes its own address).
    jobs_dir
        Where asynchronous process results are kept (default ./var/jobs).
    settings
        The deployment's settings (default: read from the environment now, core.settings).
    """
    from app.accounts_api import accounts_blueprint
    from app.alarms_api import alarms_blueprint
    from app.api_document import api_document
    from app.audit_api import audit_blueprint
    from app.files_api import files_blueprint
    from app.map import basemap_config, map_blueprint
    from app.ogc import ogc_blueprint
    from app.pii_api import pii_blueprint
    from app.styles import styles_blueprint

    settings = settings or load_settings()
    url = url or database_url(settings)
    public_url = (public_url or settings.public_url or DEFAULT_PUBLIC_URL).rstrip("/")
    app = Flask(__name__)
    if isinstance(app.json, DefaultJSONProvider):   # Flask's own: Chinese names as they are, not \u escapes
        app.json.ensure_ascii = False
    engine = get_engine(url)
    limits = settings  # the request bounds (app/limits.py) are settings
    request_limits.check_database_settings(engine, limits)
    app.config["MAX_CONTENT_LENGTH"] = limits.max_body_bytes
    _cors(app, limits)
    app.config["QIWANG_BASEMAP"] = basemap = basemap_config(settings)
    scopes = ScopeSummaries(engine, settings.scope_cache_seconds)
    with acting_as(SYSTEM_ROLE):  # the catalog, read once
        app.register_blueprint(ogc_blueprint(url, public_url, jobs_dir or Path("var/jobs").resolve(), scopes, basemap))
        landing = {c.layer.table: c for c in collections_of(url).values() if c.layer.table in TABLES}
    app.register_blueprint(styles_blueprint)
    app.register_blueprint(map_blueprint)
    app.register_blueprint(alarms_blueprint(engine))
    app.register_blueprint(files_blueprint(engine, public_url))
    app.register_blueprint(accounts_blueprint(engine, settings))
    app.register_blueprint(audit_blueprint(engine))
    app.register_blueprint(pii_blueprint(engine, settings))

    @app.before_request
    def refuse_large_bodies() -> Response | None:
        # Refused before anything reads it (a GET's body is never read, and Flask only checks on reading).
        if (request.content_length or 0) > limits.max_body_bytes:
            return _too_large(limits.max_body_bytes)
        return None

    own_origins = {request_limits.origin_of(public_url)}

    @app.before_request
    def refuse_cross_site_writes() -> Response | None:
        if request_limits.cross_site_write(request.method, request.path, request.headers.get("Origin"),
                                           own_origins | {request_limits.origin_of(request.host_url)}, limits):
            return error_response(403, "Forbidden",
                                  f"Origin: {request.headers.get('Origin', '')[:200]!r} may not change data here "
                                  "(a page of another site); set QIWANG_CORS_API_ORIGINS / QIWANG_CORS_ORIGINS "
                                  "to allow it")
        return None

    # After the two above (413 and 403 answer before any credential is checked).
    install_auth(app, engine, settings)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(exc: RequestEntityTooLarge) -> Response:  # a chunked body found too large while read
        return _too_large(limits.max_body_bytes)

    @app.errorhandler(sa.exc.ProgrammingError)
    @app.errorhandler(psycopg.errors.InsufficientPrivilege)
    def not_granted(exc: Exception) -> Response:
        refused = not_permitted(exc)
        if refused is None:
            raise exc
        return response_for(refused)

    @app.errorhandler(sa.exc.OperationalError)
    def database_busy(exc: sa.exc.OperationalError) -> Response:
        return response_for(unavailable(exc, "the query took longer than the server allows; narrow it "
                                             "(bbox, filter, limit) or try again later"))

    # A Qiwang error a route lets through is answered with its class's status and OGC code.
    app.register_error_handler(QiwangError, response_for)

    @app.get("/")
    def index():
        try:
            with engine.connect() as conn:
                versions = conn.execute(
                    sa.text("SELECT current_setting('server_version'), postgis_lib_version()")
                ).one()
            seen = scopes.of(landing.values())   # what the caller's scope holds, not the whole table
        except sa.exc.SQLAlchemyError as exc:
            return render_template("index.html", tables=TABLES, error=_db_error(exc)), 503
        counts = {table: seen[landing[table].id].count if table in landing else None for table in TABLES}
        return render_template("index.html", tables=TABLES, counts=counts, versions=versions)

    @app.get("/api/openapi")
    def api_openapi() -> Response:
        """The OpenAPI document of /api (app.api_document); the OGC API's is /ogc/openapi."""
        answer = jsonify(api_document(public_url))
        answer.mimetype = "application/vnd.oai.openapi+json;version=3.0"
        return answer

    @app.get("/health")
    def health():
        """Database, and the telemetry ingest when one runs in this process (`./qiwang demo`):
        its parts' restarts and last failures; 503 while a part is down."""
        from telemetry.health import ingest_report

        ingest = ingest_report()
        extra = {} if ingest is None else {"ingest": ingest}
        try:  # anonymous: says whether the database answers, nothing of its content
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError as exc:
            return jsonify(status="error", database="unreachable", error=_db_error(exc), **extra), 503
        if ingest is not None and ingest["status"] != "running":
            return jsonify(status="error", database="ok", **extra), 503
        return jsonify(status="ok", database="ok", **extra)

    return app


def _too_large(max_bytes: int) -> Response:
    return error_response(413, "PayloadTooLarge", f"body: larger than {max_bytes:,} bytes")


def _cors(app: Flask, limits: Settings) -> None:
    """Cross-origin access only for the configured origins: none by default (the map is same-origin,
    MapLibre's workers too). Reading (/ogc, /styles) and alarm handling (/api) are configured
    apart, so that allowing a web map elsewhere never lets its pages take steps on alarms."""
    resources: dict[str | re.Pattern[str], dict[str, Any]] = {}
    if limits.cors_origins:
        resources[r"/(ogc|styles)/.*"] = {"origins": list(limits.cors_origins),
                                          "methods": ["GET", "HEAD", "POST", "OPTIONS"]}
    if limits.cors_api_origins:
        resources[r"/api/.*"] = {"origins": list(limits.cors_api_origins), "methods": ["GET", "POST", "OPTIONS"]}
    if resources:
        CORS(app, resources=resources, expose_headers=["Content-Crs", "Location", "Preference-Applied"])
