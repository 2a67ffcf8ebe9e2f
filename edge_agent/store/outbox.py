"""The outbox: everything that must reach the cloud, in order per stream, until the broker has it."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from sqlite_utils import Database


class DropClass(IntEnum):
    """What may go first when the outbox is full; NEVER rows are kept whatever it costs."""

    NEVER = 0  # conversions, consent changes, erasure receipts
    EVENT = 1  # impressions, decisions
    AGGREGATE = 2  # presence aggregates
    TELEMETRY = 3


@dataclass(frozen=True)
class OutboxRow:
    seq: int
    uuid: str
    stream: str
    kind: str
    payload: dict[str, Any]
    created_at: str


class Outbox:
    def __init__(self, db: Database):
        self._db = db

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
        body = {"uuid": event_uuid, "kind": kind, "at": created_at, **payload}
        self._db.execute(
            "INSERT INTO outbox (uuid, stream, kind, drop_class, customer_ref, payload, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [event_uuid, stream, kind, int(drop_class), customer_ref, json.dumps(body), created_at],
        )
        return event_uuid

    def peek(self, stream: str, limit: int = 100) -> list[OutboxRow]:
        rows = self._db.execute(
            "SELECT seq, uuid, stream, kind, payload, created_at FROM outbox WHERE stream = ? ORDER BY seq LIMIT ?",
            [stream, limit],
        ).fetchall()
        return [OutboxRow(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5]) for r in rows]

    def remove(self, seqs: list[int]) -> None:
        with self._db.atomic():
            self._db.conn.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in seqs])

    def depth(self) -> int:
        return self._db.execute("SELECT count(*) FROM outbox").fetchone()[0]
