"""The store's situation as tags an offer can match: time of day and week (in the store's time zone),
weather and local events from the cloud, crowd level from vision, the zone and the shopper's dwell."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from ..events import ContextUpdate, Crowd

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def daypart(hour: int) -> str:
    if 5 <= hour < 11:
        return "morning"
    if 11 <= hour < 14:
        return "midday"
    if 14 <= hour < 17:
        return "afternoon"
    if 17 <= hour < 22:
        return "evening"
    return "night"


class ContextState:
    """The latest context; updated from the bus, read by every decision."""

    def __init__(self, timezone: str, *, quiet_below: int, busy_from: int, crowd_max_age_s: float, long_dwell_s: float):
        self._tz = ZoneInfo(timezone)
        self.retune(
            quiet_below=quiet_below, busy_from=busy_from, crowd_max_age_s=crowd_max_age_s, long_dwell_s=long_dwell_s
        )
        self._weather: frozenset[str] = frozenset()
        self._events: list[tuple[str, datetime | None, datetime | None]] = []
        self._crowd: dict[str, tuple[int, float]] = {}
        self.rejected: Counter[str] = Counter()

    def retune(self, *, quiet_below: int, busy_from: int, crowd_max_age_s: float, long_dwell_s: float) -> None:
        """The crowd and dwell thresholds (at start, or from a fleet desired config)."""
        self._quiet_below = quiet_below
        self._busy_from = busy_from
        self._crowd_max_age_s = crowd_max_age_s
        self._long_dwell_s = long_dwell_s

    def on_context(self, update: ContextUpdate) -> None:
        tags = set()
        condition = update.weather.get("condition")
        if isinstance(condition, str) and condition:
            tags.add(f"weather:{condition.lower()}")
        temp = update.weather.get("temp_c")
        if isinstance(temp, int | float) and not isinstance(temp, bool):
            if temp >= 25:
                tags.add("temp:hot")
            elif temp <= 5:
                tags.add("temp:cold")
        events = []
        for item in update.local_events:
            kind = item.get("kind")
            if not isinstance(kind, str) or not kind:
                self.rejected["local_event_without_kind"] += 1
                continue
            try:
                starts, ends = _when(item.get("starts_at")), _when(item.get("ends_at"))
            except ValueError:
                self.rejected["local_event_bad_time"] += 1
                continue
            events.append((kind.lower(), starts, ends))
        self._weather, self._events = frozenset(tags), events

    def on_crowd(self, crowd: Crowd) -> None:
        self._crowd[crowd.zone] = (crowd.people, crowd.mono)

    def tags(self, zone: str, now: datetime, mono: float, dwell_s: float = 0.0) -> frozenset[str]:
        local = now.astimezone(self._tz)
        tags = {
            f"zone:{zone}",
            f"daypart:{daypart(local.hour)}",
            f"dow:{_DAYS[local.weekday()]}",
            "weekend" if local.weekday() >= 5 else "weekday",
            *self._weather,
        }
        for kind, starts, ends in self._events:
            if (starts is None or starts <= now) and (ends is None or now < ends):
                tags.add(f"event:{kind}")
        crowd = self._crowd.get(zone)
        if crowd is not None and mono - crowd[1] <= self._crowd_max_age_s:
            people = crowd[0]
            level = "quiet" if people < self._quiet_below else "busy" if people >= self._busy_from else "normal"
            tags.add(f"crowd:{level}")
        if dwell_s >= self._long_dwell_s:
            tags.add("dwell:long")
        return frozenset(tags)


def _when(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("not an ISO time")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("no time zone")
    return parsed
