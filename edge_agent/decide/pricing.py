"""Bounded dynamic pricing: the deepest markdown whose condition holds now, never beyond the bundle's
maximum discount nor below the offer's floor price."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from ..store.offers import AgeMarkdown, EndsToday, ExpiryMarkdown, Offer, Overstock
from ..store.policy import PricingBounds


@dataclass(frozen=True)
class Price:
    price_cents: int | None
    was_cents: int | None  # the undiscounted price when discounted, else None
    percent_off: float
    label: str  # "ends today" urgency, or ""


def price(offer: Offer, now: datetime, bounds: PricingBounds, zone: tzinfo) -> Price:
    """The offer's price now; "ends today" on the offer's last day as the store counts days (`zone`, its time zone:
    in a UTC−5 store the label stays until local midnight, not until 19:00)."""
    percent = 0.0
    label = ""
    last_day = (offer.valid_to - timedelta(microseconds=1)).astimezone(zone).date()  # valid_to itself is not valid
    for rule in offer.pricing:
        if isinstance(rule, ExpiryMarkdown):
            if offer.expires_at is not None and now <= offer.expires_at <= now + timedelta(hours=rule.within_h):
                percent = max(percent, rule.percent_off)
        elif isinstance(rule, AgeMarkdown):
            if offer.stocked_at is not None and now - offer.stocked_at >= timedelta(days=rule.after_days):
                percent = max(percent, rule.percent_off)
        elif isinstance(rule, Overstock):
            if offer.stock is not None and offer.stock > rule.stock_above:
                percent = max(percent, rule.percent_off)
        elif isinstance(rule, EndsToday) and last_day == now.astimezone(zone).date():
            label = "ends today"
    base = offer.price_cents
    percent = min(percent, bounds.max_discount_pct)
    if base is None or percent <= 0:
        return Price(base, None, 0.0, label)
    cents = round(base * (1 - percent / 100))
    if offer.floor_price_cents is not None:
        cents = max(cents, offer.floor_price_cents)
    if cents >= base:
        return Price(base, None, 0.0, label)
    return Price(cents, base, round(100 * (base - cents) / base, 2), label)
