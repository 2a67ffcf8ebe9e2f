"""A receipt tap: a copy of the ESC/POS stream a till sends its receipt printer, read as the shopper's receipt.

Many tills print over a serial line to an ESC/POS printer and speak no protocol of ours; a tap (a Y cable, or the
printer port's echo) hands the agent the same bytes. `escpos.py` turns them into printed lines and paper cuts; a
profile (`firmware_configs/pos/*.toml`, kind `escpos-receipt`) says, by regular expressions with named groups,
which line opens a receipt and names its transaction, which lines are items (sku, quantity, price), and which carry
the loyalty number, a claim code (for the item before it) and the total. A receipt ends at the paper cut. A receipt
without a transaction line, or whose items do not add up to its total, is refused with the reason (counted), never
half-reported; lines that match nothing (the shop's name, a greeting) are what receipts are full of, and skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .escpos import Cut, EscPosStream
from .protocol import (
    Item,
    LineRejected,
    Receipt,
    SerialLine,
    checked_claim,
    checked_id,
    checked_int,
    checked_loyalty,
    checked_sku,
)

_NEEDS = {
    "transaction": {"txn_id"},
    "item": {"sku"},
    "loyalty": {"loyalty_id"},
    "claim": {"claim_code"},
    "total": {"total"},
}


class Patterns(BaseModel):
    """Regular expressions over a printed line (whole line), each with the named groups it must capture."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    transaction: str = Field(description="opens a receipt: (?P<txn_id>…)")
    item: str = Field(description="an item: (?P<sku>…), and (?P<qty>…), (?P<price>…) (1.20 or 1,20) if printed")
    loyalty: str | None = Field(default=None, description="the loyalty number: (?P<loyalty_id>…)")
    claim: str | None = Field(default=None, description="a claim code for the item before it: (?P<claim_code>…)")
    total: str | None = Field(default=None, description="the receipt's total: (?P<total>…), checked against the items")

    @field_validator("transaction", "item", "loyalty", "claim", "total")
    @classmethod
    def _compiles(cls, pattern: str | None, info: object) -> str | None:
        if pattern is None:
            return None
        name = getattr(info, "field_name", "")
        try:
            groups = set(re.compile(pattern).groupindex)
        except re.error as exc:
            raise ValueError(f"a regular expression ({exc})") from None
        missing = _NEEDS[name] - groups
        if missing:
            raise ValueError(f"a regular expression with the named groups {sorted(missing)}")
        return pattern


class ReceiptTapProfile(BaseModel):
    """A till's receipts as it prints them over ESC/POS; the schema of firmware_configs/pos/*.toml of this kind."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["escpos-receipt"] = "escpos-receipt"
    name: Annotated[str, Field(min_length=1, max_length=64)]
    description: str = ""
    serial: SerialLine = SerialLine()
    codepage: Literal["cp437", "cp850", "cp858", "cp1252", "latin-1"] = Field(
        default="cp437", description="the character table the till prints with (ESC t)"
    )
    patterns: Patterns
    max_items: Annotated[int, Field(ge=1, le=10_000)] = 500


@dataclass
class _Open:
    txn_id: str | None = None
    loyalty_id: str | None = None
    items: list[Item] = field(default_factory=list)
    total_cents: int | None = None


class ReceiptTap:
    """Bytes of the printer stream in, receipts out; refusals raised as LineRejected after the receipt ends."""

    def __init__(self, profile: ReceiptTapProfile):
        self._p = profile
        self._stream = EscPosStream(profile.codepage, profile.serial.max_line_bytes)
        self._re = {
            name: re.compile(pattern) for name, pattern in profile.patterns.model_dump().items() if pattern is not None
        }
        self._open = _Open()
        self.refused: list[LineRejected] = []  # receipts refused since the last `feed`, with why

    def feed(self, data: bytes) -> list[Receipt]:
        out = []
        self.refused = []
        for event in self._stream.feed(data):
            if isinstance(event, Cut):
                receipt, self._open = self._close(self._open), _Open()
                if receipt is not None:
                    out.append(receipt)
            else:
                try:
                    self._line(event.strip())
                except LineRejected as exc:
                    self.refused.append(exc)
        return out

    def _line(self, text: str) -> None:
        if not text:
            return
        if (m := self._re["transaction"].fullmatch(text)) is not None:
            self._open.txn_id = checked_id(m["txn_id"], "txn_id")
        elif (m := self._re["item"].fullmatch(text)) is not None:
            if len(self._open.items) >= self._p.max_items:
                raise LineRejected("too_many_items", f"more than {self._p.max_items} on one receipt")
            groups = m.groupdict()
            qty = checked_int(groups.get("qty") or "1", "qty", 1, 10_000)
            price = _cents(groups["price"]) if groups.get("price") else None
            self._open.items.append(Item(checked_sku(m["sku"]), qty, price, None))
        elif "loyalty" in self._re and (m := self._re["loyalty"].fullmatch(text)) is not None:
            self._open.loyalty_id = checked_loyalty(m["loyalty_id"])
        elif "claim" in self._re and (m := self._re["claim"].fullmatch(text)) is not None:
            if not self._open.items:
                raise LineRejected("claim_without_item", "a claim code before any item")
            last = self._open.items[-1]
            self._open.items[-1] = Item(last.sku, last.qty, last.price_cents, checked_claim(m["claim_code"]))
        elif "total" in self._re and (m := self._re["total"].fullmatch(text)) is not None:
            self._open.total_cents = _cents(m["total"])

    def _close(self, current: _Open) -> Receipt | None:
        if current.txn_id is None and not current.items:
            return None  # a cut with nothing of a receipt before it (a report, a test page)
        try:
            if current.txn_id is None:
                raise LineRejected("no_txn_id", "a receipt with items but no transaction line")
            priced = [i.qty * i.price_cents for i in current.items if i.price_cents is not None]
            if (
                current.total_cents is not None
                and len(priced) == len(current.items)
                and sum(priced) != current.total_cents
            ):
                raise LineRejected(
                    "total_mismatch", f"items add up to {sum(priced)}, the total says {current.total_cents}"
                )
        except LineRejected as exc:
            self.refused.append(exc)
            return None
        return Receipt(current.txn_id, current.loyalty_id, tuple(current.items))


def _cents(text: str) -> int:
    """A printed amount (1.20, 1,20, 1 234.50) in cents."""
    cleaned = text.replace(" ", "").replace(",", ".")
    try:
        amount = Decimal(cleaned)
    except InvalidOperation:
        raise LineRejected("bad_price", f"{text[:20]!r} is not an amount") from None
    if not Decimal(0) <= amount <= Decimal(1_000_000):
        raise LineRejected("bad_price", f"{text[:20]!r} is outside 0..1 000 000")
    return int(amount * 100)
