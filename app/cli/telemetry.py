"""Telemetry commands: ingest (MQTT, Modbus), simulate, alarm lifecycle, offline rate, outbox, quarantine replay."""
from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from app.cli.common import ready_database, settings
from app.cli.format import number, pad, shown
from app.cli.root import cli, command_family
from core.errors import QiwangError

if TYPE_CHECKING:
    from telemetry.broker import BrokerAddress

RULES = click.option("--rules", type=click.Path(path_type=Path, exists=True, dir_okay=False),
                     help="Alarm rules (YAML) in place of data/alarm_rules.yaml.")
REGULATOR = click.option("--regulator-url",
                         help="Regulator endpoint (HTTP POST) for the outbox; default: the regulator_url setting "
                              "(QIWANG_REGULATOR_URL). Its token is the regulator_token setting "
                              "(QIWANG_REGULATOR_TOKEN).")
BROKER = click.option("--broker", "broker_url",
                      help="MQTT broker, mqtt://[user:password@]host:port; default: the mqtt_url setting "
                           "(QIWANG_MQTT_URL), else mqtt://127.0.0.1:1883.")


def _broker(option: str | None) -> BrokerAddress:
    """The broker of --broker, else of the mqtt_url setting, else the local default."""
    from telemetry.broker import parse_mqtt_url

    if option:
        return parse_mqtt_url(option, "--broker")
    return parse_mqtt_url(settings().mqtt_url, settings().name_of("mqtt_url"))


def _regulator(option: str | None) -> tuple[str | None, str | None]:
    """(endpoint, token) of the outbox: --regulator-url, else the regulator_url setting; the token
    only from the settings (a command-line option would show it in `ps`)."""
    url = option or settings().regulator_url
    return url, settings().regulator_token if url else None


def _conninfo() -> str:
    """The application's login acting as the telemetry ingest (migration 0016: qiwang_ingest)."""
    from psycopg.conninfo import make_conninfo
    from sqlalchemy.engine import make_url

    from db.acting import INGEST_ROLE

    url = make_url(ready_database()).set(drivername="postgresql").render_as_string(hide_password=False)
    return make_conninfo(url, options=f"-c role={INGEST_ROLE}")


def _run_service(**options) -> None:
    from telemetry.service import TelemetryService

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    service = TelemetryService(_conninfo(), **options).start()
    click.echo("ingest running (Ctrl-C stops it; unacknowledged messages stay with the broker)", err=True)
    try:
        service.wait()
    except KeyboardInterrupt:
        pass
    finally:
        service.stop()
        if service.pipeline is not None:
            stats = service.pipeline.stats
            click.echo(f"stored {stats.stored:,}, duplicates {stats.duplicates:,}, "
                       f"quarantined {stats.quarantined:,}, alarm transitions {stats.alarms:,}", err=True)


ingest = command_family("ingest", "Telemetry ingest from sentries and station RTUs (MQTT, Modbus TCP).")


@ingest.command("mqtt")
@BROKER
@RULES
@REGULATOR
@click.option("--client-id", default="qiwang-ingest", show_default=True,
              help="MQTT client id: the persistent session the broker keeps for this ingest.")
def ingest_mqtt(broker_url: str | None, rules: Path | None, regulator_url: str | None, client_id: str) -> None:
    """Subscribe to qiwang/{enterprise}/{device_type}/{device}/telemetry (QoS 1) and store it.

    Readings are stored once per device and timestamp; what cannot be stored goes to
    reading_quarantine with the reason; alarms are raised by the rules and published on
    qiwang/{enterprise}/alarms/{device_type}/{device}.
    """
    url, token = _regulator(regulator_url)
    _run_service(broker=_broker(broker_url), rules_file=rules, regulator_url=url, regulator_token=token,
                 client_id=client_id)


@ingest.command("modbus")
@click.option("--config", "config", required=True, type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Register maps of the Modbus TCP devices (see data/modbus_example.yaml).")
@RULES
@REGULATOR
def ingest_modbus(config: Path, rules: Path | None, regulator_url: str | None) -> None:
    """Poll Modbus TCP devices into the same pipeline (checks, storage, alarms)."""
    url, token = _regulator(regulator_url)
    _run_service(modbus_config=config, rules_file=rules, regulator_url=url, regulator_token=token)


@cli.command()
@click.option("--devices", "n_devices", type=click.IntRange(1), default=None,
              help="How many devices report (RTUs first, then sentries; default: all).")
@click.option("--rate", type=click.FloatRange(0.1, 100_000), default=20.0, show_default=True,
              help="Messages per second, all devices together.")
@click.option("--duration", type=click.FloatRange(1), default=None, help="Seconds to run (default: until Ctrl-C).")
@click.option("--leaks", type=click.FloatRange(0, 1), default=0.02, show_default=True,
              help="Share of sentries that develop a leak in each cycle.")
@click.option("--silent", type=click.FloatRange(0, 1), default=0.02, show_default=True,
              help="Share of devices that fall silent for a while.")
@click.option("--seed", type=int, default=1, show_default=True)
@BROKER
def simulate(n_devices: int | None, rate: float, duration: float | None, leaks: float, silent: float, seed: int,
             broker_url: str | None) -> None:
    """Publish realistic telemetry for the demo city's sentries and RTUs over MQTT."""
    from telemetry.simulate import Simulator, load_simulated_devices

    broker = _broker(broker_url)
    devices = load_simulated_devices(_conninfo(), n_devices)
    simulator = Simulator(devices, broker, rate, seed=seed, leak_fraction=leaks, silent_fraction=silent)
    click.echo(f"simulating {len(devices):,} devices at {rate:g} messages/s on {broker.url}", err=True)
    stop = threading.Event()
    try:
        report = simulator.run(duration, stop)
    except KeyboardInterrupt:
        stop.set()
        return
    click.echo(f"published {report.published:,} in {report.seconds:.1f} s; leaks: {len(report.leaks_started)}, "
               f"silent: {len(report.silent)}, pressure excursions: {len(report.excursions)}")


alarm = command_family("alarm", "Alarms: list, and the handling steps acknowledge → dispatch → resolve → close.")


@alarm.command("list")
@click.option("--all", "show_all", is_flag=True, help="Closed alarms too.")
def alarm_list(show_all: bool) -> None:
    """Open alarms, newest first."""
    import psycopg

    with psycopg.connect(_conninfo()) as conn:
        rows = conn.execute(
            "SELECT code, raised_at, device_type, device_code, measure, direction, level, peak_value, state, "
            "cleared_at IS NULL FROM alarm WHERE %s OR state <> 'closed' ORDER BY raised_at DESC LIMIT 200",
            (show_all,)).fetchall()
    click.echo(f"{'code':<18}{'raised (UTC)':<22}{'device':<18}{'measure':<16}{'level':>6}{'peak':>10}  state")
    for code, raised, dtype, dcode, measure, direction, level, peak, state, active in rows:
        click.echo(f"{code:<18}{raised:%Y-%m-%d %H:%M:%S}   {pad(dtype + ' ' + dcode, 18)}"
                   f"{pad(measure + ' ' + direction, 16)}{level:>6}{pad(number(peak, 1), 10, '>')}  {state}"
                   f"{' (active)' if active else ''}")


def _step(action: str):
    @click.argument("code")
    @click.option("--note", help="What was done or found.")
    def command(code: str, note: str | None) -> None:
        import psycopg

        from accounts.audit import operator
        from telemetry.alarms import advance

        with psycopg.connect(_conninfo()) as conn:
            result = advance(conn, code, action, operator(), note, datetime.now(UTC))
        click.echo(f"alarm {result['code']}: {result['state']}")

    command.__doc__ = (f"{action.capitalize()} alarm CODE (recorded in its immutable handling record as "
                       "operator:<OS user>).")
    return command


for _action in ("acknowledge", "dispatch", "resolve", "close"):
    alarm.command(_action)(_step(_action))


@alarm.command("record")
@click.argument("code")
def alarm_record(code: str) -> None:
    """The handling record of alarm CODE, and whether its hash chain is intact."""
    import psycopg

    from telemetry.alarms import record, verify_record

    with psycopg.connect(_conninfo()) as conn:
        events = record(conn, code)
        if not events:
            raise QiwangError(f"no alarm {code}")
        intact = verify_record(conn, code)
    for e in events:
        value = "" if e.value is None else f"{e.value:g}"
        click.echo(f"{e.at:%Y-%m-%d %H:%M:%S}  {e.action:<13}{e.state:<14}{e.level or '':<3}{value:>8}  "
                   f"{e.actor}  {e.note or ''}")
    click.echo(f"hash chain: {'intact' if intact else 'BROKEN: the record was altered'}")


@cli.command("offline-rate")
@click.option("--by", type=click.Choice(["enterprise", "district", "device_type", "all"]), default="enterprise",
              show_default=True)
@click.option("--hours", type=click.FloatRange(0.01), default=24.0, show_default=True,
              help="Window: the last HOURS hours.")
def offline_rate_command(by: str, hours: float) -> None:
    """掉线率: share of device-time offline over a window, by enterprise, district or device type."""
    import psycopg

    from telemetry.offline import offline_rate

    end = datetime.now(UTC)
    with psycopg.connect(_conninfo()) as conn:
        rates = offline_rate(conn, end - timedelta(hours=hours), end, by)
    click.echo(f"{by:<14}{'name':<20}{'devices':>8}{'offline rate':>14}{'offline now':>13}{'in window':>11}")
    for r in rates:
        click.echo(f"{pad(r.key, 14)}{pad(r.name or '', 20)}{pad(number(r.devices), 8, '>')}{r.rate:>14.2%}"
                   f"{pad(number(r.offline_at_end), 13, '>')}{pad(number(r.offline_in_window), 11, '>')}")


outbox = command_family("outbox", "Records waiting for the regulator's endpoint (kept ≥ 90 days, replayed in order).")


@outbox.command("status")
def outbox_status() -> None:
    """Pending records, the oldest one's age, the last send and error."""
    import psycopg

    from telemetry.outbox import status

    with psycopg.connect(_conninfo()) as conn:
        state = status(conn, datetime.now(UTC))
    age = state["oldest_pending_age_days"]
    for label, value in (("pending", number(state["pending"])),
                         ("oldest pending", "nothing pending" if age is None else f"{number(age, 1)} days"),
                         ("last sent", shown(state["last_sent_at"], "never")),
                         ("last error", shown(state["last_error"], "none")),
                         ("attempts", number(state["attempts"]))):
        click.echo(f"{label:<16}{value}")


@outbox.command("send")
@REGULATOR
def outbox_send(regulator_url: str | None) -> None:
    """Send every pending record now, in order."""
    from telemetry.outbox import OutboxSender

    url, token = _regulator(regulator_url)
    if not url:
        raise QiwangError("--regulator-url (or QIWANG_REGULATOR_URL) is needed")
    report = OutboxSender(_conninfo(), url, token=token).send_pending()
    click.echo(f"sent {report.sent:,} in {report.batches} batches; pending {report.pending:,}"
               + (f"; stopped: {report.error}" if report.error else ""))
    if report.error:
        raise QiwangError(f"the regulator endpoint did not take everything: {report.error}")


quarantine = command_family(
    "quarantine", "Messages that could not be stored (reading_quarantine): what waits, and replaying it.")


@quarantine.command("replay")
@click.option("--device", help="Only this device code.")
@click.option("--since", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
              help="Only messages received from then on (UTC).")
@click.option("--any-reason", is_flag=True,
              help="Also messages refused for another reason than an unknown device (after a check was corrected).")
@click.option("--dry-run", is_flag=True, help="Count what would be replayed; send nothing.")
@BROKER
def quarantine_replay(device: str | None, since: datetime | None, any_reason: bool, dry_run: bool,
                      broker_url: str | None) -> None:
    """Publish quarantined messages of devices registered since then to the running ingest again.

    Oldest first, byte for byte, on their topic (QoS 1); each quarantine row is stamped replayed_at
    once the broker has it. The ingest stores them once (or quarantines them again with today's
    reason). Needs a running `./qiwang ingest mqtt` (or `./qiwang demo`) on the same broker, which
    takes a newly registered device within 5 s: what it still refuses is quarantined anew and can be
    replayed again.
    """
    import psycopg

    from telemetry.replay import replay, waiting

    since_utc = since.replace(tzinfo=UTC) if since else None
    if dry_run:
        with psycopg.connect(_conninfo()) as conn:
            messages, devices = waiting(conn, device=device, since=since_utc, any_reason=any_reason)
        click.echo(f"{messages:,} messages of {devices:,} devices would be replayed")
        return
    broker = _broker(broker_url)
    report = replay(_conninfo(), broker, device=device, since=since_utc, any_reason=any_reason)
    click.echo(f"replayed {report.replayed:,} messages of {report.devices:,} devices on {broker.url}")
