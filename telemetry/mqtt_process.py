"""The MQTT source in a process of its own, so that receiving and storing use two cores.

paho's network loop is pure Python (tens of µs per message); in the writer's process it competes
with parsing and the database writes for one interpreter lock, and the ingest stalls at about 0.7
of a core. Here a child process runs `MqttSource` (same session, same manual acknowledgements) and
hands the parent what it receives in small batches over a pipe; the parent hands back the
acknowledgements once the writer has committed, and the alarms to publish.

Nothing changes in what is acknowledged when: a message is acknowledged only after its batch
committed. If the child dies, the parent starts another on the same persistent session and drops
acknowledgements owed to the dead one (the broker sends those messages again; storage is idempotent).
"""
from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from telemetry.broker import BrokerAddress
from telemetry.health import ComponentHealth
from telemetry.mqtt import INGEST_FILTER, MqttSource
from telemetry.payload import Message

log = logging.getLogger("qiwang.mqtt")
FLUSH_EVERY_S = 0.002     # the child sends what it has received at least this often
FLUSH_AT = 2000           # ... or as soon as it holds this many messages


def _child(inbox: Connection, outbox: Connection, broker: BrokerAddress, client_id: str, topic_filter: str) -> None:
    """The child: an MqttSource whose messages go to the parent, in batches, with their handles."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C reaches the whole group: the parent stops us
    received: list[tuple[str, bytes, Any, Any]] = []
    lock = threading.Lock()
    wake = threading.Event()

    def submit(message: Message) -> None:
        with lock:
            received.append((message.topic, message.payload, message.received_at,
                             message.token[1] if message.token is not None else None))
            if len(received) >= FLUSH_AT:
                wake.set()

    source = MqttSource(broker, submit, client_id=client_id, topic_filter=topic_filter)
    stopping = threading.Event()

    def commands() -> None:
        try:
            while True:
                command, argument = inbox.recv()
                if command == "ack":
                    source.acknowledge(argument)
                elif command == "publish":
                    source.publish_alarm(argument)
                elif command == "stop":
                    break
        except (EOFError, OSError):
            pass  # the parent is gone
        stopping.set()
        wake.set()

    threading.Thread(target=commands, name="qiwang-mqtt-commands", daemon=True).start()
    source.start()
    state = None
    try:
        while not stopping.is_set():
            wake.wait(FLUSH_EVERY_S)
            wake.clear()
            with lock:
                batch, received[:] = received[:], []
            now = (source.connections, source.connected.is_set())
            if batch or now != state:
                outbox.send((now, batch))
                state = now
    except (BrokenPipeError, OSError):
        pass
    finally:
        source.stop()


class MqttProcessSource:
    """Same interface as `MqttSource` (start, stop, connected, connections, acknowledge,
    publish_alarm); the MQTT client runs in a child process."""

    def __init__(self, broker: BrokerAddress, submit: Callable[[Message], None], *,
                 client_id: str = "qiwang-ingest", topic_filter: str = INGEST_FILTER) -> None:
        self.broker = broker
        self.submit = submit
        self.client_id = client_id
        self.topic_filter = topic_filter
        self.connected = threading.Event()
        self.connections = 0
        self._incarnation = 0          # which child a handle belongs to
        self._context = multiprocessing.get_context("spawn")   # never fork a process with live threads
        self._process: multiprocessing.process.BaseProcess | None = None
        self._commands: Connection | None = None
        self._send_lock = threading.Lock()
        self._stopping = threading.Event()
        self._reader: threading.Thread | None = None
        self.health = ComponentHealth("mqtt", alive=self._child_alive)

    def _child_alive(self) -> bool:
        return self._process is not None and self._process.is_alive() and not self._stopping.is_set()

    @property
    def pid(self) -> int | None:
        """PID of the MQTT client process now running."""
        return self._process.pid if self._process is not None else None

    def start(self) -> MqttProcessSource:
        self._spawn()
        self._reader = threading.Thread(target=self._read, name="qiwang-mqtt-reader", daemon=True)
        self._reader.start()
        return self

    def _spawn(self) -> Connection:
        commands_out, commands_in = self._context.Pipe(duplex=False)   # (receiving end, sending end)
        messages_out, messages_in = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_child, name=f"qiwang-mqtt-{self.client_id}", daemon=True,
            args=(commands_out, messages_in, self.broker, self.client_id, self.topic_filter))
        process.start()
        commands_out.close()
        messages_in.close()
        with self._send_lock:
            self._incarnation += 1
            self._process, self._commands = process, commands_in
        self._messages = messages_out
        return messages_out

    def _read(self) -> None:
        base_connections = 0
        while not self._stopping.is_set():
            incarnation = self._incarnation
            try:
                (connections, connected), batch = self._messages.recv()
            except (EOFError, OSError):
                if self._stopping.is_set():
                    break
                self.connected.clear()
                base_connections = self.connections
                dead = self._process
                if dead is not None:
                    dead.join(5)          # reap it: no zombie
                self.health.failed(f"the MQTT client process {dead.pid if dead else '?'} ended "
                                   f"(exit code {dead.exitcode if dead else '?'}); "
                                   "starting another on the same session")
                if self._stopping.wait(1.0):
                    break
                self._spawn()
                self.health.restarted()
                continue
            self.connections = base_connections + connections
            if connected:
                self.connected.set()
            else:
                self.connected.clear()
            for topic, payload, received_at, handle in batch:
                token = (self, (incarnation, handle)) if handle is not None else None
                self.submit(Message("mqtt", topic, payload, received_at, token))

    def _send(self, command: str, argument: Any) -> None:
        with self._send_lock:
            if self._commands is None:
                return
            try:
                self._commands.send((command, argument))
            except (BrokenPipeError, OSError):
                pass   # the child is gone: the broker will send the unacknowledged messages again

    def acknowledge(self, handles: list[tuple[int, Any]]) -> None:
        """PUBACK, through the child, the messages it received (those of an earlier child are dropped)."""
        current = [handle for incarnation, handle in handles if incarnation == self._incarnation]
        if current:
            self._send("ack", current)

    def publish_alarm(self, alarm: dict) -> None:
        self._send("publish", alarm)

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stopping.set()
        self._send("stop", None)
        if self._process is not None:
            self._process.join(timeout_s)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join(5)
        with self._send_lock:
            if self._commands is not None:
                self._commands.close()
                self._commands = None
        if self._reader is not None:
            self._reader.join(timeout_s)
        self._messages.close()
        self.connected.clear()
