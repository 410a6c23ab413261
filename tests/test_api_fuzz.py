"""Fuzzing the OGC API from its own OpenAPI document (schemathesis): no request it makes gets a 5xx.

schemathesis reads /ogc/openapi from the running server (real HTTP, waitress) and, for every
operation, generates requests that fit the document (positive) and requests that break it (negative:
wrong types, missing or malformed parameters and bodies); each answer is checked with
schemathesis's `not_a_server_error`. The examples per operation and mode are bounded (the whole run
stays under a minute on a slow machine) and hypothesis is derandomised, so a failure repeats.

schemathesis's pytest loader for a live server (`schemathesis.pytest.from_fixture`) does not run
under pytest 9 (it sets a private attribute of pytest's test items), so the test drives each
operation's hypothesis strategy itself (`APIOperation.as_strategy`), as schemathesis documents for
use with hypothesis, and reports every failing operation together.
"""
from __future__ import annotations

import os

import hypothesis
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

EXAMPLES = int(os.environ.get("QIWANG_FUZZ_EXAMPLES", "4"))   # per operation and generation mode


def test_no_request_gets_a_server_error(live_server) -> None:
    schema = schemathesis.openapi.from_url(f"{live_server.url}/ogc/openapi?f=json")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()   # an operation schemathesis cannot read fails the test here
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck), phases=[hypothesis.Phase.explicit,
                                                                      hypothesis.Phase.generate])
            def check(case) -> None:
                case.call_and_validate(checks=[not_a_server_error], timeout=60)

            try:
                check()
            except hypothesis.errors.Unsatisfiable:
                pass  # no request breaks this operation's document (negative mode on a parameterless path)
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - all failures are reported below
                failures.append(f"{operation.label} ({mode.value}): {str(exc)[:2000]}")
    assert operations > 100  # every collection's paths, tiles, processes, jobs
    assert not failures, "\n\n".join(failures)
