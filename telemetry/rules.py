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

from core import config_file
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


# The rules file's shape (core.config_file); what a schema cannot say is checked in _rule.
_OFFLINE = {"type": ["object", "null"], "additionalProperties": False, "properties": {
    "after_intervals": {"type": "number", "exclusiveMinimum": 0, "errorMessage": "must be a positive number"},
    "check_every_s": {"type": "number", "exclusiveMinimum": 0, "errorMessage": "must be a positive number of seconds"},
}}
_RULE = {"type": "object", "additionalProperties": False,
         "required": ["device_types", "measure", "direction", "levels"], "properties": {
    "device_types": {"type": "array", "minItems": 1, "items": {"enum": list(DEVICE_TYPES)}},
    "pressure_class": {"enum": [0, 1, 2, 3, 4, None], "errorMessage": "must be a dt_pipe_pressure_type code 0-4"},
    "measure": {"enum": list(MEASURES)},
    "direction": {"enum": ["high", "low"]},
    "deadband": {"type": "number", "minimum": 0, "errorMessage": "must be a number ≥ 0"},
    "levels": {"type": "array", "minItems": 1, "items": {
        "type": "array", "prefixItems": [{"enum": list(ALARM_LEVELS)}, {"type": "number"}],
        "minItems": 2, "maxItems": 2, "errorMessage": "must be [level, threshold]"}},
}}
RULES_SCHEMA = {"type": "object", "additionalProperties": False, "required": ["rules"], "properties": {
    "offline": _OFFLINE, "rules": {"type": "array", "items": _RULE}}}


def load_rules(path: Path | None = None) -> Rules:
    """Read and check a rules file (default: data/alarm_rules.yaml).

    Parameters
    ----------
    path
        The rules file (YAML, RULES_SCHEMA).

    Raises
    ------
    InvalidInput
        Naming the file, the key path (``rules[3].levels``) and what is wrong.
    """
    path = path or DEFAULT_RULES
    document = config_file.load(path, RULES_SCHEMA, "the alarm rules")
    rules = tuple(_rule(path, ["rules", number], raw) for number, raw in enumerate(document["rules"]))
    offline = document.get("offline") or {}
    return Rules(rules, float(offline.get("after_intervals", 3)), float(offline.get("check_every_s", 10)))


def _rule(path: Path, where: list[str | int], raw: dict[str, Any]) -> Rule:
    levels = raw["levels"]
    thresholds = [float(t) for _, t in levels]
    ordered = sorted(thresholds) if raw["direction"] == "high" else sorted(thresholds, reverse=True)
    if thresholds != ordered or len(set(thresholds)) != len(thresholds) or len({c for c, _ in levels}) != len(levels):
        raise config_file.problem(path, [*where, "levels"],
                                  "must go from the mildest to the most severe, each level once")
    return Rule(tuple(raw["device_types"]), raw.get("pressure_class"), raw["measure"], raw["direction"],
                float(raw.get("deadband", 0)), tuple((int(code), float(t)) for code, t in levels))
