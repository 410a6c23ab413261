"""Who may use which endpoint family: every role × every family, anonymous included (issue 18).

"ok" means the request got through to the endpoint (its own answer, 2xx or 404 for a thing that
is not there), 401 that no credentials were given, 403 that the account's roles do not allow the
family. State-changing requests of a web session without its CSRF token are refused (403) and
change nothing.
"""
from __future__ import annotations

import pytest
import requests
import sqlalchemy as sa
from signed_in import CITY, ENTERPRISE_A, TestAccount, ensure_account

from accounts.store import DUTIES

TIMEOUT = 60
DIVISION_DUTIES = {"regulator", "sysadmin", "security_admin", "auditor"}
READERS = {"viewer", "dispatcher", "gis_editor", "safety_officer", "field_worker", "enterprise_admin", "regulator"}


def family_requests(pipe: str) -> dict[str, tuple[str, str, dict | None]]:
    """family → (method, path, JSON body) of a harmless request of that family."""
    return {
        "features": ("GET", "/ogc/collections/pipes/items?limit=1", None),
        "single item": ("GET", "/ogc/collections/admin_divisions/items/210300", None),
        "tiles": ("GET", "/ogc/collections/pipes/tiles/WebMercatorQuad/14/6090/13900", None),
        "processes": ("POST", "/ogc/processes/network-statistics/execution", {"inputs": {}}),
        "styles": ("GET", "/styles/maplibre.json", None),
        "QGIS project": ("GET", "/qgis/project.qgs", None),
        "alarm steps": ("POST", "/api/alarms/BJ19000101999999/acknowledge", {}),
        "incidents": ("POST", "/ogc/processes/burst-analysis/execution",
                      {"inputs": {"pipe": pipe, "save_as": "planned", "title": "matrix"}}),
        "exports": ("GET", "/api/exports/geojson?layers=pipe", None),
        "audit": ("GET", "/api/audit", None),
        "accounts": ("GET", "/api/accounts", None),
        "account changes": ("POST", "/api/accounts", {}),    # through: 400, the body names nobody
        "map": ("GET", "/map", None),
        "personal data": ("GET", "/api/pii/valves/FM0000000", None),   # through: 404, no such valve
        "API document": ("GET", "/api/openapi", None),
    }


def expected(duty: str | None, family: str) -> str | int:
    if duty is None:
        return 401
    allowed = {
        "alarm steps": {"dispatcher"}, "incidents": {"dispatcher"}, "audit": {"auditor"},
        "accounts": {"sysadmin", "security_admin", "enterprise_admin"},
        "account changes": {"sysadmin", "security_admin", "enterprise_admin"},
        "personal data": {"pii"}, "API document": set(DUTIES),
    }.get(family, READERS)
    return "ok" if duty in allowed else 403


@pytest.fixture(scope="module")
def accounts_by_duty(db_url: str) -> dict[str, TestAccount]:
    return {duty: ensure_account(db_url, f"matrix_{duty}", (duty,),
                                 **({"division": CITY} if duty in DIVISION_DUTIES else {"enterprise": ENTERPRISE_A}))
            for duty in DUTIES}


@pytest.fixture(scope="module")
def a_pipe(engine: sa.Engine) -> str:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT code FROM pipe WHERE enterprise_code = :a AND status = 'in_service' "
                                    "ORDER BY code LIMIT 1"), {"a": ENTERPRISE_A}).scalar_one()


def test_every_role_gets_what_its_duties_allow(live_server, accounts_by_duty, a_pipe: str, engine: sa.Engine) -> None:
    with engine.connect() as conn:
        incidents_before = conn.execute(sa.text("SELECT count(*) FROM incident")).scalar_one()
    got: dict[tuple[str | None, str], str | int] = {}
    want: dict[tuple[str | None, str], str | int] = {}
    made = 0
    for duty in [None, *DUTIES]:
        headers = {} if duty is None else accounts_by_duty[duty].headers
        for family, (method, path, body) in family_requests(a_pipe).items():
            answer = requests.request(method, f"{live_server.url}{path}", json=body, headers=headers, timeout=TIMEOUT)
            status = answer.status_code
            got[duty, family] = status if status in (401, 403) else "ok"
            want[duty, family] = expected(duty, family)
            if status in (401, 403):
                assert answer.headers["Content-Type"].startswith("application/json"), (duty, family)
                assert answer.json()["code"] == ("Unauthorized" if status == 401 else "Forbidden")
            if status == 401:
                assert answer.headers["WWW-Authenticate"] == 'Basic realm="Qiwang", charset="UTF-8"'
            elif got[duty, family] == "ok":
                assert status < 500, (duty, family, status, answer.text[:300])
            made += family == "incidents" and status == 200
    assert got == want
    with engine.connect() as conn:   # only the dispatcher's request stored an incident
        assert conn.execute(sa.text("SELECT count(*) FROM incident")).scalar_one() == incidents_before + made == \
            incidents_before + 1


def test_a_session_needs_its_csrf_token_to_change_anything(live_server, accounts_by_duty, engine: sa.Engine) -> None:
    dispatcher = accounts_by_duty["dispatcher"]
    session = requests.Session()
    login = session.post(f"{live_server.url}/login", data={"name": dispatcher.name, "password": dispatcher.password},
                         allow_redirects=False, timeout=TIMEOUT)
    assert login.status_code == 303
    cookie = login.cookies["qiwang_session"]
    assert "HttpOnly" in login.headers["Set-Cookie"] and "SameSite=Lax" in login.headers["Set-Cookie"]
    with engine.connect() as conn:
        before = conn.execute(sa.text("SELECT count(*) FROM incident")).scalar_one()
    body = {"inputs": {"pipe": "GX0000001", "save_as": "planned"}}
    for headers in ({}, {"X-CSRF-Token": "0" * 32}):
        refused = session.post(f"{live_server.url}/ogc/processes/burst-analysis/execution", json=body,
                               headers=headers, timeout=TIMEOUT)
        assert (refused.status_code, refused.json()) == (403, {
            "code": "Forbidden",
            "description": "X-CSRF-Token: missing or wrong (a signed-in page sends the token of GET /api/session)"})
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM incident")).scalar_one() == before
    token = session.get(f"{live_server.url}/api/session", timeout=TIMEOUT).json()["csrf_token"]
    step = session.post(f"{live_server.url}/api/alarms/BJ19000101999999/acknowledge", json={},
                        headers={"X-CSRF-Token": token}, timeout=TIMEOUT)
    assert (step.status_code, step.json()["code"]) == (404, "NotFound")   # through: no such alarm
    # signing out ends the session: its cookie no longer signs anything
    out = session.post(f"{live_server.url}/logout", data={"csrf_token": token}, allow_redirects=False,
                       timeout=TIMEOUT)
    assert (out.status_code, out.headers["Location"]) == (303, "/login")
    again = requests.get(f"{live_server.url}/api/session", cookies={"qiwang_session": cookie}, timeout=TIMEOUT)
    assert (again.status_code, again.json()["description"]) == (401, "not signed in (or signed out)")
