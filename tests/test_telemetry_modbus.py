"""Modbus TCP polling against a real pymodbus server on 127.0.0.1 (no database needed).

The server holds known register values for two units; the poller must decode every data type and
word order exactly, convert units, name the right topic, survive a dead endpoint and a Modbus
exception response, reconnect, and reject config mistakes with the file, entry and field named.
"""
from __future__ import annotations

import asyncio
import json
import logging
import struct
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pymodbus.client import ModbusTcpClient
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from core.errors import InvalidInput
from telemetry.broker import free_port
from telemetry.modbus import ModbusPoller, decode, load_config, plan_reads
from telemetry.payload import Message, Reading, Rejection, parse
from telemetry.registry import Device

ROOT = Path(__file__).resolve().parent.parent
ENTERPRISE = "2103020001"
T0 = datetime(2026, 11, 23, 8, 0, 0, 123000, tzinfo=UTC)
DT = ModbusTcpClient.DATATYPE


def regs(value: int | float, data_type: Any, word_order: str = "big") -> list[int]:
    return ModbusTcpClient.convert_to_registers(value, data_type, word_order=word_order)  # type: ignore[arg-type]


# Unit 1: one register (pair) per data type. Unit 2: small integers in Pa, tenths, …
UNIT1_HOLDING = (
    regs(-125, DT.INT16)                            # 0      temperature_c  -12.5 °C
    + regs(65000, DT.UINT16)                        # 1      co_ppm         65000 (out of range: passed on)
    + regs(-87654, DT.INT32)                        # 2-3    signal_dbm     -87.654 dBm
    + regs(-70000, DT.INT32, "little")              # 4-5    h2s_ppm        -70000 × 0.0001 + 10 = 3.0
    + regs(3_000_000_000, DT.UINT32)                # 6-7    volume_m3      3e9 (above int32)
    + regs(12_345_678, DT.UINT32, "little")         # 8-9    flow_m3h       123456.78
    + regs(0.35, DT.FLOAT32)                        # 10-11  pressure_kpa   0.35 MPa = 350 kPa
)
UNIT1_INPUT = [*regs(3600, DT.UINT16), 0, 0, 0, 0, *regs(655, DT.UINT16)]  # 0 battery_v, 5 humidity_pct
UNIT2_HOLDING = regs(2500, DT.UINT16) + regs(32, DT.UINT16) + regs(215, DT.INT16)  # 100, 101, 102


def sim_device(unit: int, holding: list[int], holding_at: int = 0, inputs: list[int] | None = None) -> SimDevice:
    """A unit with separate holding and input tables (as most RTUs have)."""
    def block(address: int, values: list[int]) -> list[SimData]:
        return [SimData(address, values=values, datatype=DataType.REGISTERS)]
    bits = [SimData(0, values=False, datatype=DataType.BITS)]
    return SimDevice(unit, simdata=(bits, list(bits), block(holding_at, holding), block(0, inputs or [0])))


class ServerThread:
    """pymodbus's own TCP server in a thread with its own event loop."""

    def __init__(self, port: int, devices: list[SimDevice]) -> None:
        self.port, self._devices = port, devices
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.server: ModbusTcpServer | None = None
        self.thread = threading.Thread(target=self._main, name=f"modbus-server-{port}", daemon=True)

    def start(self) -> ServerThread:
        self.thread.start()
        self._ready.wait(10)
        if self._error is not None or self.server is None:
            raise RuntimeError(f"Modbus test server on port {self.port} did not start: {self._error}")
        return self

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve())
            # Requests still being answered (a slow unit) end with the server, quietly.
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        finally:
            self.loop.close()

    async def _serve(self) -> None:
        try:
            server = ModbusTcpServer(self._devices, address=("127.0.0.1", self.port))
            await server.serve_forever(background=True)
        except BaseException as exc:  # noqa: BLE001 - reported by start(), which raises it in the test
            self._error = exc
            self._ready.set()
            return
        self.server = server
        self._ready.set()
        await server.serving

    def set_registers(self, unit: int, table: str, address: int, values: list[int]) -> None:
        assert self.server is not None
        function_code = 16 if table == "holding" else 4  # the datastore picks the table by function code
        asyncio.run_coroutine_threadsafe(
            self.server.async_setValues(unit, function_code, address, values), self.loop).result(5)

    def stop(self) -> None:
        if self.server is not None and self.thread.is_alive():
            asyncio.run_coroutine_threadsafe(self.server.shutdown(), self.loop).result(5)
        self.thread.join(5)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    running = ServerThread(free_port(), [
        sim_device(1, UNIT1_HOLDING, inputs=UNIT1_INPUT),
        sim_device(2, UNIT2_HOLDING, holding_at=100),
    ]).start()
    yield running
    running.stop()


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def reg(measure: str, address: int, unit: str, **more: Any) -> dict[str, Any]:
    return {"measure": measure, "address": address, "unit": unit, **more}


def device(unit_id: int, code: str, registers: list[dict[str, Any]], interval_s: float = 10) -> dict[str, Any]:
    return {"unit_id": unit_id, "device_type": "rtu", "device_code": code, "enterprise_code": ENTERPRISE,
            "interval_s": interval_s, "registers": registers}


RTU_A = device(1, "RTU0001", [
    reg("temperature_c", 0, "°C", type="int16", scale=0.1),
    reg("co_ppm", 1, "ppm"),
    reg("signal_dbm", 2, "dBm", type="int32", scale=0.001),
    reg("h2s_ppm", 4, "ppm", type="int32", word_order="little", scale=0.0001, offset=10),
    reg("volume_m3", 6, "Nm3", type="uint32"),
    reg("flow_m3h", 8, "m3/h", type="uint32", word_order="little", scale=0.01),
    reg("pressure_kpa", 10, "MPa", type="float32"),
    reg("battery_v", 0, "V", table="input", scale=0.001),
    reg("humidity_pct", 5, "%", table="input", type="uint16", scale=0.1),
])
RTU_B = device(2, "RTU0002", [
    reg("pressure_kpa", 100, "Pa"),
    reg("ch4_lel", 101, "%LEL", scale=0.1),
    reg("temperature_c", 102, "degC", type="int16", scale=0.1),
], interval_s=60)
EXPECTED_A = {"temperature_c": -12.5, "co_ppm": 65000.0, "signal_dbm": -87.654, "h2s_ppm": 3.0,
              "volume_m3": 3_000_000_000.0, "flow_m3h": 123456.78, "pressure_kpa": 350.0,
              "battery_v": 3.6, "humidity_pct": 65.5}
EXPECTED_B = {"pressure_kpa": 2.5, "ch4_lel": 3.2, "temperature_c": 21.5}


def write_config(tmp_path: Path, endpoints: list[dict[str, Any]]) -> Path:
    path = tmp_path / "modbus.yaml"
    path.write_text(yaml.safe_dump({"endpoints": endpoints}, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def topic(code: str) -> str:
    return f"qiwang/{ENTERPRISE}/rtu/{code}/telemetry"


def body(message: Message) -> dict[str, Any]:
    return json.loads(message.payload)


def test_decodes_every_type_and_survives_failures(server: ServerThread, tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    dead_port = free_port()  # nothing listens there
    path = write_config(tmp_path, [
        {"host": "127.0.0.1", "port": server.port, "timeout_s": 2, "devices": [
            RTU_A,
            device(1, "RTU0009", [reg("pressure_kpa", 500, "kPa")]),  # unit 1 has no register 500
            RTU_B,
        ]},
        {"host": "127.0.0.1", "port": dead_port, "timeout_s": 2, "devices": [
            device(7, "RTU0007", [reg("pressure_kpa", 0, "kPa")]),
        ]},
    ])
    submitted: list[Message] = []
    clock = Clock(T0)
    poller = ModbusPoller(load_config(path), submitted.append, clock=clock)
    try:
        with caplog.at_level(logging.WARNING, logger="qiwang.modbus"):
            messages = poller.poll_once()

        assert [m.topic for m in messages] == [topic("RTU0001"), topic("RTU0002")]
        assert submitted == messages
        a, b = (body(m) for m in messages)
        assert a["values"] == EXPECTED_A
        assert b["values"] == EXPECTED_B
        for message, payload in zip(messages, (a, b), strict=True):
            assert message.source == "modbus"
            assert message.received_at == T0
            assert payload["ts"] == "2026-11-23T08:00:00.123Z"
            assert datetime.fromisoformat(payload["ts"]) == T0
        # The raw words travel along for tracing, in wire order.
        assert a["modbus"]["registers"]["h2s_ppm"] == {"table": "holding", "address": 4,
                                                       "words": regs(-70000, DT.INT32, "little")}
        assert a["modbus"]["unit_id"] == 1 and a["modbus"]["port"] == server.port

        assert poller.failures == {f"{ENTERPRISE}/rtu/RTU0001": 0, f"{ENTERPRISE}/rtu/RTU0009": 1,
                                   f"{ENTERPRISE}/rtu/RTU0002": 0, f"{ENTERPRISE}/rtu/RTU0007": 1}
        logged = [r.getMessage() for r in caplog.records if r.name == "qiwang.modbus"]
        assert any("RTU0009" in line and "unit 1 at 127.0.0.1" in line and "exception response 2" in line
                   for line in logged), logged
        assert any("RTU0007" in line and f"unit 7 at 127.0.0.1:{dead_port}" in line and "cannot connect" in line
                   for line in logged), logged

        # Nothing is due again at the same instant.
        assert poller.poll_once() == []

        # A register changed on the device shows in the next reading; RTU0002 (60 s) is not due yet.
        server.set_registers(1, "holding", 10, regs(0.4, DT.FLOAT32))
        clock.now = T0 + timedelta(seconds=10)
        messages = poller.poll_once()
        assert [m.topic for m in messages] == [topic("RTU0001")]
        assert body(messages[0])["values"]["pressure_kpa"] == 400.0
        assert body(messages[0])["ts"] == "2026-11-23T08:00:10.123Z"
        assert submitted[-1] is messages[0]
        assert poller.failures[f"{ENTERPRISE}/rtu/RTU0009"] == 2
        assert poller.failures[f"{ENTERPRISE}/rtu/RTU0007"] == 2
    finally:
        server.set_registers(1, "holding", 10, regs(0.35, DT.FLOAT32))
        poller.close()


def test_messages_pass_the_payload_checks(server: ServerThread, tmp_path: Path) -> None:
    """What the poller sends is what the pipeline's parser expects; range checks stay there."""
    path = write_config(tmp_path, [{"host": "127.0.0.1", "port": server.port, "timeout_s": 2,
                                    "devices": [RTU_A, RTU_B]}])
    poller = ModbusPoller(load_config(path), lambda message: None, clock=Clock(T0))
    try:
        a, b = poller.poll_once()
    finally:
        poller.close()

    class Registry:
        def get(self, enterprise_code: str, device_type: str, code: str) -> Device | None:
            return Device(device_type, 1, code, enterprise_code, "210302", 1, 60)

    reading = parse(b, Registry(), T0)  # type: ignore[arg-type]
    assert isinstance(reading, Reading)
    assert reading.ts == T0 and reading.values == EXPECTED_B
    rejected = parse(a, Registry(), T0)  # type: ignore[arg-type]
    assert isinstance(rejected, Rejection) and rejected.field == "values.co_ppm"


def test_reconnects_after_the_device_was_away(tmp_path: Path) -> None:
    port = free_port()
    path = write_config(tmp_path, [{"host": "127.0.0.1", "port": port, "timeout_s": 2,
                                    "devices": [device(3, "RTU0003", [reg("pressure_kpa", 0, "kPa")])]}])
    clock = Clock(T0)
    poller = ModbusPoller(load_config(path), lambda message: None, clock=clock)
    key = f"{ENTERPRISE}/rtu/RTU0003"
    servers: list[ServerThread] = []
    try:
        assert poller.poll_once() == [] and poller.failures[key] == 1  # not up yet

        servers.append(ServerThread(port, [sim_device(3, regs(350, DT.UINT16))]).start())
        clock.now += timedelta(seconds=10)
        assert [body(m)["values"] for m in poller.poll_once()] == [{"pressure_kpa": 350.0}]

        # The device restarts between polls: the connection kept open is dead, a new one is made.
        servers[-1].stop()
        servers.append(ServerThread(port, [sim_device(3, regs(351, DT.UINT16))]).start())
        clock.now += timedelta(seconds=10)
        assert [body(m)["values"] for m in poller.poll_once()] == [{"pressure_kpa": 351.0}]
        assert poller.failures[key] == 1
    finally:
        poller.close()
        for running in servers:
            running.stop()


def test_a_unit_that_does_not_answer_does_not_hold_up_the_others(tmp_path: Path) -> None:
    async def never_in_time(*_: Any) -> None:  # the unit answers long after timeout_s
        await asyncio.sleep(3)

    port = free_port()
    slow = SimDevice(9, simdata=[SimData(0, values=[1], datatype=DataType.REGISTERS)], action=never_in_time)
    running = ServerThread(port, [slow, sim_device(1, regs(350, DT.UINT16))]).start()
    path = write_config(tmp_path, [{"host": "127.0.0.1", "port": port, "timeout_s": 0.3, "devices": [
        device(9, "RTU0009", [reg("pressure_kpa", 0, "kPa")]),
        device(1, "RTU0001", [reg("pressure_kpa", 0, "kPa")]),
    ]}])
    poller = ModbusPoller(load_config(path), lambda message: None, clock=Clock(T0))
    try:
        messages = poller.poll_once()
    finally:
        poller.close()
        running.stop()
    assert [m.topic for m in messages] == [topic("RTU0001")]
    assert body(messages[0])["values"] == {"pressure_kpa": 350.0}
    assert poller.failures == {f"{ENTERPRISE}/rtu/RTU0009": 1, f"{ENTERPRISE}/rtu/RTU0001": 0}


def test_run_polls_until_stopped(server: ServerThread, tmp_path: Path) -> None:
    path = write_config(tmp_path, [{"host": "127.0.0.1", "port": server.port, "timeout_s": 2,
                                    "devices": [RTU_B]}])
    stop = threading.Event()
    received: list[Message] = []

    def submit(message: Message) -> None:
        received.append(message)
        stop.set()

    poller = ModbusPoller(load_config(path), submit)
    runner = threading.Thread(target=poller.run, args=(stop,), daemon=True)
    runner.start()
    runner.join(15)
    assert not runner.is_alive()
    assert [body(m)["values"] for m in received] == [EXPECTED_B]
    assert datetime.fromisoformat(body(received[0])["ts"]).tzinfo is not None


def test_decode_conversions_and_read_plan(tmp_path: Path) -> None:
    path = write_config(tmp_path, [{"host": "plc", "devices": [device(1, "RTU0001", [
        reg("pressure_kpa", 0, "bar", type="float32", word_order="little"),
        reg("temperature_c", 200, "℃", type="int16"),
        reg("battery_v", 124, "V", type="uint32"),
        reg("flow_m3h", 3, "Nm³/h", table="input"),
    ])]}])
    config = load_config(path)
    endpoint = config.endpoints[0]
    assert (endpoint.port, endpoint.timeout_s) == (502, 3.0)
    pressure, temperature, battery, flow = config.devices[0].registers
    assert decode(pressure, regs(3.5, DT.FLOAT32, "little")) == 350.0
    assert decode(temperature, regs(-40, DT.INT16)) == -40.0
    nan = decode(pressure, [0, 0x7FC0])  # NaN (low word first) from a failed sensor is passed on, not dropped
    assert nan != nan
    # 0…125 fits one read (address 124 + 2 registers = 126 > 125, so it starts a second one).
    plan = plan_reads(config.devices[0].registers)
    assert [(b.table, b.start, b.count) for b in plan] == [("holding", 0, 2), ("holding", 124, 77),
                                                           ("input", 3, 1)]
    assert {r.measure for r in plan[1].registers} == {"battery_v", "temperature_c"}
    assert flow.factor == 1 and battery.width == 2


def test_example_config_loads() -> None:
    config = load_config(ROOT / "data" / "modbus_example.yaml")
    assert [d.device_code for d in config.devices] == ["RTU0001", "RTU0002"]
    assert [len(plan_reads(d.registers)) for d in config.devices] == [2, 1]
    assert decode(config.devices[1].registers[0], [5000]) == 300.0  # 5000 counts × 0.06 kPa


MEASURE_NAMES = ("ch4_lel, pressure_kpa, temperature_c, battery_v, flow_m3h, signal_dbm, humidity_pct, co_ppm, "
                 "h2s_ppm, volume_m3")
DEVICE_KEYS = "device_code, device_type, enterprise_code, interval_s, registers, unit_id"
CONFIG_ERRORS = [
    # (change to a valid config, the message after the file name: key path as yq writes it, and reason)
    (lambda c: c[0]["devices"][0]["registers"][0].update(measure="pressure_psi"),
     f"endpoints[0].devices[0].registers[0].measure: must be one of {MEASURE_NAMES}, not 'pressure_psi'"),
    (lambda c: c[0]["devices"][0]["registers"][1].update(type="int64"),
     "endpoints[0].devices[0].registers[1].type: must be one of int16, uint16, int32, uint32, float32, not 'int64'"),
    (lambda c: c[0]["devices"][0]["registers"][0].update(unit="psi"),
     "endpoints[0].devices[0].registers[0].unit: 'psi' cannot be converted to kPa for pressure_kpa "
     "(accepted: kPa, MPa, Pa, bar)"),
    (lambda c: c[0]["devices"][0]["registers"][1].update(unit="K"),
     "endpoints[0].devices[0].registers[1].unit: 'K' cannot be converted to °C for temperature_c "
     "(accepted: °C, ℃, C, degC)"),
    (lambda c: c[0]["devices"][0].update(enterprise_code="210302000"),
     "endpoints[0].devices[0].enterprise_code: must be 10 digits (6-digit division + 4-digit sequence from "
     "0001), not '210302000'"),
    (lambda c: c[0]["devices"][0].update(enterprise_code="2103020000"),
     "endpoints[0].devices[0].enterprise_code: must be 10 digits (6-digit division + 4-digit sequence from "
     "0001), not '2103020000'"),
    (lambda c: c[0]["devices"][0].update(enterprise_code=2103020001),
     "endpoints[0].devices[0].enterprise_code: must be 10 digits (6-digit division + 4-digit sequence from "
     "0001) in quotes (YAML reads unquoted digits as a number), not 2103020001"),
    (lambda c: c[0]["devices"][0].update(device_code="RTU 1"),
     "endpoints[0].devices[0].device_code: must be 1-64 letters, digits, '_', '.', '-', not 'RTU 1'"),
    (lambda c: c[0]["devices"][0]["registers"][0].update(address=65535),
     "endpoints[0].devices[0].registers[0].address: must be at most 65534 for float32 (2 registers), not 65535"),
    (lambda c: c[0]["devices"][0]["registers"][0].update(address=-1),
     "endpoints[0].devices[0].registers[0].address: must be an integer 0-65535 (0-based; holding register 40001 "
     "is address 0), not -1"),
    (lambda c: c[0]["devices"][0]["registers"][0].update(word_order="mixed"),
     "endpoints[0].devices[0].registers[0].word_order: must be one of big, little, not 'mixed'"),
    (lambda c: c[0]["devices"][0]["registers"][0].update(scale=0),
     "endpoints[0].devices[0].registers[0].scale: must be a non-zero number, not 0"),
    (lambda c: c[0]["devices"][0]["registers"][1].update(measure="pressure_kpa", unit="kPa"),
     "endpoints[0].devices[0].registers[1].measure: pressure_kpa is mapped twice; a reading has one value each"),
    (lambda c: c[0]["devices"][0].update(slave=1),
     f"endpoints[0].devices[0]: unknown key slave (allowed: {DEVICE_KEYS})"),
    (lambda c: c[0]["devices"][0].pop("interval_s"), "endpoints[0].devices[0]: missing interval_s"),
    (lambda c: c[0]["devices"][0].update(unit_id=300),
     "endpoints[0].devices[0].unit_id: must be an integer 0-255, not 300"),
    (lambda c: c[0]["devices"][0].update(interval_s=float("inf")),
     "endpoints[0].devices[0].interval_s: must be a positive number of seconds, not inf"),
    (lambda c: c[0]["devices"][0].update(device_type="scada"),
     "endpoints[0].devices[0].device_type: must be one of sentry, rtu, alarm, meter, not 'scada'"),
    (lambda c: c[0].update(port=70000), "endpoints[0].port: must be an integer 1-65535, not 70000"),
    (lambda c: c[0].update(port=502.0), "endpoints[0].port: must be an integer 1-65535, not 502.0"),
    (lambda c: c[0]["devices"].append(c[0]["devices"][0]),
     "endpoints[0].devices[1]: rtu RTU0001 of enterprise 2103020001 is configured twice"),
]


@pytest.mark.parametrize(("change", "expected"), CONFIG_ERRORS)
def test_config_errors_name_file_key_path_and_reason(tmp_path: Path, change: Any, expected: str) -> None:
    endpoints = [{"host": "127.0.0.1", "port": 1502, "devices": [device(1, "RTU0001", [
        reg("pressure_kpa", 0, "kPa", type="float32"), reg("temperature_c", 2, "°C", type="int16")])]}]
    write_config(tmp_path, endpoints)
    load_config(tmp_path / "modbus.yaml")  # valid before the change
    change(endpoints)
    path = write_config(tmp_path, endpoints)
    with pytest.raises(InvalidInput) as raised:
        load_config(path)
    assert str(raised.value) == f"{path}: {expected}"
    assert raised.value.field == str(path)


def test_config_as_a_bare_list_of_endpoints(tmp_path: Path) -> None:
    """The file may be the list itself: key paths then start at the list."""
    path = tmp_path / "bare.yaml"
    endpoints: list[dict[str, Any]] = [
        {"host": "127.0.0.1", "devices": [device(1, "RTU0001", [reg("pressure_kpa", 0, "kPa")])]}]
    path.write_text(yaml.safe_dump(endpoints), encoding="utf-8")
    assert [d.device_code for d in load_config(path).devices] == ["RTU0001"]
    endpoints[0]["timeout_s"] = 0
    path.write_text(yaml.safe_dump(endpoints), encoding="utf-8")
    with pytest.raises(InvalidInput) as raised:
        load_config(path)
    assert str(raised.value) == f"{path}: [0].timeout_s: must be a positive number of seconds, not 0"
    path.write_text("[]", encoding="utf-8")
    with pytest.raises(InvalidInput) as raised:
        load_config(path)
    assert str(raised.value) == f"{path}: must be a non-empty list of endpoints, not []"


def test_unreadable_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(InvalidInput) as raised:
        load_config(missing)
    assert str(raised.value) == f"{missing}: cannot read the Modbus config: No such file or directory"
    broken = tmp_path / "broken.yaml"
    broken.write_text("endpoints: [", encoding="utf-8")
    with pytest.raises(InvalidInput) as raised:
        load_config(broken)
    assert str(raised.value) == (f"{broken}: cannot read the Modbus config: not YAML: expected the node content, "
                                 "but found '<stream end>' at line 1, column 13")


def test_float32_words_are_ieee754() -> None:
    """The server fixture and the poller agree with struct on what a float32 looks like."""
    assert regs(0.35, DT.FLOAT32) == list(struct.unpack(">HH", struct.pack(">f", 0.35)))
