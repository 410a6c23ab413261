"""Fuzzing the OGC API from its own OpenAPI document (schemathesis): no request it makes gets a 5xx.

schemathesis reads /ogc/openapi from the running server (real HTTP, waitress) and, for every
operation, generates requests that fit the document (positive) and requests that break it (negative:
wrong types, missing or malformed parameters and bodies); each answer is checked with
schemathesis's `not_a_server_error`. The examples per operation and mode are bounded (the whole run
stays under a minute on a slow machine) and hypothesis is derandomised, so a failure repeats.
The document and every request are signed as the city's regulator (Bearer token), who may read
every collection and run every process: anonymous requests would all stop at the 401 and fuzz
nothing but the sign-in check.

schemathesis's pytest loader for a live server (`schemathesis.pytest.from_fixture`) does not run
under pytest 9 (it sets a private attribute of pytest's test items), so the test drives each
operation's hypothesis strategy itself (`APIOperation.as_strategy`), as schemathesis documents for
use with hypothesis, and reports every failing operation together.
"""
from __future__ import annotations

import os
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

EXAMPLES = int(os.environ.get("QIWANG_FUZZ_EXAMPLES", "4"))   # per operation and generation mode

@pytest.fixture(scope="module")
def signed(users: dict) -> dict[str, str]:
    """The city's regulator (Bearer): may read every collection and run every process."""
    return users["city_regulator"].headers


@pytest.fixture(scope="module")
def operations(live_server, signed: dict[str, str]) -> dict[str, Any]:
    """label → operation of the OpenAPI document, read signed in (anonymous, it is a 401)."""
    schema = schemathesis.openapi.from_url(f"{live_server.url}/ogc/openapi?f=json", headers=signed, timeout=60)
    found: dict[str, Any] = {}
    for result in schema.get_all_operations():
        operation = result.ok()   # an operation schemathesis cannot read fails the tests here
        found[operation.label] = operation
    return found


def fuzz(operation: Any, signed: dict[str, str], statuses: dict[int, int]) -> list[str]:
    """The failures of `operation`'s generated requests (positive and negative), signed with `signed`;
    `statuses` counts the answers' status codes."""
    failures: list[str] = []
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck), phases=[hypothesis.Phase.explicit,
                                                                  hypothesis.Phase.generate])
        def check(case) -> None:
            response = case.call_and_validate(headers=signed, checks=[not_a_server_error], timeout=60)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        try:
            check()
        except hypothesis.errors.Unsatisfiable:
            pass  # no request breaks this operation's document (negative mode on a parameterless path)
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - all failures are reported together
            failures.append(f"{operation.label} ({mode.value}): {str(exc)[:2000]}")
    return failures


def test_no_request_gets_a_server_error(operations: dict[str, Any], signed: dict[str, str]) -> None:
    assert len(operations) > 100  # every collection's paths, tiles, processes, jobs
    failures: list[str] = []
    statuses: dict[int, int] = {}
    checked = list(operations.values())
    for operation in checked:
        failures += fuzz(operation, signed, statuses)
    assert not failures, "\n\n".join(failures)
    # the requests passed the sign-in and the role check: the API was fuzzed, not the 401
    assert 401 not in statuses and 403 not in statuses, statuses
    assert statuses.get(200, 0) > len(checked), statuses
