"""Chinese identification codes: each rule defined once, and the check digits, vectorised with NumPy.

Each `Code` is the one source of truth for one rule: the condition as the schema writes it (a
domain or a CHECK of the migrations), the same rule as a Python pattern and a validity function,
a JSON Schema fragment (OGC process inputs) and the description people read in error messages.
The importer, the telemetry topic and Modbus configuration checks and the processes' JSON Schemas
use these; tests/test_codes.py compares every one with the live catalog (pg_get_constraintdef),
so a change on one side only fails the tests.

- 企业唯一编码 (enterprise code, 000 2.1.7): 6-digit county-level division code + 4-digit sequence
  from 0001 (domain t_enterprise_code).
- 行政区划代码 (division code, GB/T 2260): 6 digits, not starting with 0 (domain t_admin_code).
- 统一社会信用代码 (unified social credit code, GB 32100-2015): 18 characters, last one a check
  character over 31 symbols (CHECK credit_code_is_gb32100 of enterprise and customer). The schema
  checks the characters only; `is_valid_credit_code` also checks the check character.
- 公民身份号码 (citizen ID number, GB 11643-1999): 17 digits and an ISO 7064 MOD 11-2 check
  character (0-9 or X). Not checked by the database: since migration 0017 it holds ID numbers
  sealed (accounts/personal_data.py), and no CHECK can read a sealed value; the rule is checked in
  Python before sealing (`seal_frame`). Its `constraint` is the name of the CHECK it was until then.

The check characters make the demo city's codes valid.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CREDIT_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_WEIGHTS = np.array([1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28])
_ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
_ID_CHECK = np.array(list("10X98765432"))


@dataclass(frozen=True)
class Code:
    """One identification code's rule, in every form a layer needs it.

    Parameters
    ----------
    name, article
        The code in English (``enterprise code``) and its article (``an``), for messages.
    name_zh
        The code's Chinese name (``企业唯一编码``), as the schema's column comments call it.
    summary, detail
        What a valid code looks like, short (``10 digits``) and the rest of it.
    sql
        The condition exactly as the migration writes it, ``VALUE`` standing for the value
        (domains say VALUE; a table CHECK names its column instead, see `sql_for`).
    regex
        The whole rule as one regular expression, anchored with ``^`` and ``$``, in the subset
        that PostgreSQL, Python and ECMA-262 (JSON Schema) read alike.
    constraint
        The name of the schema's constraint (a domain's or a table's CHECK).
    domain
        The schema's domain, when the rule is one (columns of that type carry it).
    checked_in_database
        Whether the schema holds the constraint. False for a rule on values the database only
        holds sealed (ID numbers): Python checks it before writing, `constraint` and `sql` say what
        the schema checked before it could not, and no constraint of that name exists.
    """

    name: str
    article: str
    name_zh: str
    summary: str
    detail: str
    sql: str
    regex: str
    constraint: str
    domain: str | None = None
    checked_in_database: bool = True
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", re.compile(self.regex))

    @property
    def description(self) -> str:
        """``10 digits: 6-digit division + 4-digit sequence from 0001``."""
        return f"{self.summary}: {self.detail}"

    def is_valid(self, value: object) -> bool:
        """Whether `value` is a string the schema's rule accepts (whole-string match: ``$`` in
        Python would also accept a trailing newline, PostgreSQL does not)."""
        return isinstance(value, str) and self.pattern.fullmatch(value) is not None

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema fragment of a value of this code (an OGC process input's ``schema``)."""
        return {"type": "string", "pattern": self.regex}

    def sql_for(self, column: str) -> str:
        """The condition with `column` in place of VALUE (as a table CHECK writes it)."""
        return re.sub(r"\bVALUE\b", column, self.sql)

    def reason(self, shown: str) -> str:
        """Why `shown` (a value as a message quotes it) is refused: ``'21' is not an
        administrative division code (6 digits: …)``."""
        return f"{shown} is not {self.article} {self.name} ({self.description})"


# The rules themselves are data, one table each in codes.toml beside this module.
_DECLARED = {key: Code(**fields)
             for key, fields in tomllib.loads((Path(__file__).with_name("codes.toml")).read_text("utf-8")).items()}
ENTERPRISE_CODE = _DECLARED["ENTERPRISE_CODE"]
ADMIN_CODE = _DECLARED["ADMIN_CODE"]
CREDIT_CODE = _DECLARED["CREDIT_CODE"]
ID_NUMBER = _DECLARED["ID_NUMBER"]
CODES: tuple[Code, ...] = (ENTERPRISE_CODE, ADMIN_CODE, CREDIT_CODE, ID_NUMBER)


def code_of_constraint(name: str) -> Code | None:
    """The code whose rule the schema's constraint `name` is (a domain's or a table's), if any."""
    return next((code for code in CODES if code.checked_in_database and code.constraint == name), None)


def credit_code_check_char(body: str) -> str:
    """Check character for the first 17 characters of a unified social credit code."""
    values = np.array([CREDIT_CHARSET.index(c) for c in body])
    return CREDIT_CHARSET[(31 - int(values @ _CREDIT_WEIGHTS) % 31) % 31]


def is_valid_credit_code(code: str) -> bool:
    """A unified social credit code with the right check character (stricter than the schema)."""
    return (
        len(code) == 18
        and all(c in CREDIT_CHARSET for c in code)
        and credit_code_check_char(code[:17]) == code[17]
    )


def id_numbers(bodies: np.ndarray) -> np.ndarray:
    """Complete 17-digit ID bodies (int64: division · 10¹¹ + birth date · 10³ + sequence) with
    their check characters; returns an object array of 18-character strings."""
    digits = (bodies[:, None] // 10 ** np.arange(16, -1, -1, dtype=np.int64)) % 10
    checks = _ID_CHECK[(digits @ _ID_WEIGHTS) % 11]
    return bodies.astype(str).astype(object) + checks.astype(object)


def is_valid_id_number(number: str) -> bool:
    """A citizen ID number with the right check character (stricter than the schema)."""
    if len(number) != 18 or not number[:17].isdigit():
        return False
    body = np.array([int(c) for c in number[:17]])
    return bool(_ID_CHECK[int(body @ _ID_WEIGHTS) % 11] == number[17].upper())
