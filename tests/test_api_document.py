"""The OpenAPI document of /api (app/api_document.py): valid OpenAPI 3.0, and true to the routes.

tests/test_api_fuzz.py fuzzes the server from it; here it is checked against the specification and
against the Flask app's own routing table, so that a route added without its operation (or an
operation left behind by a route removed) fails.
"""
from __future__ import annotations

import re

import requests
from openapi_spec_validator import validate

TIMEOUT = 60


def test_the_document_is_valid_openapi_and_names_every_route(live_server, users) -> None:
    answer = requests.get(f"{live_server.url}/api/openapi", headers=users["a_viewer"].headers, timeout=TIMEOUT)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/vnd.oai.openapi+json;version=3.0"
    document = answer.json()
    validate(document)
    assert document["servers"] == [{"url": live_server.url}]
    documented = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    routed = set()
    for rule in live_server.app.url_map.iter_rules():
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule).replace("{fmt}", "{format}")
        if (path.startswith("/api/") and path != "/api/openapi") or path == "/qgis/project.qgs":
            routed |= {(method, path) for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert documented == routed
    # each operation says which duties may call it, from accounts/permissions.py
    assert document["paths"]["/api/audit"]["get"]["description"] == "Duties: auditor."
    account = document["paths"]["/api/accounts"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert account["required"] == ["name", "roles"] and account["additionalProperties"] is False


def test_the_document_needs_an_account(live_server) -> None:
    answer = requests.get(f"{live_server.url}/api/openapi", timeout=TIMEOUT)
    assert (answer.status_code, answer.json()["code"]) == (401, "Unauthorized")
