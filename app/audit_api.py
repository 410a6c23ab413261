"""The audit log over HTTP, for auditors (审计员) only.

    GET /api/audit?user=NAME&since=ISO&action=A&limit=N
        200 [{"id", "at", "actor", "db_role", "action", "table", "feature_code", "changes",
              "detail", "request_id", "client_addr"}, ...]   newest first, at most `limit` (default
              100, at most 10000)
        400 a parameter that does not fit (the description starts with its name)
        403 any role but auditor (accounts/permissions.py; the database too: only qiwang_auditor
            may SELECT audit.log)

The request acts as the signed-in account's role (db/acting.py), so the database's grants decide
what it reads, as for every other path.
"""
from __future__ import annotations

import json

import sqlalchemy as sa
from flask import Blueprint, Response, request

from accounts import audit
from core.errors import InvalidInput

PREFIX = "/api/audit"


def _limit(text: str | None) -> int:
    if text is None or text == "":
        return audit.DEFAULT_LIMIT
    try:
        value = int(text)
    except ValueError:
        raise InvalidInput("limit", f"{text[:50]!r} is not a whole number") from None
    if not 1 <= value <= audit.MAX_LIMIT:
        raise InvalidInput("limit", f"{value} is not from 1 to {audit.MAX_LIMIT}")
    return value


def _text(name: str, longest: int = 200) -> str | None:
    value = request.args.get(name)
    if value is None or value == "":
        return None
    if len(value) > longest:
        raise InvalidInput(name, f"at most {longest} characters")
    return value


def audit_blueprint(engine: sa.Engine) -> Blueprint:
    """The routes of the audit log on `engine` (the app's: its transactions act as the signed-in account)."""
    routes = Blueprint("audit", __name__)

    @routes.get(PREFIX)
    def audit_entries() -> Response:
        user, since, action = _text("user"), _text("since", 64), _text("action", 64)
        limit = _limit(request.args.get("limit"))
        with engine.connect() as conn:
            found = audit.entries(conn, user=user, since=since, action=action, limit=limit)
        return Response(json.dumps([e.as_json() for e in found], ensure_ascii=False, default=str), 200,
                        mimetype="application/json")

    return routes
