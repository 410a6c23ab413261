"""The demo city's accounts: one per role on its two enterprises, the district holding both and the city.

Names say who they are: ``a_dispatcher`` (enterprise A, 2103020001), ``b_viewer`` (enterprise B,
2103110001), ``district_regulator`` (千山区 210311, where both enterprises have pipes),
``city_regulator`` (鞍山市 210300), and the three separated duties of the city. First passwords
are random; each must be changed at the first login.
"""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from accounts import store

ENTERPRISE_A, ENTERPRISE_B = "2103020001", "2103110001"
DISTRICT, CITY = "210311", "210300"
ENTERPRISE_ROLES = ("viewer", "dispatcher", "gis_editor", "safety_officer", "field_worker", "enterprise_admin")
# (name, roles, enterprise, division, display name)
DEMO_ACCOUNTS: tuple[tuple[str, tuple[str, ...], str | None, str | None, str], ...] = (
    *((f"a_{role}", (role,), ENTERPRISE_A, None, f"甲 {role}") for role in ENTERPRISE_ROLES),
    ("a_pii", ("viewer", "pii"), ENTERPRISE_A, None, "甲 客服 (个人信息)"),
    *((f"b_{role}", (role,), ENTERPRISE_B, None, f"乙 {role}") for role in ENTERPRISE_ROLES),
    ("district_regulator", ("regulator",), None, DISTRICT, "千山区 监管"),
    ("city_regulator", ("regulator",), None, CITY, "鞍山市 监管"),
    ("sysadmin", ("sysadmin",), None, CITY, "系统管理员"),
    ("security_admin", ("security_admin",), None, CITY, "安全管理员"),
    ("auditor", ("auditor",), None, CITY, "安全审计员"),
)


def create_demo_accounts(conn: sa.Connection, now: datetime, created_by: str) -> list[tuple[store.Account, str]]:
    """Make the demo accounts that do not exist yet: [(account, first password)] of those made."""
    existing = {a.name for a in store.accounts(conn)}
    made = []
    for name, roles, enterprise, division, display in DEMO_ACCOUNTS:
        if name in existing:
            continue
        account, password = store.add_account(conn, name, roles, enterprise=enterprise, division=division,
                                              display_name=display, created_by=created_by, now=now)
        assert password is not None
        made.append((account, password))
    return made
