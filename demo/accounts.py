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


def signed_in_account(owner_url: str, name: str, duties: tuple[str, ...], *, enterprise: str | None = None,
                      division: str | None = None, password: str | None = None, db_login: bool = False,
                      token_days: float = 30, created_by: str = "operator:tests") -> tuple[store.Account, str]:
    """An account for automated clients of a scratch database (the tests, the benches): made when
    missing, its password not to be changed first, and a new API token: (account, token).

    Parameters
    ----------
    owner_url
        The owner's URL of the database.
    name, duties, enterprise, division, password, db_login
        As for accounts.store.add_account (password None: a random one).
    token_days
        How long the token lasts.
    created_by
        Who the account's creation is attributed to.
    """
    from datetime import UTC

    from sqlalchemy.pool import NullPool

    from core.errors import NotFound

    now = datetime.now(UTC)
    engine = sa.create_engine(owner_url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            try:
                account = store.account(conn, name)
            except NotFound:
                account, _ = store.add_account(conn, name, duties, enterprise=enterprise, division=division,
                                               password=password, db_login=db_login, created_by=created_by,
                                               now=now)
            conn.execute(sa.text("UPDATE auth.account SET must_change_password = false WHERE id = :id"),
                         {"id": account.id})
            _, token, _ = store.create_token(conn, name, token_days, now)
    finally:
        engine.dispose()
    return account, token
