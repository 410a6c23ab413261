"""How the CLI prints for people: numbers, columns padded by display width, values that may be missing.

One place for it, so that every command's tables line up and its numbers look alike:

- `number(1234567)` → '1,234,567', `number(0.5, 2)` → '0.50': thousands separators everywhere.
- `width('铁东区')` → 6: a CJK character fills two terminal columns, a combining mark none
  (`wcwidth` when installed, else the Unicode East Asian Width property, which is what wcwidth
  itself follows for these characters).
- `pad('铁东区', 10)` / `pad('12', 6, '>')`: str.ljust / rjust by display width, for table columns.
- `shown(None, 'never')`: a missing value as words, never 'None'.
"""
from __future__ import annotations

import unicodedata
from datetime import UTC, datetime

try:  # pragma: no cover - which branch runs depends on the machine
    from wcwidth import wcswidth as _wcswidth
except ImportError:  # not a dependency: the fallback below measures the same for CJK text
    _wcswidth = None


def _char_width(ch: str) -> int:
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def width(text: str) -> int:
    """Columns `text` takes in a terminal (CJK characters two, combining marks none)."""
    if _wcswidth is not None:
        measured = _wcswidth(text)
        if measured >= 0:  # -1: a control character wcwidth cannot measure
            return measured
    return sum(_char_width(ch) for ch in text)


def pad(text: object, columns: int, align: str = "<") -> str:
    """`text` padded with spaces to `columns` display columns, left ('<') or right ('>') aligned.

    Text wider than `columns` is returned whole: a column that overflows stays readable.
    """
    text = "" if text is None else str(text)
    fill = " " * max(0, columns - width(text))
    return text + fill if align == "<" else fill + text


def number(value: float | int | None, decimals: int = 0, missing: str = "—") -> str:
    """A number with thousands separators ('12,345', '1,234.5' with decimals=1); `missing` for None."""
    if value is None:
        return missing
    return f"{value:,.{decimals}f}"


def shown(value: object, missing: str = "—") -> str:
    """A value for a person: `missing` for None, datetimes as 'YYYY-MM-DD HH:MM:SS UTC'."""
    if value is None:
        return missing
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return f"{value:%Y-%m-%d %H:%M:%S}" + (" UTC" if value.tzinfo is not None else "")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return number(value)
    return str(value)
