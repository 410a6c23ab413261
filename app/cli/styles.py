"""CLI command `qgis-project`: a QGIS project with every layer read from a Qiwang server, styled.

Added to the `qiwang` group (app.cli.root) when imported by app.cli.main.
"""
from __future__ import annotations

from pathlib import Path

import click

from app.cli.root import cli


@cli.command("qgis-project")
@click.option("--url", default="http://127.0.0.1:5000", show_default=True,
              help="The Qiwang server (its OGC API is at URL/ogc).")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=Path("qiwang.qgs"),
              show_default=True, help="The project file to write.")
@click.option("--collection", "collections", multiple=True, metavar="ID",
              help="Only these collections (repeatable); default all.")
@click.option("--qgis-version", "qgis_version", default="3.22", show_default=True, metavar="X.Y",
              help="The QGIS release the project is written for (3.22 or later).")
@click.option("--authcfg", metavar="ID", help="The QGIS authentication configuration (Basic: account and password "
                                              "or API token) every layer signs in with.")
def qgis_project(url: str, out: Path, collections: tuple[str, ...], qgis_version: str, authcfg: str | None) -> None:
    """Write a QGIS project (.qgs): every layer over OGC API Features, styled by pressure class etc."""
    from app.qgis_project import write_project

    path = write_project(out, url, list(collections) or None, qgis_version, authcfg)
    click.echo(str(path))
