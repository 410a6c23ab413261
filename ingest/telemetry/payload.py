"""Telemetry messages: topic + JSON payload → a `Reading`, or a `Rejection` that says why not.

Topic: ``qiwang/{enterprise_code}/{device_type}/{device_code}/telemetry``; payload (UTF-8 JSON):

    {"ts": "2026-11-23T08:00:00Z", "values": {"ch4_lel": 3.2, "pressure_kpa": 2.1, "battery_v": 3.6}}

`ts` is ISO 8601 with a UTC offset, or Unix seconds; value names carry their units (measures.py).
Everything is checked before anything is stored; a message that fails any check is quarantined
with its raw bytes, the field at fault and the reason — never dropped, never half stored.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Protocol

from ingest.telemetry.measures import DEVICE_TYPES, MEASURES

if TYPE_CHECKING:
    from ingest.telemetry.registry import Device, DeviceRegistry

MAX_PAYLOAD_BYTES = 16 * 1024
MAX_VALUES = 32
FUTURE_SKEW = timedelta(minutes=5)    # device clocks run a little fast; more is a wrong clock
MAX_AGE = timedelta(days=90)          # devices buffer readings while offline (000 foreword 6)
TOPIC = re.compile(r"qiwang/(?P<enterprise>[^/]*)/(?P<type>[^/]*)/(?P<code>[^/]*)/telemetry")
ENTERPRISE_CODE = re.compile(r"[0-9]{10}")
DEVICE_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
EPOCH_RANGE = (946_684_800, 4_102_444_800)  # 2000-01-01 … 2100-01-01, Unix seconds


def telemetry_topic(enterprise_code: str, device_type: str, device_code: str) -> str:
    return f"qiwang/{enterprise_code}/{device_type}/{device_code}/telemetry"


class Acknowledger(Protocol):
    """A source that wants to know when its messages are safely stored."""

    def acknowledge(self, handles: list[Any]) -> None:
        """These messages are committed (or quarantined): the source may forget them."""


@dataclass(frozen=True, slots=True)
class Message:
    """One message as received, before any check.

    `token` is (source, handle) when the source wants an acknowledgement once the message's batch
    has committed (MQTT QoS 1), None when it does not (Modbus polls)."""

    source: str                 # 'mqtt' or 'modbus'
    topic: str
    payload: bytes
    received_at: datetime       # UTC
    token: tuple[Acknowledger, Any] | None = None


@dataclass(slots=True)
class Reading:
    """A checked reading of a known device; values by measure name, in the measure's unit."""

    device: Device
    ts: datetime
    values: dict[str, float]
    message: Message


@dataclass(slots=True)
class Rejection:
    """Why a message cannot be stored; goes to reading_quarantine with the raw payload."""

    message: Message
    field: str | None
    reason: str
    enterprise_code: str | None = None
    device_type: str | None = None
    device_code: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class _Reject(Exception):
    def __init__(self, field_name: str | None, reason: str) -> None:
        super().__init__(reason)
        self.field, self.reason = field_name, reason


def parse(message: Message, registry: DeviceRegistry, now: datetime) -> Reading | Rejection:
    """Check one message against the topic scheme, the device registry and the measures."""
    match = TOPIC.fullmatch(message.topic)
    if match is None:
        return Rejection(message, "topic", "not qiwang/{enterprise_code}/{device_type}/{device_code}/telemetry")
    enterprise, device_type, code = match.group("enterprise", "type", "code")
    ids = {"enterprise_code": enterprise[:32], "device_type": device_type[:32], "device_code": code[:64]}
    try:
        if not ENTERPRISE_CODE.fullmatch(enterprise):
            raise _Reject("topic", f"enterprise code {enterprise[:32]!r} is not 10 digits")
        if device_type not in DEVICE_TYPES:
            raise _Reject("topic", f"device type {device_type[:32]!r} is not one of {', '.join(DEVICE_TYPES)}")
        if not DEVICE_CODE.fullmatch(code):
            raise _Reject("topic", f"device code {code[:64]!r} is not 1-64 letters, digits, '_', '.', '-'")
        device = registry.get(enterprise, device_type, code)
        if device is None:
            raise _Reject("topic", f"unknown device: no {device_type} {code} of enterprise {enterprise}")
        ts, values = _body(message.payload, now)
    except _Reject as bad:
        return Rejection(message, bad.field, bad.reason, **ids)
    return Reading(device, ts, values, message)


def _body(payload: bytes, now: datetime) -> tuple[datetime, dict[str, float]]:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise _Reject("payload", f"{len(payload):,} bytes, more than {MAX_PAYLOAD_BYTES:,}")
    try:
        body = json.loads(payload)
    except UnicodeDecodeError:
        raise _Reject("payload", "not UTF-8") from None
    except (ValueError, RecursionError) as exc:
        raise _Reject("payload", f"not JSON: {str(exc)[:120]}") from None
    if not isinstance(body, dict):
        raise _Reject("payload", f"a JSON {type(body).__name__}, not an object")
    return _timestamp(body.get("ts"), now), _values(body.get("values"))


def _timestamp(raw: Any, now: datetime) -> datetime:
    if raw is None:
        raise _Reject("ts", "missing")
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise _Reject("ts", f"a {type(raw).__name__}, not an ISO 8601 string or Unix seconds")
    if isinstance(raw, str):
        try:
            ts = datetime.fromisoformat(raw[:40])
        except ValueError:
            raise _Reject("ts", f"{raw[:40]!r} is not ISO 8601") from None
        if ts.tzinfo is None:
            raise _Reject("ts", f"{raw[:40]!r} has no UTC offset (add Z or +08:00)")
    else:
        if not (math.isfinite(raw) and EPOCH_RANGE[0] <= raw < EPOCH_RANGE[1]):
            raise _Reject("ts", f"{raw!r} is not Unix seconds between 2000 and 2100")
        ts = datetime.fromtimestamp(raw, timezone.utc)
    ts = ts.astimezone(timezone.utc)
    if ts > now + FUTURE_SKEW:
        raise _Reject("ts", f"{ts.isoformat()} is in the future (received {now.isoformat(timespec='seconds')})")
    if ts < now - MAX_AGE:
        raise _Reject("ts", f"{ts.isoformat()} is more than {MAX_AGE.days} days old")
    return ts


def _values(raw: Any) -> dict[str, float]:
    if not isinstance(raw, dict):
        raise _Reject("values", "missing" if raw is None else f"a {type(raw).__name__}, not an object")
    if not raw:
        raise _Reject("values", "empty")
    if len(raw) > MAX_VALUES:
        raise _Reject("values", f"{len(raw)} values, more than {MAX_VALUES}")
    values: dict[str, float] = {}
    for name, value in raw.items():
        measure = MEASURES.get(name)
        if measure is None:
            raise _Reject(f"values.{name[:40]}", f"unknown measure (known: {', '.join(MEASURES)})")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Reject(f"values.{name}", f"a {type(value).__name__}, not a number")
        number = float(value) if not isinstance(value, int) or abs(value) < 2**63 else math.inf
        if not measure.minimum <= number <= measure.maximum:
            raise _Reject(f"values.{name}", f"{str(value)[:40]} {measure.unit} is outside "
                                            f"{measure.minimum:g}…{measure.maximum:g} {measure.unit}")
        values[name] = number
    return values
