"""Proof of play for every playlist item: a screen reports each play of an item when it ends — which item, when it
started and ended by the screen's clock, completed or cut short — and the play is recorded once
(`store/plays.py`), under the item's campaign as this agent's config names it, with the people in front of the
screen while it played where a camera counts its zone (an anonymous number, `Crowd`).

A screen keeps every play it reported until the agent confirms it (`play_recorded`) and sends it again after
any reconnect, so a play survives an agent restart, a full disk or a broker outage; a play recorded twice is
recorded once.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from prometheus_client.core import CounterMetricFamily, Metric

from .. import json_input
from ..bus import Bus
from ..clock import Clock
from ..errors import Refused
from ..events import Crowd
from ..store import Store
from ..store.plays import PlayRecord
from . import playlists
from .schedule import Schedule

MAX_PLAY_S = 24 * 3600.0  # a longer play is a screen clock gone wrong
HISTORY = timedelta(hours=1)  # how far back a zone's counts are kept, for plays that end late


class PlayRefused(Refused):
    """A screen's play report that cannot become a record."""


class Audience:
    """How many people each watched zone's camera counts, over the last hour: the people a play reached."""

    def __init__(self, bus: Bus, watched: set[str]):
        self._watched = watched
        self._counts: dict[str, deque[tuple[datetime, int]]] = {zone: deque() for zone in watched}
        bus.on(Crowd, "plays", self._on_crowd)

    def _on_crowd(self, crowd: Crowd) -> None:
        counts = self._counts.get(crowd.zone)
        if counts is None:
            return
        counts.append((crowd.wall.at, crowd.people))
        while len(counts) > 1 and counts[1][0] < crowd.wall.at - HISTORY:
            counts.popleft()  # the one in force at the window's start stays

    def reached(self, zone: str, start: datetime, end: datetime) -> int | None:
        """The most people counted in the zone while the play ran (None where no camera counts it yet)."""
        counts = self._counts.get(zone)
        if not counts:
            return None
        in_force = [people for at, people in counts if at <= start][-1:]
        during = [people for at, people in counts if start < at <= end]
        seen = in_force + during
        return max(seen) if seen else None


class ItemPlays:
    def __init__(self, schedule: Schedule, store: Store, bus: Bus, clock: Clock):
        settings = schedule.settings
        self._schedule = schedule
        self._store = store
        self._clock = clock
        self._zone = {tp.id: tp.zone for tp in settings.touchpoints}
        self.audience = Audience(bus, {cam.zone for cam in settings.vision.cameras})
        self.recorded = 0
        self.duplicates = 0
        self.rejected: Counter[str] = Counter()

    def played(self, touchpoint: str, message: dict[str, Any]) -> bool:
        """Record the play; True if new, False if it was recorded before.

        Raises PlayRefused for a bad report, StorageRefused when the disk is full (the screen sends it again)."""
        try:
            with self._store.faults.writing("plays", "the play"):
                return self._played(touchpoint, message)
        except PlayRefused as exc:
            self.rejected[exc.code] += 1
            raise

    def _played(self, touchpoint: str, message: dict[str, Any]) -> bool:
        play_id = message.get("play_id")
        if not isinstance(play_id, str) or not 0 < len(play_id) <= 64:
            raise PlayRefused("bad_play_id", "play_id must be a string of 1..64 characters")
        item = message.get("item")
        settings = self._schedule.settings
        campaigns = playlists.campaigns(settings.surfaces.playlists, settings.signage, touchpoint)
        if not isinstance(item, str) or item not in campaigns:
            raise PlayRefused("unknown_item", f"item {str(item)[:64]!r} is in no playlist of this screen")
        started = json_input.aware_time(message.get("started_at"), "started_at", "bad_times", PlayRefused)
        ended = json_input.aware_time(message.get("ended_at"), "ended_at", "bad_times", PlayRefused)
        seconds = (ended - started).total_seconds()
        if not 0 <= seconds <= MAX_PLAY_S:
            raise PlayRefused("bad_times", f"ended_at must be after started_at, within a day (got {seconds:.0f} s)")
        completed = message.get("completed")
        if not isinstance(completed, bool):
            raise PlayRefused("bad_completed", "completed must be true or false")
        wall = self._clock.wall()
        record = PlayRecord(
            play_id=play_id,
            touchpoint=touchpoint,
            item_id=item,
            campaign=campaigns[item],
            started_at=started.isoformat(timespec="milliseconds"),
            ended_at=ended.isoformat(timespec="milliseconds"),
            duration_s=round(seconds, 3),
            completed=completed,
            ntp_synced=wall.ntp_synced,
            people=self.audience.reached(self._zone[touchpoint], started, ended),
            recorded_at=wall.iso(),
        )
        if not self._store.plays.record(record):
            self.duplicates += 1
            return False
        self.recorded += 1
        return True

    def metrics(self) -> Iterator[Metric]:
        yield CounterMetricFamily("edge_item_plays", "Playlist item plays recorded", value=self.recorded)
        refused = CounterMetricFamily("edge_plays_refused", "Play reports refused", labels=["reason"])
        for reason, n in self.rejected.items():
            refused.add_metric([reason], n)
        yield refused
