"""Modbus TCP polling: field devices that are read on a schedule rather than heard from.

Station RTUs (调压站/门站 RTU), flow computers and many older alarms do not publish telemetry; they
hold their latest measurements in 16-bit *registers* and answer when asked. `./qiwang ingest modbus
--config FILE` asks every device at its interval, turns the registers into the same `Message` an
MQTT device would have sent (topic ``qiwang/{enterprise_code}/{device_type}/{device_code}/telemetry``,
JSON ``{"ts": …, "values": {"pressure_kpa": …}}``) and hands it to the telemetry pipeline, which
checks, stores, quarantines and raises alarms exactly as for MQTT. This module only *decodes*: a
value outside its plausible range is passed on and quarantined by the pipeline, not dropped here.

Config file (YAML; see data/modbus_example.yaml)::

    endpoints:                       # or the list itself at the top level
      - host: 192.168.10.21          # a device, or a Modbus TCP gateway in front of RS-485 devices
        port: 502                    # default 502
        timeout_s: 3                 # connect and answer timeout, seconds (default 3)
        devices:
          - unit_id: 1               # Modbus unit (slave) id, 0-255; 1-247 behind a gateway
            device_type: rtu         # sentry | rtu | alarm | meter
            device_code: RTU0001     # as registered in the device register (telemetry_device)
            enterprise_code: "2103020001"   # 10 digits, quoted (YAML reads 0000000001 as a number)
            interval_s: 60           # seconds between reads
            registers:
              - measure: pressure_kpa  # a name of measures.MEASURES; the unit is in the name
                address: 0             # 0-based protocol address (see below)
                table: holding         # holding (function 3) | input (function 4); default holding
                type: float32          # int16 | uint16 | int32 | uint32 | float32; default uint16
                word_order: big        # 32-bit types: big = high word first; default big
                scale: 1               # value = raw × scale + offset, in `unit`; defaults 1 and 0
                offset: 0
                unit: MPa              # the device's unit, converted to the measure's (kPa here)

Addresses are the 0-based numbers sent on the wire. Vendor register maps often print the 1-based
"Modicon" numbers instead: holding register 40001 is address 0 of table holding, input register
30011 is address 10 of table input. A 32-bit value occupies two consecutive registers starting at
`address`; `word_order: little` is for devices that send the low word first ("CDAB"; the bytes
within each register are always big-endian, as Modbus specifies).

Units: the register's `unit` must be the measure's own unit or one that converts to it exactly:
pressure_kpa accepts kPa, MPa, Pa and bar; temperature_c accepts °C (also ℃, C, degC); the other
measures accept their own unit, also spelled in ASCII (%LEL, V, Nm3/h or m3/h, Nm3 or m3, dBm, %,
ppm). The conversion is applied after scale and offset.

Reads: the registers of one device are read with one request per table where they fit in 125
registers (the Modbus limit), more requests otherwise. A device that cannot be read (no connection,
no answer within timeout_s, a Modbus exception response) yields no message for that poll; the
failure is logged on logger ``qiwang.modbus`` and counted in `ModbusPoller.failures`, and the
other devices are read as usual. The next poll reconnects.
"""
from __future__ import annotations

import json
import logging
import math
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pymodbus.client import ModbusTcpClient
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ConnectionException, ModbusException

from core import config_file
from core.codes import ENTERPRISE_CODE
from telemetry.measures import DEVICE_TYPES, MEASURES
from telemetry.payload import DEVICE_CODE, Message, telemetry_topic

log = logging.getLogger("qiwang.modbus")

DEFAULT_PORT = 502
DEFAULT_TIMEOUT_S = 3.0
MAX_READ = 125          # registers in one read request (Modbus limit for function codes 3 and 4)
TABLES = {"holding": 3, "input": 4}  # table → Modbus function code
_DT = ModbusTcpClient.DATATYPE
DATA_TYPES: dict[str, Any] = {  # config name → pymodbus data type; its width in registers is value[1]
    "int16": _DT.INT16, "uint16": _DT.UINT16, "int32": _DT.INT32, "uint32": _DT.UINT32,
    "float32": _DT.FLOAT32,
}
WORD_ORDERS = ("big", "little")

# Accepted spellings of a unit per measure, with the factor to the measure's own unit. Only exact,
# multiplicative conversions: a unit that needs more (°F, gauge vs absolute) is a config mistake.
UNITS: dict[str, dict[str, Decimal]] = {
    "ch4_lel": {"%LEL": Decimal(1)},
    "pressure_kpa": {"kPa": Decimal(1), "MPa": Decimal(1000), "Pa": Decimal("0.001"), "bar": Decimal(100)},
    "temperature_c": {"°C": Decimal(1), "℃": Decimal(1), "C": Decimal(1), "degC": Decimal(1)},
    "battery_v": {"V": Decimal(1)},
    "flow_m3h": {"Nm³/h": Decimal(1), "Nm3/h": Decimal(1), "m³/h": Decimal(1), "m3/h": Decimal(1)},
    "signal_dbm": {"dBm": Decimal(1)},
    "humidity_pct": {"%": Decimal(1), "%RH": Decimal(1)},
    "co_ppm": {"ppm": Decimal(1)},
    "h2s_ppm": {"ppm": Decimal(1)},
    "volume_m3": {"Nm³": Decimal(1), "Nm3": Decimal(1), "m³": Decimal(1), "m3": Decimal(1)},
}
assert set(UNITS) == set(MEASURES), "every measure needs its accepted units"


# -- configuration -----------------------------------------------------------------------------

@dataclass(frozen=True)
class RegisterMap:
    """Where one measure of a device lives and how to turn its registers into the measure's unit."""

    measure: str            # name in measures.MEASURES
    address: int            # 0-based protocol address of the first register
    table: str              # 'holding' or 'input'
    type: str               # key of DATA_TYPES
    word_order: Literal["big", "little"]
    scale: int | float
    offset: int | float     # in `unit`, added after scale
    unit: str               # the device's unit, as written in the config
    factor: Decimal         # `unit` → the measure's unit

    @property
    def width(self) -> int:
        """Registers occupied (1 for 16-bit types, 2 for 32-bit)."""
        return DATA_TYPES[self.type].value[1]


@dataclass(frozen=True)
class DeviceConfig:
    unit_id: int
    device_type: str
    device_code: str
    enterprise_code: str
    interval_s: float       # seconds between reads
    registers: tuple[RegisterMap, ...]

    @property
    def key(self) -> str:
        """'{enterprise_code}/{device_type}/{device_code}': unique within a config file."""
        return f"{self.enterprise_code}/{self.device_type}/{self.device_code}"

    @property
    def topic(self) -> str:
        return telemetry_topic(self.enterprise_code, self.device_type, self.device_code)


@dataclass(frozen=True)
class EndpointConfig:
    host: str
    port: int
    timeout_s: float        # connect and answer timeout, seconds
    devices: tuple[DeviceConfig, ...]


@dataclass(frozen=True)
class ModbusConfig:
    path: Path
    endpoints: tuple[EndpointConfig, ...]

    @property
    def devices(self) -> tuple[DeviceConfig, ...]:
        return tuple(device for endpoint in self.endpoints for device in endpoint.devices)


# The config file's shape (core.config_file). The codes are checked against the payload's own
# patterns in _device, and what depends on other keys (a unit that suits the measure, a 32-bit
# value's last register, a device or measure listed twice) in _register and load_config.
_SECONDS = {"type": "number", "exclusiveMinimum": 0, "errorMessage": "must be a positive number of seconds"}
_REGISTER = {"type": "object", "additionalProperties": False, "required": ["measure", "address", "unit"],
             "properties": {
    "measure": {"enum": list(MEASURES)},
    "address": {"type": "integer", "minimum": 0, "maximum": 65535,
                "errorMessage": "must be an integer 0-65535 (0-based; holding register 40001 is address 0)"},
    "table": {"enum": list(TABLES)},
    "type": {"enum": list(DATA_TYPES)},
    "word_order": {"enum": list(WORD_ORDERS)},
    "scale": {"type": "number", "not": {"const": 0}, "errorMessage": "must be a non-zero number"},
    "offset": {"type": "number"},
    "unit": {"type": "string"},
}}
_DEVICE = {"type": "object", "additionalProperties": False,
           "required": ["unit_id", "device_type", "device_code", "enterprise_code", "interval_s", "registers"],
           "properties": {
    "unit_id": {"type": "integer", "minimum": 0, "maximum": 255, "errorMessage": "must be an integer 0-255"},
    "device_type": {"enum": list(DEVICE_TYPES)},
    "device_code": {},
    "enterprise_code": {},
    "interval_s": _SECONDS,
    "registers": {"type": "array", "minItems": 1, "items": _REGISTER},
}}
_ENDPOINTS = {"type": "array", "minItems": 1, "errorMessage": "must be a non-empty list of endpoints", "items": {
    "type": "object", "additionalProperties": False, "required": ["host", "devices"], "properties": {
        "host": {"type": "string", "pattern": "\\S", "errorMessage": "must be a host name or IP address"},
        "port": {"type": "integer", "minimum": 1, "maximum": 65535, "errorMessage": "must be an integer 1-65535"},
        "timeout_s": _SECONDS,
        "devices": {"type": "array", "minItems": 1, "items": _DEVICE},
    }}}
#: The file: the list of endpoints, or a mapping with the list under `endpoints`.
CONFIG_SCHEMA = {"oneOf": [_ENDPOINTS, {"type": "object", "additionalProperties": False, "required": ["endpoints"],
                                        "properties": {"endpoints": _ENDPOINTS}}]}


def load_config(path: Path | str) -> ModbusConfig:
    """Read and check a polling config (YAML, CONFIG_SCHEMA).

    Parameters
    ----------
    path
        The config file.

    Raises
    ------
    InvalidInput
        Naming the file, the key path (``endpoints[0].devices[1].registers[2].unit``) and what is wrong.
    """
    path = Path(path)
    document = config_file.read_yaml(path, "the Modbus config")
    # Checked against the form the file has, so that a mistake is worded for that form.
    root: list[str | int] = ["endpoints"] if isinstance(document, dict) else []
    config_file.check(document, CONFIG_SCHEMA["oneOf"][1 if root else 0], path)
    endpoints = tuple(_endpoint(path, [*root, n], raw) for n, raw in enumerate(document["endpoints"] if root
                                                                               else document))
    seen: set[str] = set()
    for number, endpoint in enumerate(endpoints):
        for index, device in enumerate(endpoint.devices):
            if device.key in seen:
                # Two polls of one device would store every reading twice under different timestamps.
                raise config_file.problem(path, [*root, number, "devices", index],
                                          f"{device.device_type} {device.device_code} of enterprise "
                                          f"{device.enterprise_code} is configured twice")
            seen.add(device.key)
    return ModbusConfig(path, endpoints)


def _endpoint(path: Path, where: list[str | int], raw: dict[str, Any]) -> EndpointConfig:
    devices = tuple(_device(path, [*where, "devices", n], d) for n, d in enumerate(raw["devices"]))
    return EndpointConfig(raw["host"].strip(), raw.get("port", DEFAULT_PORT),
                          float(raw.get("timeout_s", DEFAULT_TIMEOUT_S)), devices)


def _device(path: Path, where: list[str | int], raw: dict[str, Any]) -> DeviceConfig:
    code, enterprise = raw["device_code"], raw["enterprise_code"]
    if not isinstance(code, str) or not DEVICE_CODE.fullmatch(code):
        raise config_file.problem(path, [*where, "device_code"],
                                  f"must be 1-64 letters, digits, '_', '.', '-', not {code!r}")
    if not ENTERPRISE_CODE.is_valid(enterprise):
        hint = " in quotes (YAML reads unquoted digits as a number)" if isinstance(enterprise, int) else ""
        raise config_file.problem(path, [*where, "enterprise_code"],
                                  f"must be {ENTERPRISE_CODE.summary} ({ENTERPRISE_CODE.detail}){hint}, "
                                  f"not {enterprise!r}")
    maps = tuple(_register(path, [*where, "registers", n], r) for n, r in enumerate(raw["registers"]))
    measures = [m.measure for m in maps]
    for index, name in enumerate(measures):
        if name in measures[:index]:
            raise config_file.problem(path, [*where, "registers", index, "measure"],
                                      f"{name} is mapped twice; a reading has one value each")
    return DeviceConfig(raw["unit_id"], raw["device_type"], code, enterprise, float(raw["interval_s"]), maps)


def _register(path: Path, where: list[str | int], raw: dict[str, Any]) -> RegisterMap:
    measure, address, unit = raw["measure"], raw["address"], raw["unit"].strip()
    kind = raw.get("type", "uint16")
    width = DATA_TYPES[kind].value[1]
    if address > 65536 - width:
        raise config_file.problem(path, [*where, "address"],
                                  f"must be at most {65536 - width} for {kind} ({width} registers), not {address}")
    accepted = UNITS[measure]
    if unit not in accepted:
        raise config_file.problem(path, [*where, "unit"],
                                  f"{raw['unit']!r} cannot be converted to {MEASURES[measure].unit} for {measure} "
                                  f"(accepted: {', '.join(accepted)})")
    return RegisterMap(measure, address, raw.get("table", "holding"), kind, raw.get("word_order", "big"),
                       raw.get("scale", 1), raw.get("offset", 0), unit, accepted[unit])


# -- decoding ----------------------------------------------------------------------------------

def decode(register: RegisterMap, words: list[int]) -> float:
    """The value in the measure's unit from the register's words (`register.width` of them).

    Decimal arithmetic keeps configured scales exact: raw 3502 × scale 0.1 is 350.2 kPa, not
    350.20000000000005, and a float32 is taken at its shortest decimal (350.2, not 350.2000122…).
    """
    raw = ModbusTcpClient.convert_from_registers(words, DATA_TYPES[register.type], word_order=register.word_order)
    assert isinstance(raw, (int, float))
    if not math.isfinite(raw):
        # NaN/∞ is what some devices send for a failed sensor: pass it on, the pipeline quarantines it.
        return (raw * register.scale + register.offset) * float(register.factor)
    text = _float32_text(raw) if register.type == "float32" else str(raw)
    value = (Decimal(text) * Decimal(repr(register.scale)) + Decimal(repr(register.offset))) * register.factor
    return float(value)


def _float32_text(value: float) -> str:
    """The shortest decimal that is the same single-precision float."""
    for digits in range(6, 10):  # 9 significant digits always round-trip a float32
        text = f"{value:.{digits}g}"
        if struct.pack(">f", float(text)) == struct.pack(">f", value):
            return text
    return repr(value)


@dataclass(frozen=True)
class ReadBlock:
    """One read request: `count` registers of `table` from `start`, covering `registers`."""

    table: str
    start: int
    count: int
    registers: tuple[RegisterMap, ...]


def plan_reads(registers: tuple[RegisterMap, ...]) -> tuple[ReadBlock, ...]:
    """As few requests as the 125-register limit allows, per table, in address order.

    A block also reads the unmapped registers between mapped ones: one request is cheaper than
    several on a slow RS-485 line behind a gateway.
    """
    blocks: list[ReadBlock] = []
    for table in TABLES:
        group: list[RegisterMap] = []
        start = end = 0
        for register in sorted((r for r in registers if r.table == table), key=lambda r: r.address):
            if group and max(end, register.address + register.width) - start > MAX_READ:
                blocks.append(ReadBlock(table, start, end - start, tuple(group)))
                group = []
            if not group:
                start, end = register.address, register.address
            group.append(register)
            end = max(end, register.address + register.width)
        if group:
            blocks.append(ReadBlock(table, start, end - start, tuple(group)))
    return tuple(blocks)


# -- polling -----------------------------------------------------------------------------------

class _ReadFailed(Exception):
    def __init__(self, reason: str, unreachable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unreachable = unreachable  # the endpoint itself: don't try its other devices this poll


def _utc_text(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and 'Z', e.g. 2026-11-23T08:00:00.000Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ModbusPoller:
    """Reads the configured devices at their intervals and submits one `Message` per device read.

    `submit` is the pipeline's entry (it validates and stores); `clock` gives the current time as
    an aware datetime and is used both for the readings' `ts` and for deciding which device is due.
    `failures` counts unsuccessful reads per `DeviceConfig.key` since start.
    """

    def __init__(self, config: ModbusConfig, submit: Callable[[Message], object],
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.config = config
        self.submit = submit
        self.clock = clock
        self.failures: dict[str, int] = {device.key: 0 for device in config.devices}
        # One connection per endpoint, shared by its units (a gateway serves several RS-485 devices).
        # retries=0: a missed reading is taken again at the next interval; retrying at once would
        # hold up the other devices of the endpoint for another timeout.
        self._clients = [ModbusTcpClient(e.host, port=e.port, timeout=e.timeout_s, retries=0)
                         for e in config.endpoints]
        self._plans = {device.key: plan_reads(device.registers) for device in config.devices}
        self._next_due: dict[str, datetime] = {}

    def poll_once(self) -> list[Message]:
        """Read every device that is due (all of them on the first call); submit and return the messages."""
        now = self.clock()
        messages: list[Message] = []
        for endpoint, client in zip(self.config.endpoints, self._clients, strict=True):
            unreachable: str | None = None
            for device in endpoint.devices:
                if not self._due(device, now):
                    continue
                self._schedule(device, now)
                try:
                    if unreachable is not None:
                        raise _ReadFailed(unreachable)
                    words = self._read(endpoint, client, device)
                except _ReadFailed as failed:
                    self.failures[device.key] += 1
                    log.warning("cannot read %s %s (unit %d at %s:%d): %s", device.device_type,
                                device.device_code, device.unit_id, endpoint.host, endpoint.port, failed.reason)
                    if failed.unreachable:
                        unreachable = failed.reason
                    continue
                message = self._message(endpoint, device, words)
                self.submit(message)
                messages.append(message)
        return messages

    def run(self, stop: threading.Event) -> None:
        """Poll until `stop` is set, sleeping until the next device is due; closes the connections."""
        log.info("polling %d Modbus devices on %d endpoints (%s)", len(self.config.devices),
                 len(self.config.endpoints), self.config.path)
        try:
            while not stop.is_set():
                self.poll_once()
                stop.wait(self.seconds_to_next())
        finally:
            self.close()

    def seconds_to_next(self) -> float:
        """Seconds until the next device is due (0 if one is due now)."""
        if not self._next_due:
            return 0.0
        now = self.clock()
        longest = max(device.interval_s for device in self.config.devices)
        return max(0.0, min(longest, min((due - now).total_seconds() for due in self._next_due.values())))

    def close(self) -> None:
        for client in self._clients:
            client.close()

    def _due(self, device: DeviceConfig, now: datetime) -> bool:
        due = self._next_due.get(device.key)
        # More than one interval ahead means the clock was set back: read now rather than wait for it.
        return due is None or due <= now or due - now > timedelta(seconds=device.interval_s)

    def _schedule(self, device: DeviceConfig, now: datetime) -> None:
        interval = timedelta(seconds=device.interval_s)
        following = self._next_due.get(device.key, now) + interval  # keeps the rhythm: no drift by read time
        self._next_due[device.key] = following if following > now else now + interval

    def _read(self, endpoint: EndpointConfig, client: ModbusTcpClient, device: DeviceConfig) -> dict[str, list[int]]:
        """The words of each mapped measure, or _ReadFailed with the reason."""
        for _ in range(2):
            reused = client.connected
            if not reused and not client.connect():
                raise _ReadFailed(f"cannot connect to {endpoint.host}:{endpoint.port}", unreachable=True)
            try:
                return self._read_blocks(client, device)
            except ConnectionException as exc:
                client.close()
                if not reused:
                    raise _ReadFailed(f"connection lost: {exc}") from None
                # Devices and gateways drop connections left idle between polls; the first request
                # on such a connection fails. Try once more on a new one.
            except (ModbusException, OSError) as exc:
                # No answer in time: close, so that a late answer is not taken for the next request's.
                client.close()
                raise _ReadFailed(f"no answer: {exc}") from None
        raise _ReadFailed("connection lost twice")

    def _read_blocks(self, client: ModbusTcpClient, device: DeviceConfig) -> dict[str, list[int]]:
        words: dict[str, list[int]] = {}
        for block in self._plans[device.key]:
            read = client.read_holding_registers if block.table == "holding" else client.read_input_registers
            response = read(block.start, count=block.count, device_id=device.unit_id)
            if response.isError():
                code = getattr(response, "exception_code", None)
                try:
                    name = ExcCodes(code).name.lower().replace("_", " ") if isinstance(code, int) else "unknown code"
                except ValueError:
                    name = "unknown code"
                raise _ReadFailed(f"exception response {code} ({name}) to reading {block.count} {block.table} "
                                  f"registers from address {block.start}")
            registers = list(response.registers)
            if len(registers) < block.count:
                raise _ReadFailed(f"{len(registers)} {block.table} registers in the answer, "
                                  f"{block.count} asked from address {block.start}")
            for register in block.registers:
                at = register.address - block.start
                words[register.measure] = registers[at:at + register.width]
        return words

    def _message(self, endpoint: EndpointConfig, device: DeviceConfig, words: dict[str, list[int]]) -> Message:
        # The time of the read, not of the poll's start: other devices' timeouts may lie in between.
        read_at = self.clock().astimezone(UTC)
        values = {register.measure: decode(register, words[register.measure]) for register in device.registers}
        body = {
            "ts": _utc_text(read_at),
            "values": values,
            # For tracing a strange value back to the device; the pipeline ignores this key.
            "modbus": {"host": endpoint.host, "port": endpoint.port, "unit_id": device.unit_id,
                       "registers": {r.measure: {"table": r.table, "address": r.address,
                                                 "words": words[r.measure]} for r in device.registers}},
        }
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return Message("modbus", device.topic, payload, read_at, None)
