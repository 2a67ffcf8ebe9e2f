"""The systemd watchdog: READY once serving, then WATCHDOG=1 pings only while nothing has stalled."""

from __future__ import annotations

import asyncio
import logging

from .notify import SystemdNotifier
from .progress import Progress

log = logging.getLogger(__name__)


class Watchdog:
    def __init__(self, notifier: SystemdNotifier, progress: Progress, interval_s: float | None):
        self._notifier = notifier
        self._progress = progress
        self._interval_s = interval_s
        self.pings = 0
        self.withheld = 0

    @property
    def enabled(self) -> bool:
        return self._interval_s is not None and self._notifier.enabled

    async def run(self) -> None:
        assert self._interval_s is not None
        reported: list[str] = []
        while True:
            stalled = self._progress.stalled()
            if stalled:
                self.withheld += 1
                if stalled != reported:
                    log.error("watchdog pings withheld: %s made no progress", ", ".join(stalled))
                    self._notifier.status(f"stalled: {', '.join(stalled)}")
            else:
                if reported:
                    self._notifier.status("running")
                self._notifier.watchdog()
                self.pings += 1
            reported = stalled
            await asyncio.sleep(self._interval_s)
