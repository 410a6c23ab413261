"""Who may reach the database, and what the application's roles may do there (issues 16 and 18).

The embedded cluster lets in only the service users (socket 0700, `local … peer` with an ident
map); the application connects as `qiwang_app`, the authenticator (migration 0016): no superuser,
owns nothing, NOINHERIT and without a single table privilege, so that it can only act through the
roles it switches to: an account's, `qiwang_system` or `qiwang_ingest`. Those cannot DROP, ALTER or
TRUNCATE, read no personal table and write only what the application writes. The telemetry
pipeline runs as `qiwang_ingest` here, end to end.
"""
from __future__ import annotations

import os
import pwd
import stat
import subprocess
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import psycopg.conninfo
import pytest
from conftest import ThrowawayDatabases, migrated_database
from sqlalchemy.engine import make_url
from telemetry_support import base_time, conninfo, count, devices, raise_alarms

pytestmark = pytest.mark.skipif(bool(os.environ.get("DATABASE_URL")),
                                reason="the embedded cluster's access rules; an external server has its own")

# What the ingest and the app's own work write; every other table they can only read (and
# customer_personal not even that).
INGEST_WRITES = {
    "alarm": ["INSERT", "UPDATE"], "alarm_event": ["INSERT"], "device": ["UPDATE"],
    "device_status_log": ["INSERT"], "outbox": ["DELETE", "INSERT", "UPDATE"], "reading": ["INSERT", "UPDATE"],
    "reading_quarantine": ["INSERT", "UPDATE"], "sentry": ["UPDATE"],
}
SYSTEM_WRITES = {"incident": ["INSERT", "UPDATE"], "jobs": ["DELETE", "INSERT", "UPDATE"],
                 "topology_issue": ["DELETE", "INSERT"]}


@pytest.fixture(scope="module")
def owner_and_app(databases: ThrowawayDatabases) -> Iterator[tuple[str, str]]:
    """A small demo city of its own (the telemetry test writes readings and alarms): owner and app URLs."""
    from demo.city import load_demo

    with migrated_database(databases, "qiwang_dbsec") as engine:
        load_demo(engine, pipes=300, seed=3, echo=lambda _: None)
        url = engine.url.render_as_string(hide_password=False)
        yield url, databases.app_url(engine.url.database)


def psql_as(os_user: str, url: str, sql: str) -> subprocess.CompletedProcess[str]:
    u = make_url(url)
    return subprocess.run(["runuser", "-u", os_user, "--", "psql", "-X", "-h", u.query["host"], "-U", u.username,
                           "-d", u.database, "-c", sql], capture_output=True, text=True, cwd="/", timeout=60)


def app_error(app_url: str, sql: str, role: str | None = None) -> str:
    """The error of `sql` run by the application's login, as `role` when given (else as itself)."""
    with psycopg.connect(conninfo(app_url)) as conn, pytest.raises(psycopg.Error) as caught:
        if role:
            conn.execute(f"SET ROLE {role}")
        conn.execute(sql)
    return caught.value.diag.message_primary


def ingest_conninfo(app_url: str) -> str:
    """The application's login acting as the telemetry ingest, as `./qiwang ingest` connects."""
    return psycopg.conninfo.make_conninfo(conninfo(app_url), options="-c role=qiwang_ingest")


def test_other_os_users_are_refused(databases: ThrowawayDatabases, owner_and_app: tuple[str, str]) -> None:
    owner, app = owner_and_app
    socket_dir = databases.cluster.socket_dir
    assert stat.S_IMODE(socket_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((socket_dir / ".s.PGSQL.5432").stat().st_mode) == 0o700
    assert os.geteuid() == 0, "the suite runs as root (./qiwang test, CI): only root can act as nobody"
    for url in (owner, app):
        done = psql_as("nobody", url, "SELECT count(*) FROM customer_personal")
        assert done.returncode == 2
        assert done.stderr.splitlines()[0] == (f'psql: error: connection to server on socket '
                                               f'"{socket_dir}/.s.PGSQL.5432" '
                                               "failed: Permission denied")
    # the cluster's own account gets in (maintenance as postgres stays possible)
    done = psql_as("postgres", app, "SELECT current_user")
    assert done.returncode == 0 and done.stdout.split()[2] == "qiwang_app"


def test_pg_hba_is_peer_with_the_ident_map_only(databases: ThrowawayDatabases, owner_and_app: tuple[str, str]) -> None:
    owner, _ = owner_and_app
    me = pwd.getpwuid(os.geteuid()).pw_name
    with psycopg.connect(conninfo(owner)) as conn:
        rules = conn.execute("SELECT type, database, user_name, auth_method, options, error "
                             "FROM pg_hba_file_rules").fetchall()
        mappings = conn.execute("SELECT map_name, sys_name, pg_username FROM pg_ident_file_mappings "
                                "ORDER BY line_number").fetchall()
        assert conn.execute("SHOW unix_socket_permissions").fetchone()[0] == "0700"
        conn.execute("DROP ROLE IF EXISTS qiwang_intruder")
        conn.execute("CREATE ROLE qiwang_intruder LOGIN SUPERUSER")
    assert rules == [("local", ["all"], ["qiwang", "qiwang_app"], "peer", ["map=qiwang"], None),
                     ("local", ["all"], ["+qiwang_db_login"], "scram-sha-256", None, None),
                     ("local", ["all"], ["all"], "peer", ["map=qiwang"], None)]
    users = [me, "postgres"] if databases.cluster.as_postgres else [me]
    assert mappings == [("qiwang", user, role) for user in users for role in ("qiwang", "qiwang_app")]
    try:
        # a login role outside the map: peer authentication refuses it even to root
        with pytest.raises(psycopg.OperationalError, match='Peer authentication failed for user "qiwang_intruder"'):
            psycopg.connect(conninfo(make_url(owner).set(username="qiwang_intruder")
                                     .render_as_string(hide_password=False)))
        with pytest.raises(psycopg.OperationalError, match='Peer authentication failed for user "qiwang_owner"'):
            psycopg.connect(conninfo(make_url(owner).set(username="qiwang_owner")
                                     .render_as_string(hide_password=False)))
    finally:
        with psycopg.connect(conninfo(owner), autocommit=True) as conn:
            conn.execute("DROP ROLE qiwang_intruder")


def test_app_role_is_a_powerless_authenticator(owner_and_app: tuple[str, str]) -> None:
    owner, app = owner_and_app
    with psycopg.connect(conninfo(app)) as conn:
        assert conn.execute("SELECT current_user, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolinherit "
                            "FROM pg_roles WHERE rolname = current_user").fetchone() == \
            ("qiwang_app", False, False, False, False, False)
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "1min"
        assert conn.execute("SHOW work_mem").fetchone()[0] == "16MB"
        owned = conn.execute("""
            SELECT (SELECT count(*) FROM pg_class WHERE relowner = 'qiwang_app'::regrole)
                 + (SELECT count(*) FROM pg_proc WHERE proowner = 'qiwang_app'::regrole)
                 + (SELECT count(*) FROM pg_namespace WHERE nspowner = 'qiwang_app'::regrole)
                 + (SELECT count(*) FROM pg_type WHERE typowner = 'qiwang_app'::regrole)""").fetchone()[0]
        assert owned == 0
        # the roles it may become: the app's own three (accounts' roles are added as they are made)
        assert conn.execute("SELECT array_agg(r.rolname ORDER BY r.rolname) FROM pg_auth_members m "
                            "JOIN pg_roles r ON r.oid = m.roleid WHERE m.member = 'qiwang_app'::regrole "
                            "AND r.rolname LIKE 'qiwang%'").fetchone()[0] == \
            ["qiwang_auth", "qiwang_ingest", "qiwang_system"]
    with psycopg.connect(conninfo(owner)) as conn:
        # every table of the schema is the owner role's (PostGIS's spatial_ref_sys is the extension's)
        assert conn.execute("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname IN ('public', 'dict') "
                            "AND tablename <> 'spatial_ref_sys'").fetchall() == [("qiwang_owner",)]
        def writes(grantee: str) -> dict[str, list[str]]:
            return dict(conn.execute("""
                SELECT table_name, array_agg(privilege_type::text ORDER BY privilege_type)
                FROM information_schema.role_table_grants
                WHERE grantee = %s AND table_schema = 'public' AND privilege_type <> 'SELECT'
                GROUP BY table_name ORDER BY table_name""", (grantee,)).fetchall())
        assert conn.execute("SELECT count(*) FROM information_schema.role_table_grants "
                            "WHERE grantee = 'qiwang_app'").fetchone()[0] == 0
        assert writes("qiwang_ingest") == INGEST_WRITES
        assert writes("qiwang_system") == SYSTEM_WRITES
        # a partition read directly would skip its parent's policies: no account group may
        assert conn.execute("""
            SELECT count(*) FROM information_schema.role_table_grants g JOIN pg_class c ON c.relname = g.table_name
             WHERE c.relispartition AND g.grantee IN ('qiwang_reader', 'qiwang_account')""").fetchone()[0] == 0


def test_the_web_server_refuses_a_login_past_row_level_security(owner_and_app: tuple[str, str]) -> None:
    from core.errors import QiwangError
    from db.engine import check_authenticator

    owner, app = owner_and_app
    check_authenticator(app)   # the authenticator: serves
    with pytest.raises(QiwangError) as refused:
        check_authenticator(owner)
    login = make_url(owner).username
    assert str(refused.value) == (
        f"the web server would log in as {login}, which is a superuser and bypasses row-level security and owns the "
        "tables: every account's scope would depend on each code path taking the account's role. Set "
        "QIWANG_APP_DATABASE_URL to a login of qiwang_app (e.g. ALTER ROLE qiwang_app LOGIN PASSWORD '…' as the "
        "owner, then postgresql://qiwang_app:…@host/db)")


def test_the_authenticator_alone_reads_nothing(owner_and_app: tuple[str, str]) -> None:
    assert app_error(owner_and_app[1], "SELECT count(*) FROM pipe") == "permission denied for table pipe"
    assert app_error(owner_and_app[1], "SELECT * FROM auth.account") == "permission denied for schema auth"


@pytest.mark.parametrize("sql, message", [
    ("DROP TABLE pipe", "must be owner of table pipe"),
    ("ALTER TABLE pipe ADD COLUMN x int", "must be owner of table pipe"),
    ("ALTER TABLE alarm_event DISABLE TRIGGER alarm_event_append_only", "must be owner of table alarm_event"),
    ("TRUNCATE reading", "permission denied for table reading"),
    ("DROP VIEW published.valve", "must be owner of view valve"),
    ("SELECT * FROM auth.account", "permission denied for schema auth"),
    ("CREATE TABLE mine (x int)", "permission denied for schema public"),
    ("SELECT * FROM customer_personal", "permission denied for table customer_personal"),
    ("UPDATE pipe SET diameter_mm = 1", "permission denied for table pipe"),
    ("DELETE FROM alarm_event", "permission denied for table alarm_event"),
    ("UPDATE alarm_event SET note = 'x'", "permission denied for table alarm_event"),
    ("CREATE TABLE reading_2001_01 PARTITION OF reading FOR VALUES FROM ('2001-01-01') TO ('2001-02-01')",
     "permission denied for schema public"),
])
def test_the_ingest_role_cannot(owner_and_app: tuple[str, str], sql: str, message: str) -> None:
    assert app_error(owner_and_app[1], sql, role="qiwang_ingest") == message


def test_telemetry_pipeline_runs_as_the_ingest_role(owner_and_app: tuple[str, str]) -> None:
    owner, app = owner_and_app
    info = ingest_conninfo(app)
    # The month's partition is made by ensure_reading_partition, SECURITY DEFINER: the owner's.
    with psycopg.connect(info) as conn:
        partition = conn.execute("SELECT ensure_reading_partition('2020-01-15T00:00:00Z')").fetchone()
        assert partition == ("reading_2020_01",)
    assert count(conninfo(owner), "SELECT count(*) FROM pg_tables WHERE tablename = 'reading_2020_01' "
                                  "AND tableowner = 'qiwang_owner'") == 1
    sentry = devices(info, limit=1)[0]
    t = base_time()
    raise_alarms(info, [(sentry, t, {"ch4_lel": 1.0}), (sentry, t + timedelta(minutes=5), {"ch4_lel": 30.0})])
    assert count(info, "SELECT count(*) FROM reading WHERE device_code = %s", sentry[2]) == 2
    assert count(info, "SELECT count(*) FROM alarm WHERE device_code = %s AND state = 'raised'", sentry[2]) == 1
    assert count(info, "SELECT count(*) FROM alarm_event e JOIN alarm a ON a.id = e.alarm_id "
                       "WHERE a.device_code = %s", sentry[2]) == 1
    assert count(info, "SELECT count(*) FROM sentry WHERE code = %s AND last_ch4_lel = 30.0", sentry[2]) == 1
