"""Alarm rules: which thresholds apply to a device, and the level a value leads to (with hysteresis).

Levels are dt_devicestatus codes (4 pre-alarm, 5 level-1, 6 level-2, 7 fault). An alarm *episode*
is one excursion of one measure of one device in one direction: it starts when a value crosses the
mildest threshold and ends when the value is back past it by the deadband; escalating or easing
within an episode changes its level, it never opens a second alarm.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from core.errors import QiwangError
from telemetry.measures import DEVICE_TYPES, MEASURES

DEFAULT_RULES = Path(__file__).resolve().parents[1] / "data" / "alarm_rules.yaml"
ALARM_LEVELS = (4, 5, 6, 7)
NORMAL, OFFLINE = 2, 0
# Which status a device shows when several episodes are open: the most dangerous first.
STATUS_PRIORITY = {6: 4, 5: 3, 4: 2, 7: 1, NORMAL: 0}


@dataclass(frozen=True)
class Rule:
    device_types: tuple[str, ...]
    pressure_class: int | None
    measure: str
    direction: str                         # 'high' or 'low'
    deadband: float
    levels: tuple[tuple[int, float], ...]  # (level, threshold), mildest first

    def applies_to(self, device_type: str, pressure_class: int | None) -> bool:
        return device_type in self.device_types and (
            self.pressure_class is None or self.pressure_class == pressure_class)

    def crossed(self, value: float, threshold: float) -> bool:
        return value >= threshold if self.direction == "high" else value <= threshold

    def step(self, level: int | None, value: float) -> int | None:
        """The level after `value`, given the episode's level before it (None: no episode)."""
        raised = -1
        for index, (_, threshold) in enumerate(self.levels):
            if self.crossed(value, threshold):
                raised = index
        held = -1
        if level is not None:
            current = next(i for i, (code, _) in enumerate(self.levels) if code == level)
            margin = self.deadband if self.direction == "high" else -self.deadband
            for index, (_, threshold) in enumerate(self.levels[:current + 1]):
                if self.crossed(value, threshold - margin):
                    held = index
        index = max(raised, held)
        return self.levels[index][0] if index >= 0 else None

    def threshold(self, level: int) -> float:
        return dict(self.levels)[level]


@dataclass(frozen=True)
class Rules:
    rules: tuple[Rule, ...]
    offline_after_intervals: float
    offline_check_every_s: float

    def for_device(self, device_type: str, pressure_class: int | None) -> tuple[Rule, ...]:
        return tuple(rule for rule in self.rules if rule.applies_to(device_type, pressure_class))


def device_status(levels: list[int]) -> int:
    """The dt_devicestatus a device shows given the levels of its open episodes."""
    return max(levels, key=STATUS_PRIORITY.__getitem__, default=NORMAL)


def load_rules(path: Path | None = None) -> Rules:
    """Read and check a rules file; every mistake is reported with the file and the rule's number."""
    path = path or DEFAULT_RULES
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise QiwangError(f"{path}: cannot read the alarm rules: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("rules"), list):
        raise QiwangError(f"{path}: expected a mapping with a 'rules' list")
    rules = tuple(_rule(path, number, raw) for number, raw in enumerate(document["rules"], start=1))
    offline = document.get("offline") or {}
    after, every = offline.get("after_intervals", 3), offline.get("check_every_s", 10)
    if not all(isinstance(v, (int, float)) and v > 0 for v in (after, every)):
        raise QiwangError(f"{path}: offline.after_intervals and offline.check_every_s must be positive numbers")
    return Rules(rules, float(after), float(every))


def _rule(path: Path, number: int, raw: Any) -> Rule:
    where = f"{path}: rule {number}"
    if not isinstance(raw, dict):
        raise QiwangError(f"{where}: expected a mapping")
    unknown = set(raw) - {"device_types", "pressure_class", "measure", "direction", "deadband", "levels"}
    if unknown:
        raise QiwangError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    types = raw.get("device_types")
    if not isinstance(types, list) or not types or not set(types) <= set(DEVICE_TYPES):
        raise QiwangError(f"{where}: device_types must list some of {', '.join(DEVICE_TYPES)}")
    if raw.get("measure") not in MEASURES:
        raise QiwangError(f"{where}: measure must be one of {', '.join(MEASURES)}")
    if raw.get("direction") not in ("high", "low"):
        raise QiwangError(f"{where}: direction must be high or low")
    pressure_class = raw.get("pressure_class")
    if pressure_class is not None and pressure_class not in (0, 1, 2, 3, 4):
        raise QiwangError(f"{where}: pressure_class must be a dt_pipe_pressure_type code 0-4")
    deadband = raw.get("deadband", 0)
    if isinstance(deadband, bool) or not isinstance(deadband, (int, float)) or deadband < 0:
        raise QiwangError(f"{where}: deadband must be a number ≥ 0")
    levels = raw.get("levels")
    if (not isinstance(levels, list) or not levels
            or not all(isinstance(x, list) and len(x) == 2 and x[0] in ALARM_LEVELS
                       and isinstance(x[1], (int, float)) and not isinstance(x[1], bool) for x in levels)):
        raise QiwangError(f"{where}: levels must be [[level, threshold], …] with levels among {ALARM_LEVELS}")
    thresholds = [float(t) for _, t in levels]
    ordered = sorted(thresholds) if raw["direction"] == "high" else sorted(thresholds, reverse=True)
    if thresholds != ordered or len(set(thresholds)) != len(thresholds) or len({c for c, _ in levels}) != len(levels):
        raise QiwangError(f"{where}: levels must go from the mildest to the most severe, each level once")
    return Rule(tuple(types), pressure_class, raw["measure"], raw["direction"], float(deadband),
                tuple((int(code), float(t)) for code, t in levels))
