"""Business rules that shrink the set of offers before anything is scored."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from ..store.offers import Offer
from ..store.roster import RosterEntry

PERSONALISATION = "personalisation"  # consent to use the shopper's profile and show personalised offers


def personalised(customer: RosterEntry | None) -> RosterEntry | None:
    """The customer if their consent lets us use their profile, else None (they are served as anyone)."""
    return customer if customer is not None and customer.consents_to(PERSONALISATION) else None


def eligible(offers: Iterable[Offer], *, zone: str, now: datetime, customer: RosterEntry | None) -> list[Offer]:
    """Offers valid now, targeted at this zone, in stock, and allowed for who is looking.

    `customer` must already be filtered by `personalised`: personalised offers need a consenting customer.
    """
    out = []
    for o in offers:
        if not o.valid_from <= now < o.valid_to:
            continue
        if o.zones and zone not in o.zones:
            continue
        if o.stock is not None and o.stock <= 0:
            continue
        if o.audience == "personalised" and customer is None:
            continue
        out.append(o)
    return out
