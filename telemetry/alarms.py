"""The alarm lifecycle (闭环处置): raised → acknowledged → dispatched → resolved → closed.

Each step is taken by a named person with an optional note, in that order and only forward; an
alarm is closed only once its condition has cleared (the database enforces it too). Every step is
appended to `alarm_event`, which refuses UPDATE and DELETE and chains each row's hash to the one
before it, so the handling record can be shown to a regulator as it was written.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from core.errors import Conflict, InvalidInput, NotFound

# action → (state it requires, state it leads to, timestamp column)
STEPS = {
    "acknowledge": ("raised", "acknowledged", "acknowledged_at"),
    "dispatch": ("acknowledged", "dispatched", "dispatched_at"),
    "resolve": ("dispatched", "resolved", "resolved_at"),
    "close": ("resolved", "closed", "closed_at"),
}
EVENT_OF = {"acknowledge": "acknowledged", "dispatch": "dispatched", "resolve": "resolved", "close": "closed"}


class AlarmStepRefused(Conflict):
    """A lifecycle step that does not apply to the alarm as it stands."""


class UnknownAlarm(NotFound):
    """No alarm has that code (in that enterprise, when one is named)."""


@dataclass(frozen=True)
class AlarmEvent:
    id: int
    at: datetime
    action: str
    state: str
    level: int | None
    value: float | None
    actor: str
    note: str | None
    hash: str


def advance(conn: psycopg.Connection, code: str, action: str, actor: str, note: str | None,
            at: datetime, enterprise_code: str | None = None) -> dict[str, Any]:
    """Take one lifecycle step on alarm `code`; the caller owns the transaction.

    Parameters
    ----------
    conn
        A psycopg connection in a transaction the caller commits.
    code
        The alarm's code (BJ…).
    action
        One of STEPS: acknowledge, dispatch, resolve, close.
    actor
        Who takes the step, as recorded in the handling record.
    note
        What was done or found, or None.
    at
        When the step was taken (timezone-aware).
    enterprise_code
        The alarm's enterprise, needed only when several enterprises use the same alarm code.

    Returns
    -------
    dict
        {"code", "state", "<step>_at"}: the alarm's code, its new state and the step's time (ISO 8601).

    Raises InvalidInput naming `action`, `actor` or `enterprise`; UnknownAlarm (NotFound) for no
    such alarm; AlarmStepRefused (Conflict) when the step is out of order or `close` is asked of an
    alarm still active.
    """
    if action not in STEPS:
        raise InvalidInput("action", f"must be one of {', '.join(STEPS)}, not {action!r}")
    if not actor or not actor.strip():
        raise InvalidInput("actor", "the person taking the step must be named")
    required, state, column = STEPS[action]
    rows = conn.execute(
        "SELECT id, state, cleared_at, level, value FROM alarm WHERE code = %s "
        "AND (%s::text IS NULL OR enterprise_code = %s) FOR UPDATE",
        (code, enterprise_code, enterprise_code)).fetchall()
    if not rows:
        raise UnknownAlarm(f"no alarm {code}" + (f" in enterprise {enterprise_code}" if enterprise_code else ""))
    if len(rows) > 1:
        raise InvalidInput("enterprise", f"alarm code {code} exists in several enterprises, name the enterprise")
    alarm_id, current, cleared_at, level, value = rows[0]
    if current != required:
        raise AlarmStepRefused(f"alarm {code} is {current}: '{action}' needs it {required}")
    if action == "close" and cleared_at is None:
        raise AlarmStepRefused(f"alarm {code} is still active (its value has not cleared): it cannot be closed")
    conn.execute(f"UPDATE alarm SET state = %s, {column} = %s, updated_at = now() WHERE id = %s",
                 (state, at, alarm_id))
    conn.execute("INSERT INTO alarm_event (alarm_id, at, action, state, level, value, actor, note) "
                 "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                 (alarm_id, at, EVENT_OF[action], state, level, value, actor.strip(), note))
    return {"code": code, "state": state, column: at.isoformat()}


def record(conn: psycopg.Connection, code: str) -> list[AlarmEvent]:
    """The handling record of alarm `code`, oldest first."""
    rows = conn.execute(
        "SELECT e.id, e.at, e.action, e.state, e.level, e.value, e.actor, e.note, encode(e.hash, 'hex') "
        "FROM alarm_event e JOIN alarm a ON a.id = e.alarm_id WHERE a.code = %s ORDER BY e.id", (code,)).fetchall()
    return [AlarmEvent(*row) for row in rows]


def verify_record(conn: psycopg.Connection, code: str) -> bool:
    """Recompute the hash chain of alarm `code`'s record; False if any row was altered or removed.

    The expression is the one of the insert trigger (migration 0009), evaluated by PostgreSQL so
    that numbers and times print exactly as they did when the row was written.
    """
    row = conn.execute(
        """SELECT coalesce(bool_and(ok), true) FROM (
               SELECT e.prev_hash IS NOT DISTINCT FROM lag(e.hash) OVER w
                      AND e.hash = sha256(coalesce(lag(e.hash) OVER w, ''::bytea) || convert_to(concat_ws('|',
                          e.alarm_id, to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), e.action,
                          e.state, e.level, e.value, e.actor, e.note), 'UTF8')) AS ok
                 FROM alarm_event e JOIN alarm a ON a.id = e.alarm_id
                WHERE a.code = %s
               WINDOW w AS (ORDER BY e.id)) AS chain""", (code,)).fetchone()
    return bool(row[0]) if row else True  # an aggregate without GROUP BY always gives its one row
