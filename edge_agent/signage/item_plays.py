"""Proof of play for every playlist item: a screen reports each play of an item when it ends — which item, when it
started and ended by the screen's clock, completed or cut short — and the play is recorded once
(`store/plays.py`), under the item's campaign as this agent's config names it, with the people in front of the
screen while it played where a camera watches it (`audience.py`).

A screen keeps every play it reported until the agent confirms it (`play_recorded`) and sends it again after
any reconnect, so a play survives an agent restart, a full disk or a broker outage; a play recorded twice is
recorded once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, Metric

from .. import json_input
from ..clock import Clock
from ..errors import Refused
from ..store import Store
from ..store.plays import PlayRecord
from . import playlists
from .audience import Audience
from .schedule import Schedule

MAX_PLAY_S = 24 * 3600.0  # a longer play is a screen clock gone wrong


class PlayRefused(Refused):
    """A screen's play report that cannot become a record."""


class ItemPlays:
    def __init__(self, schedule: Schedule, store: Store, audience: Audience, clock: Clock):
        self._schedule = schedule
        self._store = store
        self._clock = clock
        self._audience = audience
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
        play_id = json_input.short_id(message.get("play_id"), "play_id", "bad_play_id", PlayRefused)
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
            people=self._audience.reached(touchpoint, started, ended),
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
