"""The naive rule a deployment must beat: each subject in the zone of the receiver whose mean level over the last
`window_s` seconds is the strongest, at every whole second; in no zone when no receiver heard it in the window."""

from __future__ import annotations

import math
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping

from .recording import Reading
from .scoring import Visit


def visits(readings: Iterable[Reading], zone_of: Mapping[str, str], window_s: float) -> list[Visit]:
    """The visits the naive rule detects, closed at the last reading's time."""
    recent: dict[str, deque[Reading]] = defaultdict(deque)  # subject → its readings of the window
    current: dict[str, tuple[str, float]] = {}  # subject → (zone, since)
    out: list[Visit] = []
    second = None
    last_t = 0.0

    def decide(at: float) -> None:
        for subject, window in recent.items():
            while window and window[0].t_s <= at - window_s:
                window.popleft()
            zone = _strongest(window, zone_of)
            held = current.get(subject)
            if held is not None and held[0] != zone:
                out.append(Visit(subject, held[0], held[1], at))
                del current[subject]
            if zone is not None and subject not in current:
                current[subject] = (zone, at)

    for reading in readings:
        if second is None:
            second = math.ceil(reading.t_s)
        while reading.t_s > second:  # every reading up to a second counts at that second
            decide(second)
            second += 1
        recent[reading.subject].append(reading)
        last_t = reading.t_s
    if second is not None:
        decide(second)
    for subject, (zone, since) in current.items():
        out.append(Visit(subject, zone, since, max(since, last_t)))
    return out


def _strongest(window: Iterable[Reading], zone_of: Mapping[str, str]) -> str | None:
    levels: dict[str, list[float]] = defaultdict(list)
    for r in window:
        levels[r.receiver].append(r.rssi_dbm)
    if not levels:
        return None
    best = max(levels, key=lambda rx: sum(levels[rx]) / len(levels[rx]))
    return zone_of.get(best)
