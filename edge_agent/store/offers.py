"""Offers cached from the last good bundle, so screens keep showing them with the uplink down."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from sqlite_utils import Database

Text = Annotated[str, Field(max_length=2000)]


class Offer(BaseModel):
    """One offer as a bundle carries it; validated here because bundles come from outside."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    offer_id: Annotated[str, Field(min_length=1, max_length=128)]
    title: Annotated[str, Field(min_length=1, max_length=200)]
    body: Text = ""
    price_cents: Annotated[int, Field(ge=0)] | None = None
    currency: Annotated[str, Field(pattern=r"^([A-Z]{3})?$")] = ""
    image: Annotated[str, Field(max_length=2000)] = ""
    valid_from: AwareDatetime
    valid_to: AwareDatetime
    zones: tuple[str, ...] = ()
    audience: Literal["anyone", "personalised"] = "anyone"
    segments: tuple[str, ...] = ()
    stock: Annotated[int, Field(ge=0)] | None = None
    priority: float = 0.0

    @model_validator(mode="after")
    def _window(self) -> Offer:
        if self.valid_to <= self.valid_from:
            raise ValueError("valid_to must be after valid_from")
        if self.price_cents is not None and not self.currency:
            raise ValueError("an offer with price_cents needs a currency")
        return self

    def display(self) -> dict[str, Any]:
        """What a screen needs to show the offer; the screen escapes every text field itself."""
        return {
            "offer_id": self.offer_id,
            "title": self.title,
            "text": self.body,
            "price_cents": self.price_cents,
            "currency": self.currency,
            "image": self.image,
            "expires_at": self.valid_to.isoformat(),
        }


_COLUMNS = [
    "offer_id",
    "title",
    "body",
    "price_cents",
    "currency",
    "image",
    "valid_from",
    "valid_to",
    "zones",
    "audience",
    "segments",
    "stock",
    "priority",
]


def _row(offer: Offer) -> list[Any]:
    d = offer.model_dump()
    d["valid_from"] = offer.valid_from.isoformat()
    d["valid_to"] = offer.valid_to.isoformat()
    d["zones"] = json.dumps(list(offer.zones))
    d["segments"] = json.dumps(list(offer.segments))
    return [d[c] for c in _COLUMNS]


def _offer(row: tuple[Any, ...]) -> Offer:
    d = dict(zip(_COLUMNS, row, strict=True))
    d["valid_from"] = datetime.fromisoformat(d["valid_from"])
    d["valid_to"] = datetime.fromisoformat(d["valid_to"])
    d["zones"] = tuple(json.loads(d["zones"]))
    d["segments"] = tuple(json.loads(d["segments"]))
    return Offer.model_validate(d)


class OfferCache:
    def __init__(self, db: Database):
        self._db = db

    def replace_all(self, offers: list[Offer]) -> None:
        """Swap the whole catalogue in one transaction: screens see the old set or the new, never a mix."""
        placeholders = ", ".join("?" * len(_COLUMNS))
        with self._db.atomic():
            self._db.execute("DELETE FROM offers")
            self._db.conn.executemany(
                f"INSERT INTO offers ({', '.join(_COLUMNS)}) VALUES ({placeholders})",
                [_row(o) for o in offers],
            )

    def all(self) -> list[Offer]:
        return [_offer(r) for r in self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM offers").fetchall()]

    def get(self, offer_id: str) -> Offer | None:
        row = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM offers WHERE offer_id = ?", [offer_id]).fetchone()
        return _offer(row) if row else None

    def count(self) -> int:
        return self._db.execute("SELECT count(*) FROM offers").fetchone()[0]
