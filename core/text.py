"""Text PostgreSQL can store: the one rule for strings that come from clients.

PostgreSQL's text type cannot hold NUL, and a lone UTF-16 surrogate (JSON "\\ud800" decodes to
one) is not Unicode at all: psycopg refuses to encode it. Both are the client's doing, so every
path refuses them with the name of the parameter at fault rather than failing at write time.
"""
from __future__ import annotations

import re

_SURROGATE = re.compile("[\ud800-\udfff]")


def unstorable(value: str) -> str | None:
    """Why `value` cannot be stored as PostgreSQL text, or None when it can."""
    if "\x00" in value:
        return "contains a NUL character"
    if _SURROGATE.search(value):
        return "contains a lone UTF-16 surrogate (not valid Unicode)"
    return None
