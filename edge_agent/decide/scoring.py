"""A simple, explainable score: the marketer's priority plus one point per segment the shopper is in."""

from __future__ import annotations

from ..store.offers import Offer
from ..store.roster import RosterEntry

POLICY = "priority+segments/v1"


def score(offer: Offer, customer: RosterEntry | None) -> float:
    if customer is None or not offer.segments:
        return offer.priority
    return offer.priority + len(set(offer.segments) & set(customer.segments))


def ranked(offers: list[Offer], customer: RosterEntry | None) -> list[tuple[Offer, float]]:
    """Best first; ties broken by offer id so the same inputs always give the same choice."""
    scored = [(o, score(o, customer)) for o in offers]
    scored.sort(key=lambda pair: (-pair[1], pair[0].offer_id))
    return scored
