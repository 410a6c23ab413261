"""`qiwang division …` and `qiwang enterprise …`: the registers of divisions and enterprises (accounts/registers.py).

Like every CLI write, they run as the database owner and are recorded as ``operator:<OS user>``
(``operator:NAME`` after ``./qiwang --as NAME``).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from app.cli.common import options_named, ready_database
from app.cli.format import pad, shown
from app.cli.root import command_family
from core.errors import QiwangError

division = command_family("division", "Administrative divisions (GB/T 2260): add, list.")
enterprise = command_family("enterprise", "Gas enterprises (000 appendix A.1 #1): add, list.")

# The options of `enterprise add` beside --name and --credit-code: add_enterprise's fields.
ENTERPRISE_FIELDS = {
    "division": ("CODE", "行政区域: its county-level division (default, and the only one allowed: the code's "
                         "first 6 digits)."),
    "address": ("TEXT", "公司地址."),
    "legal_representative": ("NAME", "法定代表人."),
    "business_license_type": ("TEXT", "营业执照类型, e.g. 有限责任公司."),
    "gas_license_no": ("TEXT", "燃气经营许可证号."),
    "gas_license_issued_on": ("DATE", "燃气经营许可证发证时间: 2021-03-01, 2021/3/1 or 2021年3月1日."),
    "gas_license_expires_on": ("DATE", "燃气经营许可证到期时间, after the issue."),
    "operating_area": ("TEXT", "经营区域."),
    "parent_company": ("TEXT", "所属总公司."),
    "customer_count": ("N", "燃气用户数量 (default 0)."),
    "registered_capital_wan": ("N", "注册资本, 万元."),
    "founded_on": ("DATE", "成立日期."),
    "nature": ("CODE|LABEL", "企业性质 (dt_enterprise_nature): 1 国有企业 … 4 私营及个体企业."),
    "status": ("CODE|LABEL", "企业经营状态 (dt_enterprise_status; default 0 经营中)."),
    "enterprise_type": ("CODE|LABEL", "燃气企业类型 (dt_deptype; default 12 管道燃气企业)."),
    "gas_class": ("CODE|LABEL", "气源类型 (dt_gasclass; default 1 管道天然气)."),
}


def _owner_engine():
    from db.engine import get_engine

    return get_engine(ready_database(owner=True))


def _option(parameter: str) -> str:
    return f"--{parameter.replace('_', '-')}"


def _field_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for parameter, (metavar, help_text) in reversed(ENTERPRISE_FIELDS.items()):
        command = click.option(_option(parameter), parameter, metavar=metavar, help=help_text)(command)
    return command


@division.command("add")
@click.argument("code")
@click.argument("name")
@click.option("--level", required=True, metavar="LEVEL", help="province, city or county.")
@click.option("--parent", metavar="CODE", help="The division it lies in, one level up (none for a province).")
def division_add(code: str, name: str, level: str, parent: str | None) -> None:
    """Register division CODE (GB/T 2260) called NAME; its boundary stays empty."""
    from accounts.registers import add_division

    with _owner_engine().begin() as conn, options_named(
            {"code": "CODE", "name": "NAME", "level": "--level", "parent": "--parent"}):
        row = add_division(conn, code, name, level, parent)
    where = f" in {row['parent_code']}" if row["parent_code"] else ""
    click.echo(f"division {row['admin_code']} {row['name']}: registered, a {row['level']}{where}")


@division.command("list")
def division_list() -> None:
    """Every division: code, name, level, parent."""
    from accounts.registers import list_divisions

    with _owner_engine().connect() as conn:
        rows = list_divisions(conn)
    click.echo(f"{'code':<8}{pad('name', 20)}{'level':<10}parent")
    for r in rows:
        click.echo(f"{r['admin_code']:<8}{pad(r['name'], 20)}{r['level']:<10}{shown(r['parent_code'], '-')}")


@enterprise.command("add")
@click.argument("code")
@click.option("--name", required=True, help="企业名称.")
@click.option("--credit-code", required=True, metavar="USCC",
              help="统一社会信用代码 (GB 32100, with its check character).")
@_field_options
def enterprise_add(code: str, name: str, credit_code: str, **fields: str | None) -> None:
    """Register enterprise CODE (企业唯一编码: its county's division code + a 4-digit sequence).

    The fields of appendix A.1 #1 that the register requires must be given (the error lists the
    missing ones and their options); dictionary fields take a code or a Chinese label.
    """
    from accounts.registers import MissingFields, add_enterprise

    options = {"code": "CODE", "name": "--name", "credit_code": "--credit-code"} | {p: _option(p) for p in fields}
    try:
        with _owner_engine().begin() as conn, options_named(options):
            row = add_enterprise(conn, code, name, credit_code, **{k: v for k, v in fields.items() if v is not None})
    except MissingFields as exc:
        raise QiwangError(exc.worded(_option)) from None
    click.echo(f"enterprise {row['enterprise_code']} {row['name']}: registered in division {row['admin_code']}, "
               f"credit code {row['credit_code']}")


@enterprise.command("list")
def enterprise_list() -> None:
    """Every enterprise: code, name, division, credit code, gas licence expiry, customers."""
    from accounts.registers import list_enterprises

    with _owner_engine().connect() as conn:
        rows = list_enterprises(conn)
    click.echo(f"{'code':<12}{pad('name', 30)}{pad('division', 20)}{'credit code':<20}{'licence until':<15}"
               f"{'customers':>9}")
    for r in rows:
        where = f"{r['admin_code']} {r['division_name']}"
        click.echo(f"{r['enterprise_code']:<12}{pad(r['name'], 30)}{pad(where, 20)}{r['credit_code']:<20}"
                   f"{r['gas_license_expires_on']:%Y-%m-%d}     {r['customer_count']:>9,}")
