"""Personal data in clear, for the accounts granted `pii`: one endpoint, each read audited.

    GET /api/pii/{collection}/{code}[?enterprise=CODE]
        200 {"collection", "code", "values": {column: clear value or null}}: the ID numbers and
            phone numbers of one feature (accounts.personal_data.PERSONAL_COLUMNS), opened with
            the deployment's keyring; ``Cache-Control: no-store``
        400 a code or enterprise that is no text PostgreSQL can store, or no enterprise code
        403 without the `pii` duty (accounts/permissions.py, before this module runs)
        404 a collection with no personal data, or no feature of that code in the caller's scope:
            another enterprise's feature is not found (row-level security), not forbidden
        409 the code names features of several enterprises in the caller's scope: give ?enterprise=
        503 the keyring cannot be read (the server's log says why)

Collections are those of the OGC API whose table has personal columns (valves, regulators,
sentries, hazards, inspections, crew_bases), `customers` (their personal data is the row of
customer_personal), and `devices`, which has staff phones but no collection (named as the
importer and the exporter name the layer).

Everywhere else the same columns are masked (138****0000, 2103**********1234): the tables hold
only the masks and the sealed values, which this is the one place to open. The read goes through
the caller's database role, so its scope is the account's as for every other request; the keyring
is read on each request (a rotation takes effect at once, without a restart).
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, jsonify, request

from accounts import audit
from accounts.personal_data import (
    PERSONAL_COLUMNS,
    KeyringError,
    associated_with,
    decrypt,
    load_keyring,
    sealed_column,
)
from app.limits import check_text
from core.codes import ENTERPRISE_CODE
from core.errors import Conflict, InvalidInput, NotFound, Unavailable
from core.settings import Settings, load_settings
from spatial.collections import LAYERS

PREFIX = "/api/pii"
MAX_CODE_CHARACTERS = 100
# collection → the table holding its features' personal columns
PII_COLLECTIONS: dict[str, str] = {
    **{layer.id: layer.table for layer in LAYERS.values() if layer.table in PERSONAL_COLUMNS},
    "customers": "customer_personal",   # the customer's personal data: its row of customer_personal
    "devices": "device",                 # no OGC collection, but staff phones
}


def _query(table: str, enterprise: str | None) -> sa.TextClause:
    """The feature's enterprise and sealed columns, by code (and enterprise), as the caller reads them.

    Only those columns: an account with the `pii` duty alone may read no others (migration 0018).
    """
    personal = "p" if table == "customer_personal" else "f"
    sealed = ", ".join(f"{personal}.{sealed_column(c)}" for c in PERSONAL_COLUMNS[table])
    source = "customer f LEFT JOIN customer_personal p ON p.customer_id = f.id" if personal == "p" else f"{table} f"
    where = "f.code = :code" + (" AND f.enterprise_code = :enterprise" if enterprise else "")
    return sa.text(f"SELECT f.enterprise_code, {sealed} FROM {source} WHERE {where} ORDER BY f.enterprise_code")


def _checked(name: str, value: str) -> str:
    try:
        check_text(name, value)
    except ValueError as exc:
        raise InvalidInput(None, str(exc)) from None
    if len(value) > MAX_CODE_CHARACTERS:
        raise InvalidInput(name, f"longer than {MAX_CODE_CHARACTERS} characters")
    return value


def pii_blueprint(engine: sa.Engine, settings: Settings | None = None) -> Blueprint:
    """The /api/pii route on `engine`'s database (the app's: its transactions act as the account).

    Parameters
    ----------
    engine
        The web app's engine (db.engine.get_engine: transactions act as the signed-in account).
    settings
        Where the keyring is (personal_data_key_file); default: read from the environment now.
    """
    settings = settings or load_settings()
    bp = Blueprint("pii_api", __name__, url_prefix=PREFIX)

    @bp.get("/<collection>/<path:code>")
    def reveal(collection: str, code: str) -> Response:
        table = PII_COLLECTIONS.get(collection)
        if table is None:
            raise NotFound(f"collection: {collection[:60]!r} holds no personal data; one of "
                           f"{', '.join(sorted(PII_COLLECTIONS))}")
        _checked("code", code)
        enterprise = request.args.get("enterprise") or None
        if enterprise is not None and not ENTERPRISE_CODE.is_valid(_checked("enterprise", enterprise)):
            raise InvalidInput("enterprise", ENTERPRISE_CODE.reason(repr(enterprise)))
        columns = list(PERSONAL_COLUMNS[table])
        with engine.begin() as conn:   # as the account: row-level security keeps it to its scope
            found = conn.execute(_query(table, enterprise), {"code": code, "enterprise": enterprise}).all()
            if not found:
                raise NotFound(f"no feature {code!r} in {collection}" + (f" of enterprise {enterprise}"
                                                                         if enterprise else ""))
            if len(found) > 1:
                raise Conflict(f"{code!r} names features of {len(found)} enterprises in {collection} "
                               f"({', '.join(row[0] for row in found)}): give ?enterprise=CODE")
            values = _opened(table, columns, found[0][1:])
            # recorded in the same transaction: no read goes unaudited (an audit failure answers nothing)
            audit.append(conn, "pii_read", {"collection": collection, "code": code, "columns": columns})
        answer = jsonify({"collection": collection, "code": code, "values": values})
        answer.headers["Cache-Control"] = "no-store"
        return answer

    def _opened(table: str, columns: list[str], sealed: Any) -> dict[str, str | None]:
        try:
            keyring = load_keyring(settings, create=False)
        except KeyringError as exc:
            current_app.logger.error("GET %s: the personal data keyring cannot be used: %s", request.path, exc)
            raise Unavailable("personal data: the server's keyring cannot be read (see the server's log)") from None
        return {column: None if blob is None else decrypt(keyring, blob, associated=associated_with(table, column))
                for column, blob in zip(columns, sealed, strict=True)}

    return bp
