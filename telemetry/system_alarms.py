"""System alarms: a part of the ingest that failed, told to the operators as an alarm.

The supervisors restart what dies (health.py); `/health` says so to a monitoring system, but the
people on duty watch the alarm panel. So every failure of a part (writer, MQTT client process,
mosquitto) raises — or, while one is open, repeats on — an alarm of device type `system`, device
code `qiwang-ingest`, the part as its measure, level 7 (fault), one per enterprise the ingest
serves; the part's restart clears it, and the operator then takes it through the usual handling
steps to closed. The value is the number of failures in the episode.

Events are queued by whichever thread notices the failure and written by the writer thread, in a
transaction of their own, as soon as it (or the database) is back.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from telemetry.store import INSERT_EVENT

SYSTEM_DEVICE = "qiwang-ingest"
FAULT = 7            # dt_devicestatus 故障


@dataclass(frozen=True, slots=True)
class SystemEvent:
    part: str                 # writer / mqtt / mosquitto
    action: str               # failed / restarted
    at: datetime
    reason: str | None = None


class SystemEvents:
    """A thread-safe list of events waiting for the writer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[SystemEvent] = []

    def add(self, event: SystemEvent) -> None:
        with self._lock:
            self._events.append(event)

    def take(self) -> list[SystemEvent]:
        with self._lock:
            events, self._events = self._events, []
        return events

    def put_back(self, events: list[SystemEvent]) -> None:
        """Events that could not be written, kept in their order before any that came meanwhile."""
        with self._lock:
            self._events[:0] = events


OPEN_ALARM = """
SELECT id, code, state, value FROM alarm
 WHERE enterprise_code = %s AND device_type = 'system' AND device_code = %s AND measure = %s
   AND direction = 'high' AND cleared_at IS NULL
"""

INSERT_SYSTEM_ALARM = """
INSERT INTO alarm (code, device_type, device_code, level, state, measure, direction, value, peak_value,
                   raised_at, enterprise_code, admin_code)
VALUES ('BJ' || to_char(%(at)s AT TIME ZONE 'UTC', 'YYYYMMDD') || lpad(nextval('alarm_code_seq')::text, 6, '0'),
        'system', %(device)s, %(level)s, 'raised', %(part)s, 'high', 1, 1, %(at)s, %(enterprise)s, %(admin)s)
RETURNING id, code, state, value
"""

REPEAT = """
UPDATE alarm SET value = value + 1, peak_value = value + 1, updated_at = now() WHERE id = %s
RETURNING code, state, value
"""

CLEAR = "UPDATE alarm SET cleared_at = %s, updated_at = now() WHERE id = %s RETURNING code, state, value"


def _returned(cursor: psycopg.Cursor) -> tuple[Any, ...]:
    """The row of an INSERT / UPDATE … RETURNING that always returns one (the alarm exists)."""
    row = cursor.fetchone()
    assert row is not None
    return row


def write_events(conn: psycopg.Connection, events: list[SystemEvent]) -> list[dict[str, Any]]:
    """Write `events` (oldest first) as system alarms in one transaction; returns the alarm feed
    messages (as the store's, for the MQTT alarm topic). Raises whatever the database raises."""
    messages: list[dict[str, Any]] = []
    with conn.transaction(), conn.cursor() as cur:
        enterprises = cur.execute("SELECT enterprise_code, admin_code FROM enterprise "
                                  "ORDER BY enterprise_code").fetchall()
        for event in events:
            for enterprise, admin in enterprises:
                row = cur.execute(OPEN_ALARM, (enterprise, SYSTEM_DEVICE, event.part)).fetchone()
                if event.action == "failed" and row is None:
                    alarm_id, code, state, value = _returned(cur.execute(INSERT_SYSTEM_ALARM, {
                        "at": event.at, "device": SYSTEM_DEVICE, "level": FAULT, "part": event.part,
                        "enterprise": enterprise, "admin": admin}))
                    action = "raised"
                elif event.action == "failed" and row is not None:
                    alarm_id = row[0]
                    code, state, value = _returned(cur.execute(REPEAT, (alarm_id,)))
                    action = "escalated"      # the level stays: the count of failures grows
                elif row is not None:
                    alarm_id = row[0]
                    code, state, value = _returned(cur.execute(CLEAR, (event.at, alarm_id)))
                    action = "cleared"
                else:
                    continue                  # a restart with no open alarm (raised and cleared before)
                note = (f"ingest {event.part} failed: {event.reason}" if event.action == "failed"
                        else f"ingest {event.part} restarted")
                cur.execute(INSERT_EVENT, {"id": alarm_id, "at": event.at, "action": action, "state": state,
                                           "level": FAULT, "value": value, "note": note[:1000]})
                messages.append({
                    "code": code, "action": action, "state": state, "level": FAULT, "measure": event.part,
                    "direction": "high", "value": value, "threshold": None, "at": event.at.isoformat(),
                    "device_type": "system", "device_code": SYSTEM_DEVICE,
                    "enterprise_code": enterprise, "admin_code": admin, "note": note})
    return messages

