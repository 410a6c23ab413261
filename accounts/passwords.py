"""Passwords (GB/T 22239-2019 level 2, 身份鉴别): the rules, and argon2id hashes.

A password has at least 8 characters of at least three of four classes (lower case, upper case,
digits, other), does not contain the account name (case-insensitive) and is none of the account's
last 5. Hashes are argon2id (memory-hard; argon2-cffi's defaults: 64 MiB, 3 passes, 4 lanes),
in the PHC string form that carries its own parameters and salt.
"""
from __future__ import annotations

import secrets
import string

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from core.errors import InvalidInput

MIN_LENGTH = 8
MIN_CLASSES = 3
HISTORY = 5           # a new password may not be any of the last HISTORY ones
MAX_LENGTH = 256      # beyond, it is no password but an attempt to make argon2 work for nothing

_HASHER = PasswordHasher()
_CLASSES = (str.islower, str.isupper, str.isdigit)


def classes(password: str) -> int:
    """How many of the four character classes (lower, upper, digit, other) `password` uses."""
    used = [any(test(c) for c in password) for test in _CLASSES]
    used.append(any(not (c.islower() or c.isupper() or c.isdigit()) for c in password))
    return sum(used)


def check_password(password: str, account_name: str, previous_hashes: tuple[str, ...] = ()) -> None:
    """Refuse a password the rules do not allow.

    Parameters
    ----------
    password
        The new password.
    account_name
        The account's login name; the password may not contain it.
    previous_hashes
        The argon2 hashes of the account's last passwords (newest first; only HISTORY are read).

    Raises
    ------
    InvalidInput
        Field ``password``, with the rule it breaks.
    """
    if len(password) < MIN_LENGTH:
        raise InvalidInput("password", f"at least {MIN_LENGTH} characters are needed, not {len(password)}")
    if len(password) > MAX_LENGTH:
        raise InvalidInput("password", f"at most {MAX_LENGTH} characters")
    if classes(password) < MIN_CLASSES:
        raise InvalidInput("password", "use at least three of: lower-case letters, capitals, digits, other "
                                       "characters")
    if account_name and account_name.lower() in password.lower():
        raise InvalidInput("password", "must not contain the account name")
    if any(verify_password(old, password) for old in previous_hashes[:HISTORY]):
        raise InvalidInput("password", f"must differ from the last {HISTORY} passwords")


def hash_password(password: str) -> str:
    """The argon2id hash (PHC string) of `password`."""
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether `password` is the one `password_hash` was made from (False for no hash)."""
    if not password_hash or len(password) > MAX_LENGTH:
        return False
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made with weaker parameters than today's (rehash at the next login)."""
    return _HASHER.check_needs_rehash(password_hash)


def first_password() -> str:
    """A random password that meets the rules (16 characters of all four classes), for a new
    account; its owner must change it at the first login."""
    alphabet = string.ascii_letters + string.digits + "-_.!@#%+="
    while True:
        password = "".join(secrets.choice(alphabet) for _ in range(16))
        if classes(password) == 4:
            return password
