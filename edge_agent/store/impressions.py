"""Proof of play: an impression and its outbox message are written together or not at all."""

from __future__ import annotations

from dataclasses import dataclass

from sqlite_utils import Database

from .outbox import DropClass, Outbox


@dataclass(frozen=True)
class ImpressionRecord:
    impression_id: str
    decision_id: str
    at: str
    ntp_synced: bool
    displayed_at: str
    touchpoint: str
    offer_id: str
    customer_ref: str | None
    arm: str = ""
    people: int | None = None  # people in front of the touchpoint when it was displayed, where a camera watches


class ImpressionLog:
    def __init__(self, db: Database, outbox: Outbox):
        self._db = db
        self._outbox = outbox

    def record(self, imp: ImpressionRecord) -> bool:
        """Store the impression once; False if that decision was already acknowledged (a repeated ack)."""
        with self._db.atomic():
            cur = self._db.execute(
                "INSERT OR IGNORE INTO impressions (impression_id, decision_id, at, ntp_synced, displayed_at,"
                " touchpoint, offer_id, customer_ref, arm, people) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    imp.impression_id,
                    imp.decision_id,
                    imp.at,
                    int(imp.ntp_synced),
                    imp.displayed_at,
                    imp.touchpoint,
                    imp.offer_id,
                    imp.customer_ref,
                    imp.arm,
                    imp.people,
                ],
            )
            if cur.rowcount != 1:
                return False
            self._outbox.add(
                stream="events",
                kind="impression",
                payload={
                    "impression_id": imp.impression_id,
                    "decision_id": imp.decision_id,
                    "ntp_synced": imp.ntp_synced,
                    "displayed_at": imp.displayed_at,
                    "touchpoint": imp.touchpoint,
                    "offer_id": imp.offer_id,
                    "customer_ref": imp.customer_ref,
                    "arm": imp.arm,
                    "people": imp.people,
                },
                created_at=imp.at,
                drop_class=DropClass.EVENT,
                customer_ref=imp.customer_ref,
            )
        return True

    def for_decision(self, decision_id: str) -> str | None:
        row = self._db.execute("SELECT impression_id FROM impressions WHERE decision_id = ?", [decision_id]).fetchone()
        return row[0] if row else None

    def count(self) -> int:
        n: int = self._db.execute("SELECT count(*) FROM impressions").fetchone()[0]
        return n
