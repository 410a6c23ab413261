"""Process jobs kept in PostgreSQL: pygeoapi's PostgreSQLManager on the Qiwang database.

The stock manager builds a psycopg2 URL from host, port, user and password, so it cannot reach
the embedded cluster (a Unix socket given as `?host=`, no port); this one uses the project's
SQLAlchemy engine for the URL instead. Job rows live in `jobs` (migration 0008); results are JSON
files in the manager's output_dir, named in the row's `location`, as with the stock manager.

Only asynchronous executions are jobs: a synchronous one answers with its result and leaves
nothing behind (no row, no file), as pygeoapi's DummyManager runs every execution. Jobs and their
files are removed once older than the retention (`prune_jobs`, `./qiwang jobs prune`).
"""
from __future__ import annotations

import contextvars
import logging
import math
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pygeoapi.process.base import BaseProcessor
from pygeoapi.process.manager.base import BaseManager
from pygeoapi.process.manager.postgresql import PostgreSQLManager
from pygeoapi.provider.base import ProviderGenericError
from pygeoapi.provider.sql import get_table_model
from pygeoapi.util import (
    DATETIME_FORMAT,
    JobStatus,
    ProcessExecutionMode,
    RequestedProcessExecutionMode,
    RequestedResponse,
    Subscriber,
)
from sqlalchemy.orm import Session

from app.processes.base import InputError
from core.errors import InvalidInput, QiwangError
from db.engine import get_engine, shown

LOGGER = logging.getLogger(__name__)

def _job(row: dict) -> dict:
    """A job row as pygeoapi's API and HTML templates expect it: times as ISO 8601 UTC strings."""
    return {k: v.astimezone(UTC).strftime(DATETIME_FORMAT) if isinstance(v, datetime) else v
            for k, v in row.items() if k != "_sa_instance_state"}


class QiwangJobManager(PostgreSQLManager):
    """PostgreSQLManager whose `connection` is a SQLAlchemy URL (any the project accepts), which
    records asynchronous executions only."""

    def __init__(self, manager_def: dict) -> None:
        BaseManager.__init__(self, manager_def)  # not PostgreSQLManager's: see the module docstring
        self.is_async = True
        self.supports_subscribing = True
        self.id_field = "identifier"
        self.db_search_path = ("public",)
        self._engine = get_engine(manager_def["connection"])
        try:
            self.table_model = get_table_model("jobs", self.id_field, self.db_search_path, self._engine)
        except ProviderGenericError:
            raise QiwangError(f"no jobs table in {shown(manager_def['connection'])}: run the migrations "
                              "(./qiwang migrate)") from None
        if self.output_dir is not None:
            self.output_dir.mkdir(parents=True, exist_ok=True)

    def execute_process(self, process_id: str, data_dict: dict,
                        execution_mode: RequestedProcessExecutionMode | None = None,
                        requested_outputs: dict | None = None, subscriber: Subscriber | None = None,
                        requested_response: str | None = RequestedResponse.raw.value,
                        ) -> tuple[str, str, Any, JobStatus, dict[str, str] | None]:
        """pygeoapi's execution, recorded as a job only when it runs asynchronously.

        pygeoapi runs asynchronously when the client asks (Prefer: respond-async) and the process
        offers it (jobControlOptions), and records every execution as a job; a synchronous one's
        record would never be read (its answer is its result), so it runs here unrecorded, as
        pygeoapi's DummyManager runs it. Returns pygeoapi's (job id, MIME type, outputs, status,
        headers). A bad input answers 400 with pygeoapi's failed-job body; any other ProcessError
        (409, 503) is raised for pygeoapi's API to answer with its status.
        """
        processor = self.get_processor(process_id)
        if execution_mode == RequestedProcessExecutionMode.respond_async and \
                ProcessExecutionMode.async_execute.value in processor.metadata.get("jobControlOptions", []):
            return super().execute_process(process_id, data_dict, execution_mode, requested_outputs, subscriber,
                                           requested_response)
        # As pygeoapi's base manager answers a synchronous execution (headers, failure body).
        headers = None if execution_mode is None else {
            "Preference-Applied": RequestedProcessExecutionMode.wait.value}
        job_id = str(uuid.uuid1())
        processor.set_job_id(job_id)
        mimetype, outputs, status = self._run_unrecorded(processor, data_dict, requested_outputs, subscriber,
                                                         requested_response)
        return job_id, mimetype, outputs, status, headers

    def _execute_handler_async(self, p: BaseProcessor, job_id: str, data_dict: dict,
                               requested_outputs: dict | None = None, subscriber: Subscriber | None = None,
                               requested_response: str | None = RequestedResponse.raw.value,
                               ) -> tuple[str, None, JobStatus]:
        """pygeoapi's: the job in a thread of its own, here with a copy of the request's context,
        so that it acts as the account that asked (db/acting.py) after the request has ended."""
        run = contextvars.copy_context().run
        args = (self._execute_handler_sync, p, job_id, data_dict, requested_outputs, subscriber, requested_response)
        threading.Thread(target=run, args=args, daemon=True).start()
        return "application/json", None, JobStatus.accepted

    def _run_unrecorded(self, processor: BaseProcessor, data_dict: dict, requested_outputs: dict | None,
                        subscriber: Subscriber | None, requested_response: str | None
                        ) -> tuple[str, Any, JobStatus]:
        """pygeoapi's synchronous handler (_execute_handler_sync) without its job updates and file."""
        self._send_in_progress_notification(subscriber)
        extra = {"outputs": requested_outputs} if processor.supports_outputs else {}
        try:
            mimetype, outputs = processor.execute(data_dict, **extra)
        except InputError as err:
            code = err.ogc_exception_code
            self._send_failed_notification(subscriber)
            return "application/json", {"type": code, "code": code,
                                        "description": f"Error executing process: {err}"}, JobStatus.failed
        if requested_response == RequestedResponse.document.value:
            outputs = {"outputs": [outputs]}
        self._send_success_notification(subscriber, outputs)
        return mimetype, outputs, JobStatus.successful

    def get_jobs(self, status: JobStatus | None = None, limit: int | None = None, offset: int | None = None
                 ) -> dict:
        """Newest first, one page (the stock manager returns every job whatever the limit)."""
        with Session(self._engine) as session:
            query = session.query(self.table_model)
            if status is not None:
                query = query.filter(self.table_model.status == status.value)
            matched = query.count()
            rows = (query.order_by(self.table_model.started.desc(), self.table_model.identifier)
                    .offset(offset or 0).limit(limit).all())
            return {"jobs": [_job(r.__dict__) for r in rows], "numberMatched": matched}

    def get_job(self, job_id: str) -> dict:
        return _job(super().get_job(job_id))


def prune_jobs(engine: sa.Engine, older_than_days: float, now: datetime | None = None) -> tuple[int, int]:
    """Remove the jobs older than `older_than_days`, and their result files.

    A job's age runs from when it finished, or for one never finished (its server stopped while
    it ran: jobs run in the web process's threads) from its last update.

    Parameters
    ----------
    engine
        The Qiwang database (its `jobs` table).
    older_than_days
        The retention, in days (more than 0; the setting jobs_retention_days by default at the command line).
    now
        The time the ages are counted to (default: the current time).

    Returns
    -------
    tuple[int, int]
        (jobs removed, result files removed).
    """
    if not (math.isfinite(older_than_days) and older_than_days > 0):
        raise InvalidInput("older_than_days", f"must be a number of days more than 0, not {older_than_days!r}")
    cutoff = (now or datetime.now(UTC)) - timedelta(days=older_than_days)
    with engine.begin() as conn:
        removed = conn.execute(sa.text(
            "DELETE FROM jobs WHERE coalesce(finished, updated, created) < :cutoff "
            "RETURNING identifier, process_id, location"), {"cutoff": cutoff}).all()
    files = 0
    for identifier, process_id, location in removed:
        # Only a file the manager wrote for this job (named <process>-<job id>, pygeoapi's naming):
        # a location altered in the table must not make the prune delete anything else.
        path = Path(location) if location else None
        if path is None or path.name != f"{process_id}-{identifier}":
            continue
        try:
            path.unlink()
            files += 1
        except FileNotFoundError:
            pass  # removed already (DELETE /jobs/{id} raced us, or by hand)
    LOGGER.info("pruned %d jobs and %d result files older than %g days", len(removed), files, older_than_days)
    return len(removed), files
