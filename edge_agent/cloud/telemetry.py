"""Health for the cloud every `telemetry_interval_s`: link, outbox depth and drops, drain and downlink counts.

A snapshot goes through the outbox like everything else (drop class TELEMETRY, the first to go when the
outbox is full) and up with QoS 0. Drop counts are cumulative since the database was created, so a
snapshot lost on the way loses no information.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..clock import Clock
from ..store import Store
from ..store.faults import StorageRefused
from ..store.outbox import DropClass


class Telemetry:
    def __init__(
        self,
        interval_s: float,
        store: Store,
        clock: Clock,
        sources: Mapping[str, Callable[[], Mapping[str, Any]]],
    ):
        self._interval_s = interval_s
        self._store = store
        self._clock = clock
        self._sources = sources
        self._started = time.monotonic()
        self._last: tuple[float, dict[str, int]] | None = None

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            # A full disk: counted and logged by the store; the next snapshot replaces this one anyway.
            with contextlib.suppress(StorageRefused), self._store.faults.writing("telemetry"):
                self.record()

    def snapshot(self) -> dict[str, Any]:
        now = time.monotonic()
        counts = {name: dict(source()) for name, source in self._sources.items()}
        sent = {k: v for k, v in counts.get("drain", {}).items() if k.endswith(":events")}
        rates = {}
        if self._last is not None:
            then, before = self._last
            rates = {
                k.replace(":events", "_per_s"): round((v - before.get(k, 0)) / (now - then), 3) for k, v in sent.items()
            }
        self._last = (now, sent)
        outbox = self._store.outbox
        return {
            "uptime_s": round(now - self._started, 1),
            "outbox": {"depth": outbox.depths(), "max_rows": outbox.max_rows, "dropped": outbox.drops()},
            "rates": rates,
            **counts,
        }

    def record(self) -> str:
        wall = self._clock.wall()
        with self._store.db.atomic():
            return self._store.outbox.add(
                stream="telemetry",
                kind="telemetry",
                payload={"ntp_synced": wall.ntp_synced, **self.snapshot()},
                created_at=wall.iso(),
                drop_class=DropClass.TELEMETRY,
            )
