"""Where the web server's unexpected errors go: tracebacks to var/log/qiwang.log, JSON 500 to the client.

Flask logs an unhandled exception with its traceback on `app.logger` (stderr by default) and
answers an HTML 500; waitress logs what escapes the app on its own logger. `install_error_logging`
sends both to the log file the CLI already uses for its own unexpected failures (app.cli.common.ERROR_LOG),
answers the client `{"code": "InternalServerError", "description": …}` with a reference to the log
entry and no traceback, and leaves one line per failure on stderr for whoever watches the console.
"""
from __future__ import annotations

import logging
import sys
import uuid
from logging.handlers import RotatingFileHandler
from pathlib import Path

from flask import Flask, request
from flask.logging import default_handler
from werkzeug.exceptions import InternalServerError

from app.http_errors import error_response

LOG_FORMAT = "--- %(asctime)s %(name)s %(levelname)s %(message)s"
LOG_BYTES, LOG_BACKUPS = 10 * 2**20, 5  # 10 MiB per file, five old files kept


class _OneLine(logging.Formatter):
    """On the console, one line per record: the message without the traceback (the file has it).

    Formats from the record without touching it: the file handler formats the same record.
    """

    def format(self, record: logging.LogRecord) -> str:
        return f"{self.formatTime(record)} {record.levelname} {record.getMessage().splitlines()[0]}"


def _file_handler(path: Path) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = RotatingFileHandler(path, maxBytes=LOG_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.setLevel(logging.ERROR)
    return handler


def install_error_logging(app: Flask, path: Path) -> None:
    """Log `app`'s unexpected errors (and waitress's) with their tracebacks to `path`, answer JSON 500s.

    Call it once per app, before the first request (Flask refuses new error handlers afterwards).
    """
    file_handler = _file_handler(Path(path))
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(_OneLine())
    console.setLevel(logging.ERROR)
    # Flask's default handler would print the traceback on stderr: the file has it, the console a line.
    app.logger.removeHandler(default_handler)
    waitress_logger = logging.getLogger("waitress")
    for logger in (app.logger, waitress_logger):
        logger.addHandler(file_handler)
        logger.addHandler(console)
        logger.propagate = False

    def json_500(error: InternalServerError):
        reference = uuid.uuid4().hex[:12]
        original = getattr(error, "original_exception", None) or error
        # Flask has logged the traceback already (log_exception); this line ties it to the answer.
        app.logger.error("error %s: %s %s: %s: %s (traceback above)", reference, request.method, request.full_path,
                         type(original).__name__, str(original).splitlines()[0] if str(original) else "")
        return error_response(500, "InternalServerError",
                              f"unexpected error on the server, reference {reference} in its log")

    app.register_error_handler(InternalServerError, json_500)
