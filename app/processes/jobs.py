"""Process jobs kept in PostgreSQL: pygeoapi's PostgreSQLManager on the Qiwang database.

The stock manager builds a psycopg2 URL from host, port, user and password, so it cannot reach
the embedded cluster (a Unix socket given as `?host=`, no port); this one uses the project's
SQLAlchemy engine for the URL instead. Job rows live in `jobs` (migration 0008); results are JSON
files in the manager's output_dir, named in the row's `location`, as with the stock manager.
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pygeoapi.process.manager.base import BaseManager
from pygeoapi.process.manager.postgresql import PostgreSQLManager
from pygeoapi.provider.base import ProviderGenericError
from pygeoapi.provider.sql import get_table_model
from pygeoapi.util import DATETIME_FORMAT, JobStatus
from sqlalchemy.orm import Session

from app.processes.base import DatabaseBusyError
from core.errors import QiwangError
from db.engine import get_engine, shown


def _job(row: dict) -> dict:
    """A job row as pygeoapi's API and HTML templates expect it: times as ISO 8601 UTC strings."""
    return {k: v.astimezone(UTC).strftime(DATETIME_FORMAT) if isinstance(v, datetime) else v
            for k, v in row.items() if k != "_sa_instance_state"}


class QiwangJobManager(PostgreSQLManager):
    """PostgreSQLManager whose `connection` is a SQLAlchemy URL (any the project accepts)."""

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

    def _execute_handler_sync(self, p: Any, job_id: str, data_dict: dict, *args: Any, **kwargs: Any
                              ) -> tuple[str, Any, JobStatus]:
        """pygeoapi's synchronous run, which records any failure as a failed job answered with 400;
        a statement timeout is the server's limit, not the client's fault: the job stays recorded
        as failed and the request gets 503 (pygeoapi's API answers a ProcessorExecuteError with its
        own status)."""
        busy: list[DatabaseBusyError] = []
        execute = p.execute

        def watched(*a: Any, **kw: Any) -> Any:
            try:
                return execute(*a, **kw)
            except DatabaseBusyError as err:
                busy.append(err)
                raise

        p.execute = watched
        try:
            result = super()._execute_handler_sync(p, job_id, data_dict, *args, **kwargs)
        finally:
            p.execute = execute
        if busy:
            raise busy[0]
        return result

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
