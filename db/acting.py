"""Which database role a transaction acts as: the signed-in account's, or one of the app's own.

The web server logs in as `qiwang_app`, the authenticator (migration 0016), which can do nothing
by itself. Every transaction an engine of db.engine begins takes the role of the current context
(`acting_as`), with SET LOCAL semantics (set_config(…, true)): the role and the limits end with
the transaction, so a pooled connection never carries one request's role into the next. A
transaction begun outside any context keeps the login's own rights: none for the authenticator
(fail closed), the owner's for the CLI.

The context is a ContextVar: each thread and each copied context (pygeoapi's job threads get a
copy) has its own.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import sqlalchemy as sa

SYSTEM_ROLE = "qiwang_system"    # the app's own reads of the whole network (topology, catalog, QA)
INGEST_ROLE = "qiwang_ingest"    # the telemetry ingest
AUTH_ROLE = "qiwang_auth"        # the login path: credentials, sessions, tokens


@dataclass(frozen=True)
class Acting:
    """A role and the settings (statement_timeout, work_mem, qiwang.*) of the transactions begun
    while it is current."""

    role: str
    settings: tuple[tuple[str, str], ...] = ()


_ACTING: ContextVar[Acting | None] = ContextVar("qiwang_acting", default=None)


def current() -> Acting | None:
    """The role the transactions begun now act as (None: the login's own)."""
    return _ACTING.get()


@contextmanager
def acting_as(role: str, **settings: str) -> Iterator[Acting]:
    """Transactions begun inside act as `role`, with `settings` (name → value; dots in names as
    double underscores, e.g. ``qiwang__request_id``) set for the transaction.

    Parameters
    ----------
    role
        A database role the login may SET ROLE to (an account's, SYSTEM_ROLE, INGEST_ROLE, AUTH_ROLE).
    **settings
        PostgreSQL settings for each transaction, e.g. statement_timeout='15s', work_mem='32MB'.
    """
    acting = Acting(role, tuple((name.replace("__", "."), value) for name, value in settings.items()))
    token = _ACTING.set(acting)
    try:
        yield acting
    finally:
        _ACTING.reset(token)


@contextmanager
def as_system() -> Iterator[None]:
    """Inside, transactions act as SYSTEM_ROLE when they would act as some role (an account's in a
    request), and keep the login's own rights otherwise (the owner's in the CLI): for the app's own
    reads of the whole network (the topology, the road graph) whoever asked for them."""
    if _ACTING.get() is None:
        yield
        return
    with acting_as(SYSTEM_ROLE):
        yield


@contextmanager
def system_within(conn: sa.Connection) -> Iterator[sa.Connection]:
    """Inside, the statements of `conn`'s open transaction act as SYSTEM_ROLE; after, as before.

    For a step of an analysis of the whole network in the middle of a request (a join that row-level
    security would make a sequential scan), without a second connection: about 0.1 ms instead of
    1 ms. Outside any context (the CLI, the owner) nothing changes. When the statements inside fail,
    the transaction is aborted and can only roll back, so it never reads more as the system.
    """
    now = _ACTING.get()
    if now is None:
        yield conn
        return
    conn.execute(sa.text("SELECT set_config('role', :r, true)"), {"r": SYSTEM_ROLE})
    try:
        yield conn
    finally:
        try:
            conn.execute(sa.text("SELECT set_config('role', :r, true)"), {"r": now.role})
        except sa.exc.DBAPIError:   # an aborted transaction: nothing more runs in it
            pass


def install(engine: sa.Engine) -> None:
    """Make every transaction `engine` begins act as the current context's role (once per engine)."""
    if not sa.event.contains(engine, "begin", _begin):
        sa.event.listen(engine, "begin", _begin)


def _begin(conn: sa.Connection) -> None:
    acting = _ACTING.get()
    if acting is None:
        return
    pairs = (("role", acting.role), *acting.settings)
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None  # a connection beginning a transaction is checked out of the pool
    cursor = dbapi.cursor()
    try:
        # One round trip for the role and every limit.
        cursor.execute("SELECT " + ", ".join(["set_config(%s, %s, true)"] * len(pairs)),
                       [value for pair in pairs for value in pair])
    finally:
        cursor.close()


def enter(role: str, **settings: str) -> object:
    """`acting_as` for hooks that begin and end in two calls (Flask's before and teardown
    request): returns the token to give `leave`."""
    return _ACTING.set(Acting(role, tuple((name.replace("__", "."), value) for name, value in settings.items())))


def leave(token: object) -> None:
    """End what `enter` began (the context as it was before)."""
    _ACTING.reset(token)  # type: ignore[arg-type]
