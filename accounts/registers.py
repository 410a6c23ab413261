"""The registers: administrative divisions (GB/T 2260) and gas enterprises (000 appendix A.1 #1).

Every business row names its enterprise and division, so both must be registered before a network
is imported or an account made for them. Each rule on a value is written once, here, and serves
`add_enterprise` (the CLI: the first problem raised) and `prepare_enterprises` (a file's layer: one
``FILE:LAYER:FEATURE:FIELD: reason`` line per problem, as the importer writes them).

- A division's code is a GB/T 2260 code of its level (province ``XX0000``, city ``XXYY00``, county
  ``XXYYZZ``) and lies in its parent, one level up: a city's code begins with its province's first
  two digits, a county's with its city's first four. A province has no parent.
- An enterprise's code is its county-level division's code and a 4-digit sequence (000 2.1.7), so
  the division follows from the code; a division given must be that one. The unified social credit
  code's check character is checked (GB 32100), the licence's expiry must follow its issue, and
  dictionary columns take a code or a Chinese label of their ``dict.<name>`` list. Which fields are
  mandatory (NOT NULL without a default), what type each has and what it is called in Chinese are
  read from the catalog, so the rules follow the migrations.

Audit: enterprise rows are recorded by the table's row trigger (migration 0017); divisions have
none, so each is recorded as a ``division_add`` event. Both name the CLI's operator
(``operator:<OS user>``) when the connection acts as the owner.
"""
from __future__ import annotations

import functools
import numbers
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import pandas as pd
import sqlalchemy as sa

from accounts import audit
from core.codes import ADMIN_CODE, CODES, CREDIT_CODE, Code, credit_code_check_char
from core.errors import Conflict, InvalidInput, QiwangError
from core.text import normalise, unstorable
from db import catalog

LEVELS = ("province", "city", "county")
# GB/T 2260: the digits a level's code ends in, and how many leading digits it shares with its parent.
_LEVEL_FORM = {"province": ("XX0000", re.compile(r"\d{2}0000")),
               "city": ("XXYY00, YY not 00", re.compile(r"\d{2}(?!00)\d{2}00")),
               "county": ("XXYYZZ, ZZ not 00", re.compile(r"\d{4}(?!00)\d{2}"))}
_SHARED_DIGITS = {"city": 2, "county": 4}

LAYER_NAMES = ("enterprises", "enterprise", "企业", "燃气企业")   # a file's layer of enterprises
# Columns nobody gives when registering (kept by the database, or not asked for at registration).
_NOT_GIVEN = ("geom", "created_at", "updated_at")
# add_enterprise's parameter for a column, where it is not the column's name.
_PARAMETER = {"enterprise_code": "code", "admin_code": "division"}
_INTEGER_MAX = {"smallint": 32767, "integer": 2_147_483_647}
# Field names seen in enterprises' files, besides the column's name and its Chinese comment.
ALIASES = {
    "enterprise_code": ("企业编码", "企业代码", "code"),
    "name": ("名称", "公司名称", "单位名称"),
    "admin_code": ("行政区划代码", "行政区划", "所在区县", "division"),
    "address": ("地址", "企业地址", "注册地址"),
    "legal_representative": ("法人", "法人代表"),
    "business_license_type": ("执照类型",),
    "credit_code": ("信用代码", "uscc"),
    "gas_license_no": ("许可证号", "经营许可证号"),
    "gas_license_issued_on": ("发证时间", "发证日期", "许可证发证日期"),
    "gas_license_expires_on": ("到期时间", "到期日期", "有效期至"),
    "parent_company": ("总公司", "上级公司"),
    "customer_count": ("用户数量", "用户数"),
    "registered_capital_wan": ("注册资本(万元)",),
    "founded_on": ("成立时间",),
    "status": ("经营状态", "状态"),
    "enterprise_type": ("企业类型",),
    "gas_class": ("气源",),
}
_DATE = re.compile(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?")


class MissingFields(InvalidInput):
    """Mandatory fields of an enterprise not given: `fields` maps each parameter of
    `add_enterprise` to its Chinese name (the column comment)."""

    def __init__(self, fields: dict[str, str]) -> None:
        self.fields = fields
        super().__init__(None, self.worded(lambda field: field))

    def worded(self, option: Callable[[str], str]) -> str:
        """The message with each parameter as `option` names it: ``… 公司地址 (--address), …``."""
        listed = ", ".join(f"{zh} ({option(field)})" for field, zh in self.fields.items())
        return f"mandatory fields not given (000 appendix A.1 #1): {listed}"


# -- values ----------------------------------------------------------------------------------------
def _blank(value: Any) -> bool:
    """No value: None, NaN, NaT or only spaces."""
    return not value.strip() if isinstance(value, str) else value is None or bool(pd.isna(value))


def _shown(value: Any) -> str:
    """A value as messages quote it: numbers bare, text in quotes."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value) if isinstance(value, numbers.Real) else repr(str(value))


def _text(field: str, value: Any) -> str:
    """Text as stored: stripped; a whole number read from a file (a code in a sheet) as its digits."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value).is_integer():
        value = int(float(value))
    text = str(value).strip()
    problem = unstorable(text)
    if problem:
        raise InvalidInput(field, f"{_shown(value)} {problem}")
    return text


def _code(field: str, value: Any, code: Code) -> str:
    text = _text(field, value)
    if not code.is_valid(text):
        raise InvalidInput(field, code.reason(_shown(text)))
    return text


def _credit_code(field: str, value: Any) -> str:
    """A unified social credit code with its GB 32100 check character."""
    text = _code(field, value, CREDIT_CODE)
    expected = credit_code_check_char(text[:17])
    if text[17] != expected:
        raise InvalidInput(field, f"{_shown(text)}: the check character is {expected}, not {text[17]} (GB 32100)")
    return text


def _date(field: str, value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    found = _DATE.fullmatch(str(value).strip())
    try:
        return date(*(int(g) for g in found.groups())) if found else date.fromisoformat(str(value).strip())
    except ValueError:
        raise InvalidInput(field, f"{_shown(value)} is not a date (2021-03-01, 2021/3/1, 2021年3月1日)") from None


def _number(field: str, value: Any, integer_max: int | None) -> int | Decimal:
    """A number ≥ 0 (the CHECKs of enterprise's numbers); a whole one up to `integer_max` if given."""
    try:
        number = Decimal(str(value).strip().replace(",", ""))
    except InvalidOperation:
        number = Decimal("NaN")
    if not number.is_finite() or number < 0:
        raise InvalidInput(field, f"{_shown(value)} is not a number ≥ 0")
    if integer_max is None:
        return number
    if number != number.to_integral_value() or number > integer_max:
        raise InvalidInput(field, f"{_shown(value)} is not a whole number from 0 to {integer_max:,}")
    return int(number)


@dataclass(frozen=True)
class CodeList:
    """One ``dict.<name>`` list, for values given as codes or as Chinese labels."""

    name: str
    title_zh: str
    labels: dict[int, str]   # code → label_zh

    def code(self, field: str, value: Any) -> int:
        """The code of `value`: one of the list's codes (a number or its digits), or a label."""
        text = _text(field, value)
        if text.isdigit() and int(text) in self.labels:
            return int(text)
        found = next((c for c, label in self.labels.items() if normalise(label) == normalise(text)), None)
        if found is None:
            raise InvalidInput(field, f"{_shown(value)} is neither a code nor a label of {self.title_zh} ({self.name})")
        return found


def _code_lists(conn: sa.Connection, names: Iterable[str]) -> dict[str, CodeList]:
    rows = conn.execute(sa.text(
        "SELECT d.name, d.title_zh, c.code, c.label_zh FROM dict.dictionary d "
        "JOIN dict.code c ON c.dictionary = d.name WHERE d.name = ANY(:n) ORDER BY c.code"), {"n": list(names)}).all()
    lists = {name: CodeList(name, title, {}) for name, title, _, _ in rows}
    for name, _, code, label in rows:
        lists[name].labels[int(code)] = label
    return lists


# -- divisions -------------------------------------------------------------------------------------
def _division(conn: sa.Connection, code: str) -> sa.Row | None:
    return conn.execute(sa.text("SELECT admin_code, name, level, parent_code FROM admin_division "
                                "WHERE admin_code = :c"), {"c": code}).first()


def add_division(conn: sa.Connection, code: str, name: str, level: str, parent: str | None = None) -> dict[str, Any]:
    """Register an administrative division (its boundary stays empty).

    Parameters
    ----------
    conn
        A connection in a transaction, of the owner (the CLI) or a role that may write divisions.
    code
        Its GB/T 2260 code, of the form of its level (province XX0000, city XXYY00, county XXYYZZ).
    name
        Its name (铁东区).
    level
        ``province``, ``city`` or ``county``.
    parent
        The division it lies in, one level up (none for a province); `code` begins with its
        first 2 (a city in a province) or 4 digits (a county in a city).

    Returns
    -------
    dict
        The row: admin_code, name, level, parent_code.

    Raises
    ------
    InvalidInput
        Fields ``code``, ``name``, ``level``, ``parent``.
    Conflict
        A division with that code exists.
    """
    code = _code("code", code, ADMIN_CODE)
    if level not in LEVELS:
        raise InvalidInput("level", f"{_shown(level)} is not one of {', '.join(LEVELS)}")
    form, pattern = _LEVEL_FORM[level]
    if not pattern.fullmatch(code):
        raise InvalidInput("code", f"{code} is not the code of a {level} (GB/T 2260: {form})")
    name = _text("name", name) if not _blank(name) else ""
    if not name:
        raise InvalidInput("name", "the division's name is empty")
    existing = _division(conn, code)
    if existing is not None:
        raise Conflict(f"administrative division {code} exists already ({existing.name}, {existing.level})")
    if level == "province":
        if parent is not None:
            raise InvalidInput("parent", "a province lies in no other division")
    else:
        up = LEVELS[LEVELS.index(level) - 1]
        if parent is None:
            raise InvalidInput("parent", f"a {level} lies in a {up}: give its code")
        parent = _code("parent", parent, ADMIN_CODE)
        above = _division(conn, parent)
        if above is None:
            raise InvalidInput("parent", f"no administrative division {parent}")
        if above.level != up:
            raise InvalidInput("parent", f"{parent} ({above.name}) is a {above.level}: a {level} lies in a {up}")
        shared = _SHARED_DIGITS[level]
        if code[:shared] != parent[:shared]:
            raise InvalidInput("code", f"{code} does not lie in {parent} ({above.name}): the code of a {level} "
                                       f"in it begins with {parent[:shared]} (GB/T 2260)")
    audit.attribute_operator(conn)
    row = conn.execute(sa.text("INSERT INTO admin_division (admin_code, name, level, parent_code) "
                               "VALUES (:code, :name, :level, :parent) RETURNING admin_code, name, level, parent_code"),
                       {"code": code, "name": name, "level": level, "parent": parent}).one()
    audit.append(conn, "division_add", dict(row._mapping))
    return dict(row._mapping)


def list_divisions(conn: sa.Connection) -> list[dict[str, Any]]:
    """Every division by code (a province before its cities, a city before its counties):
    admin_code, name, level, parent_code."""
    return [dict(r._mapping) for r in conn.execute(sa.text(
        "SELECT admin_code, name, level, parent_code FROM admin_division ORDER BY admin_code"))]


# -- enterprises -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Register:
    """What the catalog says about table enterprise, for checking rows: the columns a registration
    gives, their Chinese names, converters and code lists."""

    columns: tuple[catalog.ColumnInfo, ...]
    code_lists: dict[str, CodeList]   # column → its dictionary

    @classmethod
    def read(cls, conn: sa.Connection) -> _Register:
        info = catalog.tables(conn, ["enterprise"]).get("enterprise")
        if info is None:
            raise QiwangError("table enterprise does not exist (run ./qiwang migrate)")
        lists = {k.column: k.table for k in info.foreign_keys if k.schema == "dict"}
        by_name = _code_lists(conn, lists.values())
        return cls(tuple(c for c in info.columns if c.name not in _NOT_GIVEN),
                   {column: by_name[name] for column, name in lists.items()})

    @functools.cached_property
    def parameters(self) -> dict[str, catalog.ColumnInfo]:
        """add_enterprise's parameter → its column."""
        return {_PARAMETER.get(c.name, c.name): c for c in self.columns}

    def name_zh(self, column: catalog.ColumnInfo) -> str:
        return (column.comment.split() or [column.name])[0]

    def mandatory(self) -> list[str]:
        """Parameters that must be given (NOT NULL without a default), but the division (from the code)."""
        return [p for p, c in self.parameters.items() if c.not_null and not c.has_default and p != "division"]

    def convert(self, field: str, column: catalog.ColumnInfo, value: Any) -> Any:
        """`value` (not blank) as column `column` stores it; InvalidInput naming `field` otherwise."""
        code = next((c for c in CODES if c.domain is not None and c.domain == column.domain), None)
        if code is not None:   # enterprise_code, admin_code
            return _code(field, value, code)
        if column.name == "credit_code":
            return _credit_code(field, value)
        if column.name in self.code_lists:
            return self.code_lists[column.name].code(field, value)
        if column.base_type == "date":
            return _date(field, value)
        if column.base_type in _INTEGER_MAX or column.base_type == "numeric":
            return _number(field, value, _INTEGER_MAX.get(column.base_type))
        return _text(field, value)

    def check(self, conn: sa.Connection, fields: dict[str, Any],
              names: dict[str, str]) -> tuple[dict[str, Any], list[tuple[str, QiwangError]]]:
        """One enterprise's fields (parameters of add_enterprise) as a row, with its problems.

        Parameters
        ----------
        names
            Parameter → the name the problems give as their field (the file's field).

        Returns
        -------
        (row, problems)
            The row by column (the values that passed); (parameter, error) of each problem, the
            missing mandatory fields as a MissingFields first.
        """
        row: dict[str, Any] = {}
        problems: list[tuple[str, QiwangError]] = []
        for parameter, column in self.parameters.items():
            value = fields.get(parameter)
            if _blank(value):
                continue
            try:
                row[column.name] = self.convert(names[parameter], column, value)
            except InvalidInput as exc:
                problems.append((parameter, exc))
        missing = {p: self.name_zh(self.parameters[p]) for p in self.mandatory() if _blank(fields.get(p))}
        if missing:
            problems.insert(0, (next(iter(missing)), MissingFields(missing)))
        code = row.get("enterprise_code")
        problems += _division_problems(conn, code, row, names)
        issued, expires = row.get("gas_license_issued_on"), row.get("gas_license_expires_on")
        if issued and expires and expires <= issued:
            problems.append(("gas_license_expires_on", InvalidInput(
                names["gas_license_expires_on"], f"{expires} is not after the licence's issue date {issued}")))
        if code and conn.execute(sa.text("SELECT 1 FROM enterprise WHERE enterprise_code = :c"), {"c": code}).first():
            problems.append(("code", Conflict(f"enterprise {code} exists already")))
        credit = row.get("credit_code")
        holder = credit and conn.execute(sa.text("SELECT enterprise_code FROM enterprise WHERE credit_code = :c"),
                                         {"c": credit}).scalar()
        if holder:
            problems.append(("credit_code", Conflict(f"credit code {credit} is enterprise {holder}'s already")))
        return row, problems


def _division_problems(conn: sa.Connection, code: str | None, row: dict[str, Any],
                       names: dict[str, str]) -> list[tuple[str, QiwangError]]:
    """The enterprise's division (from its code when not given) is its code's county-level
    division, registered; sets row['admin_code']."""
    given = row.get("admin_code")
    if code is None:
        return []
    parameter = "division" if given else "code"
    field = names[parameter]
    if given and given != code[:6]:
        return [(parameter, InvalidInput(field, f"{given} is not the division of enterprise {code}, whose code "
                                                f"begins with its county-level division {code[:6]}"))]
    row["admin_code"] = code[:6]
    found = _division(conn, code[:6])
    if found is None:
        return [(parameter, InvalidInput(field, f"no administrative division {code[:6]} (register it first)"))]
    if found.level != "county":
        return [(parameter, InvalidInput(field, f"{code[:6]} ({found.name}) is a {found.level}: an enterprise is "
                                                "registered in a county-level division"))]
    return []


def _insert(conn: sa.Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    audit.attribute_operator(conn)
    written = []
    for row in rows:
        columns = ", ".join(row)
        written.append(dict(conn.execute(sa.text(
            f"INSERT INTO enterprise ({columns}) VALUES ({', '.join(f':{c}' for c in row)}) RETURNING *"),
            row).one()._mapping))
    return [{k: v for k, v in r.items() if k not in _NOT_GIVEN} for r in written]


def add_enterprise(conn: sa.Connection, code: str, name: str, credit_code: str, division: str | None = None,
                   **fields: Any) -> dict[str, Any]:
    """Register a gas enterprise (000 appendix A.1 #1).

    Parameters
    ----------
    conn
        A connection in a transaction, of the owner (the CLI) or a role that may write enterprises.
    code
        企业唯一编码: its county-level division's code and a 4-digit sequence from 0001.
    name
        企业名称.
    credit_code
        统一社会信用代码 (GB 32100, its check character checked).
    division
        行政区域: its county-level division, registered; default (and the only one allowed): the
        code's first 6 digits.
    **fields
        The other columns of table enterprise by name: address (公司地址), legal_representative
        (法定代表人), business_license_type (营业执照类型), gas_license_no (燃气经营许可证号),
        gas_license_issued_on and gas_license_expires_on (发证时间, 到期时间: dates or ISO text),
        operating_area (经营区域), parent_company (所属总公司), customer_count (燃气用户数量),
        registered_capital_wan (注册资本, 万元), founded_on (成立日期); the dictionary columns nature,
        status, enterprise_type and gas_class as codes or Chinese labels. Mandatory are those NOT
        NULL without a default (all of appendix A.1 #1's but 所属总公司 and 燃气用户数量, default 0).

    Returns
    -------
    dict
        The row as stored, by column (without geom, created_at, updated_at).

    Raises
    ------
    MissingFields
        Mandatory fields not given (all of them named).
    InvalidInput
        The first value that is wrong, by parameter name (``credit_code``, ``division``, …).
    Conflict
        The code or the credit code is registered already.
    TypeError
        A field that is no column of enterprise.
    """
    register = _Register.read(conn)
    unknown = set(fields) - set(register.parameters)
    if unknown:
        raise TypeError(f"add_enterprise() got unexpected fields: {', '.join(sorted(unknown))}")
    given = {"code": code, "name": name, "credit_code": credit_code, "division": division, **fields}
    row, problems = register.check(conn, given, {p: p for p in register.parameters})
    if problems:
        raise problems[0][1]
    return _insert(conn, [row])[0]


def list_enterprises(conn: sa.Connection) -> list[dict[str, Any]]:
    """Every enterprise by code: its columns (without geom, created_at, updated_at) and the name
    of its division (division_name)."""
    rows = conn.execute(sa.text("SELECT e.*, d.name AS division_name FROM enterprise e "
                                "JOIN admin_division d USING (admin_code) ORDER BY e.enterprise_code"))
    return [{k: v for k, v in r._mapping.items() if k not in _NOT_GIVEN} for r in rows]


def _file_fields(register: _Register, frame: pd.DataFrame) -> dict[str, str]:
    """Parameter → the frame's column giving it: by column name, parameter name, Chinese name or alias."""
    by_key = {normalise(str(name)): str(name) for name in frame.columns}
    found = {}
    for parameter, column in register.parameters.items():
        names = (column.name, parameter, register.name_zh(column), *ALIASES.get(column.name, ()))
        hit = next((by_key[normalise(n)] for n in names if normalise(n) in by_key), None)
        if hit is not None:
            found[parameter] = hit
    return found


def prepare_enterprises(conn: sa.Connection, frame: pd.DataFrame, file: str,
                        layer: str) -> tuple[list[dict[str, Any]], list[str]]:
    """A file's layer of enterprises checked as `add_enterprise` checks one, for `write_enterprises`.

    Parameters
    ----------
    frame
        One row per enterprise; fields found by column name, by the column's Chinese name (企业名称,
        统一社会信用代码, …) or by ALIASES, ignoring case, spaces, ``_`` and ``-``. Other fields
        (a geometry among them) are not read.
    file, layer
        How the problem lines name the file and the layer.

    Returns
    -------
    (rows, problems)
        The rows to write (by column), and every problem as ``FILE:LAYER:FEATURE:FIELD: reason``
        (FEATURE the 1-based row, ``*`` for a mandatory field the layer lacks; FIELD the file's
        name of it). Rows are meant to be written only when there is no problem.
    """
    register = _Register.read(conn)
    fields = _file_fields(register, frame)
    names = {p: fields.get(p, p) for p in register.parameters}
    prefix = f"{file}:{layer}"
    problems = [f"{prefix}:*:{p}: mandatory field {register.name_zh(register.parameters[p])} is missing"
                for p in register.mandatory() if p not in fields]
    rows: list[dict[str, Any]] = []
    first_row: dict[tuple[str, Any], int] = {}   # (column, value) → the row it came in first
    for number, record in enumerate(frame.to_dict("records"), start=1):
        row, found = register.check(conn, {p: record[f] for p, f in fields.items()}, names)
        for parameter, exc in found:
            if isinstance(exc, MissingFields):
                problems += [f"{prefix}:{number}:{names[p]}: {zh} is empty" for p, zh in exc.fields.items()
                             if p in fields]
            else:
                problems.append(f"{prefix}:{number}:{names[parameter]}: "
                                f"{exc.reason if isinstance(exc, InvalidInput) else exc}")
        for column, parameter in (("enterprise_code", "code"), ("credit_code", "credit_code")):
            if column in row and first_row.setdefault((column, row[column]), number) != number:
                problems.append(f"{prefix}:{number}:{names[parameter]}: {row[column]} is in row "
                                f"{first_row[column, row[column]]} already")
        rows.append(row)
    return rows, problems


def write_enterprises(conn: sa.Connection, rows: list[dict[str, Any]]) -> int:
    """Write rows of `prepare_enterprises` (which found no problem) in `conn`'s transaction; the
    count written. Each row is recorded by the table's audit trigger, unless the caller wraps the
    import in `audit.bulk`."""
    return len(_insert(conn, rows))
