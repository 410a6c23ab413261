"""The audit log (schema `audit`, migration 0017): append events, read them, verify the hash chain.

Rows are written by the database: row triggers on the business tables and on auth.account /
auth.token record every insert, update and delete; `append` records what no table shows
(logins, failures, lockouts, logouts, tokens, account changes, reads of personal data, bulk
loads). Who the row names as actor is the database's decision: an account's role is always its
account; for another role (the login path, the CLI's owner) the `actor` given here, else the
setting ``qiwang.actor``, else ``operator`` (the owner) or the role's name.

Chain (checked by `verify`): each row's ``hash = H(prev_hash || canonical)`` with H = SM3
(GB/T 32905-2016) where PostgreSQL's pgcrypto has it, else SHA-256, named in the row's
`algorithm`; ``prev_hash`` is the previous row's hash (none for row 1), ids are consecutive from 1
and `audit.chain_head` holds the last id and hash. The canonical text joins these fields of the
row with ``|``, each as ``-`` when NULL, else ``<length in characters>:<text>``:

    id, at (UTC, ``YYYY-MM-DDTHH:MM:SS.ffffffZ``), actor, db_role, action, table_name,
    feature_code, changes (PostgreSQL's jsonb text), detail (likewise), request_id, client_addr,
    algorithm

The jsonb columns are read back as PostgreSQL prints them (``changes::text``), never re-serialised
here: that text is canonical for a stored jsonb.
"""
from __future__ import annotations

import getpass
import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from core.errors import InvalidInput

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
# The columns of audit.log, in the order of the canonical text (and of `Entry`).
_CANONICAL = ("id", "at", "actor", "db_role::text", "action", "table_name", "feature_code", "changes::text",
              "detail::text", "request_id", "client_addr", "algorithm")


@dataclass(frozen=True)
class Entry:
    """One row of the audit log (changes and detail decoded)."""

    id: int
    at: datetime
    actor: str
    db_role: str
    action: str
    table_name: str | None
    feature_code: str | None
    changes: Any
    detail: Any
    request_id: str | None
    client_addr: str | None
    algorithm: str

    def as_json(self) -> dict[str, Any]:
        """The entry as a JSON object (time in ISO 8601)."""
        return {"id": self.id, "at": self.at.isoformat(), "actor": self.actor, "db_role": self.db_role,
                "action": self.action, "table": self.table_name, "feature_code": self.feature_code,
                "changes": self.changes, "detail": self.detail, "request_id": self.request_id,
                "client_addr": self.client_addr}


# The name the CLI's operator gave with `./qiwang --as NAME` (None: the OS user's).
_operator_name: ContextVar[str | None] = ContextVar("operator_name", default=None)
OPERATOR_NAME = re.compile(r"[\w.@-]{1,64}")   # letters of any script, digits, _ . @ -


def name_operator(name: str | None) -> None:
    """Name the local operator for the rest of this CLI run (``./qiwang --as NAME``).

    Raises
    ------
    InvalidInput
        `name` is empty, longer than 64 characters or has characters other than letters, digits,
        ``_ . @ -`` (it is recorded in every audit row the run writes, and shown by ``audit list``).
    """
    if name is not None and not OPERATOR_NAME.fullmatch(name):
        raise InvalidInput("as", f"{name!r} is not an operator name (1-64 letters, digits, _ . @ -)")
    _operator_name.set(name)


def operator() -> str:
    """How the local operator (the CLI, as the owner) is named: ``operator:NAME`` of
    ``./qiwang --as NAME``, else ``operator:<OS user>``."""
    return f"operator:{_operator_name.get() or getpass.getuser()}"


def default_actor(conn: sa.Connection) -> str | None:
    """The CLI's operator when `conn` acts as the owner and nobody named an actor (else None: the
    database decides)."""
    named, owner = conn.execute(sa.text(
        "SELECT nullif(current_setting('qiwang.actor', true), ''), "
        "pg_has_role(audit.caller(), 'qiwang_owner', 'MEMBER')")).one()
    return operator() if named is None and owner else None


def attribute(conn: sa.Connection, actor: str | None) -> None:
    """Name the actor of what the rest of the transaction writes (row triggers included), for a
    role that is not an account's: the login path naming the account signing in, the CLI naming
    its operator. An account's role is always recorded as its account, whatever this says."""
    conn.execute(sa.text("SELECT set_config('qiwang.actor', :a, true)"), {"a": actor or ""})


def attribute_operator(conn: sa.Connection) -> None:
    """Name the CLI's operator as the actor of the transaction's writes when `conn` acts as the
    owner and nobody named one (an account's role is recorded as its account anyway)."""
    actor = default_actor(conn)
    if actor is not None:
        attribute(conn, actor)


def append(conn: sa.Connection, action: str, detail: dict[str, Any] | None = None, actor: str | None = None, *,
           client_addr: str | None = None, once_within: timedelta | None = None) -> int | None:
    """Record one event in `conn`'s transaction.

    Parameters
    ----------
    action
        What happened: login, login_failed, lockout, logout, account_add, account_disable,
        password_change, token_create, token_revoke, pii_read, import, … (lower case and ``_``).
    detail
        Anything else worth keeping (JSON); never a password, token or personal data in clear.
    actor
        Who, when `conn` does not act as an account's role (the database ignores it for one).
        Default: ``qiwang.actor``, else ``operator:<OS user>`` for the owner, else the role.
    client_addr
        The client's address, where the transaction has no ``qiwang.client_addr`` (the login path).
    once_within
        Record nothing when the same actor already has a row of this action this recent (logins
        of API clients, which sign every request).

    Returns
    -------
    int or None
        The new row's id; None when `once_within` found one.
    """
    if actor is None:
        actor = default_actor(conn)
    return conn.execute(sa.text(
        "SELECT audit.append(:action, CAST(:detail AS jsonb), :actor, :addr, CAST(:within AS interval))"),
        {"action": action, "detail": None if detail is None else json.dumps(detail, ensure_ascii=False, default=str),
         "actor": actor, "addr": client_addr,
         "within": None if once_within is None else f"{once_within.total_seconds()} seconds"}).scalar()


@contextmanager
def bulk(conn: sa.Connection, action: str, detail: dict[str, Any] | None = None,
         actor: str | None = None) -> Iterator[dict[str, Any]]:
    """A bulk load by the owner in `conn`'s transaction: its rows are not recorded one by one
    (``qiwang.bulk = 'on'``), one `action` row with `detail` (and what the block adds to the dict
    it is given, e.g. row counts) is appended at the end instead. For an account's role the
    setting changes nothing: its writes are recorded row by row all the same."""
    summary: dict[str, Any] = dict(detail or {})
    conn.execute(sa.text("SELECT set_config('qiwang.bulk', 'on', true)"))
    # No `finally`: after a failed statement the transaction is aborted and only its rollback
    # (which undoes the SET LOCAL too) may follow; another statement would hide the first error.
    yield summary
    conn.execute(sa.text("SELECT set_config('qiwang.bulk', 'off', true)"))
    append(conn, action, summary, actor)


def _since(value: str | date | datetime | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput("since", f"{value!r} is not an ISO 8601 date or time (2026-12-01, "
                                    "2026-12-01T08:00:00+08:00)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def entries(conn: sa.Connection, user: str | None = None, since: str | date | datetime | None = None,
            action: str | None = None, limit: int = DEFAULT_LIMIT) -> list[Entry]:
    """Rows of the audit log, newest first.

    Parameters
    ----------
    user
        Only this actor's (an account name, ``operator:<OS user>``, a role).
    since
        Only from this time on (ISO 8601 date or time; a date or a time without offset is UTC).
    action
        Only this action.
    limit
        At most this many (1 to MAX_LIMIT).

    Raises
    ------
    InvalidInput
        Fields ``since`` and ``limit``.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput("limit", f"{limit} is not from 1 to {MAX_LIMIT}")
    where: list[str] = []
    params: dict[str, object] = {"limit": limit}
    if user is not None:
        where.append("actor = :user")
        params["user"] = user
    if since is not None:
        where.append("at >= :since")
        params["since"] = _since(since)
    if action is not None:
        where.append("action = :action")
        params["action"] = action
    rows = conn.execute(sa.text(
        "SELECT id, at, actor, db_role::text, action, table_name, feature_code, changes, detail, request_id, "
        f"client_addr, algorithm FROM audit.log {'WHERE ' + ' AND '.join(where) if where else ''} "
        "ORDER BY id DESC LIMIT :limit"), params)
    return [Entry(*row) for row in rows]


def _field(value: object) -> str:
    if value is None:
        return "-"
    text = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if isinstance(value, datetime) else str(value)
    return f"{len(text)}:{text}"


def canonical(row: tuple) -> str:
    """The canonical text of a row given as the values of `_CANONICAL`, as the trigger audit.chain makes it."""
    return "|".join(_field(v) for v in row)


def row_hash(algorithm: str, prev_hash: bytes | None, row: tuple) -> bytes:
    """H(prev_hash || canonical(row)) with the row's algorithm (sm3 or sha256)."""
    digest = hashlib.new(algorithm)
    digest.update(prev_hash or b"")
    digest.update(canonical(row).encode("utf-8"))
    return digest.digest()


@dataclass(frozen=True)
class Verification:
    """What `verify_report` found."""

    ok: bool
    first_broken_id: int | None
    checked: int
    algorithms: tuple[str, ...]


def verify(conn: sa.Connection) -> tuple[bool, int | None, int]:
    """Recompute the chain from the stored columns.

    Returns
    -------
    (ok, first_broken_id, checked)
        Whether every row fits; the id of the first that does not (altered, or following a
        removed row; one past the last row when rows were removed from the end); how many rows
        were read.
    """
    report = verify_report(conn)
    return report.ok, report.first_broken_id, report.checked


def verify_report(conn: sa.Connection) -> Verification:
    """`verify`, with the digest algorithms of the rows read (the chain head's for an empty log)."""
    head = conn.execute(sa.text("SELECT last_id, last_hash, algorithm FROM audit.chain_head")).one()
    result = conn.execute(sa.text(f"SELECT {', '.join(_CANONICAL)}, prev_hash, hash FROM audit.log ORDER BY id"),
                          execution_options={"stream_results": True, "yield_per": 5000})
    expected_id, prev, checked, used = 1, None, 0, set()
    for row in result:
        checked += 1
        values, stored_prev, stored = tuple(row[:-2]), row[-2], row[-1]
        stored_prev = None if stored_prev is None else bytes(stored_prev)
        used.add(values[-1])
        try:
            fits = values[0] == expected_id and stored_prev == prev and \
                row_hash(values[-1], prev, values) == bytes(stored)
        except ValueError:   # an algorithm hashlib does not know: altered
            fits = False
        if not fits:
            result.close()
            return Verification(False, values[0], checked, tuple(sorted(used)))
        prev, expected_id = bytes(stored), expected_id + 1
    algorithms = tuple(sorted(used)) or (head[2],)
    if head[0] != expected_id - 1 or (None if head[1] is None else bytes(head[1])) != prev:
        return Verification(False, expected_id, checked, algorithms)
    return Verification(True, None, checked, algorithms)
