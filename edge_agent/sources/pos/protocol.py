"""A till's line protocol, described by a profile (firmware_configs/pos/*.toml), and the parser that turns
its lines into receipts. Pure: no serial port here, so every rule can be tested on strings.

A receipt is a begin record (transaction id, loyalty id), item records (sku, quantity, price, claim code)
and an end record. Anything else on the line is rejected with a reason and skipped; a receipt cut short by
a new begin record is abandoned (counted), never half-reported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ... import profiles
from ...errors import Refused
from ...profiles import ProfileError as ProfileError  # re-exported: callers catch it from here

Tag = Annotated[str, Field(min_length=1, max_length=16, pattern=r"^[^\s]+$")]
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_SKU = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

BEGIN_FIELDS = {"txn_id", "loyalty_id", "_"}
ITEM_FIELDS = {"sku", "qty", "price_cents", "claim_code", "_"}
END_FIELDS = {"txn_id", "loyalty_id", "_"}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SerialLine(_Model):
    baudrate: Annotated[int, Field(ge=300, le=4_000_000)] = 9600
    bytesize: Literal[5, 6, 7, 8] = 8
    parity: Literal["N", "E", "O", "M", "S"] = "N"
    stopbits: Literal[1, 2] = 1
    encoding: Literal["ascii", "utf-8", "latin-1"] = "ascii"
    max_line_bytes: Annotated[int, Field(ge=16, le=65_536)] = 512


class Record(_Model):
    tag: Tag
    fields: list[str] = Field(min_length=1, max_length=32, description="field names after the tag; '_' skips one")


class Records(_Model):
    separator: Annotated[str, Field(min_length=1, max_length=4)] = "|"
    begin: Record
    item: Record
    end: Record
    max_items: Annotated[int, Field(ge=1, le=10_000)] = 500

    @model_validator(mode="after")
    def _fields(self) -> Records:
        for name, record, allowed, needed in (
            ("begin", self.begin, BEGIN_FIELDS, {"txn_id"}),
            ("item", self.item, ITEM_FIELDS, {"sku"}),
            ("end", self.end, END_FIELDS, set()),
        ):
            unknown = [f for f in record.fields if f not in allowed]
            if unknown:
                raise ValueError(f"records.{name}.fields: unknown {unknown}; allowed: {sorted(allowed)}")
            missing = needed - set(record.fields)
            if missing:
                raise ValueError(f"records.{name}.fields: needs {sorted(missing)}")
            named = [f for f in record.fields if f != "_"]
            if len(set(named)) != len(named):
                raise ValueError(f"records.{name}.fields: a field is named twice")
        if len({self.begin.tag, self.item.tag, self.end.tag}) != 3:
            raise ValueError("records: begin, item and end need different tags")
        return self


class PosProfile(_Model):
    """A till or scanner's line protocol; the schema of firmware_configs/pos/*.toml."""

    kind: Literal["pos"] = "pos"
    name: Annotated[str, Field(min_length=1, max_length=64)]
    description: str = ""
    serial: SerialLine = SerialLine()
    records: Records


def load_profile(path: str | Path) -> PosProfile:
    """Read and validate a profile (a path, or a name in firmware_configs/pos/); errors name file and key."""
    return profiles.load(path, PosProfile, "pos")


class LineRejected(Refused):
    """A line that is not part of a valid receipt; the code is the counter's name."""


@dataclass(frozen=True)
class Item:
    sku: str
    qty: int
    price_cents: int | None
    claim_code: str | None


@dataclass(frozen=True)
class Receipt:
    txn_id: str
    loyalty_id: str | None
    items: tuple[Item, ...]


@dataclass
class _Open:
    txn_id: str
    loyalty_id: str | None
    items: list[Item] = field(default_factory=list)


class ReceiptParser:
    def __init__(self, profile: PosProfile):
        self._p = profile
        self._open: _Open | None = None
        self.abandoned = 0

    def feed(self, raw: bytes) -> Receipt | None:
        """One line (without its line ending) in; a receipt out when its end record arrives."""
        if len(raw) > self._p.serial.max_line_bytes:
            raise LineRejected("too_long", f"{len(raw)} bytes, at most {self._p.serial.max_line_bytes}")
        try:
            text = raw.decode(self._p.serial.encoding).strip()
        except UnicodeDecodeError:
            raise LineRejected("bad_encoding", f"not {self._p.serial.encoding}") from None
        if not text:
            return None
        if any(ord(c) < 32 for c in text):
            raise LineRejected("control_characters", "the line holds control characters")
        r = self._p.records
        tag, *values = text.split(r.separator)
        if tag == r.begin.tag:
            fields = self._fields(r.begin, values, "begin")
            if self._open is not None:
                self.abandoned += 1
            self._open = _Open(checked_id(fields["txn_id"], "txn_id"), checked_loyalty(fields.get("loyalty_id")))
            return None
        if tag == r.item.tag:
            if self._open is None:
                raise LineRejected("item_outside_receipt", "an item record with no begin record before it")
            if len(self._open.items) >= r.max_items:
                raise LineRejected("too_many_items", f"more than {r.max_items} on one receipt")
            self._open.items.append(_item(self._fields(r.item, values, "item")))
            return None
        if tag == r.end.tag:
            fields = self._fields(r.end, values, "end")
            current, self._open = self._open, None
            if current is None:
                raise LineRejected("end_outside_receipt", "an end record with no begin record before it")
            if "txn_id" in fields and fields["txn_id"] != current.txn_id:
                raise LineRejected("txn_mismatch", f"end of {fields['txn_id']!r} closes receipt {current.txn_id!r}")
            loyalty = current.loyalty_id or checked_loyalty(fields.get("loyalty_id"))
            return Receipt(current.txn_id, loyalty, tuple(current.items))
        raise LineRejected("unknown_record", f"tag {tag[:16]!r} is not {r.begin.tag}, {r.item.tag} or {r.end.tag}")

    @staticmethod
    def _fields(record: Record, values: list[str], name: str) -> dict[str, str]:
        if len(values) != len(record.fields):
            raise LineRejected("field_count", f"a {name} record has {len(record.fields)} fields, got {len(values)}")
        return {k: v.strip() for k, v in zip(record.fields, values, strict=True) if k != "_"}


def checked_id(value: str, name: str) -> str:
    if not _ID.match(value):
        raise LineRejected(f"bad_{name}", f"{value[:70]!r} is not 1..64 letters, digits or _.:-")
    return value


def checked_loyalty(value: str | None) -> str | None:
    return checked_id(value, "loyalty_id") if value else None


def _item(fields: dict[str, str]) -> Item:
    qty = checked_int(fields.get("qty") or "1", "qty", 1, 10_000)
    price = checked_int(fields["price_cents"], "price_cents", 0, 100_000_000) if fields.get("price_cents") else None
    claim = fields.get("claim_code") or None
    return Item(checked_sku(fields["sku"]), qty, price, None if claim is None else checked_claim(claim))


def checked_sku(sku: str) -> str:
    if not _SKU.match(sku):
        raise LineRejected("bad_sku", f"{sku[:70]!r} is not 1..64 letters, digits or _.-")
    return sku


def checked_claim(claim: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9-]{4,20}", claim):
        raise LineRejected("bad_claim_code", f"{claim[:20]!r} is not 4..20 letters, digits or dashes")
    return claim


def checked_int(value: str, name: str, lo: int, hi: int) -> int:
    try:
        n = int(value)
    except ValueError:
        raise LineRejected(f"bad_{name}", f"{value[:20]!r} is not a whole number") from None
    if not lo <= n <= hi:
        raise LineRejected(f"bad_{name}", f"{n} is outside {lo}..{hi}")
    return n
