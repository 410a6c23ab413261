"""CLI group `jobs`: the asynchronous process jobs kept in the database (OGC API Processes).

Added to the `qiwang` group (app.cli.root) when imported by app.cli.main.
"""
from __future__ import annotations

import click

from app.cli.common import ready_database, settings
from app.cli.root import cli


@cli.group()
def jobs() -> None:
    """Asynchronous process jobs (their rows in `jobs`, their result files)."""


@jobs.command()
@click.option("--older-than", "days", type=click.FloatRange(0, min_open=True), metavar="DAYS",
              help="Remove jobs finished (or, never finished, last updated) more than DAYS days ago; "
                   "default the setting QIWANG_JOBS_RETENTION_DAYS (7).")
def prune(days: float | None) -> None:
    """Remove old jobs and their result files; prints how many of each were removed.

    Run it daily (cron, a systemd timer): synchronous executions leave nothing behind, asynchronous
    ones stay until pruned.
    """
    from app.processes.jobs import prune_jobs
    from db.engine import get_engine

    days = settings().jobs_retention_days if days is None else days
    removed, files = prune_jobs(get_engine(ready_database()), days)
    click.echo(f"removed {removed} job{'s' * (removed != 1)} and {files} result file{'s' * (files != 1)} "
               f"older than {days:g} days")
