"""MQTT source of the ingest, and the alarm publisher (paho-mqtt).

Subscribes with QoS 1 in a persistent session (fixed client id, clean_session False): while the
ingest is down or busy the broker keeps its messages. Acknowledgements are manual: a message is
acknowledged only after the transaction that stored (or quarantined) it has committed, a batch's
PUBACKs in one write. After a reconnection, acknowledgements owed on the old connection are
dropped — the broker sends those messages again, and storage is idempotent on (device, ts).

Alarms go out on ``qiwang/{enterprise_code}/alarms/{device_type}/{device_code}`` (QoS 1, JSON:
code, action, level, measure, value, threshold, at, …) for dispatch screens and paging systems.

The subscription is ``qiwang/#``, not only the telemetry topics: a message on a topic outside the
scheme (a device misconfigured, ``…/status`` instead of ``…/telemetry``) reaches the pipeline and is
quarantined with the reason, instead of vanishing in the broker. The one exception is the alarm
feed, which comes back to us through that subscription: only the ingest's account may publish
there (broker.py's ACL), so those are our own messages; they are acknowledged and skipped.
"""
from __future__ import annotations

import json
import logging
import socket
import struct
import threading
from collections.abc import Callable
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from telemetry.broker import BrokerAddress
from telemetry.payload import Message

log = logging.getLogger("qiwang.mqtt")
INGEST_FILTER = "qiwang/#"


def is_alarm_feed(topic: str) -> bool:
    """qiwang/{enterprise}/alarms/…: the ingest's own alarm publications."""
    parts = topic.split("/", 3)
    return len(parts) == 4 and parts[0] == "qiwang" and parts[2] == "alarms"


def alarm_topic(alarm: dict) -> str:
    return f"qiwang/{alarm['enterprise_code']}/alarms/{alarm['device_type']}/{alarm['device_code']}"


class _BufferedSocket:
    """A client socket whose reads are served from 64 KiB chunks.

    paho reads each packet with three recv() calls (type, length, body): three system calls, and
    three hand-overs of the GIL to the writer thread, per reading. `pending()` is paho's hook for
    TLS sockets that hold decrypted bytes: its loop then reads on without waiting in select().
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = b""
        self._pos = 0

    def recv(self, size: int) -> bytes:
        if self._pos >= len(self._buffer):
            data = self._sock.recv(65536)      # BlockingIOError when nothing came: paho expects it
            if len(data) <= size:
                return data
            self._buffer, self._pos = data, 0
        chunk = self._buffer[self._pos:self._pos + size]
        self._pos += len(chunk)
        return chunk

    def pending(self) -> int:
        return len(self._buffer) - self._pos

    def send(self, data: bytes | bytearray) -> int:
        return self._sock.send(data)

    def fileno(self) -> int:
        return self._sock.fileno()

    def setblocking(self, flag: bool) -> None:
        self._sock.setblocking(flag)

    def close(self) -> None:
        self._sock.close()

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)


class _Client(mqtt.Client):
    """paho's client with buffered reads and acknowledgement of many QoS 1 messages in one write.

    `Client.ack` queues one 4-byte PUBACK and wakes the network thread per message; `ack_many`
    queues a batch's PUBACKs as one buffer (paho writes queued buffers verbatim, in order). Both
    lean on paho internals (`_create_socket`, `_packet_queue`): paho is pinned in constraints.txt,
    and the ingest tests fail (the broker stops sending) if acknowledgements stop working.
    """

    def _create_socket(self):
        sock = super()._create_socket()
        return _BufferedSocket(sock) if isinstance(sock, socket.socket) and not self._ssl else sock

    def loop_read(self, max_packets: int = 1) -> mqtt.MQTTErrorCode:
        # paho reads one packet per pass of its loop (a select() each); read on while the buffer
        # holds bytes (bounded: the broker sends no more than its in-flight window unacknowledged).
        rc = super().loop_read(max_packets)
        for _ in range(5000):
            sock = self._sock
            if rc != mqtt.MQTT_ERR_SUCCESS or not isinstance(sock, _BufferedSocket) or not sock.pending():
                break
            rc = super().loop_read(max_packets)
        return rc

    def ack_many(self, mids: list[int]) -> None:
        if mids:
            self._packet_queue(mqtt.PUBACK, b"".join(struct.pack("!BBH", mqtt.PUBACK, 2, mid) for mid in mids), 0, 1)


class MqttSource:
    """Feeds `submit` with every telemetry message; publishes alarms with `publish_alarm`."""

    def __init__(self, broker: BrokerAddress, submit: Callable[[Message], None], *,
                 client_id: str = "qiwang-ingest", topic_filter: str = INGEST_FILTER) -> None:
        self.broker = broker
        self.submit = submit
        self.topic_filter = topic_filter
        self.connected = threading.Event()
        self.connections = 0
        self._generation = 0
        self._lock = threading.Lock()
        self.client = _Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                                  manual_ack=True, protocol=mqtt.MQTTv311)
        self.client.max_inflight_messages_set(1000)   # our own alarm publications
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(min_delay=1, max_delay=5)
        broker.authenticate(self.client)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def start(self) -> MqttSource:
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=30)
        self.client.loop_start()
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    reason: mqtt.ReasonCode, properties: object) -> None:
        if reason.is_failure:
            log.warning("MQTT broker %s refused the connection: %s", self.broker.url, reason)
            return
        self.connections += 1
        client.subscribe(self.topic_filter, qos=1)
        self.connected.set()
        log.info("subscribed to %s on %s (session present: %s)", self.topic_filter, self.broker.url,
                 flags.session_present)

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object, reason: mqtt.ReasonCode,
                       properties: object) -> None:
        with self._lock:
            self._generation += 1
        self.connected.clear()
        if reason.is_failure:
            log.warning("MQTT connection to %s lost (%s); reconnecting", self.broker.url, reason)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = msg._topic.decode("utf-8", "replace")  # the broker should refuse these; keep the evidence
        if is_alarm_feed(topic):
            if msg.qos > 0:
                client.ack(msg.mid, msg.qos)
            return
        token = (self, (self._generation, msg.mid)) if msg.qos > 0 else None
        self.submit(Message("mqtt", topic, bytes(msg.payload), datetime.now(UTC), token))

    def acknowledge(self, handles: list[tuple[int, int]]) -> None:
        """PUBACK the (connection generation, mid) of stored messages still owed on this connection."""
        with self._lock:
            self.client.ack_many([mid for generation, mid in handles if generation == self._generation])

    def publish_alarm(self, alarm: dict) -> None:
        self.client.publish(alarm_topic(alarm), json.dumps(alarm, ensure_ascii=False), qos=1)
