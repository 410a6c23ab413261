"""Offline detection and offline rates (掉线率) of sentries and reporting devices.

- `detect_offline` marks offline (dt_devicestatus 0) every device that has been silent for too
  long, and records each change in `device_status_log` and the regulator `outbox`, all in one
  statement. Run it on a schedule from the ingest, with the ingest's clock.
- `offline_rate` reads the status history back into offline device-seconds per group.

All instants are timezone-aware datetimes (naive ones are refused); the database stores them as
timestamptz, and the outbox payload carries them as ISO 8601 UTC. The caller owns the transaction.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

from core.errors import QiwangError

OFFLINE, DISABLED = 0, 8  # dt_devicestatus


@dataclass(frozen=True, slots=True)
class StatusChange:
    device_type: str        # sentry / rtu / alarm / meter
    device_code: str
    enterprise_code: str
    admin_code: str
    at: datetime            # when the change was recorded (timezone-aware)
    status_from: int        # dt_devicestatus
    status_to: int


@dataclass(frozen=True, slots=True)
class OfflineRate:
    key: str                # enterprise_code / admin_code / device_type / 'all'
    name: str | None        # enterprise or division name; None for device_type and 'all'
    devices: int            # registered devices, less those disabled (8) over the whole window
    offline_s: float        # offline device-seconds within [start, end)
    rate: float             # offline_s / (devices × window seconds), 0..1
    offline_at_end: int     # devices offline during the window's last instant
    offline_in_window: int  # devices offline at any time within the window


def _aware(**instants: datetime | None) -> None:
    for name, value in instants.items():
        if value is not None and (value.tzinfo is None or value.utcoffset() is None):
            raise QiwangError(f"{name} must be a timezone-aware datetime, got {value!r}")


# One UPDATE per table. The rows are locked first (FOR UPDATE) and joined back: under READ COMMITTED
# a locked row is re-read at its newest version, so `old.status` is the status actually replaced and
# a device that reported meanwhile (fresh last_reading_at) drops out of the selection.
_STALE = """
    {name}_old AS (
        SELECT id, status FROM {table}
         WHERE {extra} status NOT IN (0, 8)
           AND coalesce(last_reading_at, %(since)s::timestamptz)
               < %(now)s::timestamptz - make_interval(secs => %(k)s * reporting_interval_s)
         ORDER BY id
           FOR UPDATE
    ),
    {name}_new AS (
        UPDATE {table} t SET status = 0
          FROM {name}_old old
         WHERE t.id = old.id
        RETURNING {device_type} AS device_type, t.code, t.enterprise_code, t.admin_code, old.status
    )"""

_DETECT = f"""
    WITH {_STALE.format(name="sentry", table="sentry", extra="", device_type="'sentry'::text")},
    {_STALE.format(name="device", table="device", extra="telemetry_type IS NOT NULL AND",
                   device_type="t.telemetry_type")},
    changed AS (
        SELECT * FROM sentry_new UNION ALL SELECT * FROM device_new
    ),
    logged AS (
        INSERT INTO device_status_log (device_type, device_code, enterprise_code, admin_code, at,
                                       status_from, status_to)
        SELECT device_type, code, enterprise_code, admin_code, %(now)s::timestamptz, status, 0
          FROM changed
         ORDER BY enterprise_code, device_type, code
        RETURNING device_type, device_code, enterprise_code, admin_code, at, status_from, status_to
    ),
    queued AS (
        INSERT INTO outbox (created_at, kind, payload)
        SELECT %(now)s::timestamptz, 'device_status', jsonb_build_object(
                   'device_type', device_type, 'device_code', code, 'enterprise_code', enterprise_code,
                   'admin_code', admin_code,
                   'at', to_char(%(now)s::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                   'status_from', status, 'status_to', 0)
          FROM changed
         WHERE %(outbox)s
         ORDER BY enterprise_code, device_type, code  -- outbox ids give the replay order
    )
    SELECT device_type, device_code, enterprise_code, admin_code, at, status_from, status_to
      FROM logged
     ORDER BY enterprise_code, device_type, device_code
"""


def detect_offline(conn: psycopg.Connection, now: datetime, after_intervals: float = 3,
                   never_reported_since: datetime | None = None, outbox: bool = True) -> list[StatusChange]:
    """Mark offline the devices silent for more than `after_intervals` reporting intervals.

    A sentry, or a device with a telemetry_type, whose status is neither offline (0) nor disabled (8)
    becomes offline (0) when its last reading (`last_reading_at`) is strictly older than
    `now - after_intervals × reporting_interval_s` seconds. A device that never reported counts from
    `never_reported_since` (the ingest's start), and is left alone when that is None: the ingest
    cannot tell how long it has been silent.

    Each change is written, in the same statement, to `device_status_log` (at = now, status_from =
    the old status, status_to = 0) and to `outbox` (kind 'device_status'; payload with at as
    ISO 8601 UTC; only with `outbox`, i.e. when a regulator endpoint is configured). `now` and
    `never_reported_since` are timezone-aware; nothing reads the database clock. Returns the
    changes, ordered by enterprise, device type and code.
    """
    _aware(now=now, never_reported_since=never_reported_since)
    if not after_intervals > 0:
        raise QiwangError(f"after_intervals must be positive, got {after_intervals}")
    rows = conn.execute(_DETECT, {"now": now, "k": float(after_intervals), "outbox": outbox,
                                  "since": never_reported_since}).fetchall()
    return [StatusChange(*row) for row in rows]


# by → (group key, group name, join bringing the name). Fixed strings: never user text in the SQL.
_GROUPS = {
    "enterprise": ("p.enterprise_code", "e.name",
                   "LEFT JOIN enterprise e ON e.enterprise_code = p.enterprise_code"),
    "district": ("p.admin_code", "a.name", "LEFT JOIN admin_division a ON a.admin_code = p.admin_code"),
    "device_type": ("p.device_type", "NULL::text", ""),
    "all": ("'all'::text", "NULL::text", ""),
}

_RATE = """
    WITH w AS (
        SELECT %(start)s::timestamptz AS t0, %(end)s::timestamptz AS t1
    ),
    dev AS (  -- every registered device with its status at start
        SELECT d.device_type, d.code, d.enterprise_code, d.admin_code,
               coalesce(before.status_to, after.status_from, d.status) AS status0
          FROM telemetry_device d CROSS JOIN w
          LEFT JOIN LATERAL (
              SELECT l.status_to FROM device_status_log l
               WHERE l.enterprise_code = d.enterprise_code AND l.device_type = d.device_type
                 AND l.device_code = d.code AND l.at <= w.t0
               ORDER BY l.at DESC, l.id DESC LIMIT 1) before ON true
          LEFT JOIN LATERAL (
              SELECT l.status_from FROM device_status_log l
               WHERE l.enterprise_code = d.enterprise_code AND l.device_type = d.device_type
                 AND l.device_code = d.code AND l.at > w.t0
               ORDER BY l.at, l.id LIMIT 1) after ON true
    ),
    change AS (  -- the status at start, then every change inside the window
        SELECT dev.device_type, dev.code, dev.enterprise_code, dev.admin_code,
               w.t0 AS since, NULL::bigint AS log_id, dev.status0 AS status
          FROM dev CROSS JOIN w
        UNION ALL
        SELECT dev.device_type, dev.code, dev.enterprise_code, dev.admin_code, l.at, l.id, l.status_to
          FROM dev CROSS JOIN w
          JOIN device_status_log l
            ON l.enterprise_code = dev.enterprise_code AND l.device_type = dev.device_type
           AND l.device_code = dev.code AND l.at > w.t0 AND l.at < w.t1
    ),
    span AS (  -- each status holds until the next change, the last one until end
        SELECT c.*, tstzrange(c.since, lead(c.since, 1, w.t1) OVER (
                   PARTITION BY c.enterprise_code, c.device_type, c.code
                   ORDER BY c.since, c.log_id NULLS FIRST), '[)') AS during
          FROM change c CROSS JOIN w
    ),
    per_device AS (
        SELECT s.device_type, s.code, s.enterprise_code, s.admin_code,
               coalesce(sum(extract(epoch FROM upper(s.during) - lower(s.during)))
                        FILTER (WHERE s.status = 0), 0)::float8 AS offline_s,
               bool_or(s.status = 0 AND upper(s.during) = w.t1) AS offline_at_end,
               bool_or(s.status = 0) AS offline_in_window,
               bool_and(s.status = 8) AS disabled_throughout
          FROM span s CROSS JOIN w
         WHERE NOT isempty(s.during)  -- two changes at one instant: the first held for no time
         GROUP BY s.device_type, s.code, s.enterprise_code, s.admin_code
    )
    SELECT {key} AS key, {name} AS name, count(*) AS devices, sum(p.offline_s) AS offline_s,
           sum(p.offline_s) / (count(*) * extract(epoch FROM w.t1 - w.t0)::float8) AS rate,
           count(*) FILTER (WHERE p.offline_at_end) AS offline_at_end,
           count(*) FILTER (WHERE p.offline_in_window) AS offline_in_window
      FROM per_device p CROSS JOIN w {join}
     WHERE NOT p.disabled_throughout
     GROUP BY 1, 2, w.t0, w.t1
     ORDER BY 1
"""


def offline_rate(conn: psycopg.Connection, start: datetime, end: datetime, by: str) -> list[OfflineRate]:
    """Offline rate (掉线率) of the registered telemetry devices over [start, end), per group.

    Definition, per device (sentries and devices with a telemetry_type, as registered now):

    - its status at `start` is the status_to of its last `device_status_log` row at or before
      start; without one, the status_from of its first row after start; without any row, its
      current status;
    - it then takes the status_to of each of its rows with start < at < end, in order of at (id
      breaks ties); a change at exactly `end` belongs to the next window;
    - offline seconds: the time within [start, end) in status 0 (offline);
    - it is left out (not counted in `devices`) when it was disabled (8) throughout the window.

    Per group (`by` = 'enterprise', 'district' (admin_code), 'device_type' or 'all'):
    devices, offline device-seconds, rate = offline seconds / (devices × (end - start) seconds)
    in 0..1, devices offline at the end of the window (in status 0 after the last change before
    end), and devices offline at any time within it. Groups whose devices were all disabled are
    absent. `start` and `end` are timezone-aware; seconds are SI seconds of elapsed time.
    """
    _aware(start=start, end=end)
    if end <= start:
        raise QiwangError(f"offline rate: the window's end ({end.isoformat()}) must be after its start "
                          f"({start.isoformat()})")
    if by not in _GROUPS:
        raise QiwangError(f"offline rate: unknown grouping {by!r}; use one of {', '.join(_GROUPS)}")
    key, name, join = _GROUPS[by]
    rows = conn.execute(_RATE.format(key=key, name=name, join=join), {"start": start, "end": end}).fetchall()
    return [OfflineRate(*row) for row in rows]
