"""Fuzzing the OGC API and Qiwang's own /api from their OpenAPI documents (schemathesis): no request
it makes gets a 5xx.

schemathesis reads /ogc/openapi from the running server (real HTTP, waitress) and, for every
operation, generates requests that fit the document (positive) and requests that break it (negative:
wrong types, missing or malformed parameters and bodies); each answer is checked with
schemathesis's `not_a_server_error`. The examples per operation and mode are bounded (the whole run
stays under a minute on a slow machine) and hypothesis is derandomised, so a failure repeats.
The OGC document and its requests are signed as the city's regulator (Bearer token), who may read
every collection and run every process: anonymous requests would all stop at the 401 and fuzz
nothing but the sign-in check. The /api document's operations are each signed as an account whose
duties reach the route's checks (a dispatcher for alarm steps, the auditor for the audit log, a
security administrator for accounts, a `pii` account for personal data, a viewer for files):
accounts are fuzzed by one who may change roles but not add accounts, so that generated bodies
reach every check without adding accounts to the session's database.

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


@pytest.fixture(scope="module")
def api_signers(users: dict, db_url: str) -> dict[str, dict[str, str]]:
    """tag of the /api document → the headers of the account that fuzzes its operations."""
    from signed_in import CITY, ENTERPRISE_A, ensure_account

    security_admin = ensure_account(db_url, "fuzz_security_admin", ("security_admin",), division=CITY)
    pii = ensure_account(db_url, "fuzz_pii", ("pii",), enterprise=ENTERPRISE_A)
    return {"session": users["a_viewer"].headers, "alarms": users["a_dispatcher"].headers,
            "audit": users["auditor"].headers, "accounts": security_admin.headers, "personal data": pii.headers,
            "files": users["a_viewer"].headers}


def test_no_request_of_the_api_document_gets_a_server_error(live_server, api_signers: dict[str, dict[str, str]],
                                                            engine) -> None:
    import sqlalchemy as sa

    def accounts() -> int:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM auth.account")).scalar_one()

    before = accounts()
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/openapi", headers=api_signers["session"],
                                           timeout=60)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 12   # session, 2 alarms, audit, 5 accounts, pii, exports, QGIS project
    failures: list[str] = []
    statuses: dict[int, int] = {}
    for operation in operations:
        failures += fuzz(operation, api_signers[operation.definition.raw["tags"][0]], statuses)
    assert not failures, "\n\n".join(failures)
    assert 401 not in statuses, statuses
    assert statuses.get(200, 0) >= 4 and statuses.get(400, 0) > 0 and statuses.get(404, 0) > 0, statuses
    assert accounts() == before   # the security administrator may not add accounts: none was added
