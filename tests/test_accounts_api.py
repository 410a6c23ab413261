"""Accounts managed over HTTP (app/accounts_api.py, accounts/remit.py, migration 0020).

Each administrator within its remit: the system administrator creates and disables, the security
administrator changes roles, an enterprise administrator does all three for the ordinary staff of
its own enterprise. What the account's database role becomes is read from PostgreSQL's catalog;
every change is in the audit log as the administrator's.
"""
from __future__ import annotations

from typing import Any

import pytest
import requests
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from signed_in import CITY, ENTERPRISE_A, ENTERPRISE_B, TestAccount, ensure_account

from app.background_server import LiveServer
from db.acting import AUTH_ROLE, acting_as
from db.engine import get_engine

TIMEOUT = 60


@pytest.fixture(scope="module")
def admins(db_url: str) -> dict[str, TestAccount]:
    return {
        "sysadmin": ensure_account(db_url, "acc_sysadmin", ("sysadmin",), division=CITY),
        "security_admin": ensure_account(db_url, "acc_secadmin", ("security_admin",), division=CITY),
        "a_admin": ensure_account(db_url, "acc_a_admin", ("enterprise_admin",), enterprise=ENTERPRISE_A),
    }


def call(server: LiveServer, who: TestAccount, method: str, path: str, body: Any = None) -> requests.Response:
    return requests.request(method, f"{server.url}{path}", json=body, headers=who.headers, timeout=TIMEOUT)


def groups(engine: sa.Engine, name: str) -> tuple[set[str], bool]:
    """The Qiwang groups of account `name`'s database role, and whether it may log in."""
    with engine.connect() as conn:
        role = conn.execute(sa.text("SELECT db_role FROM auth.account WHERE name = :n"), {"n": name}).scalar_one()
        member_of = set(conn.execute(sa.text(
            "SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid "
            "WHERE m.member = (SELECT oid FROM pg_roles WHERE rolname = :r)"), {"r": role}).scalars())
        login = conn.execute(sa.text("SELECT rolcanlogin FROM pg_roles WHERE rolname = :r"), {"r": role}).scalar_one()
    return member_of, login


def audit_since(engine: sa.Engine, since: int) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            "SELECT actor, action, coalesce(table_name, ''), coalesce(feature_code, '') FROM audit.log "
            "WHERE id > :i AND action NOT IN ('login') ORDER BY id"), {"i": since})]


def last_audit(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT coalesce(max(id), 0) FROM audit.log")).scalar_one()


def test_the_system_administrator_creates_an_account_that_must_change_its_first_password(
        live_server: LiveServer, admins: dict[str, TestAccount], engine: sa.Engine) -> None:
    since = last_audit(engine)
    made = call(live_server, admins["sysadmin"], "POST", "/api/accounts",
                {"name": "new.viewer", "roles": ["viewer"], "enterprise_code": ENTERPRISE_A, "display_name": "李四"})
    assert made.status_code == 201, made.text
    body = made.json()
    first = body.pop("first_password")
    assert body == {"name": "new.viewer", "display_name": "李四", "roles": ["viewer"], "enterprise_code": ENTERPRISE_A,
                    "admin_code": None, "state": "must change password", "db_login": False}
    assert made.headers["Location"] == "/api/accounts/new.viewer" and len(first) == 16
    assert groups(engine, "new.viewer") == ({"qiwang_account", "qiwang_enterprise_staff", "qiwang_viewer"}, False)
    assert audit_since(engine, since) == [("acc_sysadmin", "insert", "auth.account", "new.viewer"),
                                          ("acc_sysadmin", "account_add", "", "")]
    # the new account signs in with its first password, and may do nothing before changing it
    first_use = requests.get(f"{live_server.url}/ogc/collections", auth=("new.viewer", first), timeout=TIMEOUT)
    assert (first_use.status_code, first_use.json()["description"]) == (403, (
        "the password must be changed first (first login or set by an administrator): sign in on the web page "
        "or run ./qiwang user passwd"))
    assert call(live_server, admins["sysadmin"], "GET", "/api/accounts/new.viewer").json()["name"] == "new.viewer"


@pytest.mark.parametrize(("body", "field", "reason"), [
    ({"roles": ["viewer"], "enterprise_code": ENTERPRISE_A}, "name", "missing (required)"),
    ({"name": "x.ok", "enterprise_code": ENTERPRISE_A}, "roles", "missing (required)"),
    ({"name": "Bad Name", "roles": ["viewer"], "enterprise_code": ENTERPRISE_A}, "name",
     "'Bad Name': 3-32 characters, a lower-case letter first, then lower-case letters, digits, '_', '.', '-'"),
    ({"name": "x.ok", "roles": ["boss"], "enterprise_code": ENTERPRISE_A}, "roles[0]",
     "must be one of viewer, dispatcher, gis_editor, safety_officer, field_worker, enterprise_admin, regulator, "
     "pii, sysadmin, security_admin, auditor, not 'boss'"),
    ({"name": "x.ok", "roles": [], "enterprise_code": ENTERPRISE_A}, "roles", "must not be empty"),
    ({"name": "x.ok", "roles": "viewer", "enterprise_code": ENTERPRISE_A}, "roles", "must be a list, not 'viewer'"),
    ({"name": "x.ok", "roles": ["viewer", "viewer"], "enterprise_code": ENTERPRISE_A}, "roles",
     "a role is named twice"),
    ({"name": "x.ok", "roles": ["regulator"], "enterprise_code": ENTERPRISE_A}, "roles",
     "a regulator belongs to an administrative division, not an enterprise"),
    ({"name": "x.ok", "roles": ["viewer"]}, "enterprise_code",
     "give exactly one of enterprise_code (staff of an enterprise) and admin_code (regulators of a division)"),
    ({"name": "x.ok", "roles": ["viewer"], "enterprise_code": "2109990001"}, "enterprise_code",
     "no enterprise 2109990001"),
    ({"name": "x.ok", "roles": ["viewer"], "admin_code": "219999"}, "admin_code",
     "no administrative division 219999"),
    ({"name": "x.ok", "roles": ["viewer"], "enterprise_code": ENTERPRISE_A, "password": "Secret-1234"}, "password",
     "unknown field (accepted: name, display_name, roles, enterprise_code, admin_code)"),
])
def test_a_bad_account_is_refused_naming_the_field_and_nothing_is_made(
        live_server: LiveServer, admins: dict[str, TestAccount], engine: sa.Engine, body: dict, field: str,
        reason: str) -> None:
    answer = call(live_server, admins["sysadmin"], "POST", "/api/accounts", body)
    assert (answer.status_code, answer.json()) == (400, {"code": "InvalidParameterValue",
                                                         "description": f"{field}: {reason}"})
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM auth.account WHERE name = 'x.ok'")).scalar_one() == 0


def test_a_taken_name_is_a_conflict(live_server: LiveServer, admins: dict[str, TestAccount]) -> None:
    body = {"name": "acc_a_admin", "roles": ["viewer"], "enterprise_code": ENTERPRISE_A}
    answer = call(live_server, admins["sysadmin"], "POST", "/api/accounts", body)
    assert (answer.status_code, answer.json()["description"]) == (409, "account acc_a_admin exists already")


@pytest.mark.parametrize(("admin", "body", "description"), [
    ("sysadmin", {"name": "x.pii", "roles": ["viewer", "pii"], "enterprise_code": ENTERPRISE_A},
     "pii is given by a security administrator (security_admin), not at creation"),
    ("sysadmin", {"name": "x.sys", "roles": ["sysadmin"], "admin_code": CITY},
     "sysadmin is a separated duty (三员分立): such accounts are made only with the CLI (qiwang user …)"),
    ("security_admin", {"name": "x.view", "roles": ["viewer"], "enterprise_code": ENTERPRISE_A},
     "accounts are created by a system administrator (sysadmin) or an enterprise administrator"),
    ("a_admin", {"name": "x.view", "roles": ["viewer"], "enterprise_code": ENTERPRISE_B},
     f"an enterprise administrator creates accounts of its enterprise ({ENTERPRISE_A}) only"),
    ("a_admin", {"name": "x.view", "roles": ["enterprise_admin"], "enterprise_code": ENTERPRISE_A},
     "an enterprise administrator gives only dispatcher, field_worker, gis_editor, safety_officer, viewer; "
     "enterprise_admin is given by a system or security administrator"),
])
def test_beyond_its_remit_an_administrator_gets_403_and_nothing_is_made(
        live_server: LiveServer, admins: dict[str, TestAccount], engine: sa.Engine, admin: str, body: dict,
        description: str) -> None:
    answer = call(live_server, admins[admin], "POST", "/api/accounts", body)
    assert (answer.status_code, answer.json()) == (403, {"code": "Forbidden", "description": description})
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM auth.account WHERE name = :n"),
                            {"n": body["name"]}).scalar_one() == 0


def test_an_enterprise_administrator_manages_its_own_staff_only(
        live_server: LiveServer, admins: dict[str, TestAccount], db_url: str, engine: sa.Engine) -> None:
    a_admin = admins["a_admin"]
    made = call(live_server, a_admin, "POST", "/api/accounts",
                {"name": "a.patrol", "roles": ["field_worker"], "enterprise_code": ENTERPRISE_A})
    assert made.status_code == 201, made.text
    other = ensure_account(db_url, "acc_b_staff", ("viewer",), enterprise=ENTERPRISE_B)
    listed = {a["name"] for a in call(live_server, a_admin, "GET", "/api/accounts").json()}
    assert "a.patrol" in listed and "acc_a_admin" in listed and other.name not in listed
    with engine.connect() as conn:
        assert listed == set(conn.execute(sa.text(
            "SELECT name FROM auth.account WHERE enterprise_code = :a"), {"a": ENTERPRISE_A}).scalars())
    # another enterprise's account is not found, whatever is asked of it
    for method, path, body in (("GET", f"/api/accounts/{other.name}", None),
                               ("POST", f"/api/accounts/{other.name}/disable", None),
                               ("POST", f"/api/accounts/{other.name}/roles", {"roles": ["viewer"]})):
        answer = call(live_server, a_admin, method, path, body)
        assert (answer.status_code, answer.json()["description"]) == (404, f"no account {other.name}"), path
    changed = call(live_server, a_admin, "POST", "/api/accounts/a.patrol/roles", {"roles": ["field_worker", "viewer"]})
    assert (changed.status_code, changed.json()["roles"]) == (200, ["field_worker", "viewer"])
    assert groups(engine, "a.patrol")[0] == {"qiwang_account", "qiwang_enterprise_staff", "qiwang_field_worker",
                                             "qiwang_viewer"}
    refused = call(live_server, a_admin, "POST", "/api/accounts/a.patrol/roles", {"roles": ["viewer", "pii"]})
    assert refused.status_code == 403
    itself = call(live_server, a_admin, "POST", "/api/accounts/acc_a_admin/disable")
    assert (itself.status_code, itself.json()["description"]) == (403, "no administrator may disable its own account")
    assert call(live_server, a_admin, "POST", "/api/accounts/a.patrol/disable").json()["state"] == "disabled"


def test_the_security_administrator_changes_roles_and_they_hold_at_once(
        live_server: LiveServer, admins: dict[str, TestAccount], db_url: str, engine: sa.Engine) -> None:
    staff = ensure_account(db_url, "acc_a_staff", ("viewer",), enterprise=ENTERPRISE_A)
    step = "/api/alarms/BJ19000101999999/acknowledge"
    before = requests.post(f"{live_server.url}{step}", json={}, headers=staff.headers, timeout=TIMEOUT)
    assert before.status_code == 403                       # a viewer takes no alarm steps
    since = last_audit(engine)
    changed = call(live_server, admins["security_admin"], "POST", f"/api/accounts/{staff.name}/roles",
                   {"roles": ["dispatcher", "pii"]})
    assert (changed.status_code, changed.json()["roles"]) == (200, ["dispatcher", "pii"])
    assert groups(engine, staff.name) == ({"qiwang_account", "qiwang_enterprise_staff", "qiwang_dispatcher",
                                           "qiwang_pii"}, False)
    after = requests.post(f"{live_server.url}{step}", json={}, headers=staff.headers, timeout=TIMEOUT)
    assert (after.status_code, after.json()["code"]) == (404, "NotFound")   # through: no such alarm
    with engine.connect() as conn:
        change = conn.execute(sa.text("SELECT actor, detail FROM audit.log WHERE id > :i AND action = 'role_change'"),
                              {"i": since}).one()
    assert tuple(change) == ("acc_secadmin", {"name": staff.name, "before": ["viewer"], "after": ["dispatcher", "pii"]})
    # the system administrator makes and disables accounts, but gives no roles; nobody re-roles a separated duty
    for who, target, description in (
            ("sysadmin", staff.name,
             "roles are changed by a security administrator (security_admin) or an enterprise administrator"),
            ("security_admin", "acc_sysadmin",
             "sysadmin is a separated duty (三员分立): such accounts are re-roled only with the CLI (qiwang user …)")):
        refused = call(live_server, admins[who], "POST", f"/api/accounts/{target}/roles", {"roles": ["viewer"]})
        assert (refused.status_code, refused.json()["description"]) == (403, description)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT duties FROM auth.account WHERE name = :n"),
                            {"n": staff.name}).scalar_one() == ["dispatcher", "pii"]


def test_disabling_ends_api_access_and_the_direct_database_login(
        live_server: LiveServer, admins: dict[str, TestAccount], db_url: str, engine: sa.Engine) -> None:
    analyst = ensure_account(db_url, "acc_b_analyst", ("gis_editor",), enterprise=ENTERPRISE_B, db_login=True)
    assert groups(engine, analyst.name) == ({"qiwang_account", "qiwang_enterprise_staff", "qiwang_gis_editor",
                                             "qiwang_db_login"}, True)
    assert requests.get(f"{live_server.url}/api/session", headers=analyst.headers, timeout=TIMEOUT).status_code == 200
    done = call(live_server, admins["sysadmin"], "POST", f"/api/accounts/{analyst.name}/disable")
    assert (done.status_code, done.json()["state"]) == (200, "disabled")
    assert groups(engine, analyst.name) == ({"qiwang_account", "qiwang_enterprise_staff", "qiwang_gis_editor"}, False)
    assert requests.get(f"{live_server.url}/api/session", headers=analyst.headers, timeout=TIMEOUT).status_code == 401
    again = call(live_server, admins["sysadmin"], "POST", f"/api/accounts/{analyst.name}/disable")
    assert (again.status_code, again.json()["description"]) == (409, f"account {analyst.name} is disabled already")
    missing = call(live_server, admins["sysadmin"], "POST", "/api/accounts/no.such/disable")
    assert (missing.status_code, missing.json()["description"]) == (404, "no account no.such")


def test_a_web_session_changes_accounts_only_with_its_csrf_token(
        live_server: LiveServer, admins: dict[str, TestAccount], engine: sa.Engine) -> None:
    sysadmin = admins["sysadmin"]
    session = requests.Session()
    login = session.post(f"{live_server.url}/login", data={"name": sysadmin.name, "password": sysadmin.password},
                         allow_redirects=False, timeout=TIMEOUT)
    assert login.status_code == 303
    body = {"name": "csrf.victim", "roles": ["viewer"], "enterprise_code": ENTERPRISE_A}
    refused = session.post(f"{live_server.url}/api/accounts", json=body, timeout=TIMEOUT)
    assert refused.status_code == 403 and refused.json()["description"].startswith("X-CSRF-Token")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM auth.account WHERE name = 'csrf.victim'")).scalar_one() == 0
    token = session.get(f"{live_server.url}/api/session", timeout=TIMEOUT).json()["csrf_token"]
    made = session.post(f"{live_server.url}/api/accounts", json=body, headers={"X-CSRF-Token": token}, timeout=TIMEOUT)
    assert made.status_code == 201


def test_the_database_gives_the_login_path_no_separated_duty_nor_a_service_role(app_url: str, db_url: str) -> None:
    """What no remit allows, PostgreSQL refuses to `qiwang_auth` whatever the application asks."""
    auditor = ensure_account(db_url, "acc_auditor", ("auditor",), division=CITY)
    app = get_engine(app_url)   # the app's engines switch roles per transaction (db/acting.py)
    database = sa.engine.make_url(db_url).database
    for role, duties, message in (
            (f"fresh@{database}", ["sysadmin"], "only business duties and pii are given here"),
            (auditor.db_role, ["viewer"], f"role {auditor.db_role} holds a separated duty"),
            ("qiwang_system", ["viewer"], "role qiwang_system is no account's")):
        with acting_as(AUTH_ROLE), app.begin() as conn, pytest.raises(sa.exc.DBAPIError) as refused:
            conn.execute(sa.text("SELECT auth.set_account_groups(:r, :d, true)"), {"r": role, "d": duties})
        assert refused.value.orig.sqlstate == "42501" and message in str(refused.value.orig), role  # type: ignore
    with acting_as(AUTH_ROLE), app.begin() as conn, pytest.raises(sa.exc.DBAPIError) as refused:
        conn.execute(sa.text("SELECT auth.create_account_role('x@y', ARRAY['qiwang_viewer'], NULL)"))
    assert "permission denied for function create_account_role" in str(refused.value.orig)


SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
           | st.text(max_size=40))
JSON = st.recursive(SCALARS,
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                                    max_size=4), max_leaves=12)
FIELD_VALUES = {"name": st.from_regex(r"[a-z][a-z0-9_.-]{0,34}", fullmatch=True) | JSON,
                "roles": st.lists(st.sampled_from(["viewer", "pii", "regulator", "sysadmin", "x"]), max_size=3) | JSON,
                "enterprise_code": st.sampled_from([ENTERPRISE_A, "2109990001", "x"]) | JSON,
                "admin_code": st.sampled_from([CITY, "999999"]) | JSON,
                "display_name": st.text(max_size=120) | JSON}
BODIES = JSON | st.fixed_dictionaries({}, optional=FIELD_VALUES)


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(body=BODIES)
def test_no_body_makes_the_accounts_api_fail(live_server: LiveServer, admins: dict[str, TestAccount],
                                             db_url: str, body: Any) -> None:
    """Property: whatever JSON is posted, the answer is 201 or a JSON 4xx naming what is wrong."""
    staff = ensure_account(db_url, "acc_fuzz_staff", ("viewer",), enterprise=ENTERPRISE_A)
    for path in ("/api/accounts", f"/api/accounts/{staff.name}/roles"):
        answer = call(live_server, admins["sysadmin"], "POST", path, body)
        assert answer.status_code in (201, 400, 403, 409), (path, body, answer.status_code, answer.text[:300])
        if answer.status_code != 201:
            assert set(answer.json()) == {"code", "description"}
