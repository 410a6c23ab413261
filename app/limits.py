"""What bounds one HTTP request: body size, JSON bodies, database time and memory, CORS origins.

The bounds are settings (core.settings: max_body_bytes, statement_timeout,
process_statement_timeout, work_mem, cors_origins, cors_api_origins), read when the app is created,
with defaults that keep one anonymous request from hurting the server or the database.

The database limits are SET LOCAL (set_config(..., true)) at the start of each transaction a
request opens, with the account's role (app/auth.py, db/acting.py), so they end with it;
role-level defaults in the database are a second line.
"""
from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from core.errors import InvalidInput, Unavailable
from core.settings import Settings
from core.text import unstorable

QUERY_CANCELED = "57014"     # SQLSTATE of a statement cancelled by statement_timeout


def check_database_settings(engine: sa.Engine, settings: Settings) -> None:
    """Let PostgreSQL check the limits' values once, at start-up, rather than fail every request.

    Parameters
    ----------
    engine
        The app's engine.
    settings
        The app's settings; a value PostgreSQL refuses raises `InvalidInput` naming the setting
        (its variable or file key) and PostgreSQL's reason.
    """
    for key, parameter in (("statement_timeout", "statement_timeout"),
                           ("process_statement_timeout", "statement_timeout"),
                           ("work_mem", "work_mem")):
        try:
            with engine.begin() as conn:
                conn.execute(sa.text("SELECT set_config(:n, :v, true)"),
                             {"n": parameter, "v": getattr(settings, key)})
        except sa.exc.DBAPIError as exc:
            first = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc.orig).__name__
            if isinstance(exc, sa.exc.DataError):   # invalid_parameter_value: the value is at fault
                raise InvalidInput(settings.name_of(key), first) from None
            raise Unavailable(f"database: {first}") from None


def origin_of(url: str) -> str:
    """scheme://host[:port] of a URL, lower-case, as browsers send it in an Origin header."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def cross_site_write(method: str, path: str, origin: str | None, own: set[str], limits: Settings) -> bool:
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
