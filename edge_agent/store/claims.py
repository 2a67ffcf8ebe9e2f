"""Claim codes: a customer claims an offer (at the kiosk); the till prints the code on the receipt line,
which then counts as a conversion of that offer for certain, whatever the attribution window."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlite_utils import Database

_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud and typed at a till


@dataclass(frozen=True)
class Claim:
    code: str
    customer_ref: str
    offer_id: str
    decision_id: str | None
    issued_at: str
    redeemed_txn: str | None


class Claims:
    def __init__(self, db: Database):
        self._db = db

    def issue(self, customer_ref: str, offer_id: str, decision_id: str | None, issued_at: str) -> str:
        code = "".join(secrets.choice(_ALPHABET) for _ in range(8))
        self._db.execute(
            "INSERT INTO claims (code, customer_ref, offer_id, decision_id, issued_at) VALUES (?, ?, ?, ?, ?)",
            [code, customer_ref, offer_id, decision_id, issued_at],
        )
        return code

    def get(self, code: str) -> Claim | None:
        row = self._db.execute(
            "SELECT code, customer_ref, offer_id, decision_id, issued_at, redeemed_txn FROM claims WHERE code = ?",
            [code.strip().upper()],
        ).fetchone()
        return Claim(*row) if row else None

    def redeem(self, code: str, txn_id: str) -> bool:
        """Mark the claim used by this transaction; False if it was already used (by another one)."""
        cur = self._db.execute(
            "UPDATE claims SET redeemed_txn = ? WHERE code = ? AND redeemed_txn IS NULL", [txn_id, code.upper()]
        )
        return cur.rowcount == 1
