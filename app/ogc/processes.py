"""OGC API Processes routes: process descriptions, execution and jobs, answered by pygeoapi with
Qiwang's processors and job manager (app/processes/)."""

from __future__ import annotations

from http import HTTPStatus

import pygeoapi.api.processes as processes_api
from flask import Blueprint, Response, current_app, request
from pygeoapi.process.base import ProcessorGenericError

from app.http_errors import response_for
from app.limits import is_timeout, json_object
from app.ogc.context import OgcContext
from core.errors import InvalidInput, Unavailable


def add_routes(bp: Blueprint, ctx: OgcContext) -> None:
    """Add the /processes and /jobs routes to the /ogc blueprint `bp`."""

    ctx.add_pygeoapi_route(bp, "processes", processes_api.describe_processes,
                           "/processes", "/processes/<process_id>")
    ctx.add_pygeoapi_route(bp, "jobs", processes_api.get_jobs, "/jobs", "/jobs/<job_id>")
    ctx.add_pygeoapi_route(bp, "delete_job", processes_api.delete_job, "/jobs/<job_id>", method="DELETE")
    ctx.add_pygeoapi_route(bp, "job_results", processes_api.get_job_result, "/jobs/<job_id>/results")

    @bp.post("/processes/<process_id>/execution")
    def execute(process_id: str) -> Response:
        # pygeoapi 0.21 assumes a UTF-8 JSON object (data.get on whatever json.loads returned).
        try:
            body = json_object(request.get_data(), '{"inputs": {...}}', current_app.config["MAX_CONTENT_LENGTH"])
        except ValueError as exc:  # its message names the member at fault
            raise InvalidInput(None, str(exc)) from None
        for member in ("inputs", "outputs", "subscriber"):
            if member in body and body[member] is not None and not isinstance(body[member], dict):
                raise InvalidInput(member, "a JSON object is expected")
        if not isinstance(body.get("response", "raw"), str):
            raise InvalidInput("response", "raw or document")
        response = ctx.pygeoapi(processes_api.execute_process, process_id)
        location = response.headers.get("Location")
        if response.status_code == HTTPStatus.CREATED and location:
            # pygeoapi 0.21 answers an accepted job with `null`; the standard asks for its status info.
            status = ctx.pygeoapi(processes_api.get_jobs, location.rstrip("/").rsplit("/", 1)[1])
            if status.status_code == HTTPStatus.OK:
                response.set_data(status.get_data())
                response.mimetype = "application/json"
        elif location:
            # pygeoapi names a job for every execution, but a synchronous one is not kept: no link to it.
            del response.headers["Location"]
        return response

    @bp.errorhandler(ProcessorGenericError)
    def job_store_failed(exc: ProcessorGenericError) -> Response:
        # pygeoapi's job manager turns any database error while it records a job into this (its
        # cause kept as __context__); a statement timeout there is the server's limit: 503.
        if is_timeout(exc.__context__):
            return response_for(Unavailable("statement_timeout: recording the job took longer than the server "
                                            "allows; try again later"))
        raise exc
