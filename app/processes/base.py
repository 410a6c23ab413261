"""What every Qiwang process shares: input checking against the declared metadata, points and CRS,
the database, and turning analysis errors into errors that name the input.

A process module declares PROCESS_METADATA (pygeoapi's plugin pattern; its title, description and
keywords in descriptions.toml) and subclasses QiwangProcessor with a `run(inputs)` that calls the
analysis; `execute` does the rest. The input at fault is the `field` of the analysis's
core.errors.InvalidInput (the analysis's parameter name), renamed by the processor's INPUT_OF
where the process calls it otherwise; nothing reads the message.
"""
from __future__ import annotations

import copy
import tomllib
from http import HTTPStatus
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import sqlalchemy as sa
from pygeoapi.process.base import BaseProcessor, ProcessorExecuteError

from app.http_errors import not_permitted, unavailable
from core.errors import InvalidInput, NotFound, QiwangError
from db.engine import get_engine

DEFAULT_CRS = "OGC:CRS84"
JOB_CONTROL = ["sync-execute", "async-execute"]

# A point is a GeoJSON Point or a bare [x, y] pair. Either way x is the easting or longitude and y
# the northing or latitude (GeoJSON order), whatever axis order the CRS's authority declares.
POINT_SCHEMA: dict = {"oneOf": [
    {"type": "object", "format": "geojson-geometry", "required": ["type", "coordinates"],
     "properties": {"type": {"type": "string", "enum": ["Point"]},
                    "coordinates": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 3}}},
    {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
]}



# Titles, descriptions, keywords and report descriptions of the processes, by process id.
DESCRIPTIONS: dict[str, dict] = tomllib.loads(Path(__file__).with_name("descriptions.toml").read_text("utf-8"))


def process_metadata(process_id: str, *, inputs: dict[str, dict], example: dict[str, Any]) -> dict:
    """pygeoapi's PROCESS_METADATA of a Qiwang process: version 1.0.0, run synchronously or as a
    job, with one output, the analysis's fixed-key JSON report.

    Parameters
    ----------
    process_id
        The process's id in /ogc/processes/{id}; its title, description, keywords and the
        description of its report (keys, units, CRS) are those of descriptions.toml.
    inputs
        Input id → its metadata (`value_input`, `point_input`, CRS_INPUT).
    example
        Inputs of an example execution (shown in the OpenAPI document).
    """
    texts = DESCRIPTIONS[process_id]
    return {
        "version": "1.0.0", "id": process_id, "title": texts["title"], "description": texts["description"],
        "jobControlOptions": JOB_CONTROL, "keywords": texts["keywords"], "inputs": inputs,
        "outputs": {"report": {"title": "Report", "description": texts["report"],
                               "schema": {"type": "object", "contentMediaType": "application/json"}}},
        "example": {"inputs": example},
    }


def value_input(title: str, description: str, schema: dict, *, required: bool = False, many: bool = False) -> dict:
    """The metadata of an input: one value (`many`: any number of them) matching `schema`."""
    return {"title": title, "description": description, "schema": schema,
            "minOccurs": 1 if required else 0, "maxOccurs": "unbounded" if many else 1}


CRS_INPUT: dict = value_input(
    "CRS of the input points",
    "CRS of every point input: OGC:CRS84 (longitude, latitude; the default), EPSG:4490 (CGCS2000 geographic, "
    "still given as longitude, latitude), EPSG:4550 (the storage CRS, easting, northing in metres) or any "
    "EPSG code or OGC CRS URI. Points are always x first (easting or longitude), as in GeoJSON.",
    {"type": "string", "default": DEFAULT_CRS})


def point_input(title: str, description: str, required: bool) -> dict:
    """The metadata of a point input (one point)."""
    return value_input(title, description + " A GeoJSON Point or [x, y], in `crs`.", POINT_SCHEMA, required=required)


class ProcessError(ProcessorExecuteError):
    """A process that failed in a way the client is told about, with an HTTP status and OGC code
    (pygeoapi's API answers a ProcessorExecuteError with them)."""

    def __init__(self, message: str, status: int, code: str) -> None:
        # user_msg too: pygeoapi shows `.message` on one path and str() on the other
        super().__init__(message, user_msg=message)
        self.http_status_code = HTTPStatus(status)
        self.ogc_exception_code = code


class InputError(ProcessError):
    """Bad input to a process: the client's mistake, 400. A synchronous execution answers it as
    pygeoapi answers a failed job ({"code", "type", "description": "Error executing process: …"})."""

    def __init__(self, message: str) -> None:
        super().__init__(message, HTTPStatus.BAD_REQUEST, "InvalidParameterValue")


def xy(value: dict | list) -> tuple[float, float]:
    """(x, y) of a point input that passed POINT_SCHEMA."""
    coordinates = value["coordinates"] if isinstance(value, dict) else value
    return float(coordinates[0]), float(coordinates[1])


def _unwrapped(value: Any) -> Any:
    """An OGC API Processes qualified value ({"value": …, "mediaType": …}) → the value itself."""
    if isinstance(value, dict) and "value" in value and set(value) <= {"value", "mediaType", "encoding", "schema"}:
        return value["value"]
    return value


def _check(name: str, schema: dict, value: Any) -> None:
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(value))
    if error is not None:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
        raise InputError(f"input {name!r}{f' at {where}' if where else ''}: {error.message}")


def checked_inputs(metadata: dict, data: Any) -> dict:
    """The execute request's inputs checked against `metadata["inputs"]`: no unknown names, the
    required ones present, each value valid for its schema. Absent optional inputs get the
    schema's default (None without one, [] when several are allowed); inputs with maxOccurs > 1
    are lists (a single value is accepted as a list of one)."""
    if not isinstance(data, dict):
        raise InputError("inputs must be a JSON object of input name → value")
    declared = metadata["inputs"]
    unknown = sorted(set(data) - set(declared))
    if unknown:
        raise InputError(f"unknown input {unknown[0]!r}: {metadata['id']} takes {', '.join(declared)}")
    inputs = {}
    for name, spec in declared.items():
        schema, many = spec["schema"], spec["maxOccurs"] != 1
        value = _unwrapped(data.get(name))
        if value is None:
            if spec["minOccurs"] > 0:
                raise InputError(f"input {name!r} is required")
            inputs[name] = [] if many else copy.deepcopy(schema.get("default"))
            continue
        if not many:
            _check(name, schema, value)
            inputs[name] = value
            continue
        if not isinstance(value, list) or jsonschema.Draft202012Validator(schema).is_valid(value):
            value = [value]  # one value given bare, e.g. "V1" or [x, y] for a list of points
        if spec["maxOccurs"] != "unbounded" and len(value) > spec["maxOccurs"]:
            raise InputError(f"input {name!r}: at most {spec['maxOccurs']} values, not {len(value)}")
        for k, item in enumerate(value):
            _check(f"{name}[{k}]", schema, item)
        inputs[name] = value
    return inputs


class QiwangProcessor(BaseProcessor):
    """A process on the Qiwang database named by the processor definition's `database_url`.

    Subclasses implement `run` and set INPUT_OF where the analysis calls an input otherwise:
    analysis parameter → process input (route: {"start": "from", "end": "to"}).
    """

    INPUT_OF: ClassVar[dict[str, str]] = {}

    def __init__(self, processor_def: dict, process_metadata: dict) -> None:
        # a copy: pygeoapi pops keys out of the metadata while it writes the OpenAPI document
        super().__init__(processor_def, copy.deepcopy(process_metadata))
        try:
            self.database_url: str = processor_def["database_url"]
        except KeyError:
            raise QiwangError(f"process {process_metadata['id']}: the processor definition has no database_url "
                              "(build it with app.processes.process_resources)") from None

    @property
    def engine(self) -> sa.Engine:
        return get_engine(self.database_url)

    def execute(self, data: dict, outputs: dict | None = None) -> tuple[str, dict]:
        """Run the process on the execute request's inputs: ("application/json", the report).

        Raises InputError (400) naming the input at fault, ProcessError with the status of the
        core.errors class otherwise: 409 for a state that forbids the analysis, 503 when the
        database is away or the analysis outran the statement_timeout.
        """
        inputs = checked_inputs(self.metadata, data)
        try:
            return "application/json", self.run(inputs)
        except QiwangError as err:
            raise self.process_error(err) from None
        except sa.exc.ProgrammingError as err:
            refused = not_permitted(err)
            if refused is None:
                raise
            raise self.process_error(refused) from None
        except sa.exc.OperationalError as err:
            # else pygeoapi would call it a failed job with the client at fault (400)
            raise self.process_error(unavailable(
                err, "the analysis took longer than the server allows for a synchronous request; run it "
                     "asynchronously (Prefer: respond-async) or try again later")) from None

    def process_error(self, err: QiwangError) -> ProcessError:
        """The answer to an analysis's error: InvalidInput names the process input (its `field`, an
        index such as `[2]` kept, renamed by INPUT_OF); NotFound of something the inputs named is
        the input's fault too (400); other classes keep their status (409, 503)."""
        if isinstance(err, InvalidInput) and err.field is not None:
            head, bracket, index = err.field.partition("[")
            name = self.INPUT_OF.get(head, head)
            if name in self.metadata["inputs"]:
                return InputError(f"input {name + bracket + index!r}: {err.reason}")
        if isinstance(err, InvalidInput | NotFound) or err.http_status == HTTPStatus.BAD_REQUEST:
            return InputError(str(err))
        return ProcessError(str(err), err.http_status, err.ogc_code)

    def run(self, inputs: dict) -> dict:
        """The analysis on checked inputs (defaults filled in): its JSON-ready report."""
        raise NotImplementedError
