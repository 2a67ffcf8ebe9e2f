"""How many people were in front of a touchpoint: where a camera watches it (looks out from it, or counts its
zone), the most people the camera counted while something was on the glass — the "people reached" of an
impression or a play. Anonymous numbers (`Crowd`), never an image or an identity; the last hour is kept."""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta

from ..bus import Bus
from ..config import Settings
from ..events import Crowd

HISTORY = timedelta(hours=1)  # how far back a zone's counts are kept, for what ends late


class Audience:
    def __init__(self, settings: Settings, bus: Bus):
        zones = {tp.id: tp.zone for tp in settings.touchpoints}
        self._zone: dict[str, str] = {}  # watched touchpoint → the zone whose count is its audience
        for cam in settings.vision.cameras:
            for tp, zone in zones.items():
                if cam.touchpoint == tp or (cam.touchpoint is None and cam.zone == zone):
                    self._zone.setdefault(tp, cam.zone)
        self._counts: dict[str, deque[tuple[datetime, int]]] = {z: deque() for z in self._zone.values()}
        bus.on(Crowd, "audience", self._on_crowd)

    def watched(self, touchpoint: str) -> bool:
        return touchpoint in self._zone

    def _on_crowd(self, crowd: Crowd) -> None:
        counts = self._counts.get(crowd.zone)
        if counts is None:
            return
        counts.append((crowd.wall.at, crowd.people))
        while len(counts) > 1 and counts[1][0] < crowd.wall.at - HISTORY:
            counts.popleft()  # the one in force at the window's start stays

    def reached(self, touchpoint: str, start: datetime, end: datetime | None = None) -> int | None:
        """The most people counted in front of the touchpoint from `start` to `end` (at `start` alone without
        one); None where no camera watches it, or it has counted nothing yet."""
        counts = self._counts.get(self._zone.get(touchpoint, ""))
        if not counts:
            return None
        end = end or start
        in_force = [people for at, people in counts if at <= start][-1:]
        during = [people for at, people in counts if start < at <= end]
        seen = in_force + during
        return max(seen) if seen else None
