"""Offers claimed at a kiosk: a short code (and its QR) the till accepts once, kept with the customer."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace

from sqlite_utils import Database

from ..errors import Refused
from .outbox import DropClass, Outbox

# No 0/O, 1/I/L: a cashier can type it from a crumpled phone screen.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_CHARS = 8


def new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(CODE_CHARS))
    return f"{raw[:4]}-{raw[4:]}"


def normalise_code(text: str) -> str | None:
    """A code as a cashier or scanner may type it (any case, with or without the dash), or None."""
    raw = text.strip().upper().replace("-", "").replace(" ", "")
    if len(raw) != CODE_CHARS or any(c not in ALPHABET for c in raw):
        return None
    return f"{raw[:4]}-{raw[4:]}"


@dataclass(frozen=True)
class Claim:
    code: str
    customer_ref: str
    offer_id: str
    touchpoint: str
    created_at: str
    expires_at: str
    redeemed_at: str | None
    decision_id: str | None = None
    redeemed_txn: str | None = None


class RedeemRefused(Refused):
    """A claim code the till may not redeem (unknown, expired, already used)."""


_COLUMNS = "code, customer_ref, offer_id, touchpoint, created_at, expires_at, redeemed_at, decision_id, redeemed_txn"


class ClaimLedger:
    def __init__(self, db: Database, outbox: Outbox):
        self._db = db
        self._outbox = outbox

    def claim(
        self,
        customer_ref: str,
        offer_id: str,
        *,
        touchpoint: str,
        at: str,
        expires_at: str,
        decision_id: str | None = None,
    ) -> Claim:
        """The shopper's claim of that offer; claiming the same offer again gives back the same code."""
        with self._db.atomic():
            existing = self._db.execute(
                f"SELECT {_COLUMNS} FROM claims WHERE customer_ref = ? AND offer_id = ?", [customer_ref, offer_id]
            ).fetchone()
            if existing is not None:
                return Claim(*existing)
            claim = Claim(new_code(), customer_ref, offer_id, touchpoint, at, expires_at, None, decision_id)
            self._db.execute(
                f"INSERT INTO claims ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [claim.code, customer_ref, offer_id, touchpoint, at, expires_at, None, decision_id, None],
            )
            self._outbox.add(
                stream="events",
                kind="claim",
                payload={
                    "code": claim.code,
                    "customer_ref": customer_ref,
                    "offer_id": offer_id,
                    "touchpoint": touchpoint,
                    "expires_at": expires_at,
                },
                created_at=at,
                drop_class=DropClass.NEVER,
                customer_ref=customer_ref,
            )
        return claim

    def open_codes(self, customer_ref: str) -> dict[str, str]:
        """offer_id → code of the shopper's claims not yet used at the till."""
        rows = self._db.execute(
            "SELECT offer_id, code FROM claims WHERE customer_ref = ? AND redeemed_at IS NULL", [customer_ref]
        ).fetchall()
        return dict(rows)

    def get(self, code: str) -> Claim | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM claims WHERE code = ?", [code]).fetchone()
        return Claim(*row) if row else None

    def redeem(self, code: str, *, at: str) -> Claim:
        """Mark the claim used at the till, once; refusals say why (unknown, expired, already used)."""
        with self._db.atomic():
            claim = self.get(code)
            if claim is None:
                raise RedeemRefused("unknown", "no claim with that code in this store")
            if claim.redeemed_at is not None:
                raise RedeemRefused("already_redeemed", f"this code was used at {claim.redeemed_at}")
            if claim.expires_at <= at:
                raise RedeemRefused("expired", f"this code expired at {claim.expires_at}")
            self._db.execute("UPDATE claims SET redeemed_at = ? WHERE code = ?", [at, code])
            self._outbox.add(
                stream="events",
                kind="claim_redeemed",
                payload={"code": code, "customer_ref": claim.customer_ref, "offer_id": claim.offer_id},
                created_at=at,
                drop_class=DropClass.NEVER,
                customer_ref=claim.customer_ref,
            )
        return replace(claim, redeemed_at=at)

    def redeem_for_txn(self, code: str, txn_id: str, *, at: str) -> Claim | None:
        """A till receipt line carries the code: the claim is this transaction's, once. None if another
        transaction already used it (a redemption at the till's API without a transaction is the same one)."""
        with self._db.atomic():
            claim = self.get(code)
            if claim is None or claim.redeemed_txn not in (None, txn_id):
                return None
            self._db.execute(
                "UPDATE claims SET redeemed_txn = ?, redeemed_at = coalesce(redeemed_at, ?) WHERE code = ?",
                [txn_id, at, code],
            )
        return replace(claim, redeemed_txn=txn_id, redeemed_at=claim.redeemed_at or at)

    def counts_since(self, since: str) -> dict[str, int]:
        row = self._db.execute(
            "SELECT count(*), coalesce(sum(redeemed_at IS NOT NULL), 0) FROM claims WHERE created_at >= ?", [since]
        ).fetchone()
        redeemed = self._db.execute("SELECT count(*) FROM claims WHERE redeemed_at >= ?", [since]).fetchone()[0]
        return {"claimed": row[0], "redeemed": redeemed}
