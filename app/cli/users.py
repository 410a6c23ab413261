"""`qiwang user …`: accounts, their roles and scopes, passwords and API tokens (accounts/store.py).

The CLI is the local operator's: it runs as the database owner and records its changes as
``operator:<OS user>``, or ``operator:NAME`` after ``./qiwang --as NAME``.
"""
from __future__ import annotations

import sys
from datetime import UTC, datetime

import click

from accounts.audit import operator
from app.cli.common import ready_database, settings
from app.cli.format import shown
from app.cli.root import command_family

user = command_family("user", "Accounts: add, list, disable, passwords, API tokens.")


def _owner_engine():
    from db.engine import get_engine

    return get_engine(ready_database(owner=True))


def _read_password(from_stdin: bool, prompt: str) -> str | None:
    if from_stdin:
        line = sys.stdin.readline().rstrip("\n")
        return line or None
    return None if prompt == "" else click.prompt(prompt, hide_input=True, confirmation_prompt=True)


@user.command("add")
@click.argument("name")
@click.option("--role", "roles", required=True,
              help="Roles, comma-separated: viewer, dispatcher, gis_editor, safety_officer, field_worker, "
                   "enterprise_admin, regulator, pii; or one of sysadmin, security_admin, auditor alone.")
@click.option("--enterprise", help="Enterprise code (企业唯一编码) of enterprise staff.")
@click.option("--division", help="Administrative division code (行政区划代码) of regulators.")
@click.option("--display-name", help="The person's name (default: NAME).")
@click.option("--password-stdin", is_flag=True, help="Read the first password from standard input "
                                                     "(default: a random one, printed once).")
@click.option("--db-login", is_flag=True, help="Also allow a direct PostgreSQL login (QGIS on PostGIS) "
                                               "with the same password and the same scope.")
def user_add(name: str, roles: str, enterprise: str | None, division: str | None, display_name: str | None,
             password_stdin: bool, db_login: bool) -> None:
    """Create account NAME; it must change its password at the first login."""
    from accounts.store import add_account

    duties = tuple(r.strip() for r in roles.split(",") if r.strip())
    password = _read_password(password_stdin, "")
    with _owner_engine().begin() as conn:
        account, first = add_account(conn, name, duties, enterprise=enterprise, division=division,
                                     display_name=display_name, password=password, db_login=db_login,
                                     created_by=operator(), now=datetime.now(UTC))
    click.echo(f"account {account.name}: {', '.join(account.duties)} of {account.home}; "
               f"database role {account.db_role}{' (login allowed)' if account.db_login else ''}")
    if first:
        click.echo(f"first password (shown once; to be changed at the first login): {first}")


@user.command("list")
def user_list() -> None:
    """Every account with its roles, scope and state."""
    from accounts.store import accounts

    with _owner_engine().connect() as conn:
        found = accounts(conn)
    click.echo(f"{'name':<20}{'roles':<34}{'scope':<22}state")
    now = datetime.now(UTC)
    for a in found:
        state = a.state(now, settings().password_max_age_days)
        click.echo(f"{a.name:<20}{','.join(a.duties):<34}{a.home:<22}{state}{' db-login' if a.db_login else ''}")


@user.command("disable")
@click.argument("name")
def user_disable(name: str) -> None:
    """Disable account NAME: no more logins; its sessions end, its tokens are revoked."""
    from accounts.store import disable

    with _owner_engine().begin() as conn:
        disable(conn, name, datetime.now(UTC))
    click.echo(f"account {name}: disabled")


@user.command("roles")
@click.argument("name")
@click.option("--role", "roles", required=True,
              help="The account's roles from now on, comma-separated (its enterprise or division stays).")
def user_roles(name: str, roles: str) -> None:
    """Give account NAME other roles; its sessions and tokens hold the new ones at once.

    Accounts of the separated duties (sysadmin, security_admin, auditor) keep theirs: make a new
    account and disable the old one.
    """
    from accounts.store import set_duties

    duties = tuple(r.strip() for r in roles.split(",") if r.strip())
    with _owner_engine().begin() as conn:
        account = set_duties(conn, name, duties, datetime.now(UTC))
    click.echo(f"account {account.name}: {', '.join(account.duties)} of {account.home}")


@user.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input.")
def user_passwd(name: str, password_stdin: bool) -> None:
    """Set a new password for NAME (its owner must change it at the next login)."""
    from accounts.store import set_password

    password = _read_password(password_stdin, f"new password for {name}")
    if not password:
        raise click.UsageError("no password given")
    with _owner_engine().begin() as conn:
        set_password(conn, name, password, datetime.now(UTC), must_change=True)
    click.echo(f"account {name}: password set; to be changed at the next login")


@user.command("token")
@click.argument("name")
@click.option("--expires", "days", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Days it lasts (default: the token_days setting, 90).")
def user_token(name: str, days: float | None) -> None:
    """Make an API token for NAME (printed once; only its hash is kept)."""
    from accounts.store import create_token

    with _owner_engine().begin() as conn:
        token_id, token, expires = create_token(conn, name, days or settings().token_days, datetime.now(UTC))
    click.echo(f"token {token_id} of {name}, valid until {expires:%Y-%m-%d %H:%M} UTC (shown once):")
    click.echo(token)


@user.command("tokens")
@click.argument("name")
def user_tokens(name: str) -> None:
    """The API tokens of NAME: id, created, expires, revoked, last used."""
    from accounts.store import tokens

    with _owner_engine().connect() as conn:
        found = tokens(conn, name)
    click.echo(f"{'id':<14}{'created (UTC)':<18}{'expires (UTC)':<18}{'revoked (UTC)':<18}last used (UTC)")
    for t in found:
        click.echo(f"{t['id']:<14}{t['created_at']:%Y-%m-%d %H:%M}  {t['expires_at']:%Y-%m-%d %H:%M}  "
                   f"{shown(t['revoked_at'], '-'):<18}{shown(t['last_used_at'], 'never')}")


@user.command("revoke-token")
@click.argument("name")
@click.argument("token_id")
def user_revoke_token(name: str, token_id: str) -> None:
    """Revoke token TOKEN_ID of NAME (a request with it gets 401 from now on)."""
    from accounts.store import revoke_token

    with _owner_engine().begin() as conn:
        revoke_token(conn, name, token_id, datetime.now(UTC))
    click.echo(f"token {token_id} of {name}: revoked")
