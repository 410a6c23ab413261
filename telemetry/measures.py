"""What devices measure: the value names of a payload, their units and plausible ranges.

A name carries its unit (`pressure_kpa` is in kPa), so a payload cannot be misread. The first five
have columns of their own in `reading` and on the device; the others go to `reading.extra`.
A value outside its range is physically impossible for the device (a broken sensor or a forged
message): it is quarantined, not stored.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Measure:
    name: str
    unit: str
    minimum: float
    maximum: float
    title_zh: str
    title_en: str
    column: bool  # a column of its own in `reading` (else in `reading.extra`)


MEASURES: dict[str, Measure] = {m.name: m for m in (
    Measure("ch4_lel", "%LEL", 0.0, 100.0, "甲烷浓度", "Methane", True),
    Measure("pressure_kpa", "kPa", -101.325, 10_000.0, "压力", "Pressure", True),
    Measure("temperature_c", "°C", -60.0, 150.0, "温度", "Temperature", True),
    Measure("battery_v", "V", 0.0, 60.0, "电池电压", "Battery", True),
    Measure("flow_m3h", "Nm³/h", 0.0, 1_000_000.0, "流量", "Flow", True),
    Measure("signal_dbm", "dBm", -150.0, 0.0, "信号强度", "Signal", False),
    Measure("humidity_pct", "%", 0.0, 100.0, "湿度", "Humidity", False),
    Measure("co_ppm", "ppm", 0.0, 10_000.0, "一氧化碳浓度", "CO", False),
    Measure("h2s_ppm", "ppm", 0.0, 10_000.0, "硫化氢浓度", "H₂S", False),
    Measure("volume_m3", "Nm³", 0.0, 1e12, "累计用气量", "Volume", False),
)}

COLUMN_MEASURES: tuple[str, ...] = tuple(m.name for m in MEASURES.values() if m.column)

DEVICE_TYPES: tuple[str, ...] = ("sentry", "rtu", "alarm", "meter")
