"""core/codes.py is the schema's rule for each identification code, word for word and in effect.

Each code's SQL is compared with the live catalog's constraint as PostgreSQL normalises both
(pg_get_constraintdef), so that a migration changing a domain or a CHECK, or an edit of
core/codes.py, fails here until the other side follows; and a few hundred near-miss values are
judged by the catalog's own expression, by `Code.is_valid` and by the JSON Schema fragment the OGC
processes publish, which must all agree.

A code marked ``checked_in_database = false`` (the citizen ID number, sealed at rest since
migration 0017) has no constraint in the catalog, and that is checked too: its rule is judged by
PostgreSQL from the code's own SQL, and the writers' check before sealing
(accounts.personal_data.seal_frame) refuses exactly what it refuses.
"""
from __future__ import annotations

import re
from collections.abc import Iterator

import jsonschema
import pandas as pd
import pytest
import sqlalchemy as sa

from accounts.personal_data import Keyring, seal_frame
from app.processes.network_statistics import PROCESS_METADATA
from core.codes import ADMIN_CODE, CODES, CREDIT_CODE, ENTERPRISE_CODE, ID_NUMBER, Code, code_of_constraint
from core.errors import InvalidInput
from core.text import escaped, unstorable, unstorable_char

VALID = {ENTERPRISE_CODE: ["2103020001", "9999999999", "1000000010"], ADMIN_CODE: ["210302", "999999", "100000"],
         CREDIT_CODE: ["92210303774519268K", "91210300MA0Y1RTU3X"],
         ID_NUMBER: ["210302199001011234", "11010519491231002X"]}
# one character swapped in: other digits, letters the credit code leaves out, lower case, spaces, and
# digits PostgreSQL's [0-9] does not take (Arabic-Indic, full-width)
SWAPS = "0159AHIJNOPQSVXYZax ٣１"
IN_DATABASE = [code for code in CODES if code.checked_in_database]
IN_PYTHON = [code for code in CODES if not code.checked_in_database]


def near_misses(code: Code) -> list[str]:
    """Valid codes, each character swapped, dropped or doubled, and with text around them."""
    out = {""}
    for good in VALID[code]:
        out.add(good)
        for i in range(len(good)):
            out.update(good[:i] + c + good[i + 1:] for c in SWAPS)
            out.add(good[:i] + good[i + 1:])
            out.add(good[:i] + good[i] + good[i:])
        out.update({f" {good}", f"{good} ", f"{good}\n", f"0{good}", f"{good}0", good[:-4] + "0000"})
    return sorted(out)


def catalog_rule(conn: sa.Connection, code: Code) -> list[tuple[str, str, str]]:
    """(relation, column or VALUE, definition) of every constraint of the catalog that is `code`'s rule."""
    domain = conn.execute(sa.text(
        "SELECT t.typname, 'VALUE', pg_get_constraintdef(k.oid) FROM pg_constraint k "
        "JOIN pg_type t ON t.oid = k.contypid WHERE k.conname = :name AND t.typnamespace = 'public'::regnamespace"),
        {"name": code.constraint}).all()
    tables = conn.execute(sa.text(
        "SELECT k.conrelid::regclass::text, a.attname, pg_get_constraintdef(k.oid) FROM pg_constraint k "
        "JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1] "
        "WHERE k.conname = :name AND k.contype = 'c' AND cardinality(k.conkey) = 1 ORDER BY 1"),
        {"name": code.constraint}).all()
    return [tuple(r) for r in [*domain, *tables]]


@pytest.fixture
def conn(net_engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection whose transaction is rolled back: probes created in it leave nothing behind."""
    with net_engine.connect() as conn, conn.begin() as transaction:
        yield conn
        transaction.rollback()


def test_only_the_id_number_is_checked_outside_the_database() -> None:
    assert IN_PYTHON == [ID_NUMBER]
    assert code_of_constraint(ID_NUMBER.constraint) is None  # no constraint of the schema is its rule


@pytest.mark.parametrize("code", IN_DATABASE, ids=lambda c: c.constraint)
def test_the_schema_writes_the_rule_as_core_codes_does(conn: sa.Connection, code: Code) -> None:
    found = catalog_rule(conn, code)
    assert found, f"no constraint {code.constraint} in the catalog"
    assert (code.domain is not None) == (found[0][1] == "VALUE")
    if code.domain is not None:
        assert found[0][0] == code.domain
    for relation, column, definition in found:
        if column == "VALUE":
            conn.execute(sa.text(f"CREATE DOMAIN codes_probe AS text CONSTRAINT probe CHECK ({code.sql})"))
            probe = "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE contypid = 'codes_probe'::regtype"
            drop = "DROP DOMAIN codes_probe"
        else:
            conn.execute(sa.text(f"CREATE TEMP TABLE codes_probe ({column} text CONSTRAINT probe "
                                 f"CHECK ({code.sql_for(column)}))"))
            probe = "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'codes_probe'::regclass"
            drop = "DROP TABLE codes_probe"
        assert conn.execute(sa.text(probe)).scalar_one() == definition, relation
        conn.execute(sa.text(drop))


@pytest.mark.parametrize("code", IN_PYTHON, ids=lambda c: c.constraint)
def test_a_rule_on_sealed_values_is_not_in_the_schema(conn: sa.Connection, code: Code) -> None:
    """The database holds ID numbers sealed: no CHECK could read them, and none pretends to."""
    assert catalog_rule(conn, code) == []
    assert conn.execute(sa.text("SELECT count(*) FROM pg_constraint WHERE conname = :n"),
                        {"n": code.constraint}).scalar_one() == 0


def test_every_pattern_rule_of_the_schema_is_a_code(conn: sa.Connection) -> None:
    """A new code rule (a regular expression in a CHECK or a domain) belongs in core/codes.py."""
    names = conn.execute(sa.text(
        "SELECT k.conname FROM pg_constraint k LEFT JOIN pg_class c ON c.oid = k.conrelid "
        "LEFT JOIN pg_type t ON t.oid = k.contypid WHERE k.contype = 'c' AND pg_get_constraintdef(k.oid) LIKE '% ~ %' "
        "AND 'public'::regnamespace IN (c.relnamespace, t.typnamespace)")).scalars().all()
    assert names and sorted({n for n in names if code_of_constraint(n) is None}) == []
    assert sorted(set(names)) == sorted(code.constraint for code in IN_DATABASE)


@pytest.mark.parametrize("code", CODES, ids=lambda c: c.constraint)
def test_python_json_schema_and_the_database_judge_alike(conn: sa.Connection, code: Code) -> None:
    if code.checked_in_database:
        _, column, definition = catalog_rule(conn, code)[0]
        expression = re.sub(rf"\b{column}\b", "v", definition.removeprefix("CHECK "))
    else:  # the rule as the schema wrote it until the values were sealed, judged by PostgreSQL all the same
        expression = code.sql_for("v")
    samples = near_misses(code)
    verdicts = dict(conn.execute(sa.text(f"SELECT v, {expression} FROM unnest(CAST(:samples AS text[])) AS s(v)"),
                                 {"samples": samples}).all())
    assert sum(verdicts.values()) >= len(VALID[code]) and not all(verdicts.values())
    schema = jsonschema.Draft202012Validator(code.json_schema())
    for value in samples:
        assert code.is_valid(value) == verdicts[value], repr(value)
        if not value.endswith("\n"):  # Python's re.search lets '$' match before a final newline; ECMA-262 does not
            assert schema.is_valid(value) == verdicts[value], repr(value)


def test_sealing_refuses_what_the_id_number_rule_refuses() -> None:
    """The check the database made before 0017 is made before sealing: the same verdict for every
    near miss, refused with the column named and the value never quoted."""
    keyring = Keyring.generate()
    for value in near_misses(ID_NUMBER):
        frame = pd.DataFrame({"customer_id": [1], "id_number": [value]})
        if ID_NUMBER.is_valid(value):
            stored = seal_frame("customer_personal", frame, keyring)["id_number"].iloc[0]
            assert stored == value[:4] + "*" * 10 + value[-4:]
            continue
        with pytest.raises(InvalidInput) as refused:
            seal_frame("customer_personal", frame, keyring)
        assert refused.value.field == "customer_personal.id_number"
        assert refused.value.reason == (
            "row 1: not a citizen ID number (18 characters: 17 digits not starting with 0 and a check "
            "character 0-9 or X; GB 11643)")
        assert not value.strip() or value.strip() not in str(refused.value)


def test_the_statistics_process_publishes_the_codes_schemas() -> None:
    inputs = PROCESS_METADATA["inputs"]
    assert inputs["enterprise_code"]["schema"] == {"type": "string", "pattern": ENTERPRISE_CODE.regex}
    assert inputs["admin_code"]["schema"] == {"type": "string", "pattern": ADMIN_CODE.regex}


def test_reasons_name_the_code_and_its_rule() -> None:
    assert ENTERPRISE_CODE.reason("'2103020000'") == (
        "'2103020000' is not an enterprise code (10 digits: 6-digit division + 4-digit sequence from 0001)")
    assert CREDIT_CODE.reason("'X'") == (
        "'X' is not a unified social credit code (18 characters: digits and capital letters except I, O, S, V, Z; "
        "GB 32100)")


def test_unstorable_text_is_refused_or_escaped_by_one_rule() -> None:
    assert [unstorable_char(v) for v in ("ok 气网", "a\x00b", "x\ud83dy", "\udfff")] == [
        None, "\x00", "\ud83d", "\udfff"]
    assert unstorable("a\x00\ud800") == "contains a NUL character"
    assert unstorable("\ud800") == "contains a lone UTF-16 surrogate (not valid Unicode)"
    assert unstorable("气网 \U0001F525") is None   # a real emoji is two UTF-16 units, not a lone surrogate
    # as the quarantine used to write them: NUL as \0, a surrogate as Python's backslashreplace does
    for value in ("topic/\x00/x", "a\ud800b\udfff", "plain"):
        expected = value.replace("\x00", "\\0").encode("utf-8", "backslashreplace").decode("utf-8")
        assert escaped(value) == expected
    assert escaped("a\x00b\ud800") == "a\\0b\\ud800"
