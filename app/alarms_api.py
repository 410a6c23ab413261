"""Alarm handling over HTTP (报警闭环处置): the dispatcher's steps on an alarm, and its record.

    POST /api/alarms/{code}/{action}   action: acknowledge | dispatch | resolve | close
         body (JSON): {"by": "张三", "note": "已派抢修一队", "enterprise": "QY0001"}
                      by: who takes the step (required); note, enterprise: optional
         200 {"code", "state", "<step>_at", "record": [...]}   the step taken, the record after it
         400 a body or field that does not fit (the description starts with the field's name)
         404 no such alarm or action;  409 the step does not apply to the alarm as it stands
    GET  /api/alarms/{code}/record     {"code", "intact", "events": [...]}: the immutable handling
         record, oldest first, and whether its hash chain verifies

Alarms themselves are read as features of the OGC API collection `alarms`. The steps and their
rules are those of `./qiwang alarm` (telemetry.alarms): in order, forward only, closing
only once the value has cleared. Errors have the shape of the OGC API's ({"code", "description"}).
Who takes a step is what the client says (`by`): the app has no login of its own, so put it
behind the utility's single sign-on proxy when it is reachable by more than the control room.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import psycopg
import sqlalchemy as sa
from flask import Blueprint, Response, request
from werkzeug.exceptions import HTTPException

from app.http_errors import error_response
from app.limits import check_text, json_object
from core.errors import QiwangError
from telemetry.alarms import STEPS, AlarmStepRefused, UnknownAlarm, advance, record, verify_record

BODY_FIELDS = {"by": 100, "note": 2000, "enterprise": 50}      # field → longest accepted text
MAX_BODY_BYTES = 16 * 1024


def _answer(status: int, body: dict[str, Any]) -> Response:
    return Response(json.dumps(body, ensure_ascii=False, default=_json_value), status,
                    mimetype="application/json")


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _events(conn: Any, code: str) -> list[dict[str, Any]]:
    return [asdict(event) for event in record(conn, code)]


def step_body(raw: bytes) -> dict[str, str | None]:
    """The checked body of a step: {"by", "note", "enterprise"}; ValueError names the field at fault."""
    body = json_object(raw, '{"by": "name", "note": "…"}', MAX_BODY_BYTES)
    unknown = sorted(set(body) - set(BODY_FIELDS))
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown field (accepted: {', '.join(BODY_FIELDS)})")
    checked: dict[str, str | None] = {}
    for name, longest in BODY_FIELDS.items():
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{name}: a string is expected, not {type(value).__name__}")
        value = value.strip() if value else None
        if value and len(value) > longest:
            raise ValueError(f"{name}: longer than {longest} characters")
        checked[name] = value or None
    if not checked["by"]:
        raise ValueError("by: the person taking the step must be named")
    return checked


def alarms_blueprint(engine: sa.Engine) -> Blueprint:
    """The /api/alarms routes on `engine`'s database."""
    bp = Blueprint("alarms_api", __name__, url_prefix="/api/alarms")

    @bp.post("/<code>/<action>")
    def take_step(code: str, action: str) -> Response:
        if action not in STEPS:
            return error_response(404, "NotFound",
                                  f"action: {action!r} is not a step; use one of {', '.join(STEPS)}")
        try:
            check_text("code", code)
            body = step_body(request.get_data(cache=False))
        except ValueError as exc:
            return error_response(400, "InvalidParameterValue", str(exc))
        raw = engine.raw_connection()
        try:
            conn = raw.driver_connection
            try:
                result = advance(conn, code, action, body["by"], body["note"], datetime.now(UTC),
                                 enterprise_code=body["enterprise"])
                result["record"] = _events(conn, code)
                conn.commit()
            except UnknownAlarm as exc:
                return error_response(404, "NotFound", str(exc))
            except AlarmStepRefused as exc:
                return error_response(409, "Conflict", str(exc))
            except QiwangError as exc:
                return error_response(400, "InvalidParameterValue", str(exc))
        finally:
            raw.close()         # back to the pool, rolled back if not committed
        return _answer(200, result)

    @bp.errorhandler(psycopg.OperationalError)
    def database_busy(exc: psycopg.OperationalError) -> Response:
        # raw psycopg connections (the handling record is written with psycopg): a cancelled or lost
        # statement is the server's trouble (503), never a 500.
        first = str(exc).strip().splitlines()
        return error_response(503, "ServiceUnavailable", f"database: {first[0] if first else type(exc).__name__}")

    @bp.get("/<code>/record")
    def handling_record(code: str) -> Response:
        try:
            check_text("code", code)
        except ValueError as exc:
            return error_response(400, "InvalidParameterValue", str(exc))
        raw = engine.raw_connection()
        try:
            conn = raw.driver_connection
            events = _events(conn, code)
            if not events:
                return error_response(404, "NotFound", f"no alarm {code}")
            intact = verify_record(conn, code)
        finally:
            raw.close()
        return _answer(200, {"code": code, "intact": intact, "events": events})

    # A wrong path or method is found while routing, before any blueprint is chosen: only an
    # app-wide handler sees it. Answer JSON under /api/alarms, leave other paths to Flask.
    @bp.app_errorhandler(404)
    @bp.app_errorhandler(405)
    def routing_error(exc: HTTPException) -> Response | HTTPException:
        if not request.path.startswith(bp.url_prefix + "/"):
            return exc
        if exc.code == 405:
            return error_response(405, "MethodNotAllowed", f"{request.method} is not allowed on {request.path}")
        return error_response(404, "NotFound", f"{request.path} does not exist")

    return bp
