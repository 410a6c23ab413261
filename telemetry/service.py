"""The running ingest: pipeline + its sources (MQTT, Modbus) + the regulator outbox sender.

Used by `./qiwang ingest mqtt|modbus` and by `./qiwang demo` (which also runs a local mosquitto
and the simulator, so that the demo city is alive).

Supervised: the writer restarts its own loop after a failure, the MQTT client process is started
again when it dies (mqtt_process.py), and a watchdog thread here restarts the writer thread should it
end and — for the demo's `local_broker` — reaps mosquitto when it exits and starts it again on the
same port and persistence. Every restart is logged and counted in `health()`, which the web
process the service runs in reports at `/health` (health.py).
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from telemetry import health as health_registry
from telemetry.broker import BrokerAddress, LocalBroker
from telemetry.modbus import ModbusPoller, load_config
from telemetry.mqtt_process import MqttProcessSource
from telemetry.outbox import OutboxSender
from telemetry.pipeline import Pipeline
from telemetry.rules import load_rules

log = logging.getLogger("qiwang.ingest")


@dataclass
class TelemetryService:
    conninfo: str
    broker: BrokerAddress | None = None          # MQTT source and alarm feed
    modbus_config: Path | None = None
    rules_file: Path | None = None
    regulator_url: str | None = None             # outbox on, and its sender, when set
    regulator_token: str | None = None
    client_id: str = "qiwang-ingest"
    local_broker: LocalBroker | None = None      # supervised (reaped and restarted) when given
    watch_every_s: float = 1.0
    pipeline: Pipeline | None = None
    mqtt: MqttProcessSource | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> TelemetryService:
        # Rules and the Modbus register map are checked before anything starts.
        rules = load_rules(self.rules_file)
        modbus = load_config(self.modbus_config) if self.modbus_config else None
        self.pipeline = Pipeline(self.conninfo, rules, outbox=bool(self.regulator_url)).start()
        if self.broker is not None:
            self.mqtt = MqttProcessSource(self.broker, self.pipeline.submit, client_id=self.client_id).start()
            self.pipeline.on_alarm = self.mqtt.publish_alarm
            self.mqtt.health.on_event = self.pipeline.note_system_event
        if modbus is not None:
            poller = ModbusPoller(modbus, self.pipeline.submit)
            self._spawn("qiwang-modbus", lambda: poller.run(self._stop))
        if self.regulator_url:
            sender = OutboxSender(self.conninfo, self.regulator_url, token=self.regulator_token)
            self._spawn("qiwang-outbox", lambda: sender.run(self._stop))
        if self.local_broker is not None:
            broker = self.local_broker
            broker.health.on_event = self.pipeline.note_system_event
            self._spawn("qiwang-mosquitto-supervisor", lambda: broker.supervise(self._stop, self.watch_every_s))
        self._spawn("qiwang-ingest-watchdog", self._watch)
        health_registry.register(self)
        return self

    def _watch(self) -> None:
        """Restart the writer thread should it ever end while the service runs (its own loop
        survives exceptions; this covers whatever ends the thread itself)."""
        while not self._stop.wait(self.watch_every_s):
            pipeline = self.pipeline
            if pipeline is not None and not pipeline.running() and not self._stop.is_set():
                pipeline.health.failed("the writer thread ended")
                pipeline.start()
                pipeline.health.restarted()

    def health(self) -> dict[str, dict]:
        """Each part's {alive, restarts, last_failure, last_failure_at}, for `/health`."""
        parts = {}
        if self.pipeline is not None:
            parts["writer"] = self.pipeline.health.report()
        if self.mqtt is not None:
            parts["mqtt"] = {**self.mqtt.health.report(), "connected": self.mqtt.connected.is_set()}
        if self.local_broker is not None:
            parts["mosquitto"] = self.local_broker.health.report()
        return parts

    def _spawn(self, name: str, target) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def wait(self) -> None:
        """Block until stop() (or Ctrl-C in the caller)."""
        while not self._stop.wait(1.0):
            pass

    def stop(self) -> None:
        health_registry.unregister(self)
        self._stop.set()
        if self.mqtt is not None:
            self.mqtt.stop()
        for thread in self._threads:
            thread.join(10)
        if self.pipeline is not None:
            self.pipeline.stop()
