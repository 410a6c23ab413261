"""What bounds one HTTP request: body size, JSON bodies, database time and memory, CORS origins.

Everything here is a setting (environment variable, read when the app is created), with a default
that keeps one anonymous request from hurting the server or the database:

| variable | default | what |
|---|---|---|
| QIWANG_MAX_BODY_BYTES | 1048576 | largest request body; larger ones get 413 before they are read |
| QIWANG_STATEMENT_TIMEOUT | 15s | statement_timeout of every transaction a request opens |
| QIWANG_PROCESS_STATEMENT_TIMEOUT | 120s | the same for synchronous process execution (analyses) |
| QIWANG_WORK_MEM | 32MB | work_mem of every transaction a request opens |
| QIWANG_CORS_ORIGINS | (none) | origins (comma-separated) allowed to read /ogc and /styles cross-origin |
| QIWANG_CORS_API_ORIGINS | (none) | origins allowed to call /api (alarm handling) cross-origin |

The database limits are SET LOCAL (set_config(..., true)) at the start of each transaction a
request opens, so they end with it; role-level defaults in the database are a second line.
"""
from __future__ import annotations

import json
import os
import re
import weakref
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from core.errors import QiwangError
from core.text import unstorable

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
QUERY_CANCELED = "57014"     # SQLSTATE of a statement cancelled by statement_timeout


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    statement_timeout: str = "15s"
    process_statement_timeout: str = "120s"
    work_mem: str = "32MB"
    cors_origins: tuple[str, ...] = ()
    cors_api_origins: tuple[str, ...] = ()


def _origins(name: str) -> tuple[str, ...]:
    origins = tuple(o.strip().rstrip("/") for o in os.environ.get(name, "").split(",") if o.strip())
    for origin in origins:
        if origin == "*" or not re.fullmatch(r"https?://[^/\s]+", origin):
            raise QiwangError(f"{name}: {origin!r} is not an origin (scheme://host[:port], no wildcard)")
    return origins


def from_environment() -> Limits:
    """The limits set by the QIWANG_* variables (see the module docstring), checked."""
    body = os.environ.get("QIWANG_MAX_BODY_BYTES", str(DEFAULT_MAX_BODY_BYTES))
    if not re.fullmatch(r"[0-9]{1,12}", body) or int(body) < 1024:
        raise QiwangError(f"QIWANG_MAX_BODY_BYTES: {body!r} is not a number of bytes (at least 1024)")
    return Limits(int(body), os.environ.get("QIWANG_STATEMENT_TIMEOUT", Limits.statement_timeout),
                  os.environ.get("QIWANG_PROCESS_STATEMENT_TIMEOUT", Limits.process_statement_timeout),
                  os.environ.get("QIWANG_WORK_MEM", Limits.work_mem),
                  _origins("QIWANG_CORS_ORIGINS"), _origins("QIWANG_CORS_API_ORIGINS"))


def check_database_settings(engine: sa.Engine, limits: Limits) -> None:
    """Let PostgreSQL check the setting values once, at start-up, rather than fail every request."""
    try:
        with engine.begin() as conn:
            for name, value in (("statement_timeout", limits.statement_timeout),
                                ("statement_timeout", limits.process_statement_timeout),
                                ("work_mem", limits.work_mem)):
                conn.execute(sa.text("SELECT set_config(:n, :v, true)"), {"n": name, "v": value})
    except sa.exc.DBAPIError as exc:
        first = str(exc.orig).strip().splitlines()[0]
        raise QiwangError(f"QIWANG_STATEMENT_TIMEOUT / QIWANG_WORK_MEM: {first}") from None


# engine → the limits of the app last created on it (the engine is shared per URL within a process)
_ENGINE_LIMITS: weakref.WeakKeyDictionary[sa.Engine, Limits] = weakref.WeakKeyDictionary()


def install_request_limits(engine: sa.Engine, limits: Limits) -> None:
    """Bound every transaction `engine` begins while it serves an HTTP request.

    A listener on the engine's `begin` event, so that every path (features, tiles, the pygeoapi
    provider, processes and the analyses they call) is covered without each remembering to; work
    outside a request (asynchronous jobs, the CLI) keeps the role's defaults. One listener per
    engine, however many apps are created on it.
    """
    first = engine not in _ENGINE_LIMITS
    _ENGINE_LIMITS[engine] = limits
    if first:
        sa.event.listen(engine, "begin", _bound_transaction)


def _bound_transaction(conn: sa.Connection) -> None:
    from flask import has_request_context, request

    limits = _ENGINE_LIMITS.get(conn.engine)
    if limits is None or not has_request_context():
        return
    timeout = limits.process_statement_timeout if request.path.startswith("/ogc/processes/") \
        else limits.statement_timeout
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute("SELECT set_config('statement_timeout', %s, true), set_config('work_mem', %s, true)",
                       (timeout, limits.work_mem))
    finally:
        cursor.close()


def origin_of(url: str) -> str:
    """scheme://host[:port] of a URL, lower-case, as browsers send it in an Origin header."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def cross_site_write(method: str, path: str, origin: str | None, own: set[str], limits: Limits) -> bool:
    """Whether a request changes state on behalf of a page of another site (CSRF).

    CORS headers only keep another site from reading answers; a browser still sends its "simple"
    cross-site POSTs (text/plain, forms, no-cors fetch). Browsers name the page's origin on every
    such request, so a write whose Origin is neither ours nor configured for that path is refused;
    clients without a browser (curl, QGIS, GDAL, OWSLib) send no Origin and are unaffected.
    """
    if method in ("GET", "HEAD", "OPTIONS") or origin is None:
        return False
    origin = origin.strip().lower()
    allowed = limits.cors_api_origins if path.startswith("/api/") else limits.cors_origins
    return origin not in own and origin not in {o.lower() for o in allowed}


def is_timeout(exc: BaseException) -> bool:
    """Whether a database error is a statement cancelled by statement_timeout."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None) == QUERY_CANCELED


def check_text(name: str, value: str) -> None:
    """Text PostgreSQL can store (core.text); ValueError naming `name` otherwise."""
    problem = unstorable(value)
    if problem:
        raise ValueError(f"{name}: {problem}")


def _check_strings(node: Any, where: str) -> None:
    # Iterative: the depth of a JSON document is the client's choice.
    stack = [(node, where)]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            check_text(path, value)
        elif isinstance(value, dict):
            for key, item in value.items():
                check_text(path or "body", key)
                stack.append((item, f"{path}.{key}" if path else key))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{i}]") for i, item in enumerate(value))


def json_object(raw: bytes, example: str, max_bytes: int) -> dict:
    """A request body that is a JSON object of storable text; ValueError ("body: …" or the field's
    path) for anything else: too large, not UTF-8, not JSON, nested too deep, not an object."""
    if len(raw) > max_bytes:
        raise ValueError(f"body: larger than {max_bytes // 1024} KiB")
    try:
        body = json.loads(raw.decode("utf-8") or "null")  # no body at all: not an object either
    except UnicodeDecodeError:
        raise ValueError("body: not UTF-8") from None
    except RecursionError:
        raise ValueError("body: JSON nested too deeply") from None
    except ValueError:
        raise ValueError(f"body: not JSON; send {example}") from None
    if not isinstance(body, dict):
        raise ValueError(f"body: a JSON object is expected, e.g. {example}")
    _check_strings(body, "")
    return body
