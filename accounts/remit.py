"""Whose accounts an administrator may manage, and how: the one place of that rule.

The permissions table (accounts/permissions.py) lets the three administrator duties reach
/api/accounts; this says what each may do there. The database refuses what no administrator
may do over HTTP (auth.set_account_groups, migration 0020: no separated duty, no service group).

=================  ====================================================================
sysadmin           creates accounts of business duties (not ``pii``: that is a security
                   policy) in any enterprise or division, and disables them
security_admin     changes the roles of any account of business duties, ``pii`` and
                   ``regulator`` included
enterprise_admin   creates, disables and re-roles accounts of its own enterprise whose
                   roles are all among ENTERPRISE_DELEGABLE (never another administrator)
=================  ====================================================================

Nobody acts on its own account, and accounts of the separated duties (sysadmin,
security_admin, auditor) are made and changed only by the CLI's operator (三员分立: no
administrator can make another, or itself, more powerful over the web).
"""
from __future__ import annotations

from collections.abc import Iterable

from accounts.store import SEPARATED_DUTIES, Account
from core.errors import Forbidden, NotFound

# What an enterprise administrator may give to the staff of its enterprise.
ENTERPRISE_DELEGABLE = frozenset({"viewer", "dispatcher", "gis_editor", "safety_officer", "field_worker"})


def visible(me: Account, other: Account) -> bool:
    """Whether `me` may see `other` in /api/accounts: every account for the system and security
    administrators, its enterprise's for an enterprise administrator."""
    if {"sysadmin", "security_admin"} & set(me.duties):
        return True
    return other.enterprise_code is not None and other.enterprise_code == me.enterprise_code


def check_visible(me: Account, other: Account) -> None:
    """NotFound for an account outside `me`'s view (its existence is not told)."""
    if not visible(me, other):
        raise NotFound(f"no account {other.name}")


def check_may_create(me: Account, duties: Iterable[str], enterprise: str | None) -> None:
    """May `me` create an account with `duties` in `enterprise` (None: a division)?

    Raises
    ------
    Forbidden
        Saying which administrator would be needed.
    """
    wanted = set(duties)
    _no_separated(wanted, "made")
    if "sysadmin" in me.duties:
        if "pii" in wanted:
            raise Forbidden("pii is given by a security administrator (security_admin), not at creation")
        return
    if "enterprise_admin" in me.duties:
        if enterprise is None or enterprise != me.enterprise_code:
            raise Forbidden(f"an enterprise administrator creates accounts of its enterprise "
                            f"({me.enterprise_code}) only")
        _within_enterprise(wanted)
        return
    raise Forbidden("accounts are created by a system administrator (sysadmin) or an enterprise administrator")


def check_may_disable(me: Account, other: Account) -> None:
    """May `me` disable `other`? (Forbidden, or NotFound outside its view.)"""
    check_visible(me, other)
    _not_self(me, other, "disable")
    _no_separated(set(other.duties), "disabled")
    if "sysadmin" in me.duties:
        return
    if "enterprise_admin" in me.duties:
        _within_enterprise(set(other.duties), "holds")
        return
    raise Forbidden("accounts are disabled by a system administrator (sysadmin) or an enterprise administrator")


def check_may_set_roles(me: Account, other: Account, duties: Iterable[str]) -> None:
    """May `me` give `other` the roles `duties`? (Forbidden, or NotFound outside its view.)"""
    check_visible(me, other)
    _not_self(me, other, "change the roles of")
    wanted = set(duties)
    _no_separated(set(other.duties) | wanted, "re-roled")
    if "security_admin" in me.duties:
        return
    if "enterprise_admin" in me.duties:
        _within_enterprise(set(other.duties), "holds")
        _within_enterprise(wanted)
        return
    raise Forbidden("roles are changed by a security administrator (security_admin) or an enterprise administrator")


def _not_self(me: Account, other: Account, what: str) -> None:
    if me.id == other.id:
        raise Forbidden(f"no administrator may {what} its own account")


def _no_separated(duties: set[str], what: str) -> None:
    separated = sorted(duties & set(SEPARATED_DUTIES))
    if separated:
        raise Forbidden(f"{separated[0]} is a separated duty (三员分立): such accounts are {what} only with the "
                        "CLI (qiwang user …)")


def _within_enterprise(duties: set[str], verb: str = "gives") -> None:
    beyond = sorted(duties - ENTERPRISE_DELEGABLE)
    if not beyond:
        return
    managed = ", ".join(sorted(ENTERPRISE_DELEGABLE))
    if verb == "holds":
        raise Forbidden(f"the account holds {beyond[0]}, beyond what an enterprise administrator manages ({managed})")
    raise Forbidden(f"an enterprise administrator gives only {managed}; {beyond[0]} is given by a system or "
                    "security administrator")
