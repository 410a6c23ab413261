"""Accounts over HTTP, for the administrators (accounts/permissions.py: sysadmin, security_admin,
enterprise_admin; what each may do: accounts/remit.py).

    GET  /api/accounts                 [account, …]: every account for the system and security
                                       administrators, its enterprise's for an enterprise_admin
    GET  /api/accounts/{name}          one account (404 outside the caller's view)
    POST /api/accounts                 {"name", "roles": [...], "enterprise_code" | "admin_code",
                                        "display_name"?} → 201 the account and "first_password"
                                       (shown this once; to be changed at the first sign-in),
                                       Location: /api/accounts/{name}
    POST /api/accounts/{name}/disable  → 200 the account, disabled: its sessions end, its tokens
                                       are revoked, its direct database login goes
    POST /api/accounts/{name}/roles    {"roles": [...]} → 200 the account with its new roles

An account is ``{name, display_name, roles, enterprise_code, admin_code, state, db_login}``; no
credential or hash is ever part of an answer. Errors have the shape of every JSON error here
({"code", "description"}, the description starting with the field at fault): 400 a body or field
that does not fit, 403 beyond the caller's remit (saying whose it is), 404 no such account in
view, 409 a name taken or an account already disabled. A direct database login (``--db-login``)
and the separated duties are the CLI's only. Every change is the signed-in administrator's in
the audit log (account_add, account_disable, role_change, and the rows of auth.account).

The accounts table is the login path's: the routes act as `qiwang_auth` (db/acting.py), the
remit having been checked here first.
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, g, jsonify, request
from jsonschema.exceptions import best_match

from accounts import remit, store
from app.limits import json_object
from core.config_file import ConfigValidator, key_path, reason_of
from core.errors import Conflict, InvalidInput, NotFound
from core.settings import Settings
from db import acting

MAX_BODY_BYTES = 16 * 1024
_ROLES = {"type": "array", "items": {"enum": list(store.DUTIES)}, "minItems": 1}
NEW_ACCOUNT = {
    "type": "object", "additionalProperties": False, "required": ["name", "roles"],
    "properties": {"name": {"type": "string"}, "display_name": {"type": "string", "minLength": 1, "maxLength": 100},
                   "roles": _ROLES, "enterprise_code": {"type": "string"}, "admin_code": {"type": "string"}},
}
NEW_ROLES = {"type": "object", "additionalProperties": False, "required": ["roles"], "properties": {"roles": _ROLES}}
# the store's field names (the CLI's options) → this API's
_FIELDS = {"role": "roles", "enterprise": "enterprise_code", "division": "admin_code"}


def _body(schema: dict[str, Any], example: str) -> dict[str, Any]:
    """The request's JSON object checked against `schema`; InvalidInput naming the field."""
    try:
        body = json_object(request.get_data(cache=False), example, MAX_BODY_BYTES)
    except ValueError as exc:
        field, _, reason = str(exc).partition(": ")
        raise InvalidInput(field, reason) from None
    error = best_match(ConfigValidator(schema).iter_errors(body))
    if error is None:
        return body
    if error.validator == "required":
        missing = [name for name in error.validator_value if name not in error.instance]
        raise InvalidInput(missing[0], "missing (required)")
    if error.validator == "additionalProperties":
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        raise InvalidInput(unknown[0], f"unknown field (accepted: {', '.join(error.schema['properties'])})")
    raise InvalidInput(key_path(error.absolute_path) or "body", reason_of(error))


def _renamed(exc: InvalidInput) -> InvalidInput:
    return InvalidInput(_FIELDS.get(exc.field or "", exc.field), exc.reason)


def accounts_blueprint(engine: sa.Engine, settings: Settings) -> Blueprint:
    """The /api/accounts routes on `engine`'s database."""
    bp = Blueprint("accounts_api", __name__)

    def shown(a: store.Account) -> dict[str, Any]:
        return {"name": a.name, "display_name": a.display_name, "roles": list(a.duties),
                "enterprise_code": a.enterprise_code, "admin_code": a.admin_code,
                "state": a.state(datetime.now(UTC), settings.password_max_age_days), "db_login": a.db_login}

    def named(conn: sa.Connection, name: str) -> store.Account:
        # a path that cannot be an account name names none (and never reaches SQL with a NUL)
        if not store.NAME_RULE.match(name):
            raise NotFound(f"no account {name[:40]!r}")
        return store.account(conn, name)

    @bp.get("/api/accounts")
    def listing() -> Response:
        me: store.Account = g.account
        with acting.acting_as(acting.AUTH_ROLE), engine.connect() as conn:
            found = store.accounts(conn)
        return jsonify([shown(a) for a in found if remit.visible(me, a)])

    @bp.get("/api/accounts/<name>")
    def one(name: str) -> Response:
        with acting.acting_as(acting.AUTH_ROLE), engine.connect() as conn:
            found = named(conn, name)
        remit.check_visible(g.account, found)
        return jsonify(shown(found))

    @bp.post("/api/accounts")
    def create() -> Response:
        me: store.Account = g.account
        body = _body(NEW_ACCOUNT, '{"name": "li.si", "roles": ["viewer"], "enterprise_code": "2103020001"}')
        enterprise, division = body.get("enterprise_code"), body.get("admin_code")
        if (enterprise is None) == (division is None):
            raise InvalidInput("enterprise_code", "give exactly one of enterprise_code (staff of an enterprise) "
                                                  "and admin_code (regulators of a division)")
        duties = tuple(body["roles"])
        try:
            store.check_duties(duties, division is not None, field="roles")
        except InvalidInput as exc:
            raise _renamed(exc) from None
        remit.check_may_create(me, duties, enterprise)
        with acting.acting_as(acting.AUTH_ROLE), engine.begin() as conn:
            try:
                made, password = store.add_account(
                    conn, body["name"], duties, enterprise=enterprise, division=division,
                    display_name=body.get("display_name"), created_by=me.name, now=datetime.now(UTC))
            except InvalidInput as exc:
                raise _renamed(exc) from None
        answer = jsonify({**shown(made), "first_password": password})
        answer.status_code = 201
        answer.headers["Location"] = f"/api/accounts/{made.name}"
        return answer

    @bp.post("/api/accounts/<name>/disable")
    def disable(name: str) -> Response:
        me: store.Account = g.account
        with acting.acting_as(acting.AUTH_ROLE), engine.begin() as conn:
            found = named(conn, name)
            remit.check_may_disable(me, found)
            if found.disabled:
                raise Conflict(f"account {name} is disabled already")
            return jsonify(shown(store.disable(conn, name, datetime.now(UTC), by=me.name)))

    @bp.post("/api/accounts/<name>/roles")
    def set_roles(name: str) -> Response:
        me: store.Account = g.account
        duties = tuple(_body(NEW_ROLES, '{"roles": ["viewer", "dispatcher"]}')["roles"])
        with acting.acting_as(acting.AUTH_ROLE), engine.begin() as conn:
            found = named(conn, name)
            remit.check_may_set_roles(me, found, duties)
            return jsonify(shown(store.set_duties(conn, name, duties, datetime.now(UTC), by=me.name)))

    return bp
