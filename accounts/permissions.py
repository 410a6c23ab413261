"""Which roles may call which endpoint family: one table, read by the web app before a request runs.

The database decides which rows (row-level security, migration 0016) and refuses a write a role
has no grant for; this table answers first, with 403 and the roles that would do, so that a
request outside the caller's roles changes nothing and says why.

Families (the rows of the access matrix test): the OGC API's features, single items, tiles,
styles, processes and QGIS project; the map; alarm steps; incidents; exports; the audit log;
accounts; personal data. Anything signed in may read its own session and change its password.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from accounts.store import DUTIES

# Every duty that reads the business tables (qiwang_reader in the database).
READERS = frozenset({"viewer", "dispatcher", "gis_editor", "safety_officer", "field_worker", "enterprise_admin",
                     "regulator"})
ANY_ACCOUNT = frozenset(DUTIES)


@dataclass(frozen=True)
class Rule:
    """Requests of `family` matching `methods` and `path` need one of `duties`."""

    family: str
    methods: frozenset[str]
    path: re.Pattern[str]
    duties: frozenset[str]


def _rule(family: str, methods: str, path: str, duties: frozenset[str]) -> Rule:
    return Rule(family, frozenset(methods.split()), re.compile(path), duties)


READ = "GET HEAD"
# First match wins; a request no rule matches is refused (403), so a new route must be added here.
RULES: tuple[Rule, ...] = (
    _rule("session", READ, r"^/api/session$", ANY_ACCOUNT),
    _rule("API document", READ, r"^/api/openapi$", ANY_ACCOUNT),
    _rule("sign out", "POST", r"^/logout$", ANY_ACCOUNT),
    _rule("landing", READ, r"^/$", ANY_ACCOUNT),
    # every POST under an alarm: the blueprint answers 404 for a path that names no step
    _rule("alarm steps", "POST", r"^/api/alarms/[^/]+/.+$", frozenset({"dispatcher"})),
    _rule("alarms", READ, r"^/api/alarms(/.*)?$", READERS),
    _rule("audit", READ, r"^/api/audit$", frozenset({"auditor"})),
    _rule("accounts", READ + " POST", r"^/api/accounts(/.*)?$",
          frozenset({"sysadmin", "security_admin", "enterprise_admin"})),
    _rule("personal data", READ, r"^/api/pii/.*$", frozenset({"pii"})),
    _rule("exports", READ, r"^/api/exports/.*$", READERS),
    _rule("processes", READ + " POST", r"^/ogc/processes(/.*)?$", READERS),
    _rule("jobs", READ + " DELETE", r"^/ogc/jobs(/.*)?$", READERS),
    _rule("tiles", READ, r"^/ogc/(collections/[^/]+/)?tiles(/.*)?$", READERS),
    _rule("single item", READ, r"^/ogc/collections/[^/]+/items/[^/]+$", READERS),
    _rule("features", READ, r"^/ogc(/.*)?$", READERS),
    _rule("styles", READ, r"^/styles(/.*)?$", READERS),
    _rule("QGIS project", READ, r"^/qgis/project\.qgs$", READERS),
    _rule("map", READ, r"^/map(/.*)?$", READERS),
)


def rule_for(method: str, path: str) -> Rule | None:
    """The rule of a request, or None when no family covers it (then it is refused)."""
    return next((r for r in RULES if method in r.methods and r.path.match(path)), None)


def allowed(duties: tuple[str, ...], method: str, path: str) -> tuple[bool, Rule | None]:
    """Whether an account with `duties` may make this request, and the rule that says so."""
    rule = rule_for(method, path)
    return (rule is not None and not rule.duties.isdisjoint(duties)), rule
