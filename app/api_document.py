"""The OpenAPI 3.0 document of Qiwang's own HTTP API (/api/…, the QGIS project), served at /api/openapi.

The OGC API (features, tiles, processes) has pygeoapi's document at /ogc/openapi; this one covers
the rest: the signed-in session, alarm steps, the audit log, accounts, personal data, exports and
the QGIS project. It is built from the constants the routes check against (the accounts' JSON
Schemas, the alarm body's fields, the export formats, the collections with personal data, the
audit limits), so that it cannot drift from what the server accepts; tests/test_api_fuzz.py
fuzzes the server from it (schemathesis) and tests/test_api_document.py checks it against the
OpenAPI 3.0 specification.

Every operation needs a signed-in account (HTTP Basic with the account's password or an API token,
a Bearer token, or the web session's cookie with its CSRF token on writes); which duties may call
it is accounts/permissions.py's table, named in each operation's description.
"""
from __future__ import annotations

from typing import Any

from accounts import audit
from accounts.permissions import RULES
from app.accounts_api import NEW_ACCOUNT, NEW_ROLES
from app.alarms_api import BODY_FIELDS
from app.auth import CSRF_HEADER, SESSION_COOKIE
from app.pii_api import PII_COLLECTIONS
from ingest import exporter
from spatial.collections import LAYERS
from telemetry.alarms import STEPS

ERROR = {"$ref": "#/components/schemas/Error"}
ACCOUNT = {"$ref": "#/components/schemas/Account"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    """The error answers of an operation: {"code", "description"}, the description naming the field."""
    meaning = {400: "a parameter or field that does not fit (the description starts with its name)",
               401: "not signed in (WWW-Authenticate names the schemes)",
               403: "outside the account's duties or remit, or a web-session write without its CSRF token",
               404: "nothing of that name in the account's scope", 409: "the change does not apply as things stand",
               503: "the database or the keyring cannot answer now"}
    return {str(s): _json(ERROR, meaning[s]) for s in (401, 403, *statuses)}


def _duties(family: str) -> str:
    rule = next(r for r in RULES if r.family == family)
    return "Duties: " + ", ".join(sorted(rule.duties)) + "."


def _path(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": schema or {"type": "string", "minLength": 1}}


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


def _body(schema: dict[str, Any], example: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema, "example": example}}}


def api_document(public_url: str) -> dict[str, Any]:
    """The OpenAPI 3.0.3 document of the /api routes of a server reached at `public_url`."""
    account_name = _path("name", "the account's name (e.g. li.si)")
    step_body = {"type": "object", "additionalProperties": False,
                 "properties": {field: {"type": "string", "maxLength": longest}
                                for field, longest in BODY_FIELDS.items()}}
    paths: dict[str, Any] = {
        "/api/session": {"get": {
            "tags": ["session"], "operationId": "getSession", "summary": "Who is signed in",
            "description": "The signed-in account, and the CSRF token of a web session. " + _duties("session"),
            "responses": {"200": _json({"$ref": "#/components/schemas/Session"}, "the signed-in account"),
                          **_errors()}}},
        "/api/alarms/{code}/{action}": {"post": {
            "tags": ["alarms"], "operationId": "takeAlarmStep", "summary": "Take a step on an alarm (报警闭环处置)",
            "description": "Steps in order, forward only; closing only once the value has cleared. The step "
                           "is the signed-in account's: `by`, when sent, must name it. " + _duties("alarm steps"),
            "parameters": [_path("code", "the alarm's code"),
                           _path("action", "the step", {"type": "string", "enum": list(STEPS)})],
            "requestBody": _body(step_body, {"note": "已派抢修一队"}),
            "responses": {"200": _json({"type": "object"}, "the step taken and the handling record after it"),
                          **_errors(400, 404, 409, 503)}}},
        "/api/alarms/{code}/record": {"get": {
            "tags": ["alarms"], "operationId": "getAlarmRecord", "summary": "An alarm's handling record",
            "description": "The immutable record, oldest first, and whether its hash chain verifies. "
                           + _duties("alarms"),
            "parameters": [_path("code", "the alarm's code")],
            "responses": {"200": _json({"type": "object", "required": ["code", "intact", "events"],
                                        "properties": {"code": {"type": "string"}, "intact": {"type": "boolean"},
                                                       "events": {"type": "array", "items": {"type": "object"}}}},
                                       "the record"),
                          **_errors(400, 404, 503)}}},
        "/api/audit": {"get": {
            "tags": ["audit"], "operationId": "listAudit", "summary": "The audit log (审计日志), newest first",
            "description": _duties("audit"),
            "parameters": [_query("user", "entries of this account (its name)", {"type": "string", "maxLength": 200}),
                           _query("since", "entries at or after this date or ISO 8601 time",
                                  {"type": "string", "maxLength": 64}),
                           _query("action", "entries of this action (login, role_change, update, pii_read, …)",
                                  {"type": "string", "maxLength": 64}),
                           _query("limit", f"at most this many (default {audit.DEFAULT_LIMIT})",
                                  {"type": "integer", "minimum": 1, "maximum": audit.MAX_LIMIT})],
            "responses": {"200": _json({"type": "array", "items": {"type": "object"}}, "the entries"),
                          **_errors(400)}}},
        "/api/accounts": {
            "get": {"tags": ["accounts"], "operationId": "listAccounts", "summary": "The accounts in view",
                    "description": "Every account for the system and security administrators, its "
                                   "enterprise's for an enterprise_admin. " + _duties("accounts"),
                    "responses": {"200": _json({"type": "array", "items": ACCOUNT}, "the accounts"), **_errors()}},
            "post": {"tags": ["accounts"], "operationId": "addAccount", "summary": "Add an account",
                     "description": "Exactly one of enterprise_code (staff of an enterprise) and admin_code "
                                    "(regulators of a division). The answer holds the first password, shown "
                                    "this once. " + _duties("accounts"),
                     "requestBody": _body(NEW_ACCOUNT, {"name": "li.si", "roles": ["viewer"],
                                                        "enterprise_code": "2103020001"}),
                     "responses": {"201": _json({"allOf": [ACCOUNT, {"type": "object", "properties": {
                                       "first_password": {"type": "string"}}}]}, "the account made"),
                                   **_errors(400, 409)}}},
        "/api/accounts/{name}": {"get": {
            "tags": ["accounts"], "operationId": "getAccount", "summary": "One account",
            "description": _duties("accounts"), "parameters": [account_name],
            "responses": {"200": _json(ACCOUNT, "the account"), **_errors(404)}}},
        "/api/accounts/{name}/disable": {"post": {
            "tags": ["accounts"], "operationId": "disableAccount", "summary": "Disable an account",
            "description": "Its sessions end, its tokens are revoked, its direct database login goes. "
                           + _duties("accounts"),
            "parameters": [account_name],
            "responses": {"200": _json(ACCOUNT, "the account, disabled"), **_errors(404, 409)}}},
        "/api/accounts/{name}/roles": {"post": {
            "tags": ["accounts"], "operationId": "setAccountRoles", "summary": "Set an account's roles",
            "description": _duties("accounts"), "parameters": [account_name],
            "requestBody": _body(NEW_ROLES, {"roles": ["viewer", "dispatcher"]}),
            "responses": {"200": _json(ACCOUNT, "the account with its new roles"), **_errors(400, 404)}}},
        "/api/pii/{collection}/{code}": {"get": {
            "tags": ["personal data"], "operationId": "revealPersonalData",
            "summary": "A feature's personal data in clear (每次读取均审计)",
            "description": "ID numbers and phone numbers of one feature; every read is in the audit log. "
                           + _duties("personal data"),
            "parameters": [_path("collection", "a collection with personal data",
                                 {"type": "string", "enum": sorted(PII_COLLECTIONS)}),
                           _path("code", "the feature's code", {"type": "string", "minLength": 1, "maxLength": 100}),
                           _query("enterprise", "the feature's enterprise, when its code is used by several")],
            "responses": {"200": _json({"type": "object", "required": ["collection", "code", "values"],
                                        "properties": {"collection": {"type": "string"}, "code": {"type": "string"},
                                                       "values": {"type": "object"}}}, "the clear values"),
                          **_errors(400, 404, 409, 503)}}},
        "/api/exports/{format}": {"get": {
            "tags": ["files"], "operationId": "exportLayers", "summary": "Layers as a file, cut to the scope",
            "description": "gpkg, kml and dxf are one file; shp, geojson and csv a zip of one file per layer. "
                           "Personal data masked. " + _duties("exports"),
            "parameters": [_path("format", "the file format", {"type": "string", "enum": sorted(exporter.FORMATS)}),
                           _query("layers", "comma-separated, of: " + ", ".join(exporter.EXPORTABLE_LAYERS)
                                  + " (default: " + ", ".join(exporter.DEFAULT_LAYERS) + ")"),
                           _query("crs", "the CRS of the file (default the storage CRS), e.g. EPSG:4490"),
                           _query("bbox", "minx,miny,maxx,maxy in the file's CRS")],
            "responses": {"200": {"description": "the file", "content": {"application/octet-stream": {
                              "schema": {"type": "string", "format": "binary"}}}},
                          **_errors(400)}}},
        "/qgis/project.qgs": {"get": {
            "tags": ["files"], "operationId": "qgisProject", "summary": "A QGIS project of this server's layers",
            "description": "With authcfg, every layer signs in through that QGIS authentication "
                           "configuration (Basic). " + _duties("QGIS project"),
            "parameters": [_query("collections", "comma-separated, of: " + ", ".join(sorted(LAYERS))),
                           _query("authcfg", "a QGIS authentication configuration id (7 letters or digits)",
                                  {"type": "string", "pattern": "^[A-Za-z0-9]{7}$"})],
            "responses": {"200": {"description": "the project", "content": {"application/x-qgis-project": {
                              "schema": {"type": "string"}}}},
                          **_errors(400)}}},
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "Qiwang (气网) API", "version": "1",
                 "description": "Accounts, alarm steps, audit, personal data and files of Qiwang. The OGC API "
                                "(features, tiles, processes, styles) is described at /ogc/openapi."},
        "servers": [{"url": public_url}],
        "security": [{"basic": []}, {"bearer": []}, {"session": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "basic": {"type": "http", "scheme": "basic",
                          "description": "the account's name and its password or an API token"},
                "bearer": {"type": "http", "scheme": "bearer", "description": "an API token (./qiwang user token)"},
                "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE,
                            "description": f"the web session of /login; writes also need the {CSRF_HEADER} "
                                           "header (GET /api/session gives its value)"},
            },
            "schemas": {
                "Error": {"type": "object", "required": ["code", "description"],
                          "properties": {"code": {"type": "string"}, "description": {"type": "string"}}},
                "Account": {"type": "object",
                            "required": ["name", "display_name", "roles", "enterprise_code", "admin_code", "state",
                                         "db_login"],
                            "properties": {"name": {"type": "string"}, "display_name": {"type": "string"},
                                           "roles": {"type": "array", "items": {"type": "string"}},
                                           "enterprise_code": {"type": "string", "nullable": True},
                                           "admin_code": {"type": "string", "nullable": True},
                                           "state": {"type": "string"}, "db_login": {"type": "boolean"}}},
                "Session": {"type": "object",
                            "required": ["name", "display_name", "roles", "must_change_password"],
                            "properties": {"name": {"type": "string"}, "display_name": {"type": "string"},
                                           "roles": {"type": "array", "items": {"type": "string"}},
                                           "enterprise_code": {"type": "string", "nullable": True},
                                           "admin_code": {"type": "string", "nullable": True},
                                           "must_change_password": {"type": "boolean"},
                                           "csrf_token": {"type": "string"}}},
            },
        },
    }
