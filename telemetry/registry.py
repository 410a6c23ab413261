"""The devices allowed to report: sentries and reporting devices (view `telemetry_device`).

Held in memory by the ingest so that checking a message costs a dictionary lookup; reloaded on a
schedule and, at most every few seconds, when a message names a device it does not know (a device
registered a moment ago is accepted without a restart).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

RELOAD_EVERY_S = 300.0
RELOAD_ON_MISS_AFTER_S = 5.0


@dataclass(frozen=True, slots=True)
class Device:
    device_type: str            # sentry / rtu / alarm / meter
    id: int                     # id in its table (sentry or device)
    code: str
    enterprise_code: str
    admin_code: str
    pressure_class: int | None  # dt_pipe_pressure_type of what it watches; None: no pressure rules
    reporting_interval_s: int

    @property
    def key(self) -> tuple[str, str, str]:
        return self.enterprise_code, self.device_type, self.code


def load_devices(conn: psycopg.Connection) -> dict[tuple[str, str, str], Device]:
    rows = conn.execute(
        "SELECT device_type, id, code, enterprise_code, admin_code, pressure_class, reporting_interval_s "
        "FROM telemetry_device"
    ).fetchall()
    return {(row[3], row[0], row[2]): Device(*row) for row in rows}


class DeviceRegistry:
    """Devices by (enterprise_code, device_type, code), refreshed from the database."""

    def __init__(self, connect: Callable[[], psycopg.Connection]) -> None:
        self._connect = connect
        self._devices: dict[tuple[str, str, str], Device] = {}
        self._loaded_at = -1e18
        self._lock = threading.Lock()
        self.reload()

    def reload(self) -> None:
        with self._connect() as conn:
            devices = load_devices(conn)
        with self._lock:
            self._devices, self._loaded_at = devices, time.monotonic()

    def maybe_reload(self) -> None:
        """Reload when the list is older than RELOAD_EVERY_S (errors leave the old list in place)."""
        if time.monotonic() - self._loaded_at > RELOAD_EVERY_S:
            self._try_reload()

    def _try_reload(self) -> None:
        try:
            self.reload()
        except psycopg.Error:
            self._loaded_at = time.monotonic()  # the database is away: try again later

    def get(self, enterprise_code: str, device_type: str, code: str) -> Device | None:
        device = self._devices.get((enterprise_code, device_type, code))
        if device is None and time.monotonic() - self._loaded_at > RELOAD_ON_MISS_AFTER_S:
            self._try_reload()
            device = self._devices.get((enterprise_code, device_type, code))
        return device

    def __len__(self) -> int:
        return len(self._devices)

    def devices(self) -> list[Device]:
        return list(self._devices.values())
