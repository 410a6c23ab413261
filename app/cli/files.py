"""`qiwang import` and `qiwang export`: network layers in and out of files."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from app.cli.common import ready_database, shown_path
from app.cli.root import cli

if TYPE_CHECKING:
    from ingest.importer import ImportReport


@cli.command("export")
@click.option("--format", "fmt", type=click.Choice(["gpkg", "shp", "geojson", "csv", "kml", "dxf"]), default="gpkg",
              show_default=True, help="File format.")
@click.option("--layers", help="Comma-separated layers (default: pipe,node,valve,station,regulator,sentry,"
                               "customer,sensitive_site,hazard).")
@click.option("--crs", help="Output CRS, e.g. EPSG:4490 (default: the storage CRS, EPSG:4550).")
@click.option("--bbox", help="minx,miny,maxx,maxy in the output CRS.")
@click.option("--unmasked", is_flag=True,
              help="Names, residents' addresses and credit codes of individuals in clear, for a backup or a "
                   "move to another Qiwang (audited as pii_read; phone numbers stay masked).")
@click.argument("out", type=click.Path(path_type=Path))
def export_command(fmt: str, layers: str | None, crs: str | None, bbox: str | None, unmasked: bool,
                   out: Path) -> None:
    """Export network layers to OUT (a .gpkg file, or a folder of files).

    Every attribute is written, with Chinese labels beside dictionary codes (material,
    material_label); Z is kept. Personal data is masked as over the API (张**, 138****0000)
    unless --unmasked; customers' ID numbers and phones (customer_personal) are never exported.
    """
    from db.engine import get_engine
    from ingest.exporter import export

    names = [name.strip() for name in layers.split(",") if name.strip()] if layers else None
    result = export(get_engine(ready_database(owner=True)), out, fmt, names, crs, bbox, echo=click.echo,
                    unmasked=unmasked)
    click.echo(f"{sum(result.counts.values()):,} features in {len(result.counts)} layers, {result.crs}: "
               + ", ".join(shown_path(p) for p in result.paths))



@cli.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--layer", help="Layer of the file to import (default: every layer it recognises).")
@click.option("--as", "kind", metavar="KIND",
              help="What the layer holds: pipes, nodes, valves, stations, regulators, sentries, customers, "
                   "sensitive_sites, roads, railways, rivers, hazards, devices, crew_bases.")
@click.option("--crs", help="CRS of the file's coordinates, e.g. EPSG:4326 (default: the file's own), "
                            "or LOCAL:NAME for a local grid of the mapping file (four parameters).")
@click.option("--enterprise", help="企业唯一编码 for features without one (10 digits).")
@click.option("--tolerance", type=click.FloatRange(0, 10), default=0.05, show_default=True,
              help="Pipe ends closer than this (metres) share one node.")
@click.option("--mapping", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="YAML file of field names, CAD layers and local grids, laid over data/field_mapping.yaml.")
@click.option("--set", "set_options", multiple=True, metavar="LAYER.COLUMN=VALUE",
              help="A value for every feature of a layer, overriding the file's (e.g. pipes.pressure_class=中压); "
                   "repeatable. Defaults for empty or missing fields go in the --mapping file.")
@click.option("--datum-shift", metavar="DX,DY,DZ,RX,RY,RZ,DS",
              help="7-parameter Helmert from the file's datum to CGCS2000 (m, arc-seconds, ppm; coordinate frame, "
                   "or add ,position_vector), e.g. from the local surveying authority for Beijing 1954.")
@click.option("--accept-approximate-datum", is_flag=True,
              help="Import although the best transformation to CGCS2000 has unknown accuracy or is worse than 1 m "
                   "(recorded as approximate).")
@click.option("--mode", type=click.Choice(["insert", "update", "upsert", "replace-enterprise"]), default="insert",
              show_default=True,
              help="insert: new features only; update: stored features by code, only the fields the file carries; "
                   "upsert: both; replace-enterprise: the --enterprise's whole network replaced by the file's.")
@click.option("--dry-run", is_flag=True, help="Check and report only; write nothing.")
@click.option("--all-problems", "--all-errors", "all_problems", is_flag=True,
              help="List every problem line (default: a summary, then the first 10 lines of each kind, "
                   "identical problems of many features as one line).")
@click.option("--problems-csv", type=click.Path(path_type=Path, dir_okay=False),
              help="Write every problem to this CSV file (file, layer, feature, field, reason).")
def import_command(path: Path, layer: str | None, kind: str | None, crs: str | None, enterprise: str | None,
                   tolerance: float, mapping: Path | None, set_options: tuple[str, ...], datum_shift: str | None,
                   accept_approximate_datum: bool, mode: str, dry_run: bool, all_problems: bool,
                   problems_csv: Path | None) -> None:
    """Import network layers from a GeoPackage, Shapefile, GeoJSON, CSV sheet, DXF drawing, or a
    folder of such files (a Shapefile export).

    Every layer the file holds and the import recognises (pipes, nodes, valves, stations,
    regulators, sentries, customers, sensitive sites, roads, railways, rivers, hazards, …) goes in,
    in one transaction; features name other features by code (a valve its pipe and node). A CSV
    sheet gives coordinates as columns (起点X/起点Y/终点X/终点Y for pipes, x/y for points) in the
    --crs it names. Every feature is checked first; any problem is listed as
    FILE:LAYER:FEATURE:FIELD: reason and nothing is written: a summary of the kinds of problem
    first, then the first 10 lines of each kind, identical problems of many features as one line with their
    count (--all-problems: every line; --problems-csv FILE: every line in a sheet). Progress goes to
    stderr: a bar on a terminal, step lines otherwise.
    """
    with import_progress() as progress:
        report = _import(path, layer, kind, crs, enterprise, dry_run, tolerance, mapping, set_options, mode,
                         all_problems, problems_csv, progress, datum_shift, accept_approximate_datum)
    for line in report.summary():
        click.echo(line)


_STEP = re.compile(r"^\[(\d+)/(\d+)\] (reading|writing) ")


@contextmanager
def import_progress() -> Iterator[Callable[[str], None]]:
    """Where the import's step lines go: a progress bar on a terminal (rich; steps are each layer's
    reading and writing), else plain lines on stderr."""
    if not sys.stderr.isatty():
        yield lambda line: click.echo(line, err=True)
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=Console(stderr=True)) as bar:
        task = bar.add_task("import", total=None)

        def step(line: str) -> None:
            if match := _STEP.match(line):
                number, layers = int(match[1]), int(match[2])
                done = number - 1 if match[3] == "reading" else layers + number - 1
                bar.update(task, description=line, completed=done, total=2 * layers)
            else:
                bar.console.print(line)

        yield step
        bar.update(task, completed=bar.tasks[0].total or 0)


def _import(path: Path, layer: str | None, kind: str | None, crs: str | None, enterprise: str | None,
            dry_run: bool, tolerance: float, mapping: Path | None, set_options: tuple[str, ...], mode: str,
            all_problems: bool, problems_csv: Path | None, progress: Callable[[str], None],
            datum_shift: str | None, accept_approximate_datum: bool) -> ImportReport:
    from db.engine import get_engine
    from ingest.datum import parse_datum_shift
    from ingest.importer import PROBLEMS_PER_KIND, DatumOptions, ImportFailed, import_file, parse_set_options

    datum = DatumOptions(parse_datum_shift(datum_shift) if datum_shift else None, accept_approximate_datum)
    try:
        return import_file(get_engine(ready_database(owner=True)), path, layer, kind, crs, enterprise, dry_run,
                             tolerance, file_label=str(path), mapping_file=mapping, echo=progress,
                             set_values=parse_set_options(set_options), mode=mode, datum_options=datum)
    except ImportFailed as failed:
        for line in failed.report(None if all_problems else PROBLEMS_PER_KIND):
            click.echo(line)
        for name in failed.skipped:
            click.echo(f"skipped layer {name}")
        if problems_csv is not None:
            failed.write_csv(problems_csv)
            click.echo(f"every problem: {shown_path(problems_csv)}")
        raise



@cli.command("import-log")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True, help="How many imports.")
def import_log_command(limit: int) -> None:
    """The imports written, newest first: file and SHA-256, account, mode, rows per layer, CRS and
    transformation with its accuracy, the mapping used."""
    from db.engine import get_engine
    from ingest.import_log import entries

    with get_engine(ready_database(owner=True)).connect() as conn:
        found = entries(conn, limit)
    if not found:
        click.echo("no imports recorded yet")
    for entry in found:
        for line in entry.lines():
            click.echo(line)
