"""Offers cached from the last good bundle, so screens keep showing them with the uplink down.

Besides what a screen displays, an offer carries the marketer's rules for it: targeting, frequency caps,
a cool-down after a conversion, the product it sells (for replenishment and attribution), bounded dynamic
pricing and an optional experiment. The core fields have their own columns; the rules are kept as one
validated JSON document, so a new rule never needs a schema change.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from sqlite_utils import Database

Text = Annotated[str, Field(max_length=2000)]
Language = Annotated[str, Field(pattern=r"^[a-z]{2,3}(-[A-Z]{2})?$")]  # BCP 47: a language, perhaps its region
Name = Annotated[str, Field(min_length=1, max_length=128)]
Percent = Annotated[float, Field(ge=0, le=100)]
LONGEST_WINDOW_S = 31 * 86_400  # caps and cool-downs look back at most a month; the engine remembers that long
WindowSeconds = Annotated[float, Field(gt=0, le=LONGEST_WINDOW_S)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Cap(Model):
    """At most `max` decisions in a rolling window of `window_s`, counted per customer and offer, per
    customer (any offer), or per screen and offer. Every cap that applies must hold: the strictest wins."""

    scope: Literal["customer_offer", "customer", "screen"]
    max: Annotated[int, Field(ge=1, le=1_000_000)]
    window_s: WindowSeconds


class Experiment(Model):
    """A per-offer experiment, assigned like GrowthBook does (FNV-1a hashing of seed and customer_ref).

    The first variation is the control: its customers are not shown the offer, so its conversions say what
    would have happened anyway.
    """

    key: Name
    seed: str = Field(default="", max_length=128, description="hashing seed; the key if empty")
    hash_version: Literal[1, 2] = Field(default=1, description="GrowthBook's hashVersion; 1 unless set, as its SDKs")
    variations: tuple[Name, ...] = Field(default=("control", "treatment"), min_length=2, max_length=16)
    weights: tuple[Annotated[float, Field(ge=0, le=1)], ...] | None = None
    coverage: Annotated[float, Field(ge=0, le=1)] = 1.0

    @model_validator(mode="after")
    def _shape(self) -> Experiment:
        if len(set(self.variations)) != len(self.variations):
            raise ValueError("experiment variations must have distinct names")
        if self.weights is not None:
            if len(self.weights) != len(self.variations):
                raise ValueError("experiment weights need one weight per variation")
            if not 0.99 <= sum(self.weights) <= 1.01:
                raise ValueError("experiment weights must sum to 1")
        return self


class ExpiryMarkdown(Model):
    """Deeper discount as the product nears its best-before (`Offer.expires_at`)."""

    kind: Literal["expiry"]
    within_h: Annotated[float, Field(gt=0, le=24 * 60)]
    percent_off: Percent


class AgeMarkdown(Model):
    """Discount once the stock has been on the shelf this long (`Offer.stocked_at`)."""

    kind: Literal["age"]
    after_days: Annotated[float, Field(ge=0, le=3650)]
    percent_off: Percent


class Overstock(Model):
    """Discount a slow line while more than `stock_above` units are in stock."""

    kind: Literal["overstock"]
    stock_above: Annotated[int, Field(ge=0)]
    percent_off: Percent


class EndsToday(Model):
    """An "ends today" label on the offer's last day, in the store's time zone."""

    kind: Literal["ends_today"]


PricingRule = Annotated[ExpiryMarkdown | AgeMarkdown | Overstock | EndsToday, Field(discriminator="kind")]


class OfferText(Model):
    """An offer's words in one language."""

    title: Annotated[str, Field(min_length=1, max_length=200)]
    body: Text = ""


def pick_language(available: Iterable[str], wanted: Iterable[str | None]) -> str | None:
    """The first of `wanted` (the shopper's, then the store's) that `available` has, exactly or by its language
    alone (`pt-BR` reads `pt`); None when none is."""
    have = set(available)
    for language in wanted:
        if language is None:
            continue
        for candidate in (language, language.split("-")[0]):
            if candidate in have:
                return candidate
    return None


class Offer(Model):
    """One offer as a bundle carries it; validated here because bundles come from outside."""

    offer_id: Name
    title: Annotated[str, Field(min_length=1, max_length=200)]
    body: Text = ""
    price_cents: Annotated[int, Field(ge=0)] | None = None
    currency: Annotated[str, Field(pattern=r"^([A-Z]{3})?$")] = ""
    translations: dict[Language, OfferText] = Field(
        default_factory=dict, max_length=32, description="title and body per language; title and body are the default"
    )
    image: Annotated[str, Field(max_length=2000)] = ""
    video: Annotated[str, Field(max_length=2000)] = Field(default="", description="an MP4 or WebM the bundle names")
    valid_from: AwareDatetime
    valid_to: AwareDatetime
    zones: tuple[str, ...] = ()
    audience: Literal["anyone", "personalised"] = "anyone"
    segments: tuple[str, ...] = ()
    stock: Annotated[int, Field(ge=0)] | None = None
    priority: float = 0.0
    # The rules (kept in the `rules` column):
    touchpoints: tuple[str, ...] = Field(default=(), description="touchpoint ids or kinds; empty means all")
    sku: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    category: Annotated[str, Field(max_length=64)] = ""
    context_tags: tuple[str, ...] = Field(default=(), description="context it suits, e.g. weather:rain")
    caps: tuple[Cap, ...] = Field(default=(), max_length=16)
    cooldown_s: Annotated[float, Field(ge=0, le=LONGEST_WINDOW_S)] = 0.0
    replenish_days: Annotated[float, Field(gt=0, le=366)] | None = None
    attribution_window_h: Annotated[float, Field(gt=0, le=24 * 90)] = 72.0
    experiment: Experiment | None = None
    pricing: tuple[PricingRule, ...] = Field(default=(), max_length=16)
    floor_price_cents: Annotated[int, Field(ge=0)] | None = None
    expires_at: AwareDatetime | None = None
    stocked_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _window(self) -> Offer:
        if self.valid_to <= self.valid_from:
            raise ValueError("valid_to must be after valid_from")
        if self.price_cents is not None and not self.currency:
            raise ValueError("an offer with price_cents needs a currency")
        floor = self.floor_price_cents
        if floor is not None and (self.price_cents is None or floor > self.price_cents):
            raise ValueError("floor_price_cents needs a price_cents at least as high")
        if self.replenish_days is not None and self.sku is None:
            raise ValueError("replenish_days needs the sku it refers to")
        return self

    def display(self, *languages: str | None) -> dict[str, Any]:
        """What a screen needs to show the offer, in the first of `languages` it has words in (else its own title
        and body); the screen escapes every text field itself."""
        language = pick_language(self.translations, languages)
        words = self.translations[language] if language is not None else OfferText(title=self.title, body=self.body)
        return {
            "offer_id": self.offer_id,
            "title": words.title,
            "text": words.body,
            "language": language,
            "price_cents": self.price_cents,
            "currency": self.currency,
            "image": self.image,
            "video": self.video,
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
    "rules",
]
_RULES = [name for name in Offer.model_fields if name not in _COLUMNS]


def _row(offer: Offer) -> list[Any]:
    d = offer.model_dump(mode="json")
    d["zones"] = json.dumps(d["zones"])
    d["segments"] = json.dumps(d["segments"])
    d["rules"] = json.dumps({k: d[k] for k in _RULES})
    d["valid_from"] = offer.valid_from.isoformat()
    d["valid_to"] = offer.valid_to.isoformat()
    return [d[c] for c in _COLUMNS]


def _offer(row: tuple[Any, ...]) -> Offer:
    d = dict(zip(_COLUMNS, row, strict=True))
    d["valid_from"] = datetime.fromisoformat(d["valid_from"])
    d["valid_to"] = datetime.fromisoformat(d["valid_to"])
    d["zones"] = tuple(json.loads(d["zones"]))
    d["segments"] = tuple(json.loads(d["segments"]))
    d.update(json.loads(d.pop("rules")))
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
        n: int = self._db.execute("SELECT count(*) FROM offers").fetchone()[0]
        return n
