"""Accounts for the tests: made once per database (as its owner), with a known password and an API token.

The tests sign in with Bearer tokens (no argon2 per request) unless they test passwords, Basic
auth or sessions themselves. The password is derived from the name (it must not contain it) so
that a test can also use Basic.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import requests

from demo.accounts import signed_in_account

# The demo city's (tests/conftest.py: DEMO seed): two enterprises, the district holding both, the city.
ENTERPRISE_A, ENTERPRISE_B = "2103020001", "2103110001"
DISTRICT_OF_BOTH, CITY = "210311", "210300"


@dataclass(frozen=True)
class TestAccount:
    __test__ = False   # not a test class, whatever its name says

    name: str
    password: str
    token: str
    db_role: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def basic(self) -> tuple[str, str]:
        return self.name, self.password

    def session(self) -> requests.Session:
        """A requests session that signs every request with the account's token."""
        http = requests.Session()
        http.headers.update(self.headers)
        return http


def password_of(name: str) -> str:
    return f"Qw-{hashlib.sha1(name.encode()).hexdigest()[:10]}-T1"


_made: dict[tuple[str, str], TestAccount] = {}


def ensure_account(owner_url: str, name: str, duties: tuple[str, ...], *, enterprise: str | None = None,
                   division: str | None = None, db_login: bool = False) -> TestAccount:
    """Account `name` in the database of `owner_url`, made if missing (its password need not be
    changed), with a fresh API token the first time this process asks for it."""
    key = (owner_url, name)
    if key in _made:
        return _made[key]
    found, token = signed_in_account(owner_url, name, duties, enterprise=enterprise, division=division,
                                     password=password_of(name), db_login=db_login)
    made = TestAccount(name, password_of(name), token, found.db_role)
    _made[key] = made
    return made


def forget(owner_url: str) -> None:
    """Forget the accounts of a database that was dropped or replaced."""
    for key in [k for k in _made if k[0] == owner_url]:
        del _made[key]
