"""Incidents: burst analyses stored with a state, planned → active → closed (never back).

An incident keeps the request and the burst report as they were computed (the network moves on:
the report names the network version it was computed on), the burst point and the outage area as
geometry, and the enterprise and division of the burst pipe. Codes are SG and six digits from the
sequence `incident_code_seq` (migration 0015): unique when dispatchers save at the same moment,
with a gap where a save was rolled back.
"""
from __future__ import annotations

import json
from typing import Unpack

import sqlalchemy as sa

from core.errors import Conflict, InvalidInput, NotFound
from db.catalog import storage_srid
from emergency.states import INCIDENT_STATES, STARTING_STATES
from network_analysis.api import BurstArguments, burst_analysis

__all__ = ["INCIDENT_STATES", "STARTING_STATES", "analyse_and_save", "incident", "incidents", "save_incident",
           "set_incident_state"]


def analyse_and_save(
    engine: sa.Engine,
    save_as: str | None = None,
    title: str | None = None,
    **analysis: Unpack[BurstArguments],
) -> dict:
    """The burst analysis of `network_analysis.api.burst_analysis`, stored as an incident on request.

    Parameters
    ----------
    engine
        The database.
    save_as
        None: analyse only. 'planned' or 'active': store the result as an incident in that state.
    title
        The incident's title (for people; stored as given).
    **analysis
        pipe, point, crs, failed_valves, barriers, topology, geometry: as for
        `network_analysis.api.burst_analysis`.

    Returns
    -------
    dict
        The burst report; ``incident`` is the new incident's code (None when not saved).

    Raises
    ------
    InvalidInput
        Field ``save_as`` for a state an incident cannot start in; the analysis's own.
    Conflict
        The burst pipe left the network between the analysis and the save.
    """
    if save_as is None:
        return burst_analysis(engine, **analysis)
    if save_as not in STARTING_STATES:
        raise InvalidInput("save_as", f"an incident starts as planned or active, not {save_as!r}")
    with_outage: BurstArguments = {**analysis, "geometry": True}  # the stored incident keeps its outage area
    out = burst_analysis(engine, **with_outage)
    outage = out["outage_area"]
    if not analysis.get("geometry", False):
        out["outage_area"] = None
        del out["features"]
    # the stored request keeps the key "at" of the incidents saved before the parameter was renamed
    point = analysis.get("point")
    request = {"pipe": analysis.get("pipe"), "at": list(point) if point is not None else None,
               "crs": analysis.get("crs"), "failed_valves": list(analysis.get("failed_valves", ())),
               "barriers": [list(b) for b in analysis.get("barriers", ())]}
    out["incident"] = save_incident(engine, out, request, outage, save_as, title)
    return out


def save_incident(engine: sa.Engine, report: dict, request: dict, outage_area: dict | None, state: str,
                  title: str | None) -> str:
    """Store a burst report as an incident.

    Parameters
    ----------
    engine
        The database the report was computed on.
    report
        The burst report (`network_analysis.api.burst_analysis`); stored with its ``incident`` key
        set to the new code.
    request
        The parameters of the analysis, stored for the record.
    outage_area
        The outage area as GeoJSON in CRS84, or None.
    state
        One of STARTING_STATES (not checked here: `analyse_and_save` does).
    title
        For people, or None.

    Returns
    -------
    str
        The incident's code, SG000001 onwards.

    Raises
    ------
    Conflict
        The burst pipe is no longer in the database.
    """
    x, y = report["burst"]["point"]
    with engine.begin() as conn:
        number = conn.execute(sa.text("SELECT nextval('incident_code_seq')")).scalar_one()
        code = f"SG{number:06d}"
        # Pipe codes are unique per enterprise only: the burst pipe is the one of that code under
        # the burst point (which lies on it), and the incident is its enterprise's.
        inserted = conn.execute(sa.text(
            """
            INSERT INTO incident (code, state, title, request, result, network_version, valves_to_close,
                                  customers_out, geom, outage_area, enterprise_code, admin_code)
            SELECT :code, :state, :title, CAST(:request AS jsonb), CAST(:result AS jsonb), :version, :valves,
                   :customers, burst.pt, ST_Multi(ST_Transform(ST_SetSRID(ST_GeomFromGeoJSON(:area), 4326), :srid)),
                   p.enterprise_code, p.admin_code
            FROM (SELECT ST_SetSRID(ST_MakePoint(:x, :y), :srid) AS pt) AS burst
            CROSS JOIN LATERAL (SELECT enterprise_code, admin_code FROM pipe WHERE code = :pipe
                                ORDER BY geom <-> burst.pt LIMIT 1) AS p
            """), {"code": code, "state": state, "title": title, "request": json.dumps(request, ensure_ascii=False),
                   "result": json.dumps({**report, "incident": code}, ensure_ascii=False),
                   "version": report["network_version"],
                   "valves": sum(not v["already_closed"] for v in report["valves_to_close"]),
                   "customers": report["affected_customers"]["count"], "x": x, "y": y, "srid": storage_srid(conn),
                   "area": json.dumps(outage_area) if outage_area else None,
                   "pipe": report["burst"]["pipe"]}).rowcount
        if inserted == 0:
            raise Conflict(f"pipe {report['burst']['pipe']} is no longer in the network: analyse the burst again")
    return code


def incidents(engine: sa.Engine, state: str | None = None) -> list[dict]:
    """Stored incidents, newest first.

    Parameters
    ----------
    engine
        The database.
    state
        Only incidents in this state (None: all).

    Returns
    -------
    list of dict
        code, state, title, valves_to_close, customers_out, pipe (the burst pipe's code),
        created_at (ISO 8601).
    """
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            """SELECT code, state, title, valves_to_close, customers_out, result -> 'burst' ->> 'pipe', created_at,
                      created_by
               FROM incident WHERE CAST(:state AS text) IS NULL OR state = :state ORDER BY created_at DESC, id DESC"""),
            {"state": state}).all()
    return [{"code": c, "state": s, "title": t, "valves_to_close": v, "customers_out": n, "pipe": p,
             "created_at": at.isoformat(), "created_by": by} for c, s, t, v, n, p, at, by in rows]


def incident(engine: sa.Engine, code: str) -> dict:
    """One stored incident: its state and the burst report as it was computed.

    Parameters
    ----------
    engine
        The database.
    code
        The incident's code (SG000001).

    Returns
    -------
    dict
        code, state, title, request, result (the report), created_at, updated_at (ISO 8601), and who
        did it as the database recorded it (migration 0019): created_by, state_changed_by,
        state_changed_at (an account's name, or ``operator:NAME`` for the CLI).

    Raises
    ------
    NotFound
        No incident has that code.
    """
    with engine.connect() as conn:
        row = conn.execute(sa.text(
            "SELECT state, title, request, result, created_at, updated_at, created_by, state_changed_by, "
            "state_changed_at FROM incident WHERE code = :code"), {"code": code}).first()
    if row is None:
        raise NotFound(f"unknown incident {code!r}")
    state, title, request, result, created, updated, created_by, changed_by, changed = row
    return {"code": code, "state": state, "title": title, "request": request, "result": result,
            "created_at": created.isoformat(), "updated_at": updated.isoformat(), "created_by": created_by,
            "state_changed_by": changed_by, "state_changed_at": changed.isoformat()}


def set_incident_state(engine: sa.Engine, code: str, state: str) -> dict:
    """Move an incident forward: planned → active → closed (the same state again changes nothing).

    Parameters
    ----------
    engine
        The database.
    code
        The incident's code.
    state
        One of INCIDENT_STATES.

    Returns
    -------
    dict
        The incident, as `incident` gives it.

    Raises
    ------
    InvalidInput
        Field ``state``: not one of INCIDENT_STATES.
    NotFound
        No incident has that code.
    Conflict
        The incident is further along already (it never goes back).
    """
    if state not in INCIDENT_STATES:
        raise InvalidInput("state", f"incident state must be one of {', '.join(INCIDENT_STATES)}, not {state!r}")
    with engine.begin() as conn:
        current = conn.execute(sa.text("SELECT state FROM incident WHERE code = :code FOR UPDATE"),
                               {"code": code}).scalar()
        if current is None:
            raise NotFound(f"unknown incident {code!r}")
        if INCIDENT_STATES.index(state) < INCIDENT_STATES.index(current):
            raise Conflict(f"incident {code} is {current}: it cannot go back to {state}")
        conn.execute(sa.text("UPDATE incident SET state = :state, updated_at = now() WHERE code = :code"),
                     {"state": state, "code": code})
    return incident(engine, code)
