"""YAML configuration files checked against JSON Schemas: one reader, one way to word a mistake.

The alarm rules (telemetry/rules.py), the Modbus register maps (telemetry/modbus.py) and the import
field mapping (ingest/field_mapping.py) are read with `load`: the file is parsed as YAML, checked
against the reader's JSON Schema (draft 2020-12, kept beside the reader) and every mistake becomes
one `core.errors.InvalidInput` whose `field` is the file and whose reason starts with the key path
in the document, as ``yq`` spells it (0-based list indices)::

    data/modbus.yaml: endpoints[0].devices[2].unit_id: must be an integer 0-255, not 300

What a schema cannot say (a unit that must suit the measure, thresholds in order, a device listed
twice) the reader checks afterwards and reports with `problem`, in the same form.

Two tightenings over plain JSON Schema, because a configuration file is written by hand in YAML:
``integer`` means a YAML integer (not 3.0, not true) and ``number`` a finite one (not .nan, .inf).
A subschema may carry ``errorMessage`` (the ajv-errors keyword): the words used instead of the
validator's own when that subschema's value is wrong, followed by ``, not <the value>``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, best_match

from core.errors import InvalidInput


def _is_integer(checker: Any, instance: Any) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


def _is_number(checker: Any, instance: Any) -> bool:
    return (isinstance(instance, int | float) and not isinstance(instance, bool)
            and math.isfinite(instance))


ConfigValidator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine_many({"integer": _is_integer, "number": _is_number}))

_TYPE_WORDS = {"string": "text", "integer": "an integer", "number": "a number", "object": "a mapping",
               "array": "a list", "boolean": "true or false", "null": "empty"}
_PLAIN_KEY = re.compile(r"[^\s.\[\]\"']+")
_SHOWN_CHARS = 60


def key_path(parts: Iterable[str | int]) -> str:
    """A location in a document as ``yq`` writes it: ``endpoints[0].devices[2].unit_id``.

    Parameters
    ----------
    parts
        Mapping keys and list indices (0-based) from the document's root.
    """
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(str(part)):
            text += f".{part}" if text else str(part)
        else:
            text += f"[{json.dumps(str(part), ensure_ascii=False)}]"
    return text


def problem(path: Path | str, where: Iterable[str | int], reason: str) -> InvalidInput:
    """The error for a mistake at `where` in the file at `path` (raise it).

    Parameters
    ----------
    path
        The configuration file.
    where
        Key path of the value at fault (see `key_path`); empty for the document as a whole.
    reason
        What is wrong, for people (``must be one of big, little, not 'mixed'``).
    """
    location = key_path(where)
    return InvalidInput(str(path), f"{location}: {reason}" if location else reason)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS - 1] + "…"


def reason_of(error: ValidationError) -> str:
    """What a JSON Schema error says, for people (``must be a list, not 'x'``)."""
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    keyword, instance = error.validator, error.instance
    if keyword == "required":
        missing = [name for name in error.validator_value if name not in instance]
        return f"missing {', '.join(missing)}"
    if keyword == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        unknown = sorted(map(str, set(instance) - set(allowed)))
        return f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} (allowed: {', '.join(allowed)})"
    if "errorMessage" in schema:
        return f"{schema['errorMessage']}, not {_shown(instance)}"
    if keyword == "enum":
        return f"must be one of {', '.join(map(str, error.validator_value))}, not {_shown(instance)}"
    if keyword == "type":
        wanted = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        return f"must be {' or '.join(_TYPE_WORDS.get(str(t), str(t)) for t in wanted)}, not {_shown(instance)}"
    if keyword == "minItems" and error.validator_value == 1:
        return "must not be empty"
    return error.message


def check(document: Any, schema: Mapping[str, Any], path: Path | str, root: Iterable[str | int] = ()) -> None:
    """Check a parsed document against a JSON Schema; the most relevant mistake as `InvalidInput`.

    Parameters
    ----------
    document
        The parsed YAML.
    schema
        A draft 2020-12 schema (with the tightenings of the module docstring).
    path
        The file, named in the error.
    root
        Key path of `document` within the file, when it is a part of it.
    """
    error = best_match(ConfigValidator(schema).iter_errors(document))
    if error is not None:
        raise problem(path, [*root, *error.absolute_path], reason_of(error))


def read_yaml(path: Path, what: str) -> Any:
    """The parsed YAML of `path` (None for an empty file).

    Parameters
    ----------
    path
        The file.
    what
        What it holds, for the error (``the alarm rules``).

    Raises
    ------
    InvalidInput
        When the file cannot be read or is not YAML: the file, and the line and column.
    """
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInput(str(path), f"cannot read {what}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InvalidInput(str(path), f"cannot read {what}: not UTF-8 text") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise InvalidInput(str(path), f"cannot read {what}: not YAML: {exc.problem or exc.context}{at}") from None
    except yaml.YAMLError as exc:
        raise InvalidInput(str(path), f"cannot read {what}: not YAML: {exc}") from None


def load(path: Path, schema: Mapping[str, Any], what: str) -> Any:
    """Read a YAML configuration file and check it against `schema` (see `read_yaml`, `check`).

    Parameters
    ----------
    path
        The file.
    schema
        Its JSON Schema.
    what
        What it holds, for the error (``the Modbus config``).
    """
    document = read_yaml(path, what)
    check(document, schema, path)
    return document
