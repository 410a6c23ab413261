"""`qiwang load-demo`, `serve` and `demo`: the demo city and the web server."""

from __future__ import annotations

import signal
import sys

import click

from app.cli.common import PROJECT_ROOT, load_demo_city, ready_database, serve_app, settings, shown_path
from app.cli.root import cli

# From the smallest city that still has every feature (both enterprises, crossings, all tiers) to
# what the generator holds in memory on a 24 GB machine (about 3.5 GB per million pipes).
PIPES = click.IntRange(300, 3_000_000)



SEED = click.IntRange(0, 2**32 - 1)



@cli.command("load-demo")
@click.option("--pipes", type=PIPES, default=5000, show_default=True, help="Number of pipes to generate.")
@click.option("--seed", type=SEED, default=42, show_default=True, help="Random seed (same seed, same city).")
def load_demo_command(pipes: int, seed: int) -> None:
    """Generate the demo city (Anshan) and load it."""
    load_demo_city(ready_database(owner=True), pipes, seed)



@cli.command()
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
def serve(port: int, host: str) -> None:
    """Serve the web app and APIs."""
    serve_app(ready_database(), host, port)



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

    from db.engine import database_url, get_engine

    owner = ready_database(owner=True)
    url = database_url(settings())
    with get_engine(owner).connect() as conn:
        has_pipes = conn.execute(sa.text("SELECT EXISTS (SELECT 1 FROM pipe)")).scalar()
    if not has_pipes:
        load_demo_city(owner, pipes, seed)
    _demo_accounts(owner)
    telemetry = _start_demo_telemetry(url)
    # SIGTERM (systemd, a supervisor, `kill`) ends the demo like Ctrl-C: through `finally`, which
    # stops the ingest and mosquitto instead of leaving the broker running without us.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    try:
        serve_app(url, "127.0.0.1", port)
    finally:
        telemetry()



DEMO_ACCOUNTS_FILE = PROJECT_ROOT / "var" / "demo-accounts.txt"


def _demo_accounts(owner_url: str) -> None:
    """The demo city's accounts, made once: their names and first passwords printed and written
    to var/demo-accounts.txt (mode 0600); later runs only say where they are."""
    import os
    from datetime import UTC, datetime

    from accounts.audit import operator
    from db.engine import get_engine
    from demo.accounts import create_demo_accounts

    with get_engine(owner_url).begin() as conn:
        made = create_demo_accounts(conn, datetime.now(UTC), operator())
    if not made:
        click.echo(f"demo accounts: see {DEMO_ACCOUNTS_FILE} (first passwords; changed at the first login)", err=True)
        return
    lines = [f"{'account':<22}{'roles':<28}{'scope':<24}first password"]
    lines += [f"{a.name:<22}{','.join(a.duties):<28}{a.home:<24}{password}" for a, password in made]
    DEMO_ACCOUNTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(DEMO_ACCOUNTS_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("Qiwang demo accounts: sign in at /login; each first password must be changed.\n")
        out.write("\n".join(lines) + "\n")
    os.chmod(DEMO_ACCOUNTS_FILE, 0o600)
    click.echo("demo accounts (shown once; also in var/demo-accounts.txt, mode 0600):", err=True)
    for line in lines:
        click.echo(f"  {line}", err=True)


DEMO_SIMULATOR_ACCOUNT = "qiwang-demo-simulator"   # the simulator: one gateway for the city's enterprises



def _start_demo_telemetry(url: str):
    """A live demo: mosquitto (local unless QIWANG_MQTT_URL), the ingest, and the simulator at a
    modest rate; mosquitto and the ingest supervised by the service. Returns the function that
    stops them."""
    import threading

    import psycopg
    from psycopg.conninfo import make_conninfo
    from sqlalchemy.engine import make_url

    from db.acting import INGEST_ROLE
    from telemetry.broker import LocalBroker, parse_mqtt_url
    from telemetry.service import TelemetryService
    from telemetry.simulate import Simulator, load_simulated_devices

    conninfo = make_conninfo(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False),
                             options=f"-c role={INGEST_ROLE}")
    broker = None
    config = settings()
    if config.mqtt_url:
        # An existing broker: the URL's account must read qiwang/# and publish the devices' topics.
        ingest_address = simulator_address = parse_mqtt_url(config.mqtt_url, config.name_of("mqtt_url"))
    else:
        from telemetry.broker import free_port, project_broker_dir

        with psycopg.connect(conninfo) as conn:
            enterprises = [code for (code,) in conn.execute("SELECT enterprise_code FROM enterprise ORDER BY 1")]
        broker = LocalBroker(project_broker_dir(PROJECT_ROOT), free_port(),
                             gateways={DEMO_SIMULATOR_ACCOUNT: enterprises}).start()
        ingest_address, simulator_address = broker.ingest, broker.account(DEMO_SIMULATOR_ACCOUNT)
    service = TelemetryService(conninfo, broker=ingest_address, client_id="qiwang-demo-ingest", local_broker=broker,
                               regulator_url=config.regulator_url, regulator_token=config.regulator_token).start()
    devices = load_simulated_devices(conninfo)
    # Every device about once a minute (sentries report every 300 s in the field: the demo is livelier).
    simulator = Simulator(devices, simulator_address, rate=max(2.0, len(devices) / 60),
                          client_id="qiwang-demo-simulator")
    stop = threading.Event()
    threading.Thread(target=simulator.run, kwargs={"stop": stop}, name="qiwang-simulator", daemon=True).start()
    accounts = f"; MQTT accounts in {shown_path(broker.credentials_file)}" if broker is not None else ""
    click.echo(f"telemetry: {len(devices)} simulated devices on {ingest_address.url}; ingest running, "
               f"supervised (restarts reported at /health){accounts}")

    def stop_all() -> None:
        stop.set()
        service.stop()            # ends the supervision first: a broker stopped now is not restarted
        if broker is not None:
            broker.stop()

    return stop_all

