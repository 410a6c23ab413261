"""Text rules: what PostgreSQL can store, and the key for matching names and labels.

PostgreSQL's text type cannot hold NUL, and a lone UTF-16 surrogate (JSON "\\ud800" decodes to
one) is not Unicode at all: psycopg refuses to encode it. Both are the client's doing, so every
path refuses them with the name of the parameter at fault rather than failing at write time;
where a text must be kept anyway (a quarantined message's topic, a reason quoting bad input),
`escaped` writes them as visible escapes.
"""
from __future__ import annotations

import re
import unicodedata

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable_char(value: str) -> str | None:
    """The first character of `value` PostgreSQL text cannot hold (NUL or a lone surrogate), or None."""
    found = _UNSTORABLE.search(value)
    return found.group() if found else None


def unstorable(value: str) -> str | None:
    """Why `value` cannot be stored as PostgreSQL text, or None when it can."""
    if "\x00" in value:
        return "contains a NUL character"
    if unstorable_char(value):
        return "contains a lone UTF-16 surrogate (not valid Unicode)"
    return None


def escaped(value: str) -> str:
    """`value` with what PostgreSQL text cannot hold written as visible escapes: NUL as ``\\0``,
    a lone surrogate as ``\\udxxx`` (as Python's 'backslashreplace' writes it)."""
    return _UNSTORABLE.sub(lambda m: "\\0" if m.group() == "\x00" else f"\\u{ord(m.group()):04x}", value)


def normalise(name: str) -> str:
    """Key for matching names and labels: NFKC (full-width （） become ()), case-folded, without
    spaces, underscores and hyphens."""
    return re.sub(r"[\s_\-]+", "", unicodedata.normalize("NFKC", str(name))).casefold()
