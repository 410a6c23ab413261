"""Accounts in the database (schema `auth`, migration 0016): create, change, sign in.

Each function takes a connection in a transaction and does its work in it, so that a caller's
failure leaves nothing half done. The CLI calls them as the owner; the web server's login path as
`qiwang_auth` (db.acting.AUTH_ROLE). An account's database role is made and changed only by
`auth.create_account_role`, which grants nothing but Qiwang's groups.

Sign-in rules (GB/T 22239-2019 level 2): 5 failed passwords within 15 minutes lock the account for
15 minutes (a correct password is refused too while locked); a disabled account, an expired or
revoked token and an ended session are refused at once; a password must be changed at the first
login and after `password_max_age_days`.

Audit (accounts/audit.py): every change here is recorded twice over, by the row triggers of
auth.account and auth.token (the changed fields, secrets never) and by one event row
(account_add, account_disable, password_change, token_create, token_revoke) naming who did it:
`created_by`, else the CLI's operator or the account itself. Sign-ins: every failure
(login_failed, with the reason; the typed name only when it cannot be a password) and every
lockout; a web login (login, method session) and a logout each time; password and token logins of
API clients (which sign every request, QGIS some hundreds a session) at most once per account
every LOGIN_RECORD_GAP (30 minutes, the web session's idle time): a password login when the
account has no login row that recent, a token login when the token was not used for that long.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from accounts import audit, credentials, passwords
from core.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated

DUTIES = ("viewer", "dispatcher", "gis_editor", "safety_officer", "field_worker", "enterprise_admin",
          "regulator", "pii", "sysadmin", "security_admin", "auditor")
# 三员分立: the system, security and audit administrators read no business data and hold no
# business duty beside their own.
SEPARATED_DUTIES = ("sysadmin", "security_admin", "auditor")
NAME_RULE = re.compile(r"^[a-z][a-z0-9_.-]{2,31}$")   # CHECK account_name_is_login (migration 0016)
LOCKOUT_FAILURES = 5
LOCKOUT_WINDOW = timedelta(minutes=15)
LOCKOUT = timedelta(minutes=15)
MAX_ROLE_NAME = 63   # PostgreSQL's NAMEDATALEN - 1
ACCOUNT_TABLES = ("auth.session", "auth.token", "auth.login_failure", "auth.password_history", "auth.account")
LOGIN_RECORD_GAP = timedelta(minutes=30)   # API clients' logins are recorded at most this often


@dataclass(frozen=True)
class Account:
    """One account as the rest of Qiwang sees it (no credential in it)."""

    id: int
    name: str
    display_name: str
    db_role: str
    enterprise_code: str | None
    admin_code: str | None
    duties: tuple[str, ...]
    must_change_password: bool
    password_changed_at: datetime | None
    disabled: bool
    db_login: bool
    auth_version: int

    @property
    def home(self) -> str:
        """``enterprise 2103020001`` or ``division 210311``."""
        return f"enterprise {self.enterprise_code}" if self.enterprise_code else f"division {self.admin_code}"

    def password_expired(self, now: datetime, max_age_days: float) -> bool:
        """Whether the password is older than `max_age_days` at `now`."""
        changed = self.password_changed_at
        return changed is None or now - changed > timedelta(days=max_age_days)

    def state(self, now: datetime, max_age_days: float) -> str:
        """``disabled``, ``must change password``, ``password expired`` or ``active``."""
        if self.disabled:
            return "disabled"
        if self.must_change_password:
            return "must change password"
        return "password expired" if self.password_expired(now, max_age_days) else "active"


_COLUMNS = ("id, name, display_name, db_role, enterprise_code, admin_code, duties, must_change_password, "
            "password_changed_at, disabled_at IS NOT NULL, db_login, auth_version")


def _account(row: sa.Row | tuple) -> Account:
    values = list(row)
    values[6] = tuple(values[6])
    return Account(*values)


def role_name(name: str, database: str) -> str:
    """The database role of account `name` in `database`: ``name@database`` (roles belong to the
    cluster, which may hold several Qiwang databases), the database part hashed when too long."""
    role = f"{name}@{database}"
    return role if len(role) <= MAX_ROLE_NAME else f"{name}@{hashlib.sha1(database.encode()).hexdigest()[:12]}"


def groups_of(duties: tuple[str, ...], division: bool, db_login: bool) -> list[str]:
    """The Qiwang roles an account's role is a member of: every account's, its scope kind's, its
    duties' (and the direct-login group)."""
    kind = "qiwang_division_staff" if division else "qiwang_enterprise_staff"
    return ["qiwang_account", kind, *(f"qiwang_{d}" for d in duties), *(["qiwang_db_login"] if db_login else [])]


def check_duties(duties: tuple[str, ...], division: bool, *, field: str = "role") -> None:
    """Refuse no duty, unknown or repeated duties, a regulator outside a division, and separated
    duties mixed with others.

    Raises
    ------
    InvalidInput
        Named `field` (``role`` for the CLI's option, ``roles`` for the JSON field).
    """
    if not duties:
        raise InvalidInput(field, "at least one role is needed")
    unknown = [d for d in duties if d not in DUTIES]
    if unknown:
        raise InvalidInput(field, f"unknown role {unknown[0]!r} (roles: {', '.join(DUTIES)})")
    if len(set(duties)) < len(duties):
        raise InvalidInput(field, "a role is named twice")
    if "regulator" in duties and not division:
        raise InvalidInput(field, "a regulator belongs to an administrative division, not an enterprise")
    separated = [d for d in duties if d in SEPARATED_DUTIES]
    if separated and len(duties) > 1:
        raise InvalidInput(field, f"{separated[0]} is a separated duty (三员分立): it cannot be combined with "
                                  "other roles")


def add_account(conn: sa.Connection, name: str, duties: tuple[str, ...], *, enterprise: str | None = None,
                division: str | None = None, display_name: str | None = None, password: str | None = None,
                db_login: bool = False, created_by: str, now: datetime) -> tuple[Account, str | None]:
    """Create an account and its database role.

    Parameters
    ----------
    conn
        A connection of the owner (or of a role allowed to run auth.create_account_role).
    name
        Login name: 3-32 characters, lower-case ASCII letters first, then letters, digits, ``_.-``.
    duties
        Its roles (DUTIES), combinable except the separated duties.
    enterprise, division
        Exactly one: the enterprise code of staff, or the division code of regulators.
    display_name
        The person's name (default: the login name).
    password
        The first password (checked against the rules); None: a random one is made and returned.
        Either way it must be changed at the first login.
    db_login
        Also let the account log in to PostgreSQL directly (QGIS on PostGIS) with the same password.
    created_by
        Who creates it (an account name or ``operator:<OS user>``).
    now
        The time of the change (timezone-aware).

    Returns
    -------
    (Account, str or None)
        The account, and the first password when it was made here (shown once, stored nowhere).
    """
    if not NAME_RULE.match(name):
        raise InvalidInput("name", f"{name!r}: 3-32 characters, a lower-case letter first, then lower-case "
                                   "letters, digits, '_', '.', '-'")
    if (enterprise is None) == (division is None):
        raise InvalidInput("enterprise", "give exactly one of --enterprise CODE and --division CODE")
    check_duties(duties, division is not None)
    made = password is None
    if password is None:
        password = passwords.first_password()
    passwords.check_password(password, name)
    if conn.execute(sa.text("SELECT 1 FROM auth.account WHERE name = :n"), {"n": name}).first():
        raise Conflict(f"account {name} exists already")
    if enterprise is not None and not conn.execute(
            sa.text("SELECT 1 FROM enterprise WHERE enterprise_code = :c"), {"c": enterprise}).first():
        raise InvalidInput("enterprise", f"no enterprise {enterprise}")
    if division is not None and not conn.execute(
            sa.text("SELECT 1 FROM admin_division WHERE admin_code = :c"), {"c": division}).first():
        raise InvalidInput("division", f"no administrative division {division}")
    audit.attribute(conn, created_by)
    database = conn.execute(sa.text("SELECT current_database()")).scalar_one()
    role = role_name(name, database)
    _set_role(conn, role, duties, division is not None, password if db_login else None)
    hashed = passwords.hash_password(password)
    row = conn.execute(sa.text(f"""
        INSERT INTO auth.account (name, display_name, db_role, enterprise_code, admin_code, duties, password_hash,
                                  password_changed_at, must_change_password, db_login, created_at, created_by)
        VALUES (:name, :display, :role, :enterprise, :division, :duties, :hash, :now, true, :db_login, :now, :by)
        RETURNING {_COLUMNS}"""),
        {"name": name, "display": display_name or name, "role": role, "enterprise": enterprise,
         "division": division, "duties": list(duties), "hash": hashed, "now": now, "db_login": db_login,
         "by": created_by}).one()
    conn.execute(sa.text("INSERT INTO auth.password_history (account_id, hash, set_at) VALUES (:a, :h, :now)"),
                 {"a": row[0], "h": hashed, "now": now})
    audit.append(conn, "account_add", {"name": name, "roles": list(duties), "enterprise": enterprise,
                                       "division": division, "db_login": db_login}, created_by)
    return _account(row), password if made else None


def _set_role(conn: sa.Connection, role: str, duties: tuple[str, ...], division: bool,
              login_password: str | None) -> None:
    """Make `role` an account's role with the groups of `duties`: through auth.set_account_groups
    (the login path's, migration 0020) for an account of business duties without a database
    login, through the owner's auth.create_account_role for a direct login or a separated duty."""
    if login_password is None and not set(duties) & set(SEPARATED_DUTIES):
        conn.execute(sa.text("SELECT auth.set_account_groups(:role, :duties, :division)"),
                     {"role": role, "duties": list(duties), "division": division})
        return
    verifier = None if login_password is None else _verifier(conn, role, login_password)
    conn.execute(sa.text("SELECT auth.create_account_role(:role, :groups, :verifier)"),
                 {"role": role, "groups": groups_of(duties, division, login_password is not None),
                  "verifier": verifier})


def _verifier(conn: sa.Connection, role: str, password: str) -> str:
    """The SCRAM verifier of `password` for `role`, made by libpq: the password itself never
    reaches the server's logs."""
    raw = conn.connection.driver_connection
    assert raw is not None  # a connection in a transaction is checked out
    return raw.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256").decode()


def account(conn: sa.Connection, name: str) -> Account:
    """The account called `name` (NotFound otherwise)."""
    row = conn.execute(sa.text(f"SELECT {_COLUMNS} FROM auth.account WHERE name = :n"), {"n": name}).first()
    if row is None:
        raise NotFound(f"no account {name}")
    return _account(row)


def accounts(conn: sa.Connection) -> list[Account]:
    """Every account, by name."""
    return [_account(r) for r in conn.execute(sa.text(f"SELECT {_COLUMNS} FROM auth.account ORDER BY name"))]


def disable(conn: sa.Connection, name: str, now: datetime, *, by: str | None = None) -> Account:
    """Disable account `name`: it can no longer sign in, nor log in to PostgreSQL; its sessions
    end and its tokens are revoked. `by`: the account doing it (default: the CLI's operator)."""
    found = account(conn, name)
    _attribute(conn, by)
    conn.execute(sa.text("UPDATE auth.account SET disabled_at = coalesce(disabled_at, :now), "
                         "auth_version = auth_version + 1 WHERE id = :id"), {"now": now, "id": found.id})
    _end_everything(conn, found.id, now)
    if found.db_login:
        conn.execute(sa.text("SELECT auth.disable_account_login(:role)"), {"role": found.db_role})
    audit.append(conn, "account_disable", {"name": name}, by)
    return account(conn, name)


def set_duties(conn: sa.Connection, name: str, duties: tuple[str, ...], now: datetime, *,
               by: str | None = None) -> Account:
    """Give account `name` the roles `duties` instead of its own (its scope stays: enterprise or
    division). Signed-in sessions and cached credentials see the change at their next request.

    Raises
    ------
    InvalidInput
        Field ``roles``: unknown, not for its scope kind, or a separated duty on either side
        (三员分立: those accounts are made by ``user add`` and never re-roled).
    Conflict
        The account is disabled.
    """
    found = account(conn, name)
    division = found.admin_code is not None
    check_duties(duties, division, field="roles")
    separated = [d for d in (*found.duties, *duties) if d in SEPARATED_DUTIES]
    if separated:
        raise InvalidInput("roles", f"{separated[0]} is a separated duty (三员分立): its accounts are made with "
                                    "`qiwang user add` and never change roles")
    if found.disabled:
        raise Conflict(f"account {name} is disabled")
    if tuple(duties) == found.duties:
        return found
    _attribute(conn, by)
    conn.execute(sa.text("UPDATE auth.account SET duties = :duties, auth_version = auth_version + 1 WHERE id = :id"),
                 {"duties": list(duties), "id": found.id})
    _set_role(conn, found.db_role, duties, division, None)
    audit.append(conn, "role_change", {"name": name, "before": list(found.duties), "after": list(duties)}, by)
    return account(conn, name)


def _attribute(conn: sa.Connection, by: str | None) -> None:
    """Name the actor of the transaction's row changes: `by`, else the CLI's operator."""
    if by is not None:
        audit.attribute(conn, by)
    else:
        audit.attribute_operator(conn)


def _end_everything(conn: sa.Connection, account_id: int, now: datetime) -> None:
    conn.execute(sa.text("UPDATE auth.session SET ended_at = :now WHERE account_id = :id AND ended_at IS NULL"),
                 {"now": now, "id": account_id})
    conn.execute(sa.text("UPDATE auth.token SET revoked_at = :now WHERE account_id = :id AND revoked_at IS NULL"),
                 {"now": now, "id": account_id})


def set_password(conn: sa.Connection, name: str, new_password: str, now: datetime, *,
                 must_change: bool = False) -> Account:
    """Give account `name` a new password (checked against the rules and the last 5).

    Parameters
    ----------
    must_change
        True when an administrator sets it: the owner must change it at the next login.
        False when the owner changes their own.
    """
    found = account(conn, name)
    history = tuple(conn.execute(sa.text(
        "SELECT hash FROM auth.password_history WHERE account_id = :id ORDER BY set_at DESC LIMIT :n"),
        {"id": found.id, "n": passwords.HISTORY}).scalars())
    passwords.check_password(new_password, name, history)
    if must_change:
        audit.attribute_operator(conn)
    else:
        audit.attribute(conn, name)   # the account changes its own
    hashed = passwords.hash_password(new_password)
    conn.execute(sa.text("""
        UPDATE auth.account SET password_hash = :hash, password_changed_at = :now, must_change_password = :must,
               locked_until = NULL, auth_version = auth_version + 1 WHERE id = :id"""),
        {"hash": hashed, "now": now, "must": must_change, "id": found.id})
    conn.execute(sa.text("INSERT INTO auth.password_history (account_id, hash, set_at) VALUES (:a, :h, :now)"),
                 {"a": found.id, "h": hashed, "now": now})
    conn.execute(sa.text("UPDATE auth.session SET ended_at = :now WHERE account_id = :id AND ended_at IS NULL"),
                 {"now": now, "id": found.id})
    if found.db_login and not found.disabled:
        conn.execute(sa.text("SELECT auth.set_account_login_password(:role, :verifier)"),
                     {"role": found.db_role, "verifier": _verifier(conn, found.db_role, new_password)})
    audit.append(conn, "password_change", {"name": name, "set_by": "administrator" if must_change else "self"},
                 None if must_change else name)
    return account(conn, name)


def create_token(conn: sa.Connection, name: str, days: float, now: datetime) -> tuple[str, str, datetime]:
    """A new API token for account `name`, valid for `days`: (id, token, expires_at); the token is
    shown once, only its hash is kept."""
    found = account(conn, name)
    if found.disabled:
        raise Conflict(f"account {name} is disabled")
    if not 0 < days <= 3650:
        raise InvalidInput("expires", f"{days:g} is not a number of days from 1 to 3650")
    audit.attribute_operator(conn)
    token_id, token = credentials.new_token()
    expires = now + timedelta(days=days)
    conn.execute(sa.text("INSERT INTO auth.token (id, account_id, secret_hash, created_at, expires_at) "
                         "VALUES (:id, :a, :h, :now, :exp)"),
                 {"id": token_id, "a": found.id, "h": credentials.digest(token), "now": now, "exp": expires})
    audit.append(conn, "token_create", {"name": name, "token_id": token_id, "expires_at": expires.isoformat()})
    return token_id, token, expires


def revoke_token(conn: sa.Connection, name: str, token_id: str, now: datetime) -> None:
    """Revoke token `token_id` of account `name` (NotFound when it has no such token)."""
    found = account(conn, name)
    audit.attribute_operator(conn)
    done = conn.execute(sa.text("UPDATE auth.token SET revoked_at = coalesce(revoked_at, :now) "
                                "WHERE id = :id AND account_id = :a"), {"now": now, "id": token_id, "a": found.id})
    if done.rowcount == 0:
        raise NotFound(f"account {name} has no token {token_id}")
    audit.append(conn, "token_revoke", {"name": name, "token_id": token_id})


def tokens(conn: sa.Connection, name: str) -> list[dict]:
    """The tokens of account `name` (id, created, expires, revoked, last used), newest first."""
    found = account(conn, name)
    rows = conn.execute(sa.text("SELECT id, created_at, expires_at, revoked_at, last_used_at FROM auth.token "
                                "WHERE account_id = :a ORDER BY created_at DESC"), {"a": found.id}).mappings()
    return [dict(r) for r in rows]


# --- signing in --------------------------------------------------------------------------------


def sign_in_with_password(conn: sa.Connection, name: str, password: str, now: datetime,
                          client_addr: str | None = None) -> Account:
    """The account whose name and password these are; every failure is counted and may lock it.

    Raises
    ------
    Unauthenticated
        Unknown name, wrong password, disabled or locked account. The message does not tell an
        unknown name from a wrong password.
    """
    row = conn.execute(sa.text(f"SELECT {_COLUMNS}, password_hash, locked_until FROM auth.account "
                               "WHERE name = :n FOR UPDATE"), {"n": name}).first()
    if row is None:
        passwords.verify_password(_DUMMY_HASH, password)   # as slow as a real check: no name oracle
        audit.append(conn, "login_failed", {"method": "password", "reason": "unknown account",
                                            "name": _typed_name(name)}, "(unknown)", client_addr=client_addr)
        raise Unauthenticated("wrong account name or password")
    found, password_hash, locked_until = _account(row[:12]), row[12], row[13]
    audit.attribute(conn, found.name)   # the trigger rows of what follows (lockout, rehash)
    if found.disabled:
        _failed(conn, found, "disabled", client_addr)
        raise Unauthenticated(f"account {name} is disabled")
    if locked_until is not None and locked_until > now:
        _failed(conn, found, "locked", client_addr)
        raise Unauthenticated(f"account {name} is locked until {locked_until:%Y-%m-%d %H:%M:%S %Z} after "
                              f"{LOCKOUT_FAILURES} failed logins")
    if not passwords.verify_password(password_hash, password):
        _failed(conn, found, "wrong password", client_addr)
        _count_failure(conn, found, now, client_addr)
        raise Unauthenticated("wrong account name or password")
    if passwords.needs_rehash(password_hash):
        conn.execute(sa.text("UPDATE auth.account SET password_hash = :h WHERE id = :id"),
                     {"h": passwords.hash_password(password), "id": found.id})
    audit.append(conn, "login", {"method": "password"}, found.name, client_addr=client_addr,
                 once_within=LOGIN_RECORD_GAP)
    return found


def _typed_name(name: str) -> str:
    """A name typed at a failed login, for the audit log, unless it could be a password typed in
    the wrong field (three classes of characters)."""
    if NAME_RULE.match(name) and passwords.classes(name) < passwords.MIN_CLASSES:
        return name
    return "(withheld: could be a password)"


def _failed(conn: sa.Connection, found: Account, reason: str, client_addr: str | None,
            method: str = "password") -> None:
    audit.append(conn, "login_failed", {"method": method, "reason": reason}, found.name, client_addr=client_addr)


_DUMMY_HASH = passwords.hash_password("an unknown account's password")


def _count_failure(conn: sa.Connection, found: Account, now: datetime, client_addr: str | None) -> None:
    conn.execute(sa.text("INSERT INTO auth.login_failure (account_id, at, client_addr) VALUES (:a, :now, :addr)"),
                 {"a": found.id, "now": now, "addr": client_addr})
    recent = conn.execute(sa.text("SELECT count(*) FROM auth.login_failure WHERE account_id = :a AND at > :since"),
                          {"a": found.id, "since": now - LOCKOUT_WINDOW}).scalar_one()
    if recent >= LOCKOUT_FAILURES:
        conn.execute(sa.text("UPDATE auth.account SET locked_until = :until WHERE id = :a"),
                     {"until": now + LOCKOUT, "a": found.id})
        conn.execute(sa.text("DELETE FROM auth.login_failure WHERE account_id = :a"), {"a": found.id})
        audit.append(conn, "lockout", {"failures": int(recent), "until": (now + LOCKOUT).isoformat()}, found.name,
                     client_addr=client_addr)


def sign_in_with_token(conn: sa.Connection, token: str, now: datetime) -> Account:
    """The account of an API token that is well formed, known, unexpired and not revoked."""
    token_id = credentials.parse_token(token)
    row = None if token_id is None else conn.execute(sa.text(
        "SELECT t.secret_hash, t.expires_at, t.revoked_at, a.name, t.last_used_at FROM auth.token t "
        "JOIN auth.account a ON a.id = t.account_id WHERE t.id = :id"), {"id": token_id}).first()
    if row is None or not credentials.same(bytes(row[0]), credentials.digest(token)):
        # a known id with a wrong secret names its account (the id is no secret, what follows it is)
        audit.append(conn, "login_failed", {"method": "token", "reason": "unknown token",
                                            "token_id": token_id if row is not None else None},
                     "(unknown)" if row is None else row[3])
        raise Unauthenticated("unknown API token")
    found = account(conn, row[3])
    if row[2] is not None:
        _failed(conn, found, f"token {token_id} revoked", None, "token")
        raise Unauthenticated("this API token was revoked")
    if row[1] <= now:
        _failed(conn, found, f"token {token_id} expired", None, "token")
        raise Unauthenticated(f"this API token expired at {row[1]:%Y-%m-%d %H:%M:%S %Z}")
    if found.disabled:
        _failed(conn, found, "disabled", None, "token")
        raise Unauthenticated(f"account {found.name} is disabled")
    if row[4] is None or now - row[4] > LOGIN_RECORD_GAP:
        audit.append(conn, "login", {"method": "token", "token_id": token_id}, found.name)
    conn.execute(sa.text("UPDATE auth.token SET last_used_at = :now WHERE id = :id "
                         "AND (last_used_at IS NULL OR last_used_at < :now - interval '1 minute')"),
                 {"now": now, "id": token_id})
    return found


def open_session(conn: sa.Connection, found: Account, now: datetime, client_addr: str | None) -> str:
    """A new web session for `found`: the cookie value (only its hash is stored)."""
    session_id = credentials.new_session_id()
    conn.execute(sa.text("INSERT INTO auth.session (id_hash, account_id, created_at, last_seen_at, client_addr) "
                         "VALUES (:h, :a, :now, :now, :addr)"),
                 {"h": credentials.digest(session_id), "a": found.id, "now": now, "addr": client_addr})
    audit.append(conn, "login", {"method": "session"}, found.name, client_addr=client_addr)
    return session_id


def session_account(conn: sa.Connection, session_id: str, now: datetime, idle: timedelta,
                    absolute: timedelta) -> Account:
    """The account of a live web session; one idle for `idle` or older than `absolute` ends."""
    row = conn.execute(sa.text("SELECT s.account_id, s.created_at, s.last_seen_at, s.ended_at, a.name "
                               "FROM auth.session s JOIN auth.account a ON a.id = s.account_id "
                               "WHERE s.id_hash = :h"), {"h": credentials.digest(session_id)}).first()
    if row is None or row[3] is not None:
        raise Unauthenticated("not signed in (or signed out)")
    if now - row[2] > idle or now - row[1] > absolute:
        conn.execute(sa.text("UPDATE auth.session SET ended_at = :now WHERE id_hash = :h"),
                     {"now": now, "h": credentials.digest(session_id)})
        audit.append(conn, "logout", {"reason": "timeout"}, row[4])
        raise Unauthenticated("the session timed out: sign in again")
    found = account(conn, row[4])
    if found.disabled:
        raise Unauthenticated(f"account {found.name} is disabled")
    if now - row[2] > timedelta(minutes=1):   # written at most once a minute
        conn.execute(sa.text("UPDATE auth.session SET last_seen_at = :now WHERE id_hash = :h"),
                     {"now": now, "h": credentials.digest(session_id)})
    return found


def end_session(conn: sa.Connection, session_id: str, now: datetime) -> None:
    """Sign out: the session ends (a later request with its cookie gets 401)."""
    ended = conn.execute(sa.text(
        "UPDATE auth.session s SET ended_at = :now FROM auth.account a "
        "WHERE s.id_hash = :h AND s.ended_at IS NULL AND a.id = s.account_id RETURNING a.name"),
        {"now": now, "h": credentials.digest(session_id)}).scalar()
    if ended is not None:
        audit.append(conn, "logout", {"reason": "signed out"}, ended)


def must_act_first(found: Account, now: datetime, max_age_days: float) -> None:
    """Refuse anything but a password change while the password must be changed.

    Raises
    ------
    Forbidden
        At the first login, after an administrator set the password, or when it is too old.
    """
    if found.must_change_password:
        raise Forbidden("the password must be changed first (first login or set by an administrator): "
                        "sign in on the web page or run ./qiwang user passwd")
    if found.password_expired(now, max_age_days):
        raise Forbidden(f"the password is older than {max_age_days:g} days and must be changed first")


def remove_accounts(conn: sa.Connection) -> int:
    """Drop every account's database role (the rows go with the tables the caller empties: ACCOUNT_TABLES);
    for a database about to be replaced or dropped. Returns how many there were."""
    roles = conn.execute(sa.text("SELECT db_role FROM auth.account")).scalars().all()
    conn.execute(sa.text("UPDATE jobs SET owner_role = 'qiwang_system' WHERE owner_role = ANY (:r)"), {"r": roles})
    for role in roles:
        conn.execute(sa.text("SELECT auth.drop_account_role(:r)"), {"r": role})
    return len(roles)
