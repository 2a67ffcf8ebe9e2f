"""The decision log: what was eligible, how it scored, what was chosen; reported up for evaluation."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from sqlite_utils import Database

from .outbox import DropClass, Outbox


@dataclass(frozen=True)
class DecisionRecord:
    decision_id: str
    at: str
    ntp_synced: bool
    touchpoint: str
    zone: str
    customer_ref: str | None
    offer_id: str | None
    eligible: list[str]
    scores: dict[str, float]
    policy: str


class DecisionLog:
    def __init__(self, db: Database, outbox: Outbox):
        self._db = db
        self._outbox = outbox

    def record(self, d: DecisionRecord) -> None:
        with self._db.atomic():
            self._db.execute(
                "INSERT INTO decisions (decision_id, at, ntp_synced, touchpoint, zone, customer_ref, offer_id,"
                " eligible, scores, policy) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    d.decision_id,
                    d.at,
                    int(d.ntp_synced),
                    d.touchpoint,
                    d.zone,
                    d.customer_ref,
                    d.offer_id,
                    json.dumps(d.eligible),
                    json.dumps(d.scores),
                    d.policy,
                ],
            )
            self._outbox.add(
                stream="events",
                kind="decision",
                payload=asdict(d),
                created_at=d.at,
                drop_class=DropClass.EVENT,
                customer_ref=d.customer_ref,
            )

    def get(self, decision_id: str) -> DecisionRecord | None:
        row = self._db.execute(
            "SELECT decision_id, at, ntp_synced, touchpoint, zone, customer_ref, offer_id, eligible, scores, policy"
            " FROM decisions WHERE decision_id = ?",
            [decision_id],
        ).fetchone()
        if row is None:
            return None
        return DecisionRecord(
            row[0],
            row[1],
            bool(row[2]),
            row[3],
            row[4],
            row[5],
            row[6],
            json.loads(row[7]),
            json.loads(row[8]),
            row[9],
        )

    def count(self) -> int:
        return self._db.execute("SELECT count(*) FROM decisions").fetchone()[0]
