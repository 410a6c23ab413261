"""An MQTT client that publishes (the simulator, the quarantine replay), connected and accepted.

paho connects asynchronously: `connect` returns before the broker has answered, and a refusal
(wrong account, ACL) only reaches the on_connect callback. This waits for that answer, so a caller
fails at once with the broker's reason instead of publishing into a connection that never opened.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from core.errors import Unavailable
from telemetry.broker import BrokerAddress

CONNACK_WAIT_S = 10.0


def connected_publisher(broker: BrokerAddress, client_id: str | None, max_inflight: int, who: str,
                        on_publish: Callable[..., None] | None = None) -> mqtt.Client:
    """A clean-session client of `broker`, its network loop running, once the broker accepted it.

    Parameters
    ----------
    broker
        Address and account (the client authenticates with it).
    client_id
        MQTT client id ("" lets the broker choose one).
    max_inflight
        QoS 1 messages in flight before paho waits for PUBACKs.
    who
        How the error names the client ("the simulator", "the connection").
    on_publish
        paho's on_publish callback (VERSION2 signature), set before connecting.

    Raises
    ------
    Unavailable
        The broker cannot be reached, refused the account, or did not answer within 10 s.
    """
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or "", clean_session=True)
    broker.authenticate(client)
    client.max_inflight_messages_set(max_inflight)
    connected = threading.Event()
    refused: list[str] = []

    def on_connect(_c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        if getattr(reason, "is_failure", False):
            refused.append(str(reason))
        connected.set()

    client.on_connect = on_connect
    if on_publish is not None:
        client.on_publish = on_publish
    try:
        client.connect(broker.host, broker.port, keepalive=30)
    except OSError as exc:
        raise Unavailable(f"cannot reach the MQTT broker at {broker.url}: {exc}") from None
    client.loop_start()
    if not connected.wait(CONNACK_WAIT_S) or refused:
        client.disconnect()
        client.loop_stop()
        raise Unavailable(f"the MQTT broker at {broker.url} did not accept {who}: "
                          f"{refused[0] if refused else f'no answer within {CONNACK_WAIT_S:g} s'}")
    return client
