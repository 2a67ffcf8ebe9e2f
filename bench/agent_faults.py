"""The pieces of a fault run (the agent's process is `bench.agent_process.AgentProcess`): a journal of every event it
records, a state disk that can be made full, and the count of what the cloud lost or holds twice.

The journal is a trigger on the agent's `outbox` table, added before the agent first starts: it copies
each new row's uuid in the same transaction that records the fact, so it holds exactly the events the
agent committed, even after the drain has deleted their outbox rows.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RECORDED_STREAMS = ("events", "ack")  # telemetry goes with QoS 0 and is replaced every interval: not an event
# Facts the agent records at most once, by their own id: held twice by the cloud after dedup by uuid means
# the agent recorded the same fact again under a new uuid (after a restart, say).
FACT_KEYS = {"decision": "decision_id", "impression": "decision_id", "conversion": "decision_id"}

JOURNAL = """
CREATE TABLE IF NOT EXISTS fault_journal (uuid TEXT PRIMARY KEY, stream TEXT NOT NULL, kind TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS fault_journal_add AFTER INSERT ON outbox
BEGIN
    INSERT INTO fault_journal (uuid, stream, kind) VALUES (new.uuid, new.stream, new.kind);
END;
"""


def install_journal(db_path: Path) -> None:
    """Create the agent's database (migrated, as the agent would) and the journal trigger on its outbox."""
    from edge_agent.store import open_store

    store = open_store(db_path)
    try:
        store.db.conn.executescript(JOURNAL)
    finally:
        store.close()


class Journal:
    """Reads the journal from outside the agent, on a connection of its own."""

    def __init__(self, db_path: Path):
        self._db = sqlite3.connect(db_path, timeout=10, isolation_level=None, check_same_thread=False)

    def recorded(self) -> dict[str, str]:
        """uuid → kind of every event the agent has committed so far."""
        marks = ",".join("?" * len(RECORDED_STREAMS))
        rows = self._db.execute(f"SELECT uuid, kind FROM fault_journal WHERE stream IN ({marks})", RECORDED_STREAMS)
        return dict(rows.fetchall())

    def query(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self._db.execute(sql, params).fetchall()

    def close(self) -> None:
        self._db.close()


def tally(recorded: dict[str, str], received: dict[str, dict[str, Any]], raw_duplicates: int) -> dict[str, Any]:
    """What the cloud (`received`: uuid → event, deduplicated) makes of what the agent recorded."""
    lost = [u for u in recorded if u not in received]
    facts = Counter(
        (event["kind"], event.get(FACT_KEYS[event["kind"]]))
        for event in received.values()
        if event.get("kind") in FACT_KEYS
    )
    return {
        "events": len(recorded),
        "events_by_kind": dict(Counter(recorded.values())),
        "events_lost": len(lost),
        "lost_sample": lost[:5],
        "duplicates_after_dedup": sum(n - 1 for n in facts.values() if n > 1),
        "duplicates_before_dedup": raw_duplicates,
    }


class StateDisk:
    """The folder holding the agent's database, on a small tmpfs of its own that can be filled to the last byte:
    `fill()` writes a file until the kernel answers ENOSPC, `free()` deletes it.

    Mounting needs root. Without it `available` is False and the folder is a plain one; the run then says so
    instead of faking a full disk (tests/store/test_storage_full.py covers SQLITE_FULL in-process without root).
    """

    def __init__(self, path: Path, size_mb: int = 64):
        self.path = path
        self.size_mb = size_mb
        self.available = False
        self.why_not = ""
        self._filler = path / "filler.bin"

    def mount(self) -> StateDisk:
        self.path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            self.why_not = "mounting a tmpfs needs root"
            return self
        options = f"size={self.size_mb}m,mode=0700"
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(self.path)], capture_output=True, text=True
        )
        self.available = done.returncode == 0
        self.why_not = "" if self.available else f"mount failed: {done.stderr.strip()}"
        return self

    def fill(self) -> None:
        with self._filler.open("ab", buffering=0) as f:
            for size in (1 << 20, 65536, 4096, 512, 1):  # down to the last byte
                with contextlib.suppress(OSError):
                    while f.write(b"\0" * size) == size:
                        pass

    def free(self) -> None:
        self._filler.unlink(missing_ok=True)

    def unmount(self) -> None:
        if self.available:
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True)
            self.available = False
