"""Business rules that shrink a slate before anything is scored: validity, stock, audience and consent,
frequency caps (the strictest wins) and cool-downs after a conversion. Replenishment suppression needs
the profile and is applied with it (scoring.Features.suppressed)."""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from ..store.offers import Cap
from ..store.roster import RosterEntry
from .caps import CapLedger
from .slate import Slate

PERSONALISATION = "personalisation"  # consent to use the shopper's profile and show personalised offers


def personalised(customer: RosterEntry | None) -> RosterEntry | None:
    """The customer if their consent lets us use their profile, else None (they are served as anyone)."""
    return customer if customer is not None and customer.consents_to(PERSONALISATION) else None


def eligible(slate: Slate, now_unix: float, *, personal: bool) -> np.ndarray:
    """Offers valid now and in stock; personalised offers only for a consenting customer (a mask)."""
    mask = slate.live(now_unix)
    if not personal:
        mask &= ~slate.personalised
    return mask


def apply_caps(
    mask: np.ndarray,
    slate: Slate,
    ledger: CapLedger,
    default_caps: tuple[Cap, ...],
    touchpoint: str,
    customer_ref: str | None,
    now_unix: float,
) -> None:
    """Clear the offers a cap or a cool-down rules out. Only an offer already shown here (to this customer
    or on this screen) can have reached a cap, so the cost follows the history, not the catalogue."""
    defaults = tuple(c for c in default_caps if c.scope != "customer")
    screen_seen: Collection[str] = ledger.screen_offers(touchpoint)
    if not any(c.scope == "screen" for c in defaults):
        screen_seen = [o for o in slate.screen_capped if o in screen_seen]
    check = {slate.position[o] for o in screen_seen if o in slate.position}
    if customer_ref is not None:
        customer_seen = ledger.customer_offers(customer_ref)
        check.update(slate.position[o] for o in customer_seen if o in slate.position)
        if customer_seen:
            check.update(slate.customer_capped)
    for i in check:
        if mask[i]:
            offer = slate.offers[i]
            if ledger.blocked(offer.caps + defaults, touchpoint, customer_ref, offer.offer_id, now_unix):
                mask[i] = False
    if customer_ref is not None:
        for offer_id, at in ledger.cooling(customer_ref).items():
            pos = slate.position.get(offer_id)
            if pos is not None and now_unix - at < slate.offers[pos].cooldown_s:
                mask[pos] = False


def customer_capped(ledger: CapLedger, default_caps: tuple[Cap, ...], customer_ref: str, now_unix: float) -> bool:
    """A per-customer cap reached: the customer is served as anyone until the window has room again."""
    return any(
        ledger.customer_count(customer_ref, cap.window_s, now_unix) >= cap.max
        for cap in default_caps
        if cap.scope == "customer"
    )
