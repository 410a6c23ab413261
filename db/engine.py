"""Which database Qiwang talks to, as which role, and engines for it.

The database_url setting (DATABASE_URL, core.settings) wins when set; otherwise the project-local
embedded cluster is started and used. Two URLs, two roles (migration 0011):

- database_url(): the application (web server, telemetry ingest, analyses), as `qiwang_app`, which
  owns nothing and is no superuser. External database: the app_database_url setting
  (QIWANG_APP_DATABASE_URL) when set (a login of qiwang_app, e.g. `postgresql://qiwang_app:…@host/db`),
  else database_url itself.
- owner_url(): migrations and the operator's bulk commands (load-demo, import, db reset), as the
  cluster's superuser, which acts as `qiwang_owner`. External database: database_url.
"""

from __future__ import annotations

import functools
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from core.errors import QiwangError
from core.settings import Settings, load_settings
from db import acting
from db.cluster import APP_ROLE, EmbeddedCluster

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DRIVER = "postgresql+psycopg"


def normalise_url(url: str, name: str = "DATABASE_URL") -> str:
    """Accept postgres://, postgresql:// (what most tools print) and pin the psycopg 3 driver.

    Parameters
    ----------
    url
        A database URL.
    name
        What to call it in a message about a bad URL (the setting it came from).
    """
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            url = f"{DRIVER}://{url[len(prefix):]}"
    try:
        parsed = make_url(url)
        driver, _ = parsed.drivername, parsed.port  # the port is parsed lazily: check it now
    except (sa.exc.ArgumentError, ValueError):
        raise QiwangError(f"{name} is not a database URL: {url!r}") from None
    if driver != DRIVER:
        raise QiwangError(f"{name} must point at PostgreSQL with PostGIS (postgresql://...), not {driver}://")
    return url


def database_url(settings: Settings | None = None) -> str:
    """The application's SQLAlchemy URL (role qiwang_app), starting the embedded cluster when no
    database_url is set; `settings` default to the environment's, read now."""
    return _url(settings or load_settings(), owner=False)


def owner_url(settings: Settings | None = None) -> str:
    """The URL that migrations and bulk loads use (they create, alter and own the schema), starting
    the embedded cluster when no database_url is set; `settings` default to the environment's."""
    return _url(settings or load_settings(), owner=True)


def _url(settings: Settings, owner: bool) -> str:
    if settings.database_url:
        key = "app_database_url" if settings.app_database_url and not owner else "database_url"
        return normalise_url(getattr(settings, key), settings.name_of(key))
    cluster = EmbeddedCluster(PROJECT_ROOT)
    cluster.up()
    return cluster.url() if owner else cluster.url(role=APP_ROLE)


def shown(url: str) -> str:
    """The URL with any password masked, for messages (unchanged, so readable, when it has none)."""
    parsed = make_url(url)
    return url if parsed.password is None else parsed.render_as_string(hide_password=True)


@functools.cache
def _engine(url: str) -> sa.Engine:
    # pool_size covers the web server's threads (waitress: 8): a connection closed after a burst of
    # tile requests would cost ≈ 100 ms to reopen (PostGIS rebuilds its PROJ transformations).
    engine = sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10,
                              connect_args={"connect_timeout": 10})
    acting.install(engine)  # each transaction takes the role of its context (db/acting.py)
    return engine


def get_engine(url: str | None = None) -> sa.Engine:
    """One pooled engine per URL for the whole process (default: database_url())."""
    return _engine(url or database_url())


def check_reachable(url: str) -> None:
    """Fail fast with one readable line when the database cannot be reached."""
    probe = sa.create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 3})
    try:
        with probe.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.DBAPIError as exc:
        first = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc.orig).__name__
        raise QiwangError(f"cannot reach the database at {shown(url)}: {first}") from None
    finally:
        probe.dispose()


def check_authenticator(url: str) -> None:
    """Refuse a web server login that would read past row-level security.

    The app must log in as the authenticator (`qiwang_app`, migration 0011), which reads nothing by
    itself: every request then acts as its account's role, and a transaction begun outside any
    account fails closed. A superuser, a BYPASSRLS role or one owning the tables would instead
    read every enterprise's rows wherever a code path forgot to take a role. That happens with an
    external DATABASE_URL and no QIWANG_APP_DATABASE_URL (the app then logs in as the owner).

    Raises
    ------
    QiwangError
        Naming the login, what it may do, and the setting that fixes it.
    """
    with sa.create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 10}).connect() as conn:
        login, superuser, bypass, owner = conn.execute(sa.text(
            """SELECT r.rolname, r.rolsuper, r.rolbypassrls,
                      EXISTS (SELECT FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace
                                 AND c.relkind IN ('r', 'p') AND pg_has_role(r.oid, c.relowner, 'USAGE'))
                 FROM pg_roles r WHERE r.rolname = session_user""")).one()
    why = [what for what, holds in (("is a superuser", superuser), ("bypasses row-level security", bypass),
                                    ("owns the tables", owner)) if holds]
    if why:
        raise QiwangError(f"the web server would log in as {login}, which {' and '.join(why)}: every account's "
                          f"scope would depend on each code path taking the account's role. Set "
                          f"QIWANG_APP_DATABASE_URL to a login of {APP_ROLE} (e.g. ALTER ROLE {APP_ROLE} LOGIN "
                          f"PASSWORD '…' as the owner, then postgresql://{APP_ROLE}:…@host/db)")


def ensure_database(url: str) -> None:
    """Reachable, and PostGIS enabled (the schema's first requirement)."""
    check_reachable(url)
    try:
        with get_engine(url).begin() as conn:
            conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS postgis"))
    except sa.exc.DBAPIError as exc:
        first = str(exc.orig).strip().splitlines()[0]
        raise QiwangError(f"cannot enable PostGIS in {shown(url)}: {first}") from None
