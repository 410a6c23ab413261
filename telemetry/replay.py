"""Replaying quarantined messages (隔离报文重放) once what made them fail has been fixed.

The usual case is a device that reported before it was registered: its messages were quarantined
as "unknown device". Once it is in the registry, `replay()` publishes each of them again, byte for
byte, on the topic it came on (MQTT, QoS 1), oldest first. It stamps the quarantine row's
`replayed_at` only once the broker has acknowledged the message.

The running ingest then treats a replayed message like any other. It is stored once per
(device, ts), since the payload keeps its own timestamp, and a message replayed twice is still
stored once. Alarms come from the rules, in the order the readings arrived. A message that still
does not pass is quarantined again with today's reason. The old row stays, marked as replayed, so
nothing is lost and the history shows both. If the replay is interrupted between the broker's
acknowledgement and the stamp, the next replay sends the message again, which is harmless.

Modbus rows are not replayed: a poll has no topic to publish on.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import paho.mqtt.client as mqtt
import psycopg

from core.errors import QiwangError
from telemetry.broker import BrokerAddress
from telemetry.publisher import connected_publisher

CHUNK = 1000
UNKNOWN_DEVICE = "unknown device%"      # the reason payload.parse gives for an unregistered device

# Keyset over id so that rows quarantined while the replay runs (e.g. refused again) are not
# picked up by the same replay.
WAITING = """
SELECT q.id, q.topic, q.payload
  FROM reading_quarantine q
 WHERE q.replayed_at IS NULL AND q.source = 'mqtt' AND q.topic IS NOT NULL
   AND q.id > %(after)s AND q.id <= %(last)s
   AND EXISTS (SELECT 1 FROM telemetry_device d
                WHERE d.enterprise_code = q.enterprise_code AND d.device_type = q.device_type
                  AND d.code = q.device_code)
   AND (%(any_reason)s OR q.reason LIKE %(unknown)s)
   AND (%(device)s::text IS NULL OR q.device_code = %(device)s)
   AND (%(since)s::timestamptz IS NULL OR q.received_at >= %(since)s)
 ORDER BY q.id
 LIMIT %(chunk)s
"""


@dataclass(frozen=True)
class ReplayReport:
    replayed: int           # published, acknowledged by the broker and stamped
    devices: int            # distinct devices among them


def waiting(conn: psycopg.Connection, *, device: str | None = None, since: datetime | None = None,
            any_reason: bool = False) -> tuple[int, int]:
    """(messages, devices) that `replay` would send now, without sending anything."""
    messages, devices = conn.execute(f"SELECT count(*), count(DISTINCT w.topic) FROM ({WAITING}) w",
                                     _params(0, 2**62, device, since, any_reason, None)).fetchone() or (0, 0)
    return messages, devices   # LIMIT NULL above: all


def replay(conninfo: str, broker: BrokerAddress, *, device: str | None = None, since: datetime | None = None,
           any_reason: bool = False, client_id: str | None = None, timeout_s: float = 60.0) -> ReplayReport:
    """Publish the quarantined messages of registered devices again, oldest first; see the module.

    `device`: only this device code; `since`: only messages received from then on; `any_reason`:
    also messages refused for another reason than an unknown device (after a check was corrected).
    """
    client = _connect(broker, client_id)
    replayed, topics = 0, set[str]()
    try:
        with psycopg.connect(conninfo) as conn:
            last, = conn.execute("SELECT coalesce(max(id), 0) FROM reading_quarantine").fetchone() or (0,)
            after = 0
            while True:
                rows = conn.execute(WAITING, _params(after, last, device, since, any_reason, CHUNK)).fetchall()
                if not rows:
                    break
                infos = [client.publish(topic, bytes(payload), qos=1) for _, topic, payload in rows]
                for info in infos:
                    try:
                        info.wait_for_publish(timeout_s)
                    except (RuntimeError, ValueError) as exc:     # paho: not connected, queue full
                        raise QiwangError(f"the broker at {broker.url} dropped the replay ({exc}); "
                                          f"{replayed:,} replayed so far, run it again") from None
                    if not info.is_published():
                        raise QiwangError(f"the broker at {broker.url} did not take the replayed messages "
                                          f"within {timeout_s:g} s; {replayed:,} replayed so far, run it again")
                conn.execute("UPDATE reading_quarantine SET replayed_at = now() WHERE id = ANY(%s)",
                             ([row[0] for row in rows],))
                conn.commit()
                replayed += len(rows)
                topics.update(topic for _, topic, _ in rows)
                after = rows[-1][0]
    finally:
        client.disconnect()
        client.loop_stop()
    return ReplayReport(replayed, len(topics))


def _params(after: int, last: int, device: str | None, since: datetime | None, any_reason: bool,
            chunk: int | None) -> dict:
    return {"after": after, "last": last, "device": device, "since": since, "any_reason": any_reason,
            "unknown": UNKNOWN_DEVICE, "chunk": chunk}


def _connect(broker: BrokerAddress, client_id: str | None) -> mqtt.Client:
    return connected_publisher(broker, client_id, CHUNK, "the connection")
