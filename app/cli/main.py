"""The `qiwang` command line (run through ./qiwang, which sets up the machine first).

main() turns every failure into one line on stderr. Each command module adds its commands to the
root group when imported; this module imports them all, and nothing imports this module.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from typing import NoReturn

import click

from app.cli import analysis, audit, database, files, jobs, keys, registers, serving, styles, telemetry, users  # noqa: F401  (they add their commands)
from app.cli.common import PROJECT_ROOT, embedded_cluster, log_unexpected
from app.cli.root import cli
from core.errors import QiwangError


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
        cluster = embedded_cluster()
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


@cli.command()
@click.pass_context
def lint(ctx: click.Context) -> None:
    """Check the code: ruff (style, imports, likely bugs) and mypy (types), as configured in pyproject.toml.

    Both run from the repo root over the whole tree; the exit code is non-zero when either finds
    something. CI (.ci/run) runs this before the tests.
    """
    bin_dir = os.path.dirname(sys.executable)
    codes = []
    for name, args in (("ruff", ["check", "."]), ("mypy", [])):
        click.echo(f"-- {name}", err=True)
        codes.append(subprocess.call([os.path.join(bin_dir, name), *args], cwd=PROJECT_ROOT))
    ctx.exit(max(codes))



def fail(message: str, code: int) -> NoReturn:
    click.echo(f"qiwang: error: {' '.join(message.split())}", err=True)
    sys.exit(code)



def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run the CLI; every failure ends as one line on stderr and a non-zero exit code."""
    try:
        code = cli.main(args=argv, prog_name="qiwang", standalone_mode=False)
    except click.UsageError as exc:
        message = exc.format_message().rstrip(".")
        where = exc.ctx.command_path if exc.ctx else "qiwang"
        fail(f"{message[:1].lower()}{message[1:]} (see ./{where} --help)", exc.exit_code)
    except click.ClickException as exc:
        fail(exc.format_message(), exc.exit_code)
    except QiwangError as exc:
        fail(str(exc), 1)
    except (click.Abort, KeyboardInterrupt):
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        fail(f"unexpected {type(exc).__name__}: {first} ({log_unexpected(exc)})", 1)
    sys.exit(code if isinstance(code, int) else 0)



if __name__ == "__main__":
    main()
