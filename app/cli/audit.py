"""`qiwang audit …`: the audit log (accounts/audit.py, migration 0017): read it, verify its hash chain.

Run as the database owner, like `qiwang user`. The log is never pruned here: it is kept (at least
six months, GB/T 22239 level 2) for as long as the database lives.
"""
from __future__ import annotations

import json
from datetime import UTC

import click

from app.cli.common import ready_database
from app.cli.format import pad, shown
from app.cli.root import command_family

audit = command_family("audit", "The audit log: list its entries, verify its hash chain.")


def _owner_engine():
    from db.engine import get_engine

    return get_engine(ready_database(owner=True))


def _what(changes: object, detail: object, limit: int = 100) -> str:
    text = json.dumps(changes if changes is not None else detail, ensure_ascii=False) \
        if changes is not None or detail is not None else ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


@audit.command("list")
@click.option("--user", "user", metavar="NAME", help="Only this actor's entries (account name, operator:<OS user>).")
@click.option("--since", metavar="ISO-DATE", help="Only from then on (2026-12-01, 2026-12-01T08:00+08:00; UTC "
                                                  "when no offset is given).")
@click.option("--action", metavar="A", help="Only this action (login, login_failed, lockout, logout, insert, "
                                            "update, delete, token_create, …).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True, help="At most this many.")
def audit_list(user: str | None, since: str | None, action: str | None, limit: int) -> None:
    """The audit log's entries, newest first: time (UTC), actor, action, table and feature, what changed."""
    from accounts.audit import entries

    with _owner_engine().connect() as conn:
        found = entries(conn, user=user, since=since, action=action, limit=limit)
    click.echo(f"{'id':>8}  {'at (UTC)':<19}  {pad('actor', 22)}{pad('action', 16)}{pad('table/feature', 30)}what")
    for e in found:
        where = f"{e.table_name}/{shown(e.feature_code, '-')}" if e.table_name else "-"
        click.echo(f"{e.id:>8}  {e.at.astimezone(UTC):%Y-%m-%d %H:%M:%S}  {pad(e.actor, 22)}{pad(e.action, 16)}"
                   f"{pad(where, 30)}{_what(e.changes, e.detail)}")
    if not found:
        click.echo("(no entries)")


@audit.command("verify")
def audit_verify() -> None:
    """Recompute the hash chain from the stored rows: exit 1 and the first broken row when one was altered
    or removed."""
    from accounts.audit import verify_report

    with _owner_engine().connect() as conn:
        report = verify_report(conn)
    if not report.ok:
        raise click.ClickException(f"audit log broken at row {report.first_broken_id} "
                                   f"({report.checked:,} rows read): altered or removed since it was written")
    click.echo(f"intact: {report.checked:,} rows, algorithm {', '.join(report.algorithms)}")
