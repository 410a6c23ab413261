"""Answers cut to the caller's scope: analyses run on the whole network, reports list only what the
caller may see and count the rest.

Gas does not stop at an enterprise's boundary, so a burst is analysed on the whole in-memory
network. Which features the caller may see is asked of PostgreSQL under the caller's role, so
that the one rule of row-level security (migration 0016) decides here too: the ids the analysis
found are looked up, and those the policies hide are left out of the lists and counted under
``outside_scope``. Totals (customers cut off, isolated length and volume) stay those of the whole
network: a dispatcher must know that the outage reaches further than their own network.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa

from core.errors import InvalidInput
from network_analysis.burst import BurstResult
from network_analysis.topology import Topology

OUTSIDE_KEYS = ("valves_to_close", "isolated_pipes", "dry_pipes", "customers", "check_valves_holding",
                "sources_to_shut", "sensitive_sites")


def nothing_outside() -> dict[str, int]:
    """``outside_scope`` of a report that hides nothing."""
    return dict.fromkeys(OUTSIDE_KEYS, 0)


def visible_ids(conn: sa.Connection, table: str, ids: Iterable[int]) -> set[int]:
    """The ids among `ids` of `table` (pipe, valve, customer) that the connection's role may read."""
    wanted = sorted({int(i) for i in ids})
    if not wanted:
        return set()
    return set(conn.execute(sa.text(f"SELECT id FROM {table} WHERE id = ANY(:ids)"), {"ids": wanted}).scalars())


@dataclass(frozen=True)
class Visible:
    """What of an answer the caller may see: database ids of pipes, valves, customers; source codes."""

    pipes: set[int]
    valves: set[int]
    customers: set[int]
    sources: set[str]
    sites: set[int]


# kind → the query of the ids (text) of that kind among :ids that the role may read
_VISIBLE_SQL = {
    "pipe": ["SELECT 'pipe', id::text FROM pipe WHERE id = ANY(:pipe)"],
    "valve": ["SELECT 'valve', id::text FROM valve WHERE id = ANY(:valve)"],
    "customer": ["SELECT 'customer', id::text FROM customer WHERE id = ANY(:customer)"],
    "source": ["SELECT 'source', code FROM station WHERE code = ANY(:source)",
               "SELECT 'source', code FROM regulator WHERE code = ANY(:source)"],
    "site": ["SELECT 'site', id::text FROM sensitive_site WHERE id = ANY(:site)"],
}


def visible(conn: sa.Connection, pipes: Iterable[int], valves: Iterable[int], customers: Iterable[int],
            sources: Iterable[str], sites: Iterable[int] = ()) -> Visible:
    """Which of these the connection's role may read, asked in one round trip.

    Only the kinds with something to ask about are queried: planning a branch under row-level
    security costs as much as running it, even on an empty list."""
    wanted: dict[str, list] = {"pipe": sorted({int(i) for i in pipes}), "valve": sorted({int(i) for i in valves}),
                               "customer": sorted({int(i) for i in customers}), "source": sorted(set(sources)),
                               "site": sorted({int(i) for i in sites})}
    asked = {kind: ids for kind, ids in wanted.items() if ids}
    found: dict[str, set[str]] = {kind: set() for kind in wanted}
    if asked:
        rows = conn.execute(sa.text(" UNION ALL ".join(q for kind in asked for q in _VISIBLE_SQL[kind])), asked).all()
        for kind, key in rows:
            found[kind].add(key)
    return Visible({int(i) for i in found["pipe"]}, {int(i) for i in found["valve"]},
                   {int(i) for i in found["customer"]}, found["source"], {int(i) for i in found["site"]})


def cut_to_scope(conn: sa.Connection, topo: Topology, result: BurstResult, out: dict, pipe_given: bool,
                 failed_valves: list[str], site_ids: list[int]) -> dict:
    """The report `out` of `result` with only the features the connection's role may read listed,
    and ``outside_scope`` counting those left out.

    Parameters
    ----------
    conn
        A connection acting as the caller (row-level security applies).
    topo
        The topology `result` was computed on.
    result
        The analysis on indices.
    out
        Its report (network_analysis.api.report), changed in place and returned.
    pipe_given, failed_valves
        Whether the burst pipe was named by code, and the codes named as failed valves: one the
        caller may not see is answered as one that does not exist (no oracle for another
        enterprise's codes).
    site_ids
        The database ids of ``out["sensitive_sites"]``, in its order.

    Raises
    ------
    InvalidInput
        ``pipe`` or ``failed_valves[k]``, worded as for an unknown code.
    """
    m = topo.model
    iso = result.isolation
    valve_index = sorted(iso.to_close | iso.already_closed | iso.check_boundary | set(result.failed_valves))
    affected = np.union1d(result.isolated_pipes, result.dry_pipes)
    seen = visible(conn, m.pipe_id[np.append(affected, result.pipe)].tolist(), m.valve_id[valve_index].tolist(),
                   m.customer_id[result.affected_customers].tolist(), out["sources_to_shut"], site_ids)
    if pipe_given and int(m.pipe_id[result.pipe]) not in seen.pipes:
        raise InvalidInput("pipe", f"unknown pipe code {m.pipe_code[result.pipe]!r}")
    failed = {m.valve_code[v]: int(m.valve_id[v]) for v in result.failed_valves}
    for k, code in enumerate(failed_valves):
        if code in failed and failed[code] not in seen.valves:
            raise InvalidInput(f"failed_valves[{k}]", f"unknown valve code {code!r}")
    pipe_codes = {m.pipe_code[i] for i in affected if int(m.pipe_id[i]) in seen.pipes}
    valve_codes = {m.valve_code[v] for v in valve_index if int(m.valve_id[v]) in seen.valves}
    customer_codes = {m.customer_code[c] for c in result.affected_customers
                      if int(m.customer_id[c]) in seen.customers}

    def kept(values: list, allowed: set) -> tuple[list, int]:
        inside = [v for v in values if v in allowed]
        return inside, len(values) - len(inside)

    outside = nothing_outside()
    valves = out["valves_to_close"]
    out["valves_to_close"] = [v for v in valves if v["code"] in valve_codes]
    outside["valves_to_close"] = len(valves) - len(out["valves_to_close"])
    out["isolated_pipes"], outside["isolated_pipes"] = kept(out["isolated_pipes"], pipe_codes)
    out["dry_pipes"], outside["dry_pipes"] = kept(out["dry_pipes"], pipe_codes)
    customers = out["affected_customers"]
    customers["list"], outside["customers"] = kept(customers["list"], customer_codes)
    out["check_valves_holding"], outside["check_valves_holding"] = kept(out["check_valves_holding"], valve_codes)
    out["sources_to_shut"], outside["sources_to_shut"] = kept(out["sources_to_shut"], seen.sources)
    sites = out["sensitive_sites"]
    out["sensitive_sites"] = [entry for site, entry in zip(site_ids, sites, strict=True) if site in seen.sites]
    outside["sensitive_sites"] = len(sites) - len(out["sensitive_sites"])
    ring = out["second_ring"]
    if ring is not None:
        for key in ("failed_valves", "first_ring_valves", "added_valves"):
            ring[key] = [v for v in ring[key] if v in valve_codes]
        for key in ("added_isolated_pipes", "added_dry_pipes"):
            ring[key] = [p for p in ring[key] if p in pipe_codes]
    out["outside_scope"] = outside
    return out
