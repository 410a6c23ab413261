"""Sign-in rules (GB/T 22239-2019 level 2, 身份鉴别): passwords, lockout, tokens, sessions, accounts.

The store functions take the time as a parameter, so that timeouts are tested without waiting:
each case moves the clock itself.
"""
from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from signed_in import ENTERPRISE_A, ENTERPRISE_B, ensure_account, password_of
from sqlalchemy.engine import make_url

from accounts import passwords, store
from core.errors import Conflict, Forbidden, InvalidInput, Unauthenticated
from db.acting import AUTH_ROLE, acting_as
from db.engine import get_engine

T0 = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
GOOD = "Gas-Valve-2026"


@pytest.mark.nodb
@pytest.mark.parametrize(("password", "reason"), [
    ("Ab1!xyz", "at least 8 characters are needed, not 7"),
    ("abcdefgh1", "use at least three of: lower-case letters, capitals, digits, other characters"),
    ("ABCDEFGH!", "use at least three of: lower-case letters, capitals, digits, other characters"),
    ("Zhang.San.2026", "must not contain the account name"),
    ("x" * 257, "at most 256 characters"),
])
def test_a_password_breaking_a_rule_is_refused_naming_it(password: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        passwords.check_password(password, "zhang.san")
    assert (refused.value.field, refused.value.reason) == ("password", reason)


@pytest.mark.nodb
def test_three_classes_suffice_and_the_last_five_are_refused() -> None:
    for ok in ("Gasnet2026", "gasnet-2026", "GASNET-2026", "Gas-Net-Ok"):
        passwords.check_password(ok, "zhang.san")
    history = tuple(passwords.hash_password(f"Old-Secret-{k}") for k in range(6))   # newest first
    for k in range(5):
        with pytest.raises(InvalidInput, match="must differ from the last 5 passwords"):
            passwords.check_password(f"Old-Secret-{k}", "zhang.san", history)
    passwords.check_password("Old-Secret-5", "zhang.san", history)   # the sixth newest may come back
    assert history[0].startswith("$argon2id$")
    first = passwords.first_password()
    assert len(first) == 16 and passwords.classes(first) == 4


@pytest.fixture
def owner(engine: sa.Engine) -> sa.Engine:
    return engine


def make(owner: sa.Engine, name: str, **options) -> store.Account:
    with owner.begin() as conn:
        account, _ = store.add_account(conn, name, options.pop("duties", ("viewer",)),
                                       enterprise=options.pop("enterprise", ENTERPRISE_A), password=GOOD,
                                       created_by="operator:tests", now=T0, **options)
    return account


def sign_in(owner: sa.Engine, name: str, password: str, at: datetime) -> store.Account:
    """As the web app does: a failure is counted even though the attempt is refused."""
    with owner.begin() as conn:
        try:
            return store.sign_in_with_password(conn, name, password, at)
        except Unauthenticated as exc:
            failure = exc
    raise failure


def test_new_accounts_are_checked_and_must_change_their_first_password(owner: sa.Engine) -> None:
    account = make(owner, "rules_first")
    assert (account.duties, account.enterprise_code, account.must_change_password) == (("viewer",), ENTERPRISE_A,
                                                                                       True)
    with pytest.raises(Forbidden, match="the password must be changed first"):
        store.must_act_first(account, T0, 90)
    with owner.begin() as conn:
        changed = store.set_password(conn, "rules_first", "Another-Gas-2026", T0 + timedelta(hours=1))
    store.must_act_first(changed, T0 + timedelta(hours=1), 90)
    with pytest.raises(Forbidden, match="older than 90 days"):
        store.must_act_first(changed, T0 + timedelta(days=91), 90)
    with owner.begin() as conn, pytest.raises(InvalidInput, match="must differ from the last 5"):
        store.set_password(conn, "rules_first", GOOD, T0 + timedelta(hours=2))
    cases = [
        ({"name": "Bad Name"}, "name"),
        ({"duties": ("regulator",)}, "role"),
        ({"duties": ("auditor", "viewer")}, "role"),
        ({"duties": ("wizard",)}, "role"),
        ({"enterprise": "2103029999"}, "enterprise"),
    ]
    for options, field in cases:
        with owner.begin() as conn, pytest.raises(InvalidInput) as refused:
            store.add_account(conn, options.pop("name", "rules_bad"), options.pop("duties", ("viewer",)),
                              enterprise=options.pop("enterprise", ENTERPRISE_A), password=GOOD,
                              created_by="operator:tests", now=T0)
        assert refused.value.field == field
    with owner.begin() as conn, pytest.raises(Conflict, match="account rules_first exists already"):
        store.add_account(conn, "rules_first", ("viewer",), enterprise=ENTERPRISE_A, password=GOOD,
                          created_by="operator:tests", now=T0)


def test_five_failures_in_15_minutes_lock_the_account_for_15_minutes(owner: sa.Engine) -> None:
    make(owner, "rules_lock")
    for k in range(4):
        with pytest.raises(Unauthenticated, match=r"^wrong account name or password$"):
            sign_in(owner, "rules_lock", "Wrong-Pass-1", T0 + timedelta(minutes=k))
    assert sign_in(owner, "rules_lock", GOOD, T0 + timedelta(minutes=4)).name == "rules_lock"  # not yet locked
    with pytest.raises(Unauthenticated):
        sign_in(owner, "rules_lock", "Wrong-Pass-1", T0 + timedelta(minutes=5))     # the fifth in 15 min
    with pytest.raises(Unauthenticated, match=r"^account rules_lock is locked until 2026-12-03 08:20:00 UTC"):
        sign_in(owner, "rules_lock", GOOD, T0 + timedelta(minutes=6))               # even the right one
    assert sign_in(owner, "rules_lock", GOOD, T0 + timedelta(minutes=21)).name == "rules_lock"
    # failures spread over more than 15 minutes never lock
    for k in range(8):
        with pytest.raises(Unauthenticated, match=r"^wrong account name or password$"):
            sign_in(owner, "rules_lock", "Wrong-Pass-1", T0 + timedelta(hours=1, minutes=4 * k))
    # an unknown name answers exactly as a wrong password does
    with pytest.raises(Unauthenticated, match=r"^wrong account name or password$"):
        sign_in(owner, "rules_nobody", GOOD, T0)


def test_tokens_expire_and_are_revoked(owner: sa.Engine) -> None:
    make(owner, "rules_token")
    with owner.begin() as conn:
        token_id, token, expires = store.create_token(conn, "rules_token", 2, T0)
    assert expires == T0 + timedelta(days=2) and token.startswith(f"qwt_{token_id}_")
    with owner.begin() as conn:
        assert store.sign_in_with_token(conn, token, T0 + timedelta(days=1)).name == "rules_token"
        with pytest.raises(Unauthenticated, match=r"^this API token expired at 2026-12-05 08:00:00 UTC$"):
            store.sign_in_with_token(conn, token, T0 + timedelta(days=2))
        with pytest.raises(Unauthenticated, match=r"^unknown API token$"):
            store.sign_in_with_token(conn, token[:-1] + ("A" if token[-1] != "A" else "B"), T0)
        stored = conn.execute(sa.text("SELECT secret_hash FROM auth.token WHERE id = :i"), {"i": token_id}).scalar()
        assert token.encode() not in bytes(stored) and len(bytes(stored)) == 32    # SM3 of the token
        store.revoke_token(conn, "rules_token", token_id, T0 + timedelta(hours=1))
        with pytest.raises(Unauthenticated, match=r"^this API token was revoked$"):
            store.sign_in_with_token(conn, token, T0 + timedelta(hours=2))


def test_sessions_end_when_idle_30_minutes_or_12_hours_old_or_signed_out(owner: sa.Engine) -> None:
    account = make(owner, "rules_session")
    idle, absolute = timedelta(minutes=30), timedelta(hours=12)
    with owner.begin() as conn:
        quiet = store.open_session(conn, account, T0, None)
        busy = store.open_session(conn, account, T0, None)
        leaving = store.open_session(conn, account, T0, None)
    with owner.begin() as conn:
        assert store.session_account(conn, quiet, T0 + timedelta(minutes=29), idle, absolute).name == "rules_session"
    with owner.begin() as conn, pytest.raises(Unauthenticated, match=r"^the session timed out: sign in again$"):
        store.session_account(conn, quiet, T0 + timedelta(minutes=60), idle, absolute)
    for k in range(1, 37):                              # a request every 20 minutes for 12 hours
        at = T0 + timedelta(minutes=20 * k)
        with owner.begin() as conn:
            if at - T0 <= absolute:
                store.session_account(conn, busy, at, idle, absolute)
            else:
                with pytest.raises(Unauthenticated, match="timed out"):
                    store.session_account(conn, busy, at, idle, absolute)
    with owner.begin() as conn:
        store.end_session(conn, leaving, T0 + timedelta(minutes=1))
    with owner.begin() as conn, pytest.raises(Unauthenticated, match=r"^not signed in"):
        store.session_account(conn, leaving, T0 + timedelta(minutes=2), idle, absolute)


def test_a_disabled_account_is_refused_everywhere_at_once(owner: sa.Engine) -> None:
    make(owner, "rules_disabled")
    with owner.begin() as conn:
        _, token, _ = store.create_token(conn, "rules_disabled", 30, T0)
        session = store.open_session(conn, store.account(conn, "rules_disabled"), T0, None)
        store.disable(conn, "rules_disabled", T0 + timedelta(minutes=1))
    with pytest.raises(Unauthenticated, match=r"^account rules_disabled is disabled$"):
        sign_in(owner, "rules_disabled", GOOD, T0 + timedelta(minutes=2))
    with owner.begin() as conn:
        with pytest.raises(Unauthenticated, match="revoked"):
            store.sign_in_with_token(conn, token, T0 + timedelta(minutes=2))
        with pytest.raises(Unauthenticated, match=r"^not signed in"):
            store.session_account(conn, session, T0 + timedelta(minutes=2), timedelta(minutes=30), timedelta(hours=12))


def test_a_database_login_sees_its_scope_in_psql(owner: sa.Engine, db_url: str) -> None:
    """`user add --db-login`: the account logs in to PostgreSQL itself (QGIS on PostGIS) and row-level
    security gives it its scope there too."""
    a = ensure_account(db_url, "rules_psql_a", ("viewer",), enterprise=ENTERPRISE_A, db_login=True)
    with owner.connect() as conn:
        expected = conn.execute(sa.text("SELECT count(*) FILTER (WHERE enterprise_code = :a), count(*) FROM pipe"),
                                {"a": ENTERPRISE_A}).one()
    assert 0 < expected[0] < expected[1]
    url = make_url(db_url)

    def psql(user: str, password: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["psql", "-X", "-At", "-h", url.query["host"], "-U", user, "-d", url.database,
                               "-c", "SELECT count(*) FROM pipe"], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "PGPASSWORD": password})

    done = psql(a.db_role, password_of("rules_psql_a"))
    assert (done.returncode, done.stdout.strip()) == (0, str(expected[0])), done.stderr
    wrong = psql(a.db_role, "Not-The-Password-1")
    assert wrong.returncode == 2 and "password authentication failed" in wrong.stderr
    b = ensure_account(db_url, "rules_nologin_b", ("viewer",), enterprise=ENTERPRISE_B)
    refused = psql(b.db_role, password_of("rules_nologin_b"))          # no --db-login: no password login
    assert refused.returncode == 2 and f'Peer authentication failed for user "{b.db_role}"' in refused.stderr


def test_a_password_changed_on_the_web_is_the_database_logins_too(db_url: str, app_url: str) -> None:
    """The login path (qiwang_auth, not the owner) changes an account's password: its direct
    PostgreSQL login takes the new one (auth.set_account_login_password, migration 0020)."""
    a = ensure_account(db_url, "rules.psql.c", ("viewer",), enterprise=ENTERPRISE_A, db_login=True)
    app = get_engine(app_url)   # the app's engines switch roles per transaction (db/acting.py)
    with acting_as(AUTH_ROLE), app.begin() as conn:
        store.set_password(conn, a.name, "Pipe-Line-2027", datetime.now(UTC))
    url = make_url(db_url)

    def count(password: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["psql", "-X", "-At", "-h", url.query["host"], "-U", a.db_role, "-d", url.database,
                               "-c", "SELECT count(*) > 0 FROM pipe"], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "PGPASSWORD": password})

    new = count("Pipe-Line-2027")
    assert (new.returncode, new.stdout.strip()) == (0, "t"), new.stderr
    old = count(a.password)
    assert old.returncode == 2 and "password authentication failed" in old.stderr


def test_roles_change_through_the_store_and_a_dotted_name_is_an_account(owner: sa.Engine) -> None:
    """``zhang.san``: a valid name whose role (zhang.san@db) regrole's parser refused before 0020."""
    made = make(owner, "zhang.san", duties=("viewer",))
    with owner.begin() as conn:
        changed = store.set_duties(conn, "zhang.san", ("viewer", "gis_editor"), T0)
        assert changed.duties == ("viewer", "gis_editor") and changed.auth_version == made.auth_version + 1
        assert set(conn.execute(sa.text(
            "SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid "
            "WHERE m.member = (SELECT oid FROM pg_roles WHERE rolname = :r)"), {"r": made.db_role}).scalars()) == {
            "qiwang_account", "qiwang_enterprise_staff", "qiwang_viewer", "qiwang_gis_editor"}
        with pytest.raises(InvalidInput) as refused:
            store.set_duties(conn, "zhang.san", ("auditor",), T0)
        assert (refused.value.field, refused.value.reason) == ("roles", (
            "auditor is a separated duty (三员分立): its accounts are made with `qiwang user add` and never "
            "change roles"))
        store.disable(conn, "zhang.san", T0)
        with pytest.raises(Conflict, match=r"^account zhang\.san is disabled$"):
            store.set_duties(conn, "zhang.san", ("viewer",), T0)
