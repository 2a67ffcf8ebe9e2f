"""The outbox: everything that must reach the cloud, in order per stream, until the broker has it.

The outbox is bounded (`max_rows`). When it is over the bound the drop policy makes room, oldest first
within a class and the most expendable class first: telemetry, then presence aggregates, then events
(impressions, decisions). Conversions, consent changes and erasure receipts (`DropClass.NEVER`) are never
dropped, even if that means staying over the bound. Every drop is counted per class and kind in
`outbox_drops`, which telemetry reports.

What the broker has acknowledged is not deleted at once: the drain marks it (`acknowledge`, in memory) and
removes it later by seq range (`remove_acknowledged`), when it has nothing to send, so a backlog goes up
without a delete per batch. Acknowledged rows no longer count as waiting and are never read again; if the
agent stops before removing them they are sent again, and the cloud drops them by uuid.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from sqlite_utils import Database

from .faults import StorageFaults

log = logging.getLogger(__name__)


class DropClass(IntEnum):
    """What may go first when the outbox is full; NEVER rows are kept whatever it costs."""

    NEVER = 0  # conversions, consent changes, erasure receipts
    EVENT = 1  # impressions, decisions
    AGGREGATE = 2  # presence aggregates
    TELEMETRY = 3


DROP_ORDER = (DropClass.TELEMETRY, DropClass.AGGREGATE, DropClass.EVENT)
LOW_WATER = 0.95  # the policy makes room down to this share of the bound, so it does not run on every add


@dataclass(frozen=True)
class Batch:
    """Rows of one stream ready to send: `events` is their stored JSON texts joined by commas, in seq order."""

    first: int
    last: int
    count: int
    events: bytes


@dataclass(frozen=True)
class OutboxRow:
    seq: int
    uuid: str
    stream: str
    kind: str
    payload: dict[str, Any]
    created_at: str


class Outbox:
    def __init__(
        self,
        db: Database,
        max_rows: int = 200_000,
        clock_synced: Callable[[], bool] = lambda: False,
        faults: StorageFaults | None = None,
    ):
        self._db = db
        self.faults = faults or StorageFaults()  # the store's, shared: the drain's deletes can fail on a full disk
        self._clock_synced = clock_synced  # stamped on every message: can the cloud trust its time?
        self.max_rows = max_rows
        self._acknowledged: dict[str, int] = {}  # per stream, the last seq the broker has; rows up to it go later
        self._estimate = self._rows()  # rows added since the last count; reaching the bound triggers a count
        self._listeners: list[Callable[[str], None]] = []

    def listen(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call `callback(stream)` after each add (the drain wakes up on it); returns the way to stop."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback)

    def add(
        self,
        *,
        stream: str,
        kind: str,
        payload: dict[str, Any],
        created_at: str,
        drop_class: DropClass,
        customer_ref: str | None = None,
    ) -> str:
        """Queue one message; call inside the transaction that writes the fact it reports."""
        event_uuid = str(uuid.uuid4())
        body = {"uuid": event_uuid, "kind": kind, "at": created_at, "ntp_synced": self._clock_synced(), **payload}
        self._db.execute(
            "INSERT INTO outbox (uuid, stream, kind, drop_class, customer_ref, payload, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [event_uuid, stream, kind, int(drop_class), customer_ref, json.dumps(body), created_at],
        )
        self._estimate += 1
        if self._estimate > self.max_rows:
            self.enforce_bound()
        for callback in self._listeners:
            callback(stream)
        return event_uuid

    def enforce_bound(self) -> int:
        """Apply the drop policy if the outbox is over its bound; returns how many rows were dropped.

        Rows the broker has acknowledged are removed first: they make room without dropping anything."""
        depth = self._rows()
        if depth > self.max_rows:
            for stream in list(self._acknowledged):
                depth -= self.remove_acknowledged(stream)
        excess = depth - int(self.max_rows * LOW_WATER) if depth > self.max_rows else 0
        dropped = 0
        with self._db.atomic():
            for drop_class in DROP_ORDER:
                if excess - dropped <= 0:
                    break
                rows = self._db.execute(
                    "SELECT seq, kind FROM outbox WHERE drop_class = ? ORDER BY seq LIMIT ?",
                    [int(drop_class), excess - dropped],
                ).fetchall()
                self._db.conn.executemany("DELETE FROM outbox WHERE seq = ?", [(r[0],) for r in rows])
                per_kind: dict[str, int] = {}
                for _, kind in rows:
                    per_kind[kind] = per_kind.get(kind, 0) + 1
                self._db.conn.executemany(
                    "INSERT INTO outbox_drops (drop_class, kind, dropped) VALUES (?, ?, ?)"
                    " ON CONFLICT (drop_class, kind) DO UPDATE SET dropped = dropped + excluded.dropped",
                    [(int(drop_class), kind, n) for kind, n in per_kind.items()],
                )
                dropped += len(rows)
        self._estimate = depth - dropped
        if self._estimate > self.max_rows:
            # Only never-drop rows are left over the bound: keep them, and count again after 5 % more adds.
            log.warning("outbox holds %d rows, over its bound of %d, that may never be dropped", depth, self.max_rows)
            self._estimate = self.max_rows - max(1, self.max_rows // 20)
        if dropped:
            log.warning("outbox over its bound of %d rows: dropped %d by the drop policy", self.max_rows, dropped)
        return dropped

    def peek(self, stream: str, limit: int = 100, after: int = 0) -> list[OutboxRow]:
        """The oldest rows of a stream not yet acknowledged (after seq `after`), in the order they were written."""
        rows = self._db.execute(
            "SELECT seq, uuid, stream, kind, payload, created_at FROM outbox WHERE stream = ? AND seq > ?"
            " ORDER BY seq LIMIT ?",
            [stream, max(after, self.acknowledged(stream)), limit],
        ).fetchall()
        return [OutboxRow(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5]) for r in rows]

    def batch(self, stream: str, limit: int, after: int = 0) -> Batch | None:
        """Like `peek`, but as the drain sends it: the stored texts, joined without decoding them."""
        rows = self._db.execute(
            "SELECT seq, CAST(payload AS BLOB) FROM outbox WHERE stream = ? AND seq > ? ORDER BY seq LIMIT ?",
            [stream, max(after, self.acknowledged(stream)), limit],
        ).fetchall()
        if not rows:
            return None
        return Batch(rows[0][0], rows[-1][0], len(rows), b",".join([text for _, text in rows]))

    def acknowledge(self, stream: str, seq: int) -> None:
        """The broker has every row of `stream` up to `seq`: they stop counting as waiting and are not read
        again. Rows added later have higher seqs, so they are never covered."""
        self._acknowledged[stream] = max(seq, self._acknowledged.get(stream, 0))

    def acknowledged(self, stream: str) -> int:
        """The last seq of `stream` the broker has whose rows may still be here; 0 if there is none."""
        return self._acknowledged.get(stream, 0)

    def remove_acknowledged(self, stream: str, limit: int | None = None) -> int:
        """Delete the oldest acknowledged rows of a stream (at most `limit`), by seq range; returns how many."""
        through = self._acknowledged.get(stream)
        if through is None:
            return 0
        if limit is not None:
            # The chunk's last seq: the limit-th acknowledged row, or all of them if there are fewer.
            row = self._db.execute(
                "SELECT seq FROM outbox WHERE stream = ? AND seq <= ? ORDER BY seq LIMIT 1 OFFSET ?",
                [stream, through, limit - 1],
            ).fetchone()
            if row is not None and row[0] < through:
                through = row[0]
        with self._db.atomic():
            cur = self._db.execute("DELETE FROM outbox WHERE stream = ? AND seq <= ?", [stream, through])
        if through == self._acknowledged[stream]:
            del self._acknowledged[stream]  # all gone: nothing left to remove or skip
        self._estimate = max(0, self._estimate - cur.rowcount)
        return cur.rowcount

    def depth(self) -> int:
        """Rows waiting to go up: not yet acknowledged by the broker."""
        return sum(self.depths().values())

    def depths(self) -> dict[str, int]:
        """Rows waiting per stream."""
        where, params = self._waiting()
        return dict(self._db.execute(f"SELECT stream, count(*) FROM outbox WHERE {where} GROUP BY stream", params))

    def oldest(self) -> str | None:
        """When the oldest row still waiting was written (its `created_at`); None if none is."""
        where, params = self._waiting()
        at: str | None = self._db.execute(f"SELECT min(created_at) FROM outbox WHERE {where}", params).fetchone()[0]
        return at

    def _waiting(self) -> tuple[str, list[Any]]:
        """A WHERE clause (and its parameters) for the rows not yet acknowledged."""
        if not self._acknowledged:
            return "1", []
        covered = " OR ".join(["(stream = ? AND seq <= ?)"] * len(self._acknowledged))
        return f"NOT ({covered})", [v for item in self._acknowledged.items() for v in item]

    def _rows(self) -> int:
        n: int = self._db.execute("SELECT count(*) FROM outbox").fetchone()[0]
        return n

    def drops(self) -> dict[str, dict[str, int]]:
        """Everything the drop policy ever dropped: {drop class name: {kind: count}}."""
        out: dict[str, dict[str, int]] = {}
        for drop_class, kind, n in self._db.execute("SELECT drop_class, kind, dropped FROM outbox_drops"):
            out.setdefault(DropClass(drop_class).name.lower(), {})[kind] = n
        return out
