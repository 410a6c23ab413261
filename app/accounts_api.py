"""Accounts over HTTP, for the administrators (accounts/permissions.py: sysadmin, security_admin,
enterprise_admin).

    GET /api/accounts   [{name, display_name, roles, enterprise_code, admin_code, state, db_login}]
        every account for the system and security administrators; an enterprise's own for its
        enterprise_admin. No credential or hash is ever part of an answer.

The accounts table is the login path's (qiwang_auth): the remit of an enterprise administrator is
applied here, after the permissions table let the request in.
"""
from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from flask import Blueprint, Response, g, jsonify

from accounts import store
from core.settings import Settings
from db import acting


def accounts_blueprint(engine: sa.Engine, settings: Settings) -> Blueprint:
    """The /api/accounts routes on `engine`'s database."""
    bp = Blueprint("accounts_api", __name__)

    @bp.get("/api/accounts")
    def listing() -> Response:
        me: store.Account = g.account
        with acting.acting_as(acting.AUTH_ROLE), engine.connect() as conn:
            found = store.accounts(conn)
        if not {"sysadmin", "security_admin"} & set(me.duties):   # an enterprise_admin: its enterprise's
            found = [a for a in found if a.enterprise_code is not None and a.enterprise_code == me.enterprise_code]
        now = datetime.now(UTC)

        def state(a: store.Account) -> str:
            if a.disabled:
                return "disabled"
            if a.must_change_password:
                return "must change password"
            return "password expired" if a.password_expired(now, settings.password_max_age_days) else "active"

        return jsonify([{"name": a.name, "display_name": a.display_name, "roles": list(a.duties),
                         "enterprise_code": a.enterprise_code, "admin_code": a.admin_code, "state": state(a),
                         "db_login": a.db_login} for a in found])

    return bp
