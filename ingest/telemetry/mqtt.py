"""MQTT source of the ingest, and the alarm publisher (paho-mqtt).

Subscribes with QoS 1 in a persistent session (fixed client id, clean_session False): while the
ingest is down or busy the broker keeps its messages. Acknowledgements are manual: a message is
acknowledged only after the transaction that stored (or quarantined) it has committed. After a
reconnection, acknowledgements owed on the old connection are dropped — the broker sends those
messages again, and storage is idempotent on (device, ts).

Alarms go out on ``qiwang/{enterprise_code}/alarms/{device_type}/{device_code}`` (QoS 1, JSON:
code, action, level, measure, value, threshold, at, …) for dispatch screens and paging systems.
"""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from functools import partial

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ingest.telemetry.broker import BrokerAddress
from ingest.telemetry.payload import Message

log = logging.getLogger("qiwang.mqtt")
TELEMETRY_FILTER = "qiwang/+/+/+/telemetry"


def alarm_topic(alarm: dict) -> str:
    return f"qiwang/{alarm['enterprise_code']}/alarms/{alarm['device_type']}/{alarm['device_code']}"


class MqttSource:
    """Feeds `submit` with every telemetry message; publishes alarms with `publish_alarm`."""

    def __init__(self, broker: BrokerAddress, submit: Callable[[Message], None], *,
                 client_id: str = "qiwang-ingest", topic_filter: str = TELEMETRY_FILTER) -> None:
        self.broker = broker
        self.submit = submit
        self.topic_filter = topic_filter
        self.connected = threading.Event()
        self.connections = 0
        self._generation = 0
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                                  manual_ack=True, protocol=mqtt.MQTTv311)
        self.client.max_inflight_messages_set(1000)   # our own alarm publications
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(min_delay=1, max_delay=5)
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
        token = partial(self._ack, self._generation, msg.mid) if msg.qos > 0 else None
        self.submit(Message("mqtt", topic, msg.payload, datetime.now(timezone.utc), token))

    def _ack(self, generation: int, mid: int) -> None:
        with self._lock:
            if generation == self._generation:
                self.client.ack(mid, 1)

    def publish_alarm(self, alarm: dict) -> None:
        self.client.publish(alarm_topic(alarm), json.dumps(alarm, ensure_ascii=False), qos=1)
