"""The `qiwang` command line (run through ./qiwang, which sets up the machine first).

Heavy modules (SQLAlchemy, Flask, the loaders) are imported inside commands so that --help and
usage errors answer at once. main() turns every failure into one line on stderr.
"""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from app.errors import QiwangError

if TYPE_CHECKING:
    from spatial.cluster import EmbeddedCluster

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ERROR_LOG = PROJECT_ROOT / "var" / "log" / "qiwang.log"


def _cluster() -> EmbeddedCluster:
    from spatial.cluster import EmbeddedCluster

    return EmbeddedCluster(PROJECT_ROOT)


def _external_url() -> str | None:
    """The normalised DATABASE_URL, or None when the embedded cluster is in use."""
    if not os.environ.get("DATABASE_URL"):
        return None
    from spatial.db import owner_url

    return owner_url()


def _ready_database(owner: bool = False) -> str:
    """Start the database if it is ours, check it, bring the schema to head (as the owner); returns
    the application's URL, or with `owner` the owner's (bulk loads, imports, exports: they alter
    tables or run longer than the application role's statement_timeout)."""
    from spatial.db import database_url, ensure_database, owner_url

    url = owner_url()
    ensure_database(url)
    from spatial.migrate import upgrade

    upgrade(url, "head")
    return url if owner else database_url()


def _load_demo(url: str, pipes: int, seed: int) -> None:
    from ingest.demo_city import load_demo
    from spatial.db import get_engine

    counts = load_demo(get_engine(url), pipes=pipes, seed=seed, echo=click.echo)
    click.echo(f"{'table':<24}{'rows':>14}")
    for table, rows in counts.items():
        click.echo(f"{table:<24}{rows:>14,}")


def _web_app(url: str, public_url: str):
    """The Flask app as `serve` and `demo` run it: unexpected errors logged with their tracebacks
    to var/log/qiwang.log (app.logging_setup), answered as JSON 500 without one."""
    from app.logging_setup import install_error_logging
    from app.web import create_app

    app = create_app(url, public_url)
    install_error_logging(app, ERROR_LOG)
    return app


def _serve(url: str, host: str, port: int) -> None:
    """Serve the web app with waitress (a production WSGI server; Flask's own is for debugging)."""
    import waitress

    from app import limits

    try:
        server = waitress.create_server(_web_app(url, os.environ.get("QIWANG_PUBLIC_URL") or f"http://{host}:{port}"),
                                        host=host, port=port, threads=8,
                                        # waitress would buffer up to 1 GB before the app's own 413
                                        max_request_body_size=limits.from_environment().max_body_bytes)
    except OSError as exc:
        raise QiwangError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    click.echo(f"Qiwang is at http://{host}:{port}/  (Ctrl-C stops it)")
    server.run()


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="qiwang", prog_name="qiwang")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """气网 Qiwang — 城市燃气管网 GIS 平台 / a GIS platform for city gas networks.

    With no DATABASE_URL, Qiwang runs its own PostgreSQL + PostGIS under ./var/.
    """
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


@cli.group(invoke_without_command=True)
@click.pass_context
def db(ctx: click.Context) -> None:
    """The database: embedded cluster or DATABASE_URL."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


@db.command("up")
def db_up() -> None:
    """Create and start the embedded cluster.

    With DATABASE_URL set, only checks that that database is reachable.
    """
    external = _external_url()
    if external:
        from spatial.db import check_reachable, shown

        check_reachable(external)
        click.echo(f"DATABASE_URL is set: using the external database at {shown(external)} (reachable)")
        return
    cluster = _cluster()
    cluster.up()
    click.echo(cluster.status())


@db.command("down")
def db_down() -> None:
    """Stop the embedded cluster."""
    external = _external_url()
    if external:
        from spatial.db import shown

        click.echo(f"DATABASE_URL is set: the external database at {shown(external)} is not ours to stop")
        return
    _cluster().down()
    click.echo("embedded PostgreSQL stopped")


@db.command("status")
def db_status() -> None:
    """Whether the database runs, where, and its URL."""
    external = _external_url()
    if external:
        from spatial.db import check_reachable, shown

        try:
            check_reachable(external)
            state = "reachable"
        except QiwangError as exc:
            state = f"NOT reachable ({exc})"
        click.echo(f"external database (DATABASE_URL): {state}\nurl: {shown(external)}")
        return
    click.echo(_cluster().status())


@db.command("url")
def db_url() -> None:
    """Print the SQLAlchemy URL.

    Starts the embedded cluster if needed, so the URL works at once.
    """
    from spatial.db import database_url

    click.echo(database_url())


@db.command("reset")
@click.option("--yes", is_flag=True, help="Confirm wiping an external DATABASE_URL database.")
def db_reset(yes: bool) -> None:
    """Throw all data away and start empty.

    Embedded: a fresh cluster. DATABASE_URL: with --yes, every Qiwang table is dropped and
    the schema is migrated again.
    """
    external = _external_url()
    if external is None:
        _cluster().reset()
        click.echo("embedded PostgreSQL reset: empty database 'qiwang' with PostGIS")
        return
    from spatial.db import ensure_database, shown

    if not yes:
        raise QiwangError(
            f"DATABASE_URL is set: resetting would drop every Qiwang table in {shown(external)}; "
            "add --yes to do it"
        )
    from spatial.migrate import downgrade, upgrade

    ensure_database(external)
    downgrade(external, "base")
    upgrade(external, "head")
    click.echo(f"schema in {shown(external)} dropped and recreated")


@cli.command()
@click.option("--revision", default="head", show_default=True, help="Alembic revision to upgrade to.")
def migrate(revision: str) -> None:
    """Bring the database schema up to a revision."""
    from spatial.db import ensure_database, owner_url, shown

    url = owner_url()
    ensure_database(url)
    from spatial.migrate import upgrade

    upgrade(url, revision)
    click.echo(f"database at {shown(url)}: upgraded to {revision}")


# From the smallest city that still has every feature (both enterprises, crossings, all tiers) to
# what the generator holds in memory on a 24 GB machine (about 3.5 GB per million pipes).
PIPES = click.IntRange(300, 3_000_000)
SEED = click.IntRange(0, 2**32 - 1)


@cli.command("load-demo")
@click.option("--pipes", type=PIPES, default=5000, show_default=True, help="Number of pipes to generate.")
@click.option("--seed", type=SEED, default=42, show_default=True, help="Random seed (same seed, same city).")
def load_demo_command(pipes: int, seed: int) -> None:
    """Generate the demo city (Anshan) and load it."""
    _load_demo(_ready_database(owner=True), pipes, seed)


@cli.command()
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
def serve(port: int, host: str) -> None:
    """Serve the web app and APIs."""
    _serve(_ready_database(), host, port)


@cli.command()
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
@click.option("--pipes", type=PIPES, default=5000, show_default=True, help="Pipes in the demo city.")
@click.option("--seed", type=SEED, default=42, show_default=True)
def demo(port: int, pipes: int, seed: int) -> None:
    """Load the demo city if empty, then serve it, alive.

    Starts the database (embedded unless DATABASE_URL), migrates the schema, loads the demo
    city when table pipe is empty, starts mosquitto (unless QIWANG_MQTT_URL; with accounts, no
    anonymous clients), the telemetry ingest and a simulation of the city's sentries and RTUs,
    and serves on 127.0.0.1. mosquitto and the ingest are supervised: restarted when they exit,
    and reported at /health.
    """
    import sqlalchemy as sa

    from spatial.db import get_engine

    from spatial.db import database_url

    owner = _ready_database(owner=True)
    url = database_url()
    with get_engine(url).connect() as conn:
        has_pipes = conn.execute(sa.text("SELECT EXISTS (SELECT 1 FROM pipe)")).scalar()
    if not has_pipes:
        _load_demo(owner, pipes, seed)
    telemetry = _start_demo_telemetry(url)
    # SIGTERM (systemd, a supervisor, `kill`) ends the demo like Ctrl-C: through `finally`, which
    # stops the ingest and mosquitto instead of leaving the broker running without us.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    try:
        _serve(url, "127.0.0.1", port)
    finally:
        telemetry()


DEMO_SIMULATOR_ACCOUNT = "qiwang-demo-simulator"   # the simulator: one gateway for the city's enterprises


def _start_demo_telemetry(url: str):
    """A live demo: mosquitto (local unless QIWANG_MQTT_URL), the ingest, and the simulator at a
    modest rate; mosquitto and the ingest supervised by the service. Returns the function that
    stops them."""
    import threading

    import psycopg
    from sqlalchemy.engine import make_url

    from ingest.telemetry.broker import LocalBroker, parse_mqtt_url
    from ingest.telemetry.service import TelemetryService
    from ingest.telemetry.simulate import Simulator, load_simulated_devices

    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    broker = None
    if os.environ.get("QIWANG_MQTT_URL"):
        # An existing broker: the URL's account must read qiwang/# and publish the devices' topics.
        ingest_address = simulator_address = parse_mqtt_url()
    else:
        from ingest.telemetry.broker import free_port, project_broker_dir

        with psycopg.connect(conninfo) as conn:
            enterprises = [code for (code,) in conn.execute("SELECT enterprise_code FROM enterprise ORDER BY 1")]
        broker = LocalBroker(project_broker_dir(PROJECT_ROOT), free_port(),
                             gateways={DEMO_SIMULATOR_ACCOUNT: enterprises}).start()
        ingest_address, simulator_address = broker.ingest, broker.account(DEMO_SIMULATOR_ACCOUNT)
    service = TelemetryService(conninfo, broker=ingest_address, client_id="qiwang-demo-ingest", local_broker=broker,
                               regulator_url=os.environ.get("QIWANG_REGULATOR_URL")).start()
    devices = load_simulated_devices(conninfo)
    # Every device about once a minute (sentries report every 300 s in the field: the demo is livelier).
    simulator = Simulator(devices, simulator_address, rate=max(2.0, len(devices) / 60),
                          client_id="qiwang-demo-simulator")
    stop = threading.Event()
    threading.Thread(target=simulator.run, kwargs={"stop": stop}, name="qiwang-simulator", daemon=True).start()
    accounts = f"; MQTT accounts in {_shown_path(broker.credentials_file)}" if broker is not None else ""
    click.echo(f"telemetry: {len(devices)} simulated devices on {ingest_address.url}; ingest running, "
               f"supervised (restarts reported at /health){accounts}")

    def stop_all() -> None:
        stop.set()
        service.stop()            # ends the supervision first: a broker stopped now is not restarted
        if broker is not None:
            broker.stop()

    return stop_all


@cli.command("export")
@click.option("--format", "fmt", type=click.Choice(["gpkg", "shp", "geojson", "csv", "kml", "dxf"]), default="gpkg",
              show_default=True, help="File format.")
@click.option("--layers", help="Comma-separated layers (default: pipe,node,valve,station,regulator,sentry,"
                               "customer,sensitive_site,hazard).")
@click.option("--crs", help="Output CRS, e.g. EPSG:4490 (default: the storage CRS, EPSG:4550).")
@click.option("--bbox", help="minx,miny,maxx,maxy in the output CRS.")
@click.argument("out", type=click.Path(path_type=Path))
def export_command(fmt: str, layers: str | None, crs: str | None, bbox: str | None, out: Path) -> None:
    """Export network layers to OUT (a .gpkg file, or a folder of files).

    Every attribute is written, with Chinese labels beside dictionary codes (material,
    material_label); Z is kept. Personal data of customers is never exported.
    """
    from ingest.exporter import export
    from spatial.db import get_engine

    names = [name.strip() for name in layers.split(",") if name.strip()] if layers else None
    result = export(get_engine(_ready_database(owner=True)), out, fmt, names, crs, bbox, echo=click.echo)
    click.echo(f"{sum(result.counts.values()):,} features in {len(result.counts)} layers, {result.crs}: "
               + ", ".join(_shown_path(p) for p in result.paths))


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
@click.option("--dry-run", is_flag=True, help="Check and report only; write nothing.")
@click.option("--all-errors", is_flag=True,
              help="List every problem line (default: a summary, then the first 10 lines of each kind).")
def import_command(path: Path, layer: str | None, kind: str | None, crs: str | None, enterprise: str | None,
                   tolerance: float, mapping: Path | None, dry_run: bool, all_errors: bool) -> None:
    """Import network layers from a GeoPackage, Shapefile, GeoJSON, CSV sheet, DXF drawing, or a
    folder of such files (a Shapefile export).

    Every layer the file holds and the import recognises (pipes, nodes, valves, stations,
    regulators, sentries, customers, sensitive sites, roads, railways, rivers, hazards, …) goes in,
    in one transaction; features name other features by code (a valve its pipe and node). A CSV
    sheet gives coordinates as columns (起点X/起点Y/终点X/终点Y for pipes, x/y for points) in the
    --crs it names. Every feature is checked first; any problem is listed as
    FILE:LAYER:FEATURE:FIELD: reason and nothing is written: a summary of the kinds of problem
    first, then the first 10 lines of each kind (--all-errors: every line). Progress goes to stderr.
    """
    from ingest.importer import PROBLEMS_PER_KIND, ImportFailed, import_file
    from spatial.db import get_engine

    def progress(line: str) -> None:
        click.echo(line, err=True)

    try:
        report = import_file(get_engine(_ready_database(owner=True)), path, layer, kind, crs, enterprise, dry_run,
                             tolerance, file_label=str(path), mapping_file=mapping, echo=progress)
    except ImportFailed as failed:
        for line in failed.report(None if all_errors else PROBLEMS_PER_KIND):
            click.echo(line)
        raise
    for line in report.summary():
        click.echo(line)


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def test(ctx: click.Context, pytest_args: tuple[str, ...]) -> None:
    """Run the tests; arguments go to pytest.

    Starts the embedded cluster unless DATABASE_URL is set, and stops it again afterwards when it
    was not running before (an interrupted run too); pytest runs from the repo root and its exit
    code is passed on.
    """
    cluster = None
    if not os.environ.get("DATABASE_URL"):
        cluster = _cluster()
        was_running = cluster.running_pid() is not None
        cluster.up()
        if was_running:
            cluster = None  # someone else's (a demo, a developer's session): leave it running
    try:
        code = subprocess.call([sys.executable, "-m", "pytest", *pytest_args], cwd=PROJECT_ROOT)
    finally:
        if cluster is not None:
            cluster.down()
    ctx.exit(code)


def _shown_path(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _log_unexpected(exc: BaseException) -> str:
    """Append the traceback to var/log/qiwang.log; returns where it went."""
    try:
        ERROR_LOG.parent.mkdir(parents=True, exist_ok=True)
        with open(ERROR_LOG, "a") as log:
            log.write(f"--- {datetime.datetime.now().isoformat(timespec='seconds')} qiwang {' '.join(sys.argv[1:])}\n")
            log.write("".join(traceback.format_exception(exc)))
        return f"details in {_shown_path(ERROR_LOG)}"
    except OSError as log_error:
        return f"and the traceback could not be written to {ERROR_LOG}: {log_error.strerror}"


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"qiwang: error: {' '.join(message.split())}", err=True)
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run the CLI; every failure ends as one line on stderr and a non-zero exit code."""
    import app.analysis_cli  # noqa: F401  (registers burst, incident, criticality on `cli`)
    import app.styles_cli  # noqa: F401  (registers qgis-project)
    import app.telemetry_cli  # noqa: F401  (registers ingest, simulate, alarm, offline-rate, outbox)

    try:
        code = cli.main(args=argv, prog_name="qiwang", standalone_mode=False)
    except click.UsageError as exc:
        message = exc.format_message().rstrip(".")
        where = exc.ctx.command_path if exc.ctx else "qiwang"
        _fail(f"{message[:1].lower()}{message[1:]} (see ./{where} --help)", exc.exit_code)
    except click.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except QiwangError as exc:
        _fail(str(exc), 1)
    except (click.Abort, KeyboardInterrupt):
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        _fail(f"unexpected {type(exc).__name__}: {first} ({_log_unexpected(exc)})", 1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
