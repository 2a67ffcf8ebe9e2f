"""The opt-in roster and per-channel consent. Absent means not opted in: the agent fails closed."""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlite_utils import Database

from .faces import MAX_PER_CUSTOMER, FaceEmbeddings, decode_embedding

CustomerRef = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]


class RosterEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    customer_ref: CustomerRef
    consents: dict[str, bool] = Field(default_factory=dict)
    consent_epoch: Annotated[int, Field(ge=0)] = 0
    segments: tuple[str, ...] = ()
    face_embeddings: tuple[str, ...] = Field(
        default=(), max_length=MAX_PER_CUSTOMER, description="base64 float32 128-d, L2-normalised"
    )

    @field_validator("face_embeddings")
    @classmethod
    def _embeddings_decode(cls, embeddings: tuple[str, ...]) -> tuple[str, ...]:
        for i, text in enumerate(embeddings):
            try:
                decode_embedding(text)
            except ValueError as exc:
                raise ValueError(f"face_embeddings[{i}]: expected {exc}") from None
        return embeddings

    def consents_to(self, channel: str) -> bool:
        return self.consents.get(channel, False)


class Roster:
    def __init__(self, db: Database):
        self._db = db
        self.faces = FaceEmbeddings(db)

    def upsert(self, entries: list[RosterEntry], updated_at: str) -> None:
        """Write entries with their full consent sets (a channel left out is no longer consented)."""
        with self._db.atomic():
            for e in entries:
                self._db.execute(
                    "INSERT INTO customers (customer_ref, segments, consent_epoch, updated_at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (customer_ref) DO UPDATE SET segments = excluded.segments,"
                    " consent_epoch = excluded.consent_epoch, updated_at = excluded.updated_at",
                    [e.customer_ref, json.dumps(list(e.segments)), e.consent_epoch, updated_at],
                )
                self._db.execute("DELETE FROM consents WHERE customer_ref = ?", [e.customer_ref])
                self._db.conn.executemany(
                    "INSERT INTO consents (customer_ref, channel, granted, updated_at) VALUES (?, ?, ?, ?)",
                    [(e.customer_ref, ch, int(ok), updated_at) for ch, ok in e.consents.items()],
                )
                # Embeddings are kept only while the customer consents to face recognition.
                kept = list(e.face_embeddings) if e.consents_to("face") else []
                self.faces.replace(e.customer_ref, kept, updated_at)

    def get(self, customer_ref: str) -> RosterEntry | None:
        row = self._db.execute(
            "SELECT segments, consent_epoch FROM customers WHERE customer_ref = ?", [customer_ref]
        ).fetchone()
        if row is None:
            return None
        consents = dict(
            self._db.execute("SELECT channel, granted FROM consents WHERE customer_ref = ?", [customer_ref]).fetchall()
        )
        return RosterEntry(
            customer_ref=customer_ref,
            consents={ch: bool(ok) for ch, ok in consents.items()},
            consent_epoch=row[1],
            segments=tuple(json.loads(row[0])),
        )

    def count(self) -> int:
        return self._db.execute("SELECT count(*) FROM customers").fetchone()[0]
