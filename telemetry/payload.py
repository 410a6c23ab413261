"""Telemetry messages: topic + JSON payload → a `Reading`, or a `Rejection` that says why not.

Topic: ``qiwang/{enterprise_code}/{device_type}/{device_code}/telemetry``; payload (UTF-8 JSON):

    {"ts": "2026-11-23T08:00:00Z", "values": {"ch4_lel": 3.2, "pressure_kpa": 2.1, "battery_v": 3.6}}

`ts` is ISO 8601 with a UTC offset, or Unix seconds; value names carry their units (measures.py).
Everything is checked before anything is stored; a message that fails any check is quarantined
with its raw bytes, the field at fault and the reason — never dropped, never half stored.

The payload must be UTF-8 without a byte order mark (UTF-16/UTF-32 and BOMs are refused by name,
not guessed as `json.loads` of bytes would); every string in it (measure names included) must be
free of NUL and of lone surrogates (JSON escapes such as "\\ud800"), which PostgreSQL text cannot
hold. Timestamps must fall between 2000 and 2100 in UTC whatever their offset. `parse` never raises:
an unexpected error on one message becomes that message's rejection.
"""
from __future__ import annotations

import codecs
import dataclasses
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from core.codes import ENTERPRISE_CODE
from core.text import unstorable_char
from telemetry.measures import DEVICE_TYPES, MEASURES

if TYPE_CHECKING:
    from telemetry.registry import Device, DeviceRegistry

MAX_PAYLOAD_BYTES = 16 * 1024
MAX_VALUES = 32
FUTURE_SKEW = timedelta(minutes=5)    # device clocks run a little fast; more is a wrong clock
MAX_AGE = timedelta(days=90)          # devices buffer readings while offline (000 foreword 6)
TOPIC = re.compile(r"qiwang/(?P<enterprise>[^/]*)/(?P<type>[^/]*)/(?P<code>[^/]*)/telemetry")
DEVICE_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
EPOCH_RANGE = (946_684_800, 4_102_444_800)  # 2000-01-01 … 2100-01-01, Unix seconds
YEAR_RANGE = (2000, 2100)             # the same window for ISO 8601 timestamps, checked before any UTC shift
MAX_TS_CHARS = 40
TOPIC_PREFIX = "qiwang/"              # the ingest subscribes to qiwang/#: anything else there is quarantined
# Checked before UTF-8 decoding, longest mark first (UTF-32 LE starts like UTF-16 LE).
BYTE_ORDER_MARKS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
                    (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"))


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
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)  # `field` is a member here


class _Reject(Exception):
    def __init__(self, field_name: str | None, reason: str) -> None:
        super().__init__(reason)
        self.field, self.reason = field_name, reason


def parse(message: Message, registry: DeviceRegistry, now: datetime) -> Reading | Rejection:
    """Check one message against the topic scheme, the device registry and the measures.

    Never raises: a check that fails in an unforeseen way (a bug, not bad input) quarantines this
    message with the error, and the writer goes on with the others.
    """
    try:
        return _parse(message, registry, now)
    except Exception as exc:  # noqa: BLE001 - one message must never stop the ingest
        return Rejection(message, None, f"unexpected error while checking it: {type(exc).__name__}: {str(exc)[:200]}")


def _parse(message: Message, registry: DeviceRegistry, now: datetime) -> Reading | Rejection:
    match = TOPIC.fullmatch(message.topic)
    if match is None:
        return Rejection(message, "topic", "not qiwang/{enterprise_code}/{device_type}/{device_code}/telemetry")
    enterprise, device_type, code = match.group("enterprise", "type", "code")
    try:
        if not ENTERPRISE_CODE.is_valid(enterprise):
            raise _Reject("topic", f"enterprise code {enterprise[:32]!r} is not {ENTERPRISE_CODE.description}")
        if device_type not in DEVICE_TYPES:
            raise _Reject("topic", f"device type {device_type[:32]!r} is not one of {', '.join(DEVICE_TYPES)}")
        if not DEVICE_CODE.fullmatch(code):
            raise _Reject("topic", f"device code {code[:64]!r} is not 1-64 letters, digits, '_', '.', '-'")
        device = registry.get(enterprise, device_type, code)
        if device is None:
            raise _Reject("topic", f"unknown device: no {device_type} {code} of enterprise {enterprise}")
        ts, values = _body(message.payload, now)
    except _Reject as bad:
        return Rejection(message, bad.field, bad.reason, enterprise_code=enterprise[:32],
                         device_type=device_type[:32], device_code=code[:64])
    return Reading(device, ts, values, message)


def _body(payload: bytes, now: datetime) -> tuple[datetime, dict[str, float]]:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise _Reject("payload", f"{len(payload):,} bytes, more than {MAX_PAYLOAD_BYTES:,}")
    text = decode_utf8(payload)
    try:
        body = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise _Reject("payload", f"not JSON: {str(exc)[:120]}") from None
    if not isinstance(body, dict):
        raise _Reject("payload", f"a JSON {type(body).__name__}, not an object")
    if "\\u" in text:   # NUL and surrogates can only come in as escapes: the common payload skips the walk
        _storable(body, "payload")
    return _timestamp(body.get("ts"), now), _values(body.get("values"))


def decode_utf8(payload: bytes) -> str:
    """The payload as text: UTF-8 without a byte order mark, or a rejection naming the encoding.

    `json.loads(bytes)` would guess UTF-16/UTF-32 and decode with 'surrogatepass'; the documented
    encoding is UTF-8, so anything else is refused with its name rather than half understood."""
    for mark, name in BYTE_ORDER_MARKS:
        if payload.startswith(mark):
            raise _Reject("payload", f"{name} (byte order mark), not UTF-8")
    if payload.startswith(codecs.BOM_UTF8):
        raise _Reject("payload", "UTF-8 with a byte order mark: send UTF-8 without one")
    if b"\x00" in payload:   # JSON text never holds a raw NUL: UTF-16/32 without a mark
        raise _Reject("payload", "NUL bytes: UTF-16 or UTF-32 without a byte order mark, not UTF-8")
    try:
        return payload.decode("utf-8")   # strict: also refuses encoded surrogates (ED A0 80)
    except UnicodeDecodeError as exc:
        raise _Reject("payload", f"not UTF-8 (byte {exc.start:,}: {exc.reason})") from None


def _storable(value: Any, where: str) -> None:
    """Refuse NUL and lone surrogates in every string (keys included) of a decoded payload."""
    if isinstance(value, str):
        bad = unstorable_char(value)
        if bad:
            raise _Reject(where, f"a string holds {_unstorable_name(bad)}")
    elif isinstance(value, dict):
        for key, item in value.items():
            bad = unstorable_char(key)
            if bad:
                raise _Reject(where, f"a name holds {_unstorable_name(bad)}")
            _storable(item, f"{where}.{key[:40]}" if where != "payload" else key[:40])
    elif isinstance(value, list):
        for item in value:
            _storable(item, where)


def _unstorable_name(char: str) -> str:
    return "NUL (\\u0000)" if char == "\x00" else f"a lone surrogate (\\u{ord(char):04x})"


def _timestamp(raw: Any, now: datetime) -> datetime:
    if raw is None:
        raise _Reject("ts", "missing")
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise _Reject("ts", f"a {type(raw).__name__}, not an ISO 8601 string or Unix seconds")
    if isinstance(raw, str):
        if len(raw) > MAX_TS_CHARS:
            raise _Reject("ts", f"{len(raw)} characters, more than an ISO 8601 timestamp's {MAX_TS_CHARS}")
        try:
            ts = datetime.fromisoformat(raw)
        except ValueError:
            raise _Reject("ts", f"{raw!r} is not ISO 8601") from None
        if ts.tzinfo is None:
            raise _Reject("ts", f"{raw!r} has no UTC offset (add Z or +08:00)")
        # Before the shift to UTC: 0001-01-01T00:00:00+14:00 (or 9999-12-31…-14:00) would overflow it.
        if not YEAR_RANGE[0] <= ts.year < YEAR_RANGE[1]:
            raise _Reject("ts", f"{raw!r} is not between {YEAR_RANGE[0]} and {YEAR_RANGE[1]}")
    else:
        if not (math.isfinite(raw) and EPOCH_RANGE[0] <= raw < EPOCH_RANGE[1]):
            raise _Reject("ts", f"{raw!r} is not Unix seconds between 2000 and 2100")
        ts = datetime.fromtimestamp(raw, UTC)
    ts = ts.astimezone(UTC)
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
