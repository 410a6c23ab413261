"""Alarm handling over HTTP (报警闭环处置): the dispatcher's steps on an alarm, and its record.

    POST /api/alarms/{code}/{action}   action: acknowledge | dispatch | resolve | close
         body (JSON): {"note": "已派抢修一队", "enterprise": "2103020001"}, all optional; the
                      step is recorded as the signed-in account's; "by", when sent, must name it
                      (its account name or its person's name), else 403
         200 {"code", "state", "<step>_at", "record": [...]}   the step taken, the record after it
         400 a body or field that does not fit (the description starts with the field's name)
         404 no such alarm or action;  409 the step does not apply to the alarm as it stands
    GET  /api/alarms/{code}/record     {"code", "intact", "events": [...]}: the immutable handling
         record, oldest first, and whether its hash chain verifies

Alarms themselves are read as features of the OGC API collection `alarms`. The steps and their
rules are those of `./qiwang alarm` (telemetry.alarms): in order, forward only, closing
only once the value has cleared. Errors have the shape of the OGC API's ({"code", "description"}):
the routes raise core.errors classes and the app answers them with their status
(app.http_errors.response_for, registered by app.web.create_app).
Who takes a step is the signed-in account (app/auth.py), never a name the client typed: the
handling record says ``张三 (a_dispatcher)``. Only dispatchers take steps (accounts/permissions.py),
and only on alarms of their scope (row-level security: another enterprise's alarm is not found).
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, cast

import psycopg
import sqlalchemy as sa
from flask import Blueprint, Response, g, request
from werkzeug.exceptions import HTTPException

from accounts.store import Account
from app.http_errors import error_response, response_for, unavailable
from app.limits import check_text, json_object
from core.errors import Forbidden, InvalidInput, NotFound
from telemetry.alarms import STEPS, advance, record, verify_record

BODY_FIELDS = {"by": 100, "note": 2000, "enterprise": 50}      # field → longest accepted text
MAX_BODY_BYTES = 16 * 1024
PREFIX = "/api/alarms"


def _answer(status: int, body: dict[str, Any]) -> Response:
    return Response(json.dumps(body, ensure_ascii=False, default=_json_value), status,
                    mimetype="application/json")


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _events(conn: psycopg.Connection, code: str) -> list[dict[str, Any]]:
    return [asdict(event) for event in record(conn, code)]


@contextmanager
def _connection(engine: sa.Engine) -> Iterator[psycopg.Connection]:
    """A transaction of `engine` as a psycopg connection (the handling record is written with
    psycopg): begun through SQLAlchemy so that it acts as the signed-in account (db/acting.py),
    committed when the block ends without an error, rolled back otherwise."""
    with engine.begin() as conn:
        yield cast(psycopg.Connection, conn.connection.driver_connection)


def _checked(check: Any, *args: Any) -> Any:
    """check(*args), its ValueError (app.limits: the field first, then what is wrong) as InvalidInput."""
    try:
        return check(*args)
    except ValueError as exc:
        raise InvalidInput(None, str(exc)) from None


def actor_of(account: Account, by: str | None) -> str:
    """How the handling record names the account taking a step: ``display name (account)``.

    Raises
    ------
    Forbidden
        `by` (a client that still sends it) names someone else.
    """
    if by is not None and by not in (account.name, account.display_name):
        raise Forbidden(f"by: the step is taken by the signed-in account {account.name}, not {by!r}")
    return account.name if account.display_name == account.name else f"{account.display_name} ({account.name})"


def step_body(raw: bytes) -> dict[str, str | None]:
    """The checked body of a step.

    Parameters
    ----------
    raw
        The request body: a UTF-8 JSON object of at most MAX_BODY_BYTES.

    Returns
    -------
    dict
        {"by", "note", "enterprise"}: stripped strings, None when absent or blank.
        InvalidInput naming the field at fault (or `body`).
    """
    body = _checked(json_object, raw, '{"note": "…"}', MAX_BODY_BYTES)
    unknown = sorted(set(body) - set(BODY_FIELDS))
    if unknown:
        raise InvalidInput(unknown[0], f"unknown field (accepted: {', '.join(BODY_FIELDS)})")
    checked: dict[str, str | None] = {}
    for name, longest in BODY_FIELDS.items():
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            raise InvalidInput(name, f"a string is expected, not {type(value).__name__}")
        value = value.strip() if value else None
        if value and len(value) > longest:
            raise InvalidInput(name, f"longer than {longest} characters")
        checked[name] = value or None

    return checked


def alarms_blueprint(engine: sa.Engine) -> Blueprint:
    """The /api/alarms routes on `engine`'s database."""
    bp = Blueprint("alarms_api", __name__, url_prefix=PREFIX)

    @bp.post("/<code>/<action>")
    def take_step(code: str, action: str) -> Response:
        if action not in STEPS:  # a path that names no step: no such resource
            raise NotFound(f"action: {action!r} is not a step; use one of {', '.join(STEPS)}")
        _checked(check_text, "code", code)
        body = step_body(request.get_data(cache=False))
        actor = actor_of(g.account, body["by"])
        with _connection(engine) as conn:
            result = advance(conn, code, action, actor, body["note"], datetime.now(UTC),
                             enterprise_code=body["enterprise"])
            result["record"] = _events(conn, code)
        return _answer(200, result)

    @bp.errorhandler(psycopg.OperationalError)
    def database_busy(exc: psycopg.OperationalError) -> Response:
        # raw psycopg connections (the handling record is written with psycopg): a cancelled or lost
        # statement is the server's trouble (503), never a 500.
        return response_for(unavailable(exc))

    @bp.get("/<code>/record")
    def handling_record(code: str) -> Response:
        _checked(check_text, "code", code)
        with _connection(engine) as conn:
            events = _events(conn, code)
            if not events:
                raise NotFound(f"no alarm {code}")
            intact = verify_record(conn, code)
        return _answer(200, {"code": code, "intact": intact, "events": events})

    # A wrong path or method is found while routing, before any blueprint is chosen: only an
    # app-wide handler sees it. Answer JSON under /api/alarms, leave other paths to Flask.
    @bp.app_errorhandler(404)
    @bp.app_errorhandler(405)
    def routing_error(exc: HTTPException) -> Response | HTTPException:
        if not request.path.startswith(PREFIX + "/"):
            return exc
        if exc.code == 405:  # not an error of the family: no class for it
            return error_response(405, "MethodNotAllowed", f"{request.method} is not allowed on {request.path}")
        return response_for(NotFound(f"{request.path} does not exist"))

    return bp
