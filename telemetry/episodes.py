"""Alarm episodes: the rules applied to a device's readings in time order (pure Python, no SQL).

`AlarmBook` knows, for every device, the open episodes (one per measure and direction) and the
time of the last reading that drove them. `evaluate` turns new readings into transitions (raised,
escalated, eased, cleared); the store writes them. Readings older than the last evaluated one (a
backlog arriving late) are stored but do not move alarms: they cannot change the present.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from telemetry.payload import Reading
from telemetry.registry import Device
from telemetry.rules import Rule, Rules, device_status

DeviceKey = tuple[str, str, str]                  # enterprise_code, device_type, device code
EpisodeKey = tuple[str, str, str, str, str]       # device key + measure + direction


@dataclass(frozen=True, slots=True)
class Episode:
    alarm_id: int | None   # None until the store has inserted the alarm
    level: int             # current level (dt_devicestatus 4-7)
    peak: float            # most adverse value so far


@dataclass(frozen=True, slots=True)
class Transition:
    action: str            # raised / escalated / eased / cleared
    key: EpisodeKey
    device: Device
    rule: Rule
    level: int             # level after the transition (for 'cleared': the level it left)
    value: float
    peak: float            # most adverse value of the episode so far
    at: datetime


class AlarmBook:
    """Open episodes and last evaluated reading times; `fork()` gives a copy-on-write view that a
    batch changes and `commit()`s only once the database has taken the batch."""

    def __init__(self, rules: Rules, episodes: dict[EpisodeKey, Episode] | None = None,
                 last_ts: dict[DeviceKey, datetime] | None = None) -> None:
        self.rules = rules
        self.episodes = episodes if episodes is not None else {}
        self.last_ts = last_ts if last_ts is not None else {}
        self._rules_cache: dict[tuple[str, int | None], tuple[Rule, ...]] = {}

    def rules_for(self, device: Device) -> tuple[Rule, ...]:
        key = (device.device_type, device.pressure_class)
        if key not in self._rules_cache:
            self._rules_cache[key] = self.rules.for_device(*key)
        return self._rules_cache[key]

    def fork(self) -> BatchView:
        return BatchView(self)


class BatchView:
    """A batch's changes over an AlarmBook; reads fall through to the book."""

    def __init__(self, book: AlarmBook) -> None:
        self.book = book
        self.episodes: dict[EpisodeKey, Episode | None] = {}   # None: closed in this batch
        self.last_ts: dict[DeviceKey, datetime] = {}
        self.alarm_ids: dict[EpisodeKey, int] = {}     # alarms inserted by this batch

    def episode(self, key: EpisodeKey) -> Episode | None:
        if key in self.episodes:
            return self.episodes[key]
        return self.book.episodes.get(key)

    def last(self, device_key: DeviceKey) -> datetime | None:
        return self.last_ts.get(device_key) or self.book.last_ts.get(device_key)

    def set_alarm_id(self, key: EpisodeKey, alarm_id: int) -> None:
        self.alarm_ids[key] = alarm_id

    def alarm_id(self, key: EpisodeKey) -> int:
        """The alarm of an episode open before this batch or raised by it."""
        if key in self.alarm_ids:
            return self.alarm_ids[key]
        alarm_id = self.book.episodes[key].alarm_id
        assert alarm_id is not None, "an episode open before this batch was committed with its alarm"
        return alarm_id

    def status(self, device: Device) -> int:
        """The device's dt_devicestatus from its open episodes after this batch."""
        levels = []
        for measure_rule in self.book.rules_for(device):
            episode = self.episode((*device.key, measure_rule.measure, measure_rule.direction))
            if episode is not None:
                levels.append(episode.level)
        return device_status(levels)

    def evaluate(self, readings: Iterable[Reading]) -> list[Transition]:
        """Transitions caused by `readings` (already stored, any order), oldest first per device."""
        transitions: list[Transition] = []
        for reading in sorted(readings, key=lambda r: r.ts):
            device = reading.device
            last = self.last(device.key)
            if last is not None and reading.ts <= last:
                continue
            self.last_ts[device.key] = reading.ts
            for rule in self.book.rules_for(device):
                value = reading.values.get(rule.measure)
                if value is None:
                    continue
                key = (*device.key, rule.measure, rule.direction)
                episode = self.episode(key)
                level = rule.step(episode.level if episode else None, value)
                if episode is None:
                    if level is None:
                        continue
                    self.episodes[key] = Episode(None, level, value)
                    transitions.append(Transition("raised", key, device, rule, level, value, value, reading.ts))
                    continue
                worse = value > episode.peak if rule.direction == "high" else value < episode.peak
                peak = value if worse else episode.peak
                if level is None:
                    self.episodes[key] = None
                    transitions.append(Transition("cleared", key, device, rule, episode.level, value, peak, reading.ts))
                elif level != episode.level:
                    order = [code for code, _ in rule.levels]
                    action = "escalated" if order.index(level) > order.index(episode.level) else "eased"
                    self.episodes[key] = replace(episode, level=level, peak=peak)
                    transitions.append(Transition(action, key, device, rule, level, value, peak, reading.ts))
                elif worse:
                    self.episodes[key] = replace(episode, peak=peak)
        return transitions

    def commit(self) -> None:
        for key, episode in self.episodes.items():
            if episode is None:
                self.book.episodes.pop(key, None)
            else:
                if episode.alarm_id is None:
                    episode = replace(episode, alarm_id=self.alarm_ids[key])
                self.book.episodes[key] = episode
        self.book.last_ts.update(self.last_ts)
