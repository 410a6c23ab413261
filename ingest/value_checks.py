"""The importer's value checks, read from the schema's CHECK constraints (db/catalog.py).

A file is checked whole before anything is written, and every bad value is one problem line
``FILE:LAYER:FEATURE:FIELD: reason`` naming the field as the file calls it. The checks are not a
second copy of the schema: each CHECK constraint of the table (and each domain constraint of its
columns) becomes one check here, chosen in this order:

1. a code of core/codes.py, when the constraint is that code's rule (enterprise and division
   codes, the unified social credit code): the code's own validity function and description;
2. a simple comparison of one column with constants, as pg_get_constraintdef prints it
   (``col > 0``, ``col >= 0``, ``col BETWEEN a AND b``, ``col IN (…)``, ``col ~ 'regex'``),
   evaluated vectorised on the converted column;
3. a hand-written check (ROW_CHECKS) for every other form (several columns, IS NULL, references
   between features), listed by constraint name together with the definition it was written for:
   a migration that changes the rule under the same name makes the check stale, and the
   constraint unchecked, until the check is rewritten.

A constraint that is none of these is `CheckPlan.unchecked`: the database would refuse such a
value at write time with one generic line for the whole file. `CheckPlan.covered` says how each
other constraint is checked. tests/test_import_checks.py fails for any unchecked constraint of an
importable table, and gives every constraint a file with one bad value (for a hand-written check,
also that the database itself refuses that file by that constraint when the check is left out).

Left out on purpose (`CheckPlan.sealed`): the CHECKs about the stored form of personal data,
``x_is_masked`` and ``x_is_sealed`` of each column of accounts.personal_data.PERSONAL_COLUMNS
(migration 0018). A file gives phone numbers in clear, as it should, and the importer seals them
(`seal_frame`) just before the COPY, which satisfies both by construction: applied to the file's
clear values they would refuse every phone.
"""
from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from accounts.personal_data import stored_form_constraints
from core.codes import Code, code_of_constraint
from db.catalog import CheckConstraint, Condition
from ingest.field_mapping import TableSchema


class Problems(Protocol):
    """Where problem lines go: one per row, for the field the file calls `field_name`."""

    def rows(self, rows: np.ndarray, field_name: str, reasons: str | Iterable[str]) -> None: ...


# -- values as messages show them ------------------------------------------------------------------
def shown(value: Any) -> str:
    """A value as problem lines quote it: numbers bare (whole floats without '.0'), text in quotes."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return repr(str(value)) if not isinstance(value, (int, float)) else str(value)


def textual(series: pd.Series) -> bool:
    """Strings or mixed values (object or pandas' str dtype), as opposed to numbers and dates."""
    return series.dtype == object or pd.api.types.is_string_dtype(series)


def blank(series: pd.Series) -> np.ndarray:
    """True where a value is missing: null, NaN or only spaces."""
    out = series.isna().to_numpy().copy()
    if textual(series):
        present = ~out
        out[present] = series[present].astype(str).str.strip().eq("").to_numpy()
    return out


def _number(value: float | str) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


# -- checks of one column ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ColumnCheck:
    """One constraint on one column, evaluated on the column's converted values.

    `fails` gives True where a present value breaks the constraint; `reason` words the line for
    a value as `shown` quotes it; `on_text` says which value the line quotes: the converted text
    (codes, where a number read from a file is shown as the text it became) or the file's value.
    """

    constraint: CheckConstraint
    column: str
    fails: Callable[[pd.Series], np.ndarray]
    reason: Callable[[str], str]
    on_text: bool = False

    def apply(self, converted: pd.Series, source: pd.Series, field_name: str, problems: Problems) -> pd.Series:
        """Report the rows that fail and return `converted` without their values (a value that
        failed is used no further: one line per bad value)."""
        present = converted.notna().to_numpy()
        bad = np.zeros(len(converted), dtype=bool)
        if present.any():
            bad[present] = self.fails(converted[present])
        if not bad.any():
            return converted
        rows = np.flatnonzero(bad)
        quoted = (converted if self.on_text else source).to_numpy(dtype=object)[rows]
        problems.rows(rows, field_name, [self.reason(shown(v)) for v in quoted])
        return converted.where(~bad, None)


_ORDER: dict[str, Callable[[Any, Any], Any]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "=": operator.eq, "<>": operator.ne}
_ORDER_WORDS = {">": "must be greater than", ">=": "must be at least", "<": "must be less than",
                "<=": "must be at most", "=": "must be", "<>": "must not be"}


def _code_check(constraint: CheckConstraint, code: Code) -> ColumnCheck:
    def fails(values: pd.Series) -> np.ndarray:
        return ~values.astype(str).str.fullmatch(code.regex).to_numpy(dtype=bool)

    return ColumnCheck(constraint, constraint.columns[0], fails, code.reason, on_text=True)


def _comparison(constraint: CheckConstraint, column: str, condition: Condition) -> ColumnCheck | None:
    op, value = condition.op, condition.value
    if isinstance(value, float):
        def fails(values: pd.Series) -> np.ndarray:
            numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
            return ~_ORDER[op](numbers, value)

        words = "must not be negative" if (op, value) == (">=", 0.0) else f"{_ORDER_WORDS[op]} {_number(value)}"
        return ColumnCheck(constraint, column, fails, lambda v: f"{words}: {v}")
    if isinstance(value, str) and op in ("=", "<>"):
        def differs(values: pd.Series) -> np.ndarray:
            return ~_ORDER[op](values.astype(str).to_numpy(dtype=object), value).astype(bool)

        return ColumnCheck(constraint, column, differs, lambda v: f"{_ORDER_WORDS[op]} {value!r}: {v}", on_text=True)
    return None  # text ordered by collation: not the same in Python


def _between(constraint: CheckConstraint, column: str, low: float, high: float) -> ColumnCheck:
    def fails(values: pd.Series) -> np.ndarray:
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
        return ~((numbers >= low) & (numbers <= high))

    noun = "a year " if column.endswith("_year") else ""
    words = f"not {noun}between {_number(low)} and {_number(high)}"
    return ColumnCheck(constraint, column, fails, lambda v: f"{words}: {v}")


def _one_of(constraint: CheckConstraint, column: str, allowed: tuple[float | str, ...]) -> ColumnCheck:
    numeric = all(isinstance(a, float) for a in allowed)

    def fails(values: pd.Series) -> np.ndarray:
        compared = pd.to_numeric(values, errors="coerce") if numeric else values.astype(str)
        return ~compared.isin(list(allowed)).to_numpy(dtype=bool)

    listed = ", ".join(_number(a) for a in allowed)
    return ColumnCheck(constraint, column, fails, lambda v: f"{v} is not one of {listed}", on_text=not numeric)


def _matches(constraint: CheckConstraint, column: str, regex: str) -> ColumnCheck | None:
    # Only the part of PostgreSQL's ARE syntax that Python reads alike: no escapes, no [[:classes:]].
    if "\\" in regex or "[[:" in regex:
        return None
    try:
        python = re.compile(regex[:-1] + r"\Z" if regex.endswith("$") else regex)
    except re.error:
        return None

    def fails(values: pd.Series) -> np.ndarray:
        return ~values.astype(str).str.contains(python).to_numpy(dtype=bool)

    return ColumnCheck(constraint, column, fails, lambda v: f"{v} does not match {regex!r}", on_text=True)


def column_checks(constraint: CheckConstraint) -> list[ColumnCheck] | None:
    """The checks of a constraint on one column, or None when it is not of a form evaluated here."""
    code = code_of_constraint(constraint.name)
    if code is not None and len(constraint.columns) == 1:
        return [_code_check(constraint, code)]
    simple = constraint.simple()
    if simple is None:
        return None
    conditions = list(simple.conditions)
    bounds = {c.op: c.value for c in conditions if isinstance(c.value, float)}
    if len(conditions) == 2 and set(bounds) == {">=", "<="}:  # BETWEEN, as pg_get_constraintdef prints it
        return [_between(constraint, simple.column, float(bounds[">="]), float(bounds["<="]))]
    out: list[ColumnCheck] = []
    for condition in conditions:
        check: ColumnCheck | None
        if condition.op == "in" and isinstance(condition.value, tuple):
            check = _one_of(constraint, simple.column, condition.value)
        elif condition.op == "~" and isinstance(condition.value, str):
            check = _matches(constraint, simple.column, condition.value)
        else:
            check = _comparison(constraint, simple.column, condition)
        if check is None:
            return None
        out.append(check)
    return out


# -- hand-written checks of several columns ----------------------------------------------------------
@dataclass
class Layer:
    """One layer being checked, for the checks that look at several columns of a row.

    `rows` holds the converted columns (a value that failed a check is None there), `source` the
    file's fields; conditions read converted values, "is given" reads the file, so that a bad
    value is not reported a second time as missing.
    """

    schema: TableSchema
    rows: pd.DataFrame
    source: pd.DataFrame
    found: dict[str, str]        # column → the file's field
    refs: dict[str, pd.Series]   # reference column (…_id) → code of the referenced feature, per row
    ref_fields: dict[str, str]   # reference column → the file's field
    problems: Problems

    def field(self, column: str) -> str:
        """The file's name for `column` (the column's own name, or its `…_code`, when the file lacks it)."""
        if column in self.found:
            return self.found[column]
        if column in self.ref_fields:
            return self.ref_fields[column]
        return f"{column.removesuffix('_id')}_code" if column in self.schema.references else column

    def given(self, column: str) -> np.ndarray:
        """True where the file gives a value for `column` (a reference: its code)."""
        if column in self.refs:
            return self.refs[column].notna().to_numpy()
        if column in self.found:
            return ~blank(self.source[self.found[column]])
        return np.zeros(len(self.rows), dtype=bool)

    def value(self, column: str) -> pd.Series:
        """The converted column; all None when the file does not give it."""
        if column in self.rows:
            return self.rows[column]
        return pd.Series(None, index=self.rows.index, dtype=object)

    def comment(self, column: str) -> str:
        return self.schema.comments.get(column, column)


def _non_residents_have_credit_code(layer: Layer) -> None:
    """CHECK (user_type = 1 OR credit_code IS NOT NULL)."""
    if "user_type" not in layer.rows:
        return  # a missing user type is a missing mandatory field
    need = (layer.value("user_type").fillna(1) != 1).to_numpy() & ~layer.given("credit_code")
    layer.problems.rows(np.flatnonzero(need), layer.field("credit_code"),
                        f"{layer.comment('credit_code')} is empty: only residents ({layer.comment('user_type')} 1) "
                        "may leave it empty")


def _allowed(layer: Layer, column: str) -> tuple[float | str, ...]:
    """The values a one-column ``IN (…)`` CHECK of the schema allows for `column` (() when none)."""
    for constraint in layer.schema.checks:
        simple = constraint.simple() if constraint.columns == (column,) else None
        for condition in simple.conditions if simple else ():
            if condition.op == "in" and isinstance(condition.value, tuple):
                return condition.value
    return ()


def _check_valve_has_direction(layer: Layer) -> None:
    """CHECK ((valve_type = 'check') = (check_direction IS NOT NULL)): a check valve has a
    direction, no other valve has one."""
    kind = layer.value("valve_type")
    known = kind.notna().to_numpy()
    is_check = known & (kind == "check").to_numpy(dtype=bool)
    direction = layer.given("check_direction")
    where, what = layer.field("check_direction"), layer.comment("check_direction")
    allowed = " or ".join(_number(v) for v in _allowed(layer, "check_direction"))
    layer.problems.rows(np.flatnonzero(is_check & ~direction), where,
                        f"{what} is empty: a check valve needs a direction" + (f" ({allowed})" if allowed else ""))
    extra = np.flatnonzero(known & ~is_check & direction)
    layer.problems.rows(extra, where, [f"{what} given for a {kind.iloc[i]} valve: only check valves have a direction"
                                       for i in extra])


def _regulator_joins_two_nodes(layer: Layer) -> None:
    """CHECK (inlet_node_id <> outlet_node_id), the nodes named by code."""
    inlet, outlet = layer.refs.get("inlet_node_id"), layer.refs.get("outlet_node_id")
    if inlet is None or outlet is None:
        return
    same = np.flatnonzero((inlet.notna() & outlet.notna() & (inlet == outlet)).to_numpy(dtype=bool))
    layer.problems.rows(same, layer.field("outlet_node_id"), [
        f"{shown(outlet.iloc[i])} is also the {layer.comment('inlet_node_id')} "
        f"({layer.field('inlet_node_id')}): a regulator joins two nodes" for i in same])


def _regulator_lowers_pressure(layer: Layer) -> None:
    """CHECK (outlet_pressure_class <= inlet_pressure_class) (dt_pipe_pressure_type codes rise with pressure)."""
    outlet, inlet = layer.value("outlet_pressure_class"), layer.value("inlet_pressure_class")
    higher = np.flatnonzero((outlet.notna() & inlet.notna()).to_numpy()
                            & (pd.to_numeric(outlet) > pd.to_numeric(inlet)).fillna(False).to_numpy(dtype=bool))
    if not len(higher):
        return
    source_outlet = layer.source[layer.found["outlet_pressure_class"]].to_numpy(dtype=object)
    source_inlet = layer.source[layer.found["inlet_pressure_class"]].to_numpy(dtype=object)
    layer.problems.rows(higher, layer.field("outlet_pressure_class"), [
        f"{shown(source_outlet[i])} is above the {layer.comment('inlet_pressure_class')} {shown(source_inlet[i])}: "
        "a regulator lowers the pressure" for i in higher])


def _reporting_device_is_whole(layer: Layer) -> None:
    """CHECK (telemetry_type IS NULL OR (reporting_interval_s IS NOT NULL AND status IS NOT NULL))."""
    reporting = layer.value("telemetry_type").notna().to_numpy()
    for column in ("reporting_interval_s", "status"):
        layer.problems.rows(np.flatnonzero(reporting & ~layer.given(column)), layer.field(column),
                            f"{layer.comment(column)} is empty: a reporting device "
                            f"({layer.comment('telemetry_type')} given) needs it")


def _feature_reference_is_whole(layer: Layer) -> None:
    """CHECK ((feature_type IS NULL) = (feature_id IS NULL)), the feature named by type and code."""
    half = np.flatnonzero(layer.given("feature_type") != layer.given("feature_id"))
    layer.problems.rows(half, layer.field("feature_id"),
                        "feature_code and feature_type go together: give both or neither")


@dataclass(frozen=True)
class RowCheck:
    """A hand-written check and the constraint definition it was written for (as
    pg_get_constraintdef prints it)."""

    definition: str
    check: Callable[[Layer], None]

    def written_for(self, constraint: CheckConstraint) -> bool:
        """Whether `constraint` is still the rule this check was written for."""
        return " ".join(constraint.definition.split()) == " ".join(self.definition.split())


# Constraints of forms the simple checks do not evaluate: (table, constraint) → check.
ROW_CHECKS: dict[tuple[str, str], RowCheck] = {
    ("customer", "non_residents_have_credit_code"): RowCheck(
        "CHECK (((user_type = 1) OR (credit_code IS NOT NULL)))", _non_residents_have_credit_code),
    ("valve", "check_valve_has_direction"): RowCheck(
        "CHECK (((valve_type = 'check'::text) = (check_direction IS NOT NULL)))", _check_valve_has_direction),
    ("regulator", "regulator_joins_two_nodes"): RowCheck(
        "CHECK ((inlet_node_id <> outlet_node_id))", _regulator_joins_two_nodes),
    ("regulator", "regulator_lowers_pressure"): RowCheck(
        "CHECK ((outlet_pressure_class <= inlet_pressure_class))", _regulator_lowers_pressure),
    ("device", "reporting_device_is_whole"): RowCheck(
        "CHECK (((telemetry_type IS NULL) OR ((reporting_interval_s IS NOT NULL) AND (status IS NOT NULL))))",
        _reporting_device_is_whole),
    ("hazard", "feature_reference_is_whole"): RowCheck(
        "CHECK (((feature_type IS NULL) = (feature_id IS NULL)))", _feature_reference_is_whole),
}


def hand_written(table: str) -> set[str]:
    """The names of the constraints of `table` that a hand-written check (ROW_CHECKS) covers."""
    return {name for owner, name in ROW_CHECKS if owner == table}


@dataclass(frozen=True)
class CheckPlan:
    """The checks of one table: per importable column, per row, and the constraints left to the database.

    `covered` names every constraint that is checked and how: "code" (a code of core/codes.py),
    "column" (comparisons of one column with constants), "row" (a hand-written check of
    ROW_CHECKS) or "sealed" (the stored form of personal data, module docstring: covered by
    sealing at write time, not checks of a file's values; those are also in `sealed`).
    `unchecked` are the others: the database would be the first to see them.
    """

    columns: dict[str, list[ColumnCheck]]
    rows: list[Callable[[Layer], None]]
    unchecked: list[CheckConstraint]
    sealed: list[CheckConstraint] = field(default_factory=list)
    covered: dict[str, str] = field(default_factory=dict)

    def check_rows(self, layer: Layer) -> None:
        for check in self.rows:
            check(layer)


def plan(schema: TableSchema, importable: Iterable[str]) -> CheckPlan:
    """The checks of `schema`'s constraints for a file that may give the columns `importable`."""
    columns: dict[str, list[ColumnCheck]] = {}
    rows: list[Callable[[Layer], None]] = []
    unchecked: list[CheckConstraint] = []
    sealed: list[CheckConstraint] = []
    covered: dict[str, str] = {}
    stored_form = stored_form_constraints(schema.name)
    wanted = set(importable)
    for constraint in schema.checks:
        if constraint.name in stored_form:
            sealed.append(constraint)
            covered[constraint.name] = "sealed"
            continue
        if (hand := ROW_CHECKS.get((schema.name, constraint.name))) is not None:
            if hand.written_for(constraint):
                rows.append(hand.check)
                covered[constraint.name] = "row"
            else:  # the rule changed under its name: the check says something else
                unchecked.append(constraint)
            continue
        checks = column_checks(constraint)
        if checks is None or any(c.column not in wanted for c in checks):
            unchecked.append(constraint)
            continue
        for check in checks:
            columns.setdefault(check.column, []).append(check)
        covered[constraint.name] = "code" if code_of_constraint(constraint.name) is not None else "column"
    return CheckPlan(columns, rows, unchecked, sealed, covered)
