"""What the command modules share: the database made ready, the web server, the error log.

Heavy modules (SQLAlchemy, Flask, the loaders) are imported inside functions so that --help and
usage errors answer at once.
"""

from __future__ import annotations

import datetime
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from core.errors import InvalidInput, QiwangError
from core.settings import Settings, load_settings

if TYPE_CHECKING:
    from db.cluster import EmbeddedCluster

PROJECT_ROOT = Path(__file__).resolve().parents[2]



ERROR_LOG = PROJECT_ROOT / "var" / "log" / "qiwang.log"



def embedded_cluster() -> EmbeddedCluster:
    from db.cluster import EmbeddedCluster

    return EmbeddedCluster(PROJECT_ROOT)



def settings() -> Settings:
    """The settings of the running command, read once when it started (the root group's callback);
    read now when called outside a command (a test calling a helper directly)."""
    context = click.get_current_context(silent=True)
    obj = context.find_root().obj if context is not None else None
    return obj if isinstance(obj, Settings) else load_settings()



def external_url() -> str | None:
    """The normalised database_url setting (DATABASE_URL), or None when the embedded cluster is in use."""
    if not settings().database_url:
        return None
    from db.engine import owner_url

    return owner_url(settings())



def ready_database(owner: bool = False) -> str:
    """Start the database if it is ours, check it, bring the schema to head (as the owner); returns
    the application's URL, or with `owner` the owner's (bulk loads, imports, exports: they alter
    tables or run longer than the application role's statement_timeout)."""
    from db.engine import database_url, ensure_database, owner_url

    url = owner_url(settings())
    ensure_database(url)
    from db.migrate import upgrade

    upgrade(url, "head")
    return url if owner else database_url(settings())



def load_demo_city(url: str, pipes: int, seed: int) -> None:
    from db.engine import get_engine
    from demo.city import load_demo

    counts = load_demo(get_engine(url), pipes=pipes, seed=seed, echo=click.echo)
    click.echo(f"{'table':<24}{'rows':>14}")
    for table, rows in counts.items():
        click.echo(f"{table:<24}{rows:>14,}")



def web_app(url: str, public_url: str):
    """The Flask app as `serve` and `demo` run it, with the command's settings: unexpected errors
    logged with their tracebacks to var/log/qiwang.log (app.logging_setup), answered as JSON 500
    without one."""
    from app.logging_setup import install_error_logging
    from app.web import create_app

    app = create_app(url, public_url, settings=settings())
    install_error_logging(app, ERROR_LOG)
    return app



def serve_app(url: str, host: str, port: int) -> None:
    """Serve the web app with waitress (a production WSGI server; Flask's own is for debugging)."""
    import waitress

    from db.engine import check_authenticator

    check_authenticator(url)   # fail closed: never serve as a login that reads past row-level security
    try:
        server = waitress.create_server(web_app(url, settings().public_url or f"http://{host}:{port}"),
                                        host=host, port=port, threads=8,
                                        # waitress would buffer up to 1 GB before the app's own 413
                                        max_request_body_size=settings().max_body_bytes)
    except OSError as exc:
        raise QiwangError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    click.echo(f"Qiwang is at http://{host}:{port}/  (Ctrl-C stops it)")
    server.run()



def shown_path(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)



def log_unexpected(exc: BaseException) -> str:
    """Append the traceback to var/log/qiwang.log; returns where it went."""
    try:
        ERROR_LOG.parent.mkdir(parents=True, exist_ok=True)
        with open(ERROR_LOG, "a") as log:
            log.write(f"--- {datetime.datetime.now().isoformat(timespec='seconds')} qiwang {' '.join(sys.argv[1:])}\n")
            log.write("".join(traceback.format_exception(exc)))
        return f"details in {shown_path(ERROR_LOG)}"
    except OSError as log_error:
        return f"and the traceback could not be written to {ERROR_LOG}: {log_error.strerror}"


@contextmanager
def options_named(names: dict[str, str], values: dict[str, tuple[str, ...]] | None = None) -> Iterator[None]:
    """InvalidInput from a lower layer worded with the command's options: its field is the function's
    parameter (`point`, `failed_valves[1]`), which the user knows as an option (`--at`, the second
    `--failed-valve`, named with the value given).

    Parameters
    ----------
    names
        The function's parameter → option.
    values
        Option → the values given to a repeated option, for indexed fields.
    """
    try:
        yield
    except InvalidInput as exc:
        field = exc.field or ""
        parameter, _, index = field.partition("[")
        option = names.get(parameter)
        if option is None:
            raise
        if index and values and option in values:
            option = f"{option} {values[option][int(index.rstrip(']'))]}"
        raise InvalidInput(option, exc.reason) from None
