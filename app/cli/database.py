"""`qiwang db …` and `qiwang migrate`: the embedded cluster or DATABASE_URL, and the schema."""

from __future__ import annotations

import click

from app.cli.common import embedded_cluster, external_url
from app.cli.root import cli, command_family
from core.errors import QiwangError

db = command_family("db", "The database: embedded cluster or DATABASE_URL.")



@db.command("up")
def db_up() -> None:
    """Create and start the embedded cluster.

    With DATABASE_URL set, only checks that that database is reachable.
    """
    external = external_url()
    if external:
        from db.engine import check_reachable, shown

        check_reachable(external)
        click.echo(f"DATABASE_URL is set: using the external database at {shown(external)} (reachable)")
        return
    cluster = embedded_cluster()
    cluster.up()
    click.echo(cluster.status())



@db.command("down")
def db_down() -> None:
    """Stop the embedded cluster."""
    external = external_url()
    if external:
        from db.engine import shown

        click.echo(f"DATABASE_URL is set: the external database at {shown(external)} is not ours to stop")
        return
    embedded_cluster().down()
    click.echo("embedded PostgreSQL stopped")



@db.command("status")
def db_status() -> None:
    """Whether the database runs, where, and its URL."""
    external = external_url()
    if external:
        from db.engine import check_reachable, shown

        try:
            check_reachable(external)
            state = "reachable"
        except QiwangError as exc:
            state = f"NOT reachable ({exc})"
        click.echo(f"external database (DATABASE_URL): {state}\nurl: {shown(external)}")
        return
    click.echo(embedded_cluster().status())



@db.command("url")
def db_url() -> None:
    """Print the SQLAlchemy URL.

    Starts the embedded cluster if needed, so the URL works at once.
    """
    from db.engine import database_url

    click.echo(database_url())



@db.command("reset")
@click.option("--yes", is_flag=True, help="Confirm wiping an external DATABASE_URL database.")
def db_reset(yes: bool) -> None:
    """Throw all data away and start empty.

    Embedded: a fresh cluster. DATABASE_URL: with --yes, every Qiwang table is dropped and
    the schema is migrated again.
    """
    external = external_url()
    if external is None:
        embedded_cluster().reset()
        click.echo("embedded PostgreSQL reset: empty database 'qiwang' with PostGIS")
        return
    from db.engine import ensure_database, shown

    if not yes:
        raise QiwangError(
            f"DATABASE_URL is set: resetting would drop every Qiwang table in {shown(external)}; "
            "add --yes to do it"
        )
    from db.migrate import downgrade, upgrade

    ensure_database(external)
    downgrade(external, "base")
    upgrade(external, "head")
    click.echo(f"schema in {shown(external)} dropped and recreated")



@cli.command()
@click.option("--revision", default="head", show_default=True, help="Alembic revision to upgrade to.")
def migrate(revision: str) -> None:
    """Bring the database schema up to a revision."""
    from db.engine import ensure_database, owner_url, shown

    url = owner_url()
    ensure_database(url)
    from db.migrate import upgrade

    upgrade(url, revision)
    click.echo(f"database at {shown(url)}: upgraded to {revision}")

