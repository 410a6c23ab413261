"""The audit log (migration 0017, accounts/audit.py): append-only, hash-chained, every write and sign-in in it.

- `audit verify` passes on the log as the session's tests leave it, and names the row a superuser
  altered (CLI: exit 1, "broken at row N"); the owner can neither change nor remove a row.
- Sign-ins over real HTTP (the login page, logout, Bearer, Basic), lockouts and the account and
  token changes of the CLI appear with their account; a write as an account's role appears with
  that account as actor, its table, feature code and changed fields; so does an alarm step over
  HTTP, with its request id and client address.
- GET /api/audit answers the auditor (newest first, filtered) and refuses everyone else.
"""
from __future__ import annotations

import getpass
import json
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from click.testing import CliRunner
from signed_in import ENTERPRISE_A, ENTERPRISE_B, TestAccount, password_of
from sqlalchemy.pool import NullPool
from telemetry_support import conninfo, devices, raise_alarms

from accounts import audit, store
from app.background_server import BackgroundServer

ROOT = Path(__file__).resolve().parent.parent

PERSON, LOCKED = "audit_person", "audit_locked"
DISPATCHER_OF = {ENTERPRISE_A: "a_dispatcher", ENTERPRISE_B: "b_dispatcher"}


@pytest.fixture(scope="module")
def server(live_server: BackgroundServer) -> BackgroundServer:
    """The session's web server (app/web.py, the audit blueprint among its routes)."""
    return live_server


@pytest.fixture(scope="module")
def owner(db_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(db_url, poolclass=NullPool)
    yield engine
    engine.dispose()


def last_id(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT coalesce(max(id), 0) FROM audit.log")).scalar_one()


def rows_after(engine: sa.Engine, after: int) -> list[tuple]:
    """(actor, action, table, feature code, changes, detail) of every row after id `after`."""
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            "SELECT actor, action, table_name, feature_code, changes, detail FROM audit.log WHERE id > :i ORDER BY id"),
            {"i": after})]


def cli(db_url: str, *args: str):
    import app.cli.audit  # noqa: F401  (adds `audit` to the root group)
    from app.cli.root import cli as root

    return CliRunner().invoke(root, ["audit", *args], env={"DATABASE_URL": db_url})


def as_role(conn: sa.Connection, role: str) -> None:
    conn.execute(sa.text("SELECT set_config('role', :r, true)"), {"r": role})


def insert_incident(conn: sa.Connection, code: str) -> None:
    """An incident of enterprise A at one of its pipes (as whatever role `conn` acts as)."""
    conn.execute(sa.text("""
        INSERT INTO incident (code, request, result, network_version, valves_to_close, customers_out, geom,
                              enterprise_code, admin_code)
        SELECT :c, '{}', '{}', 1, 2, 3, ST_Force2D(ST_PointOnSurface(geom)), enterprise_code, admin_code
          FROM pipe WHERE enterprise_code = :e ORDER BY id LIMIT 1"""), {"c": code, "e": ENTERPRISE_A})


def test_verify_passes_on_the_log_as_it_is(owner: sa.Engine, users: dict[str, TestAccount], db_url: str) -> None:
    with owner.connect() as conn:
        count, algorithm = conn.execute(sa.text(
            "SELECT count(*), (SELECT algorithm FROM audit.chain_head) FROM audit.log")).one()
        assert conn.execute(sa.text("SELECT min(id), max(id) FROM audit.log")).one() == (1, count)
        assert audit.verify(conn) == (True, None, count)
    assert algorithm == "sm3"   # Debian 12's OpenSSL 3 has it
    done = cli(db_url, "verify")
    assert done.exit_code == 0, done.output
    assert done.output == f"intact: {count:,} rows, algorithm sm3\n"


def test_the_owner_can_neither_change_nor_remove_a_row(owner: sa.Engine, users: dict[str, TestAccount]) -> None:
    # the triggers refuse rows' changes to the cluster's superuser login too; DDL on the log only
    # a superuser may run (the next test does), not the owner
    everyone, owner_only = (None, "qiwang_owner"), ("qiwang_owner",)
    for statement, roles in (("UPDATE audit.log SET actor = 'someone else' WHERE id = 1", everyone),
                             ("DELETE FROM audit.log WHERE id = 1", everyone), ("TRUNCATE audit.log", everyone),
                             ("UPDATE audit.chain_head SET last_id = 1", everyone),
                             ("ALTER TABLE audit.log DISABLE TRIGGER USER", owner_only),
                             ("DROP TABLE audit.log CASCADE", owner_only), ("DROP SCHEMA audit CASCADE", owner_only)):
        for role in roles:
            with pytest.raises(sa.exc.DBAPIError) as refused, owner.begin() as conn:
                if role:
                    conn.execute(sa.text(f"SET LOCAL ROLE {role}"))
                conn.execute(sa.text(statement))
            assert refused.value.orig.sqlstate == "42501", (statement, role)
            assert "audit" in str(refused.value.orig), (statement, role)
    with owner.connect() as conn:   # nor may an account read it, except the auditor
        for name in ("a_viewer", "city_regulator", "a_dispatcher"):
            with pytest.raises(sa.exc.ProgrammingError, match="permission denied"), conn.begin():
                as_role(conn, users[name].db_role)
                conn.execute(sa.text("SELECT count(*) FROM audit.log"))
        with conn.begin():
            as_role(conn, users["auditor"].db_role)
            assert conn.execute(sa.text("SELECT count(*) FROM audit.log")).scalar_one() > 0
            with pytest.raises(sa.exc.DBAPIError, match="permission denied for table log"):
                conn.execute(sa.text("DELETE FROM audit.log"))


def test_a_row_altered_by_a_superuser_is_named(owner: sa.Engine, users: dict[str, TestAccount], db_url: str) -> None:
    with owner.connect() as conn:
        victim, actor = conn.execute(sa.text(
            "SELECT id, actor FROM audit.log WHERE action = 'token_create' ORDER BY id DESC LIMIT 1")).one()
        count = conn.execute(sa.text("SELECT count(*) FROM audit.log")).scalar_one()

    def set_actor(value: str) -> None:
        with owner.begin() as conn:
            conn.execute(sa.text("ALTER TABLE audit.log DISABLE TRIGGER USER"))
            conn.execute(sa.text("UPDATE audit.log SET actor = :a WHERE id = :i"), {"a": value, "i": victim})
            conn.execute(sa.text("ALTER TABLE audit.log ENABLE TRIGGER USER"))

    set_actor("someone else")
    try:
        with owner.connect() as conn:
            assert audit.verify(conn) == (False, victim, victim)
        done = cli(db_url, "verify")
        assert done.exit_code == 1
        assert f"audit log broken at row {victim} ({victim:,} rows read)" in done.output
    finally:
        set_actor(actor)
    with owner.connect() as conn:
        assert audit.verify(conn) == (True, None, count)


def test_removed_rows_are_found_too(owner: sa.Engine, users: dict[str, TestAccount]) -> None:
    """A row deleted in the middle breaks the next one; the last one deleted breaks the chain head."""
    with owner.connect() as conn:   # never committed: the session's log stays whole
        conn.execute(sa.text("ALTER TABLE audit.log DISABLE TRIGGER USER"))
        last = conn.execute(sa.text("SELECT max(id) FROM audit.log")).scalar_one()
        conn.execute(sa.text("DELETE FROM audit.log WHERE id = :i"), {"i": last})
        assert audit.verify(conn) == (False, last, last - 1)
        conn.execute(sa.text("DELETE FROM audit.log WHERE id = 2"))
        assert audit.verify(conn) == (False, 3, 2)
        conn.rollback()


def test_sign_ins_and_account_changes_are_recorded_with_their_account(
        owner: sa.Engine, server: BackgroundServer, users: dict[str, TestAccount]) -> None:
    base, now = server.url, datetime.now(UTC)
    start = last_id(owner)
    with owner.begin() as conn:   # as ./qiwang user add / user token would
        for name in (PERSON, LOCKED):
            store.add_account(conn, name, ("viewer",), enterprise=ENTERPRISE_A, password=password_of(name),
                              created_by="operator:tests", now=now)
            conn.execute(sa.text("UPDATE auth.account SET must_change_password = false WHERE name = :n"), {"n": name})
        token_id, token, _ = store.create_token(conn, PERSON, 30, now)
    bearer = {"Authorization": f"Bearer {token}"}

    # the login page: a wrong password, the right one, the session, logout
    web = requests.Session()
    assert web.post(f"{base}/login", data={"name": PERSON, "password": "Wrong-pass-1"}, timeout=30).status_code == 401
    assert web.post(f"{base}/login", data={"name": PERSON, "password": password_of(PERSON)},
                    allow_redirects=False, timeout=30).status_code == 303
    assert web.get(f"{base}/api/session", timeout=30).json()["name"] == PERSON
    # POST /logout is refused (403) by accounts/permissions.py, which has no rule for it (reported):
    # the logout of the login path's store function, as app/auth.py's logout calls it
    with owner.begin() as conn:
        as_role(conn, "qiwang_auth")
        store.end_session(conn, web.cookies["qiwang_session"], now)
    # a token: its first use is a login, the next ones within 30 minutes are not
    for _ in range(3):
        assert requests.get(f"{base}/api/session", headers=bearer, timeout=30).status_code == 200
    # Basic with the password, a login within 30 minutes of the last: not recorded again
    assert requests.get(f"{base}/api/session", auth=(PERSON, password_of(PERSON)), timeout=30).status_code == 200
    operator = audit.operator()
    with owner.begin() as conn:   # ./qiwang user revoke-token, user disable
        store.revoke_token(conn, PERSON, token_id, now)
    assert requests.get(f"{base}/api/session", headers=bearer, timeout=30).status_code == 401
    with owner.begin() as conn:
        store.disable(conn, PERSON, now)
    assert requests.get(f"{base}/api/session", auth=(PERSON, password_of(PERSON)), timeout=30).status_code == 401
    # five wrong passwords lock the account; then the right one is refused too
    for _ in range(5):
        assert requests.get(f"{base}/api/session", auth=(LOCKED, "Wrong-pass-1"), timeout=30).status_code == 401
    assert requests.get(f"{base}/api/session", auth=(LOCKED, password_of(LOCKED)), timeout=30).status_code == 401
    with owner.begin() as conn:   # ./qiwang user passwd
        store.set_password(conn, LOCKED, "New-pass-77", now, must_change=True)
    # unknown names: kept when they cannot be a password typed in the wrong field
    for name in ("no-such-person", "Secret-Pass1"):
        assert requests.get(f"{base}/api/session", auth=(name, "Wrong-pass-1"), timeout=30).status_code == 401

    rows = rows_after(owner, start)
    seen = [(actor, action, table, code, (detail or {}).get("method"), (detail or {}).get("reason"))
            for actor, action, table, code, _, detail in rows]
    tests, ops = "operator:tests", operator
    assert seen == [
        (tests, "insert", "auth.account", PERSON, None, None),
        (tests, "account_add", None, None, None, None),
        (tests, "update", "auth.account", PERSON, None, None),
        (tests, "insert", "auth.account", LOCKED, None, None),
        (tests, "account_add", None, None, None, None),
        (tests, "update", "auth.account", LOCKED, None, None),
        (tests, "insert", "auth.token", token_id, None, None),
        (tests, "token_create", None, None, None, None),
        (PERSON, "login_failed", None, None, "password", "wrong password"),
        (PERSON, "login", None, None, "password", None),
        (PERSON, "login", None, None, "session", None),
        (PERSON, "logout", None, None, None, "signed out"),
        (PERSON, "login", None, None, "token", None),
        (ops, "update", "auth.token", token_id, None, None),
        (ops, "token_revoke", None, None, None, None),
        (PERSON, "login_failed", None, None, "token", f"token {token_id} revoked"),
        (ops, "update", "auth.account", PERSON, None, None),
        (ops, "account_disable", None, None, None, None),
        (PERSON, "login_failed", None, None, "password", "disabled"),
        *[(LOCKED, "login_failed", None, None, "password", "wrong password")] * 5,
        (LOCKED, "update", "auth.account", LOCKED, None, None),
        (LOCKED, "lockout", None, None, None, None),
        (LOCKED, "login_failed", None, None, "password", "locked"),
        (ops, "update", "auth.account", LOCKED, None, None),
        (ops, "password_change", None, None, None, None),
        ("(unknown)", "login_failed", None, None, "password", "unknown account"),
        ("(unknown)", "login_failed", None, None, "password", "unknown account"),
    ]
    def changes(action: str, code: str) -> list[dict]:
        return [change for _, done, table, feature, change, _ in rows if (done, feature) == (action, code) and table]

    details = [detail for _, action, table, _, _, detail in rows if not table]
    # secrets never, even hashed; what changed, before and after
    added = changes("insert", PERSON)[0]
    assert added["password_hash"] == "(hidden)" and added["duties"] == ["viewer"] and added["created_by"] == tests
    assert changes("insert", token_id)[0]["secret_hash"] == "(hidden)"
    made, disabled = changes("update", PERSON)
    assert made == {"must_change_password": [True, False]}
    assert set(disabled) == {"disabled_at", "auth_version"} and disabled["auth_version"] == [1, 2]
    assert set(changes("update", token_id)[0]) == {"revoked_at"}
    _, locked, password_set = changes("update", LOCKED)
    assert set(locked) == {"locked_until"} and locked["locked_until"][0] is None
    assert password_set["password_hash"] == "changed" and password_set["must_change_password"] == [False, True]
    assert password_set["locked_until"][1] is None
    assert token not in json.dumps(rows, default=str) and password_of(PERSON) not in json.dumps(rows, default=str)
    assert details[0] == {"name": PERSON, "roles": ["viewer"], "enterprise": ENTERPRISE_A, "division": None,
                          "db_login": False}
    assert {"name": PERSON, "token_id": token_id}.items() <= details[2].items()
    assert details[-2]["name"] == "no-such-person" and details[-1]["name"] == "(withheld: could be a password)"
    with owner.connect() as conn:   # the login path's rows carry the client's address
        addrs = conn.execute(sa.text("SELECT DISTINCT client_addr FROM audit.log WHERE id > :i "
                                     "AND action IN ('login_failed', 'lockout') AND detail->>'method' = 'password'"),
                             {"i": start}).scalars().all()
        assert addrs == ["127.0.0.1"]
        assert audit.verify(conn)[0]


def test_a_write_as_an_account_names_the_account_table_feature_and_fields(
        owner: sa.Engine, users: dict[str, TestAccount]) -> None:
    dispatcher = users["a_dispatcher"]
    with owner.connect() as conn:   # never committed: no incident is left for other tests
        start = conn.execute(sa.text("SELECT coalesce(max(id), 0) FROM audit.log")).scalar_one()
        as_role(conn, dispatcher.db_role)
        insert_incident(conn, "SG-AUDIT")
        conn.execute(sa.text("UPDATE incident SET state = 'active', title = '爆管' WHERE code = 'SG-AUDIT'"))
        conn.execute(sa.text("RESET ROLE"))
        rows = conn.execute(sa.text("SELECT actor, db_role::text, action, table_name, feature_code, changes "
                                    "FROM audit.log WHERE id > :i ORDER BY id"), {"i": start}).all()
        conn.rollback()
    assert [r[:5] for r in rows] == [("a_dispatcher", dispatcher.db_role, "insert", "incident", "SG-AUDIT"),
                                     ("a_dispatcher", dispatcher.db_role, "update", "incident", "SG-AUDIT")]
    inserted, updated = rows[0][5], rows[1][5]
    assert inserted["geom"] == "(geometry)" and inserted["state"] == "planned" and inserted["customers_out"] == 3
    assert inserted["created_by"] == inserted["state_changed_by"] == "a_dispatcher"   # migration 0019
    # state_changed_at is the transaction's time: the same as the insert's here, so not a change
    assert updated == {"state": ["planned", "active"], "title": [None, "爆管"]}


def test_a_setting_does_not_make_an_account_someone_else(owner: sa.Engine, users: dict[str, TestAccount]) -> None:
    """qiwang.actor and qiwang.bulk are for the owner: an account's role is recorded as its account."""
    with owner.connect() as conn:   # never committed
        start = conn.execute(sa.text("SELECT coalesce(max(id), 0) FROM audit.log")).scalar_one()
        as_role(conn, users["a_dispatcher"].db_role)
        conn.execute(sa.text("SELECT set_config('qiwang.actor', 'b_dispatcher', true), "
                             "set_config('qiwang.bulk', 'on', true)"))
        conn.execute(sa.text("SELECT audit.append('pii_read', CAST(:d AS jsonb), 'someone else')"),
                     {"d": '{"table": "customer_personal"}'})
        insert_incident(conn, "SG-AUDIT-2")
        conn.execute(sa.text("RESET ROLE"))
        found = conn.execute(sa.text("SELECT actor, action, table_name FROM audit.log WHERE id > :i ORDER BY id"),
                             {"i": start}).all()
        conn.rollback()
    assert found == [("a_dispatcher", "pii_read", None), ("a_dispatcher", "insert", "incident")]
    with owner.connect() as conn:   # a direct login of the account (QGIS on PostGIS) that takes one of its groups
        start = conn.execute(sa.text("SELECT coalesce(max(id), 0) FROM audit.log")).scalar_one()
        conn.execute(sa.text(f'SET LOCAL SESSION AUTHORIZATION "{users["a_dispatcher"].db_role}"'))
        conn.execute(sa.text("SET LOCAL ROLE qiwang_account"))
        conn.execute(sa.text("SELECT audit.append('login', NULL, 'someone else')"))
        conn.execute(sa.text("RESET SESSION AUTHORIZATION"))
        found = conn.execute(sa.text("SELECT actor, db_role::text FROM audit.log WHERE id > :i"), {"i": start}).all()
        conn.rollback()
    assert found == [("a_dispatcher", "qiwang_account")]


def test_an_alarm_step_over_http_is_recorded_with_its_request(
        owner: sa.Engine, server: BackgroundServer, db_url: str, users: dict[str, TestAccount]) -> None:
    info = conninfo(db_url)
    sentry = devices(info, limit=42)[-1]          # a sentry the other tests of this database leave alone
    raise_alarms(info, [(sentry, datetime.now(UTC).replace(microsecond=0), {"ch4_lel": 30.0})])
    with owner.connect() as conn:
        code = conn.execute(sa.text("SELECT code FROM alarm WHERE device_code = :d ORDER BY id DESC LIMIT 1"),
                            {"d": sentry[2]}).scalar_one()
    start = last_id(owner)
    dispatcher = users[DISPATCHER_OF[sentry[0]]]
    done = requests.post(f"{server.url}/api/alarms/{code}/acknowledge", json={"note": "on the way"},
                         headers=dispatcher.headers, timeout=30)
    assert done.status_code == 200, done.text
    with owner.connect() as conn:
        rows = conn.execute(sa.text("SELECT actor, action, table_name, feature_code, changes, request_id, client_addr "
                                    "FROM audit.log WHERE id > :i AND table_name = 'alarm'"), {"i": start}).all()
    assert len(rows) == 1
    actor, action, table, feature, changes, request_id, client_addr = rows[0]
    assert (actor, action, table, feature, client_addr) == (dispatcher.name, "update", "alarm", code, "127.0.0.1")
    assert changes["state"] == ["raised", "acknowledged"]
    assert changes["acknowledged_at"][0] is None and changes["acknowledged_at"][1] is not None
    assert len(request_id) == 32


def test_the_api_answers_the_auditor_only(owner: sa.Engine, server: BackgroundServer,
                                          users: dict[str, TestAccount]) -> None:
    base, auditor = server.url, users["auditor"]
    answer = requests.get(f"{base}/api/audit", headers=auditor.headers, params={"limit": 5}, timeout=30)
    assert answer.status_code == 200, answer.text
    newest = answer.json()
    assert len(newest) == 5
    assert [e["id"] for e in newest] == sorted((e["id"] for e in newest), reverse=True)
    with owner.connect() as conn:
        top = conn.execute(sa.text("SELECT max(id) FROM audit.log")).scalar_one()
        mine = conn.execute(sa.text("SELECT id, action FROM audit.log WHERE actor = :a ORDER BY id DESC"),
                            {"a": PERSON}).all()
    # the auditor's own token login may be the newest row: it was written by this very request
    assert newest[0]["id"] == top
    assert set(newest[0]) == {"id", "at", "actor", "db_role", "action", "table", "feature_code", "changes", "detail",
                              "request_id", "client_addr"}
    answer = requests.get(f"{base}/api/audit", headers=auditor.headers, params={"user": PERSON}, timeout=30)
    assert [(e["id"], e["action"]) for e in answer.json()] == [tuple(r) for r in mine]
    answer = requests.get(f"{base}/api/audit", headers=auditor.headers,
                          params={"user": PERSON, "action": "login", "since": "2000-01-01"}, timeout=30)
    assert [e["detail"]["method"] for e in answer.json()] == ["token", "session", "password"]
    future = requests.get(f"{base}/api/audit", headers=auditor.headers, params={"since": "2999-01-01T00:00:00+08:00"},
                          timeout=30)
    assert future.status_code == 200 and future.json() == []
    for params, field in (({"since": "yesterday"}, "since"), ({"limit": "0"}, "limit"), ({"limit": "x"}, "limit")):
        bad = requests.get(f"{base}/api/audit", headers=auditor.headers, params=params, timeout=30)
        assert bad.status_code == 400 and bad.json()["description"].startswith(field), bad.text
    for name in ("a_viewer", "a_dispatcher", "city_regulator"):
        refused = requests.get(f"{base}/api/audit", headers=users[name].headers, timeout=30)
        assert refused.status_code == 403 and "needs auditor" in refused.json()["description"]
    anonymous = requests.get(f"{base}/api/audit", timeout=30)
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"].startswith("Basic")


def test_cli_list_filters_by_user_and_action(owner: sa.Engine, db_url: str, users: dict[str, TestAccount]) -> None:
    done = cli(db_url, "list", "--user", PERSON, "--action", "login_failed")
    assert done.exit_code == 0, done.output
    lines = done.output.splitlines()
    assert lines[0].split()[:5] == ["id", "at", "(UTC)", "actor", "action"]
    with owner.connect() as conn:
        expected = conn.execute(sa.text("SELECT id FROM audit.log WHERE actor = :a AND action = 'login_failed' "
                                        "ORDER BY id DESC"), {"a": PERSON}).scalars().all()
    assert [int(line.split()[0]) for line in lines[1:]] == expected and len(expected) == 3
    assert all(f" {PERSON} " in line and " login_failed " in line for line in lines[1:])
    done = cli(db_url, "list", "--since", "soon")
    assert done.exit_code == 1 and str(done.exception).startswith("since: 'soon' is not an ISO 8601 date")


def test_the_cli_records_the_operator_it_is_told_to_act_as(owner: sa.Engine, db_url: str) -> None:
    def qiwang(*args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        return subprocess.run([str(ROOT / "qiwang"), *args], cwd=ROOT, env=env | {"DATABASE_URL": db_url},
                              capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)

    start = last_id(owner)
    done = qiwang("--as", "张工", "user", "add", "cli_named", "--role", "viewer", "--enterprise", ENTERPRISE_A)
    assert done.returncode == 0, done.stderr
    done = qiwang("user", "disable", "cli_named")   # no --as: the OS user
    assert done.returncode == 0, done.stderr
    done = qiwang("--as", "bad name;", "user", "disable", "cli_named")
    assert done.returncode == 2 and done.stderr.strip() == (
        "qiwang: error: invalid value for '--as': 'bad name;' is not an operator name "
        "(1-64 letters, digits, _ . @ -) (see ./qiwang --help)")
    actions = [(actor, action) for actor, action, *_ in rows_after(owner, start)]
    me = f"operator:{getpass.getuser()}"
    assert actions == [("operator:张工", "insert"), ("operator:张工", "account_add"),
                       (me, "update"), (me, "account_disable")]
