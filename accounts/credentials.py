"""API tokens and web session ids: random secrets of which the database keeps only a hash.

A token reads ``qwt_<id>_<secret>``: the id (12 hex characters) finds its row, the secret (256
bits, URL-safe base64) proves it. Session cookies are 256-bit random values too. Both are stored
as their SM3 hash (GB/T 32905; SHA-256 where the platform's OpenSSL lacks SM3), so a copy of the
database lets no one in. High-entropy secrets need no slow hash: argon2 is for passwords.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets

TOKEN_PREFIX = "qwt_"
_TOKEN = re.compile(r"^qwt_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
HASH_ALGORITHM = "sm3" if "sm3" in hashlib.algorithms_available else "sha256"


def digest(secret: str) -> bytes:
    """The stored form of a secret: its SM3 (else SHA-256) hash."""
    return hashlib.new(HASH_ALGORITHM, secret.encode()).digest()


def new_token() -> tuple[str, str]:
    """(id, the whole token to hand out once)."""
    token_id = secrets.token_hex(6)
    return token_id, f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"


def parse_token(text: str) -> str | None:
    """The id of a well-formed token, else None (then it is no token: perhaps a password)."""
    match = _TOKEN.match(text)
    return match.group(1) if match else None


def new_session_id() -> str:
    """A web session's cookie value."""
    return secrets.token_urlsafe(32)


def same(a: bytes, b: bytes) -> bool:
    """Constant-time comparison of two hashes."""
    return hmac.compare_digest(a, b)
