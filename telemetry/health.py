"""Health of the running ingest's parts (writer thread, MQTT client process, local mosquitto).

Each part has a `ComponentHealth` that its supervisor updates when the part dies and is restarted;
`TelemetryService` registers itself here so that the web process it runs in (`./qiwang demo`)
reports the ingest in `/health`: a part that died says so (with its restarts and the last
failure) instead of the demo's "ingest running" staying true while nothing is stored.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger("qiwang.ingest")


@dataclass
class ComponentHealth:
    """Restarts and the last failure of one supervised part; `alive` asks the part itself."""

    name: str
    alive: Callable[[], bool] = lambda: True
    restarts: int = 0
    last_failure: str | None = None
    last_failure_at: datetime | None = None
    # Told of every failure and restart (part, "failed" | "restarted", reason): the system alarms.
    on_event: Callable[[str, str, str | None], None] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def failed(self, what: str) -> None:
        """Record that the part died (`what`: why, in one line); its supervisor restarts it."""
        with self._lock:
            self.last_failure, self.last_failure_at = what[:500], datetime.now(UTC)
        log.error("ingest %s failed: %s; restarting it", self.name, what[:500])
        self._tell("failed", what[:500])

    def restarted(self) -> None:
        with self._lock:
            self.restarts += 1
        self._tell("restarted", None)

    def _tell(self, action: str, reason: str | None) -> None:
        if self.on_event is not None:
            try:
                self.on_event(self.name, action, reason)
            except Exception:
                log.exception("ingest %s %s: the system alarm could not be queued", self.name, action)

    def report(self) -> dict[str, Any]:
        with self._lock:
            return {"alive": bool(self.alive()), "restarts": self.restarts, "last_failure": self.last_failure,
                    "last_failure_at": self.last_failure_at.isoformat() if self.last_failure_at else None}


_services: list[Any] = []          # objects with a `health()` → dict (TelemetryService)
_services_lock = threading.Lock()


def register(service: Any) -> None:
    with _services_lock:
        _services.append(service)


def unregister(service: Any) -> None:
    with _services_lock:
        if service in _services:
            _services.remove(service)


def ingest_report() -> dict[str, Any] | None:
    """The ingest running in this process for `/health`: {"status": "running" | "failing", parts…},
    None when no ingest runs here (`./qiwang serve` alone)."""
    with _services_lock:
        services = list(_services)
    if not services:
        return None
    parts: dict[str, Any] = {}
    for service in services:
        parts.update(service.health())
    failing = [name for name, part in parts.items() if not part["alive"]]
    return {"status": "failing" if failing else "running", "failing": failing, **parts}
