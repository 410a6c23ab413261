"""Issue 18: signing in over HTTP (real HTTP, waitress, the session's server).

Anonymous requests get 401 with the JSON error and a Basic challenge; a browser asking for a page
is sent to the login page (303) with the page it wanted; wrong passwords, unknown tokens and the
token of another account are 401 with a description that says which; the health check and the
login page need no sign-in. The accounts are the `users` fixture's (Bearer) and one of this
module's own for passwords (a wrong one counts towards its lockout, which no other test should meet).
"""
from __future__ import annotations

import base64
import html
import re
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests
from signed_in import ENTERPRISE_A, ensure_account

CHALLENGE = 'Basic realm="Qiwang", charset="UTF-8"'
ANONYMOUS = {"code": "Unauthorized", "description": "sign in: HTTP Basic (account and password or API token), "
                                                   "a Bearer token, or the login page /login"}
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def basic(name: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{secret}".encode()).decode()}


def assert_401(r: requests.Response, description: str) -> None:
    assert r.status_code == 401, r.text[:300]
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.headers["WWW-Authenticate"] == CHALLENGE
    assert r.json() == {"code": "Unauthorized", "description": description}


@pytest.fixture(scope="module")
def password_account(db_url: str):
    """A viewer of enterprise A kept for password tests."""
    return ensure_account(db_url, "auth_http_basic", ("viewer",), enterprise=ENTERPRISE_A)


def test_anonymous_requests_are_401_with_a_basic_challenge(live_server) -> None:
    for method, path in (("get", "/ogc/collections"), ("get", "/ogc/collections/pipes/items"),
                         ("get", "/api/session"), ("post", "/ogc/processes/network-statistics/execution")):
        r = requests.request(method, live_server.url + path, timeout=30)
        assert r.status_code == 401, path
        assert r.headers["WWW-Authenticate"] == CHALLENGE, path
        assert r.json() == ANONYMOUS, path
    assert_401(requests.get(f"{live_server.url}/ogc/collections", timeout=30), ANONYMOUS["description"])
    # another scheme than Basic or Bearer is no credential
    assert_401(requests.get(f"{live_server.url}/ogc/collections", headers={"Authorization": "Digest x"}, timeout=30),
               "Authorization: Basic or Bearer are understood")


def test_a_browser_is_sent_to_the_login_page(live_server) -> None:
    for path in ("/ogc/collections", "/ogc/collections?f=html", "/map/"):
        r = requests.get(live_server.url + path, headers=BROWSER, allow_redirects=False, timeout=30)
        assert r.status_code == 303, path
        assert r.headers["Location"] == f"/login?next={quote(path, safe='/')}"   # the whole query kept
    page = requests.get(f"{live_server.url}/ogc/collections?f=html", headers=BROWSER, timeout=30)
    assert page.status_code == 200 and page.url == f"{live_server.url}/login?next=/ogc/collections%3Ff%3Dhtml"
    assert page.headers["Content-Type"].startswith("text/html")
    assert '<input type="hidden" name="next" value="/ogc/collections?f=html">' in page.text
    # a browser that sends credentials (or asks no page) gets the 401, not the login page
    r = requests.get(f"{live_server.url}/ogc/collections", allow_redirects=False, timeout=30,
                     headers={**BROWSER, "Authorization": "Bearer qwt_000000000000_nope"})
    assert_401(r, "unknown API token")
    r = requests.post(f"{live_server.url}/ogc/processes/network-statistics/execution", headers=BROWSER,
                      allow_redirects=False, timeout=30)
    assert (r.status_code, r.json()) == (401, ANONYMOUS)


def test_the_login_page_keeps_every_parameter_of_the_page_asked_for(live_server) -> None:
    path = "/ogc/collections/pipes/items?f=html&limit=5"
    r = requests.get(live_server.url + path, headers=BROWSER, allow_redirects=False, timeout=30)
    assert r.status_code == 303
    assert parse_qs(urlsplit(r.headers["Location"]).query) == {"next": [path]}
    page = requests.get(live_server.url + r.headers["Location"], timeout=30)
    field = re.search(r'name="next" value="([^"]*)"', page.text)
    assert field is not None and html.unescape(field.group(1)) == path


def test_basic_with_passwords_and_tokens(live_server, password_account, users) -> None:
    url = f"{live_server.url}/api/session"
    name = password_account.name
    assert_401(requests.get(url, headers=basic(name, password_account.password + "x"), timeout=30),
               "wrong account name or password")
    assert_401(requests.get(url, headers=basic("no_such_account", password_account.password), timeout=30),
               "wrong account name or password")   # the same answer: no oracle for account names
    for secret in (password_account.password, password_account.token):   # Basic name:password or name:token
        r = requests.get(url, headers=basic(name, secret), timeout=30)
        assert r.status_code == 200, r.text[:300]
        assert (r.json()["name"], r.json()["roles"], r.json()["enterprise_code"]) == (name, ["viewer"], ENTERPRISE_A)
    # the token of another account under this account's name
    assert_401(requests.get(url, headers=basic(name, users["b_viewer"].token), timeout=30),
               "this API token belongs to another account")
    assert_401(requests.get(url, headers={"Authorization": "Basic not-base64!"}, timeout=30),
               "Authorization: not Basic base64(name:password)")


def test_bearer_tokens(live_server, users) -> None:
    url = f"{live_server.url}/api/session"
    viewer = users["a_viewer"]
    r = requests.get(url, headers=viewer.headers, timeout=30)
    assert (r.status_code, r.json()["name"]) == (200, "a_viewer")
    _, token_id, secret = viewer.token.split("_", 2)
    for unknown in (f"qwt_000000000000_{secret}",            # no such token id
                    f"qwt_{token_id}_{secret[::-1]}",         # the id of a real token, another secret
                    "not-a-token"):
        assert_401(requests.get(url, headers={"Authorization": f"Bearer {unknown}"}, timeout=30), "unknown API token")


def test_health_and_login_page_need_no_sign_in(live_server) -> None:
    r = requests.get(f"{live_server.url}/health", timeout=30)
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "database": "ok"}
    r = requests.get(f"{live_server.url}/login", timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert '<input type="hidden" name="next" value="/map/">' in r.text   # no next: the map
