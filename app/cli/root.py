"""The root `qiwang` command group; the command modules add their commands to it."""

from __future__ import annotations

import click


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="qiwang", prog_name="qiwang")
@click.option("--as", "operator", metavar="NAME",
              help="Record this run's changes as operator:NAME (default: operator:<OS user>).")
@click.pass_context
def cli(ctx: click.Context, operator: str | None) -> None:
    """气网 Qiwang — 城市燃气管网 GIS 平台 / a GIS platform for city gas networks.

    With no DATABASE_URL, Qiwang runs its own PostgreSQL + PostGIS under ./var/.
    Settings: environment variables and QIWANG_SETTINGS_FILE (TOML), see core/settings.py.
    """
    from accounts.audit import name_operator
    from core.errors import InvalidInput
    from core.settings import load_settings

    try:
        name_operator(operator)
    except InvalidInput as exc:
        raise click.BadParameter(exc.reason, param_hint="'--as'") from None

    # Read once, when the command starts: every command takes them from here (app.cli.common.settings).
    ctx.obj = load_settings()
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())



def command_family(name: str, summary: str) -> click.Group:
    """A sub-group of `qiwang` (e.g. `qiwang alarm …`) that prints its help when called bare.

    Parameters
    ----------
    name
        The word on the command line.
    summary
        The group's help text (first line: its one-line summary in `qiwang --help`).
    """

    @cli.group(name, invoke_without_command=True, help=summary)
    @click.pass_context
    def family(ctx: click.Context) -> None:
        if ctx.invoked_subcommand is None:
            click.echo(ctx.get_help())

    return family
