"""Progress: each vital part of the agent beats as it gets work done, and the watchdog pings systemd only
while no part has work waiting that it has not touched for too long. An idle part is healthy; a part
with a backlog and no beats has stalled, which stops the pings, and systemd restarts the agent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily, Metric


@dataclass
class _Part:
    pending: Callable[[], int] | None  # work waiting; None means the part must beat regardless
    max_silence_s: float
    last_beat: float


class Progress:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._parts: dict[str, _Part] = {}
        self.loop_lag_s = 0.0

    def watch(self, name: str, max_silence_s: float, pending: Callable[[], int] | None = None) -> None:
        self._parts[name] = _Part(pending, max_silence_s, self._clock())

    def retune(self, names: tuple[str, ...], max_silence_s: float) -> None:
        """A new stall limit for these parts (ops.stall_after_s from a fleet desired config)."""
        for name in names:
            part = self._parts.get(name)
            if part is not None:
                part.max_silence_s = max_silence_s

    def beat(self, name: str) -> None:
        part = self._parts.get(name)
        if part is not None:
            part.last_beat = self._clock()

    def stalled(self) -> list[str]:
        now = self._clock()
        return sorted(
            name
            for name, p in self._parts.items()
            if now - p.last_beat > p.max_silence_s and (p.pending is None or p.pending() > 0)
        )

    def silence(self) -> dict[str, float]:
        now = self._clock()
        return {name: round(now - p.last_beat, 3) for name, p in self._parts.items()}

    async def measure_loop(self, period_s: float = 0.25) -> None:
        """The event loop's own beat: a task that sleeps and notes how late it woke (the loop lag)."""
        self.watch("event_loop", max_silence_s=max(5.0, 20 * period_s))
        while True:
            start = self._clock()
            await asyncio.sleep(period_s)
            self.loop_lag_s = max(0.0, self._clock() - start - period_s)
            self.beat("event_loop")

    def metrics(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("edge_loop_lag_seconds", "Event loop lag", value=self.loop_lag_s)
        silence = GaugeMetricFamily(
            "edge_component_silence_seconds", "Seconds since each vital part last made progress", labels=["part"]
        )
        for part, seconds in self.silence().items():
            silence.add_metric([part], seconds)
        yield silence
