"""HTTP answers for errors: the OGC API exception body ({"code", "description"}, as pygeoapi's).

The one mapping from core.errors to HTTP: the class gives the status and the code, the message
gives the description (starting with the field at fault where there is one).
"""

from __future__ import annotations

import json

from flask import Response

from app.limits import is_timeout
from core.errors import Forbidden, QiwangError, Unavailable


def error_response(status: int, code: str, description: str) -> Response:
    """An HTTP error as JSON in the OGC API exception shape ({"code", "description"}).

    `description` starts with the name of the parameter or field at fault where there is one.
    """
    return Response(json.dumps({"code": code, "description": description}, ensure_ascii=False), status,
                    mimetype="application/json")


def response_for(exc: QiwangError) -> Response:
    """The HTTP answer for a Qiwang error: status and OGC code from its class (core.errors)."""
    return error_response(exc.http_status, exc.ogc_code, str(exc))


def unavailable(exc: BaseException, timeout_advice: str | None = None) -> Unavailable:
    """A database failure as the server's trouble (503), never the client's nor a 500.

    Parameters
    ----------
    exc
        The driver's or SQLAlchemy's OperationalError (a cancelled statement, the database away).
    timeout_advice
        What the client can do when a SQLAlchemy statement outran the statement_timeout (narrow
        the query, run asynchronously): the description is then ``statement_timeout: {advice}``.

    Returns
    -------
    Unavailable
        Otherwise described as ``database: {the error's first line}; try again later``.
    """
    if timeout_advice is not None and is_timeout(exc):
        return Unavailable(f"statement_timeout: {timeout_advice}")
    text = str(getattr(exc, "orig", None) or exc).strip()
    return Unavailable(f"database: {text.splitlines()[0] if text else type(exc).__name__}; try again later")


INSUFFICIENT_PRIVILEGE = "42501"   # SQLSTATE: the role has no grant for what it tried


def not_permitted(exc: BaseException) -> Forbidden | None:
    """A write the account's role has no grant for (the database's refusal, the last line behind
    accounts/permissions.py) as 403, naming what was refused; None for any other error."""
    orig = getattr(exc, "orig", exc)
    if getattr(orig, "sqlstate", None) != INSUFFICIENT_PRIVILEGE:
        return None
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else "permission denied"
    return Forbidden(f"role: the signed-in account may not do this ({text})")
