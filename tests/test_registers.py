"""The registers of divisions and enterprises (accounts/registers.py, app/cli/registers.py), in a
database of their own (net_engine: migrated, empty).

- Divisions: a GB/T 2260 code of its level, inside its parent one level up; each recorded in the
  audit log as a division_add event of the CLI's operator.
- Enterprises: the code's county is the division; the credit code's check character, the licence
  dates, dictionary codes or labels, the mandatory fields listed by their Chinese names and options;
  rows recorded by the table's audit trigger as the operator's.
- The CLI's lines, errors included (one line, the option at fault), and `enterprise list`.
- A file's layer of enterprises: one importer-style line per problem, the good rows written.
"""
from __future__ import annotations

import getpass
from collections.abc import Iterator
from datetime import date
from decimal import Decimal

import pandas as pd
import pytest
import sqlalchemy as sa

from accounts.registers import (
    add_division,
    add_enterprise,
    list_divisions,
    list_enterprises,
    prepare_enterprises,
    write_enterprises,
)
from app.cli.main import main
from core.codes import credit_code_check_char
from core.errors import Conflict, InvalidInput

OPERATOR = f"operator:{getpass.getuser()}"
BODY_A, BODY_B, BODY_C, BODY_D = "91210302MA0LQ7K1X", "91210302MA0LQ7K2X", "91210311MA0LQ7K3X", "91210302MA0LQ7K9X"
CREDIT_A, CREDIT_B, CREDIT_C, CREDIT_D = (b + credit_code_check_char(b) for b in (BODY_A, BODY_B, BODY_C, BODY_D))
LICENCE = {"address": "辽宁省鞍山市铁东区建国路88号", "legal_representative": "王建国",
           "business_license_type": "有限责任公司", "gas_license_no": "辽20210300001GA",
           "gas_license_issued_on": "2021-03-01", "gas_license_expires_on": "2027-02-28",
           "operating_area": "铁东区"}


@pytest.fixture(scope="module")
def owner(net_engine: sa.Engine) -> Iterator[sa.Engine]:
    """The module's database with Liaoning, Anshan and two of its districts registered."""
    with net_engine.begin() as conn:
        add_division(conn, "210000", "辽宁省", "province")
        add_division(conn, "210300", "鞍山市", "city", parent="210000")
        add_division(conn, "210302", "铁东区", "county", parent="210300")
        add_division(conn, "210311", "千山区", "county", parent="210300")
    yield net_engine


def qiwang(owner: sa.Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
           *args: str) -> tuple[int, list[str], list[str]]:
    """./qiwang ARGS in this process, on the module's database: exit code, stdout and stderr lines."""
    monkeypatch.setenv("DATABASE_URL", owner.url.render_as_string(hide_password=False))
    with pytest.raises(SystemExit) as done:
        main(list(args))
    out = capsys.readouterr()
    return done.value.code or 0, out.out.splitlines(), out.err.splitlines()


def audit_rows(owner: sa.Engine, action: str, table: str | None = None) -> list[tuple]:
    with owner.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            "SELECT actor, table_name, feature_code, changes, detail FROM audit.log "
            "WHERE action = :a AND table_name IS NOT DISTINCT FROM :t ORDER BY id"), {"a": action, "t": table})]


def refused(conn: sa.Connection, call, *args: object, **kwargs: object) -> str:
    """The class and message of what `call` raises (in a savepoint, rolled back)."""
    with pytest.raises((InvalidInput, Conflict)) as error, conn.begin_nested():
        call(conn, *args, **kwargs)
    return f"{type(error.value).__name__}: {error.value}"


def test_divisions_are_registered_inside_their_parent_and_audited(owner: sa.Engine) -> None:
    with owner.connect() as conn:
        assert list_divisions(conn) == [
            {"admin_code": "210000", "name": "辽宁省", "level": "province", "parent_code": None},
            {"admin_code": "210300", "name": "鞍山市", "level": "city", "parent_code": "210000"},
            {"admin_code": "210302", "name": "铁东区", "level": "county", "parent_code": "210300"},
            {"admin_code": "210311", "name": "千山区", "level": "county", "parent_code": "210300"}]
        assert conn.execute(sa.text("SELECT count(*) FROM admin_division WHERE geom IS NULL")).scalar_one() == 4
    assert audit_rows(owner, "division_add")[:2] == [
        (OPERATOR, None, None, None,
         {"admin_code": "210000", "name": "辽宁省", "level": "province", "parent_code": None}),
        (OPERATOR, None, None, None,
         {"admin_code": "210300", "name": "鞍山市", "level": "city", "parent_code": "210000"})]
    with owner.begin() as conn:
        found = [refused(conn, add_division, *args) for args in (
        ("210302", "铁东区", "county", "210300"),
        ("21030", "铁东区", "county", "210300"),
        ("210303", "铁西区", "town", "210300"),
        ("210300", "铁西区", "county", "210300"),
        ("210303", " ", "county", "210300"),
        ("220000", "吉林省", "province", "210000"),
        ("210303", "铁西区", "county", None),
        ("210303", "铁西区", "county", "210000"),
        ("210303", "铁西区", "county", "210400"),
        ("220303", "铁西区", "county", "210300"),
        ("220300", "四平市", "city", "210000"))]
        conn.rollback()
    assert found == [
        "Conflict: administrative division 210302 exists already (铁东区, county)",
        "InvalidInput: code: '21030' is not an administrative division code (6 digits: a GB/T 2260 division "
        "code, not starting with 0)",
        "InvalidInput: level: 'town' is not one of province, city, county",
        "InvalidInput: code: 210300 is not the code of a county (GB/T 2260: XXYYZZ, ZZ not 00)",
        "InvalidInput: name: the division's name is empty",
        "InvalidInput: parent: a province lies in no other division",
        "InvalidInput: parent: a county lies in a city: give its code",
        "InvalidInput: parent: 210000 (辽宁省) is a province: a county lies in a city",
        "InvalidInput: parent: no administrative division 210400",
        "InvalidInput: code: 220303 does not lie in 210300 (鞍山市): the code of a county in it begins with 2103 "
        "(GB/T 2260)",
        "InvalidInput: code: 220300 does not lie in 210000 (辽宁省): the code of a city in it begins with 21 "
        "(GB/T 2260)"]


def test_division_commands(owner: sa.Engine, monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    assert qiwang(owner, monkeypatch, capsys, "--as", "registrar", "division", "add", "210303", "铁西区",
                  "--level", "county", "--parent", "210300") == (
        0, ["division 210303 铁西区: registered, a county in 210300"], [])
    assert audit_rows(owner, "division_add")[-1] == (
        "operator:registrar", None, None, None,
        {"admin_code": "210303", "name": "铁西区", "level": "county", "parent_code": "210300"})
    for args, line in (
            (("210304", "立山区", "--level", "county", "--parent", "210000"),
             "--parent: 210000 (辽宁省) is a province: a county lies in a city"),
            (("210302", "铁东区", "--level", "county", "--parent", "210300"),
             "administrative division 210302 exists already (铁东区, county)"),
            (("2103", "立山区", "--level", "county", "--parent", "210300"),
             "CODE: '2103' is not an administrative division code (6 digits: a GB/T 2260 division code, not "
             "starting with 0)"),
            (("210304", "立山区", "--level", "district"), "--level: 'district' is not one of province, city, county")):
        assert qiwang(owner, monkeypatch, capsys, "division", "add", *args) == (1, [], [f"qiwang: error: {line}"])
    code, out, err = qiwang(owner, monkeypatch, capsys, "division", "list")
    assert (code, err) == (0, [])
    assert out == ["code    name                level     parent",
                   "210000  辽宁省              province  -",
                   "210300  鞍山市              city      210000",
                   "210302  铁东区              county    210300",
                   "210303  铁西区              county    210300",
                   "210311  千山区              county    210300"]


def test_enterprise_add_stores_the_row_and_the_trigger_records_the_operator(owner: sa.Engine) -> None:
    with owner.begin() as conn:
        row = add_enterprise(conn, "2103020001", "鞍山气网示范燃气有限公司", CREDIT_A,
                             parent_company="气网示范能源集团", customer_count=1200.0, registered_capital_wan="50000",
                             founded_on=date(1998, 6, 18), nature="国有控股企业", status="0", enterprise_type=12,
                             gas_class="管道天然气", **LICENCE)
    expected = {"enterprise_code": "2103020001", "name": "鞍山气网示范燃气有限公司", "admin_code": "210302",
                "address": "辽宁省鞍山市铁东区建国路88号", "legal_representative": "王建国",
                "business_license_type": "有限责任公司", "credit_code": CREDIT_A, "gas_license_no": "辽20210300001GA",
                "gas_license_issued_on": date(2021, 3, 1), "gas_license_expires_on": date(2027, 2, 28),
                "operating_area": "铁东区", "parent_company": "气网示范能源集团", "customer_count": 1200,
                "registered_capital_wan": Decimal("50000"), "founded_on": date(1998, 6, 18), "nature": 2,
                "status": 0, "enterprise_type": 12, "gas_class": 1}
    assert row == expected
    with owner.connect() as conn:
        assert list_enterprises(conn) == [expected | {"division_name": "铁东区"}]
    (actor, table, feature, changes, detail), = audit_rows(owner, "insert", "enterprise")
    assert (actor, table, feature, detail) == (OPERATOR, "enterprise", "2103020001", None)
    assert {k: changes[k] for k in ("name", "credit_code", "admin_code", "gas_license_expires_on", "nature")} == {
        "name": "鞍山气网示范燃气有限公司", "credit_code": CREDIT_A, "admin_code": "210302",
        "gas_license_expires_on": "2027-02-28", "nature": 2}


def test_enterprise_add_refuses_each_wrong_value_by_name(owner: sa.Engine) -> None:
    bad_check = BODY_B + "1"
    cases = (
        (("2103020002", "乙公司", bad_check), {}),
        (("2103020002", "乙公司", "91210302MA0LQ7K2"), {}),
        (("2103990001", "乙公司", CREDIT_B), {}),
        (("2103020002", "乙公司", CREDIT_B, "210311"), {}),
        (("2103000001", "乙公司", CREDIT_B), {}),
        (("2103020002", "乙公司", CREDIT_B), {"gas_license_expires_on": "2021-03-01"}),
        (("2103020002", "乙公司", CREDIT_B), {"gas_license_issued_on": "2021-02-30"}),
        (("2103020002", "乙公司", CREDIT_B), {"status": "营业中"}),
        (("2103020002", "乙公司", CREDIT_B), {"customer_count": "-3"}),
        (("2103020009", "乙公司", CREDIT_B), {}),
        (("2103020002", "乙公司", CREDIT_D), {}))
    with owner.begin() as conn:   # registered in the transaction, which is rolled back
        add_enterprise(conn, "2103020009", "甲公司", CREDIT_D, **LICENCE)
        found = [refused(conn, add_enterprise, *args, **(LICENCE | fields)) for args, fields in cases]
        conn.rollback()
    assert found == [
            f"InvalidInput: credit_code: '{bad_check}': the check character is C, not 1 (GB 32100)",
            "InvalidInput: credit_code: '91210302MA0LQ7K2' is not a unified social credit code (18 characters: "
            "digits and capital letters except I, O, S, V, Z; GB 32100)",
            "InvalidInput: code: no administrative division 210399 (register it first)",
            "InvalidInput: division: 210311 is not the division of enterprise 2103020002, whose code begins with "
            "its county-level division 210302",
            "InvalidInput: code: 210300 (鞍山市) is a city: an enterprise is registered in a county-level division",
            "InvalidInput: gas_license_expires_on: 2021-03-01 is not after the licence's issue date 2021-03-01",
            "InvalidInput: gas_license_issued_on: '2021-02-30' is not a date (2021-03-01, 2021/3/1, 2021年3月1日)",
            "InvalidInput: status: '营业中' is neither a code nor a label of 企业经营状态 (dt_enterprise_status)",
            "InvalidInput: customer_count: '-3' is not a number ≥ 0",
        "Conflict: enterprise 2103020009 exists already",
        f"Conflict: credit code {CREDIT_D} is enterprise 2103020009's already"]


def test_enterprise_commands(owner: sa.Engine, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    options = [arg for field, value in LICENCE.items() for arg in (f"--{field.replace('_', '-')}", value)]
    assert qiwang(owner, monkeypatch, capsys, "enterprise", "add", "2103110001", "--name", "千山示范燃气有限公司",
                  "--credit-code", CREDIT_C, "--customer-count", "350", "--status", "经营中", *options) == (
        0, [f"enterprise 2103110001 千山示范燃气有限公司: registered in division 210311, credit code {CREDIT_C}"], [])
    for args, line in (
            (("2103110002", "--name", "丙", "--credit-code", BODY_C + "1", *options),
             f"--credit-code: '{BODY_C}1': the check character is E, not 1 (GB 32100)"),
            (("2103990001", "--name", "丙", "--credit-code", CREDIT_B, *options),
             "CODE: no administrative division 210399 (register it first)"),
            (("2103110002", "--name", "丙", "--credit-code", CREDIT_B, "--division", "210399", *options),
             "--division: 210399 is not the division of enterprise 2103110002, whose code begins with its "
             "county-level division 210311"),
            (("2103110001", "--name", "丙", "--credit-code", CREDIT_B, *options),
             "enterprise 2103110001 exists already"),
            (("2103110002", "--name", "丙", "--credit-code", CREDIT_B, "--address", "千山区"),
             "mandatory fields not given (000 appendix A.1 #1): 法定代表人 (--legal-representative), 营业执照类型 "
             "(--business-license-type), 燃气经营许可证号 (--gas-license-no), 燃气经营许可证发证时间 "
             "(--gas-license-issued-on), 燃气经营许可证到期时间 (--gas-license-expires-on), 经营区域 "
             "(--operating-area)"),
            (("2103110002", "--name", "丙"), "missing option '--credit-code' (see ./qiwang enterprise add --help)")):
        code, out, err = qiwang(owner, monkeypatch, capsys, "enterprise", "add", *args)
        assert (out, err) == ([], [f"qiwang: error: {line}"]) and code in (1, 2)
    code, out, err = qiwang(owner, monkeypatch, capsys, "enterprise", "list")
    assert (code, err) == (0, [])
    assert out[0] == ("code        name                          division            credit code         "
                      "licence until  customers")
    assert out[-1] == (f"2103110001  千山示范燃气有限公司          210311 千山区       {CREDIT_C}  "
                       "2027-02-28           350")
    assert audit_rows(owner, "insert", "enterprise")[-1][:3] == (OPERATOR, "enterprise", "2103110001")


def test_a_layer_of_enterprises_gives_one_line_per_problem(owner: sa.Engine) -> None:
    frame = pd.DataFrame({
        "企业唯一编码": [2103020003, 2103020004, 2103020003],
        "企业名称": ["丁公司", "戊公司", "己公司"],
        "统一社会信用代码": ["91210302MA0LQ7K4X" + credit_code_check_char("91210302MA0LQ7K4X"), BODY_B + "1",
                     "91210302MA0LQ7K5X" + credit_code_check_char("91210302MA0LQ7K5X")],
        "行政区划代码": ["210302", "210311", "210302"],
        "公司地址": ["铁东区园林路1号", " ", "铁东区园林路3号"],
        "法定代表人": ["张三", "李四", "王五"], "营业执照类型": ["有限责任公司"] * 3,
        "许可证号": ["辽A1", "辽A2", "辽A3"],
        "发证日期": ["2022/5/1", "2022-05-01", "2022年5月1日"],
        "到期日期": ["2028-04-30", "2020-01-01", "2028-04-30"],
        "经营状态": ["经营中", "营业中", 0],
        "gas_class": [1.0, None, "液化天然气（LNG）"],
    })
    with owner.begin() as conn:
        rows, problems = prepare_enterprises(conn, frame, "enterprises.xlsx", "企业")
        assert problems == [
            "enterprises.xlsx:企业:*:operating_area: mandatory field 经营区域 is missing",
            "enterprises.xlsx:企业:2:公司地址: 公司地址 is empty",
            f"enterprises.xlsx:企业:2:统一社会信用代码: '{BODY_B}1': the check character is C, not 1 (GB 32100)",
            "enterprises.xlsx:企业:2:经营状态: '营业中' is neither a code nor a label of 企业经营状态 "
            "(dt_enterprise_status)",
            "enterprises.xlsx:企业:2:行政区划代码: 210311 is not the division of enterprise 2103020004, whose code "
            "begins with its county-level division 210302",
            "enterprises.xlsx:企业:2:到期日期: 2020-01-01 is not after the licence's issue date 2022-05-01",
            "enterprises.xlsx:企业:3:企业唯一编码: 2103020003 is in row 1 already"]
        frame["经营区域"] = "铁东区"
        rows, problems = prepare_enterprises(conn, frame.iloc[[0, 2]].assign(企业唯一编码=[2103020003, 2103020005]),
                                             "enterprises.xlsx", "企业")
        assert problems == []
        assert [(r["enterprise_code"], r["admin_code"], r["gas_license_issued_on"], r["status"], r["gas_class"])
                for r in rows] == [("2103020003", "210302", date(2022, 5, 1), 0, 1),
                                   ("2103020005", "210302", date(2022, 5, 1), 0, 2)]
        assert write_enterprises(conn, rows) == 2
    assert [r[:3] for r in audit_rows(owner, "insert", "enterprise")[-2:]] == [
        (OPERATOR, "enterprise", "2103020003"), (OPERATOR, "enterprise", "2103020005")]
