"""WAL checkpoints off the event loop.

SQLite's automatic checkpoint runs inside whichever commit crosses the threshold, copying pages and syncing
the file on the loop's connection: a decision that happens to trigger it waits tens of milliseconds. The
agent instead checkpoints from its own connection in a worker thread every `interval_s` (PASSIVE: it never
blocks the writer). The writer's automatic checkpoint stays on at a high threshold as a backstop, for
tools that open the database without the agent.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from .faults import StorageFaults, is_storage_error

BACKSTOP_PAGES = 10_000  # ~40 MB of WAL before the writer checkpoints by itself


class WalCheckpointer:
    def __init__(self, path: Path, interval_s: float = 1.0, faults: StorageFaults | None = None):
        self._path = path
        self._interval_s = interval_s
        self._faults = faults or StorageFaults()
        self.runs = 0

    def checkpoint(self) -> tuple[int, int, int]:
        """(busy, WAL frames, frames checkpointed), from a short-lived connection of this thread."""
        conn = sqlite3.connect(self._path, timeout=5.0)
        try:
            row: tuple[int, int, int] = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            conn.close()
        self.runs += 1
        return row

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await asyncio.to_thread(self.checkpoint)
            except sqlite3.OperationalError as exc:
                if not is_storage_error(exc):
                    raise
                # The copy into a database file that must grow failed: the WAL keeps the pages; next time.
                # (A checkpoint that succeeds may have written nothing, so it does not end the episode.)
                self._faults.failed("store.checkpoint", exc)
