"""The opt-in roster and per-channel consent. Absent means not opted in: the agent fails closed."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from sqlite_utils import Database

CustomerRef = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]
LoyaltyId = Annotated[str, Field(pattern=r"^[0-9]{6,20}$")]
PhoneHash = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
_DIGITS = re.compile(r"[0-9]{6,15}")


def phone_hash(salt: str, number: str) -> str | None:
    """The roster's form of a phone number: sha256 of the chain's salt, ':' and the digits (E.164, no '+').

    Spaces, dashes, dots, brackets and a leading '+' or '00' are ignored; None if what remains is not
    6..15 digits.
    """
    digits = re.sub(r"[\s().-]", "", number)
    digits = digits.removeprefix("+") if digits.startswith("+") else digits.removeprefix("00")
    if not _DIGITS.fullmatch(digits):
        return None
    return hashlib.sha256(f"{salt}:{digits}".encode()).hexdigest()


class RosterEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    customer_ref: CustomerRef
    consents: dict[str, bool] = Field(default_factory=dict)
    consent_epoch: Annotated[int, Field(ge=0)] = 0
    segments: tuple[str, ...] = ()
    loyalty_id: LoyaltyId | None = None
    phone_hash: PhoneHash | None = None

    def consents_to(self, channel: str) -> bool:
        return self.consents.get(channel, False)


class Roster:
    def __init__(self, db: Database):
        self._db = db

    def upsert(self, entries: list[RosterEntry], updated_at: str) -> None:
        """Write entries with their full consent sets (a channel left out is no longer consented)."""
        with self._db.atomic():
            for e in entries:
                self._db.execute(
                    "INSERT INTO customers (customer_ref, segments, consent_epoch, updated_at, loyalty_id, phone_hash)"
                    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (customer_ref) DO UPDATE SET segments = excluded.segments,"
                    " consent_epoch = excluded.consent_epoch, updated_at = excluded.updated_at,"
                    " loyalty_id = excluded.loyalty_id, phone_hash = excluded.phone_hash",
                    [
                        e.customer_ref,
                        json.dumps(list(e.segments)),
                        e.consent_epoch,
                        updated_at,
                        e.loyalty_id,
                        e.phone_hash,
                    ],
                )
                self._db.execute("DELETE FROM consents WHERE customer_ref = ?", [e.customer_ref])
                self._db.conn.executemany(
                    "INSERT INTO consents (customer_ref, channel, granted, updated_at) VALUES (?, ?, ?, ?)",
                    [(e.customer_ref, ch, int(ok), updated_at) for ch, ok in e.consents.items()],
                )

    def get(self, customer_ref: str) -> RosterEntry | None:
        row = self._db.execute(
            "SELECT segments, consent_epoch, loyalty_id, phone_hash FROM customers WHERE customer_ref = ?",
            [customer_ref],
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
            loyalty_id=row[2],
            phone_hash=row[3],
        )

    def find(self, *, loyalty_id: str | None = None, phone_hash: str | None = None) -> str | None:
        """The customer_ref carrying that loyalty id or phone hash, if any."""
        column, value = ("loyalty_id", loyalty_id) if loyalty_id is not None else ("phone_hash", phone_hash)
        if value is None:
            return None
        row = self._db.execute(f"SELECT customer_ref FROM customers WHERE {column} = ?", [value]).fetchone()
        return row[0] if row else None

    def count(self) -> int:
        return self._db.execute("SELECT count(*) FROM customers").fetchone()[0]
