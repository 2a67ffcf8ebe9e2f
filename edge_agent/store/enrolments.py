"""Face enrolments at a kiosk: when each began and how it ended, and its report up in the same transaction.

The camera side (sources/vision/enrolment.py) takes the frames and seals the embeddings to the cloud; here
only what may be kept is written: the enrolment's times and outcome, and the sealed upload in the outbox,
which this host cannot open. Face consent is checked when an enrolment begins and again when it is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlite_utils import Database

from .outbox import DropClass, Outbox

UPLOAD_KIND = "face_enrolment"  # the sealed embeddings
ENDED_KIND = "face_enrolment_ended"  # cancelled or failed, or withdrawn before its upload went: only why


def upload_info(store: str, device: str, customer_ref: str, enrolment_id: str) -> bytes:
    """What an upload's seal and signature are bound to: a copy cannot be moved to another customer or host."""
    return f"SEA-ENROL-1.{store}.{device}.{customer_ref}.{enrolment_id}".encode()


class Outcome(StrEnum):
    SENT = "sent"
    CANCELLED = "cancelled"
    FAILED = "failed"


@dataclass(frozen=True)
class EnrolmentRecord:
    enrolment_id: str
    touchpoint: str
    started_at: str
    ended_at: str | None
    outcome: Outcome | None
    reason: str | None


class FaceEnrolments:
    def __init__(self, db: Database, outbox: Outbox):
        self._db = db
        self._outbox = outbox

    def begin(self, enrolment_id: str, customer_ref: str, *, touchpoint: str, at: str) -> None:
        """Record the start; PermissionError unless the shopper's face consent is recorded."""
        with self._db.atomic():
            self._require_consent(customer_ref)
            self._db.execute(
                "INSERT INTO face_enrolments (enrolment_id, customer_ref, touchpoint, started_at) VALUES (?, ?, ?, ?)",
                [enrolment_id, customer_ref, touchpoint, at],
            )

    def sent(self, enrolment_id: str, customer_ref: str, upload: dict[str, Any], *, at: str) -> None:
        """The sealed upload into the outbox (never dropped) and the enrolment ended as sent, in one transaction;
        PermissionError (and nothing written) if face consent was withdrawn or the enrolment ended meanwhile."""
        with self._db.atomic():
            self._require_consent(customer_ref)
            if not self._end(enrolment_id, Outcome.SENT, None, at):
                raise PermissionError("the enrolment had ended (face consent withdrawn or the customer erased)")
            self._outbox.add(
                stream="events",
                kind=UPLOAD_KIND,
                payload=upload,
                created_at=at,
                drop_class=DropClass.NEVER,
                customer_ref=customer_ref,
            )

    def ended(self, enrolment_id: str, customer_ref: str, outcome: Outcome, reason: str, *, at: str) -> None:
        """Cancelled or failed: no face data at all, only why, for the cloud's count of enrolments."""
        with self._db.atomic():
            if self._end(enrolment_id, outcome, reason, at):  # else erased meanwhile: nothing of theirs again
                self._report_end(enrolment_id, customer_ref, outcome, reason, at)

    def withdrawn(self, customer_ref: str, at: str) -> None:
        """Face consent withdrawn (inside the caller's transaction): an enrolment under way ends, and an upload
        still in the outbox is taken out and never sent; both end as cancelled, and the cloud is told."""
        under_way = self._db.execute(
            "SELECT enrolment_id FROM face_enrolments WHERE customer_ref = ? AND outcome IS NULL", [customer_ref]
        ).fetchall()
        unsent_only = [customer_ref, UPLOAD_KIND, self._outbox.acknowledged("events")]  # what the broker has, went
        unsent = self._db.execute(
            "SELECT json_extract(payload, '$.enrolment_id') FROM outbox WHERE customer_ref = ? AND kind = ?"
            " AND seq > ?",
            unsent_only,
        ).fetchall()
        self._db.execute("DELETE FROM outbox WHERE customer_ref = ? AND kind = ? AND seq > ?", unsent_only)
        for (enrolment_id,) in under_way + unsent:
            self._db.execute(
                "UPDATE face_enrolments SET ended_at = ?, outcome = 'cancelled', reason = 'consent_withdrawn'"
                " WHERE enrolment_id = ?",
                [at, enrolment_id],
            )
            self._report_end(enrolment_id, customer_ref, Outcome.CANCELLED, "consent_withdrawn", at)

    def interrupted(self, at: str) -> int:
        """At start: enrolments under way when the agent stopped end as failed (their frames were in memory)."""
        with self._db.atomic():
            rows = self._db.execute(
                "SELECT enrolment_id, customer_ref FROM face_enrolments WHERE outcome IS NULL"
            ).fetchall()
            for enrolment_id, customer_ref in rows:
                self.ended(enrolment_id, customer_ref, Outcome.FAILED, "agent_restarted", at=at)
        return len(rows)

    def last(self, customer_ref: str) -> EnrolmentRecord | None:
        row = self._db.execute(
            "SELECT enrolment_id, touchpoint, started_at, ended_at, outcome, reason FROM face_enrolments"
            " WHERE customer_ref = ? ORDER BY started_at DESC LIMIT 1",
            [customer_ref],
        ).fetchone()
        if row is None:
            return None
        enrolment_id, touchpoint, started_at, ended_at, outcome, reason = row
        return EnrolmentRecord(
            enrolment_id, touchpoint, started_at, ended_at, Outcome(outcome) if outcome else None, reason
        )

    def _report_end(self, enrolment_id: str, customer_ref: str, outcome: Outcome, reason: str, at: str) -> None:
        self._outbox.add(
            stream="events",
            kind=ENDED_KIND,
            payload={"enrolment_id": enrolment_id, "customer_ref": customer_ref, "outcome": outcome.value}
            | {"reason": reason},
            created_at=at,
            drop_class=DropClass.NEVER,
            customer_ref=customer_ref,
        )

    def _require_consent(self, customer_ref: str) -> None:
        ok = self._db.execute(
            "SELECT 1 FROM consents WHERE customer_ref = ? AND channel = 'face' AND granted = 1", [customer_ref]
        ).fetchone()
        if ok is None:
            raise PermissionError("face enrolment needs the shopper's face consent")

    def _end(self, enrolment_id: str, outcome: Outcome, reason: str | None, at: str) -> bool:
        cur = self._db.execute(
            "UPDATE face_enrolments SET ended_at = ?, outcome = ?, reason = ?"
            " WHERE enrolment_id = ? AND outcome IS NULL",
            [at, outcome.value, reason, enrolment_id],
        )
        return cur.rowcount == 1
