"""The decision record: what a decision saw, chose and why, as the log keeps it and the cloud evaluates it.

Built here, without I/O, for both kinds of decision: the engine's own choice (eligible set, scores,
probabilities, arm, propensity, features) and a show the cloud commanded (one offer, nothing to choose from).
"""

from __future__ import annotations

from ..config import Touchpoint
from ..events import WallTime
from ..store.decisions import DecisionRecord
from ..store.offers import Offer
from .choice import Choice
from .slate import Slate


def chosen(
    decision_id: str,
    tp: Touchpoint,
    slate: Slate,
    choice: Choice,
    shown: int,
    intended_i: int | None,
    propensity: float | None,
    ref: str | None,
    wall: WallTime,
    *,
    price_cents: int | None,
    eligible_set: str,
    policy: str,
    dwell_s: float = 0.0,
    listing: bool = False,
) -> DecisionRecord:
    """The record of `slate.offers[shown]` shown on `tp`, as `choice` chose it (a kiosk list: `listing`)."""
    ids = [slate.offers[i].offer_id for i in choice.candidates]
    intended = slate.offers[intended_i] if intended_i is not None else None
    return DecisionRecord(
        decision_id=decision_id,
        at=wall.iso(),
        ntp_synced=wall.ntp_synced,
        touchpoint=tp.id,
        zone=tp.zone,
        customer_ref=ref,
        offer_id=slate.offers[shown].offer_id,
        eligible=[slate.offers[i].offer_id for i in choice.ordered],
        eligible_count=int(choice.mask.sum()),
        eligible_set=eligible_set,
        scores={oid: round(float(choice.scores[i]), 6) for oid, i in zip(ids, choice.candidates, strict=True)},
        policy=policy,
        arm=choice.arm,
        intended_offer_id=intended.offer_id if intended else None,
        experiment=choice.experiment,
        probabilities={oid: round(p, 6) for oid, p in zip(ids, choice.probs, strict=True)},
        propensity=propensity,
        features={
            "context": sorted(choice.tags),
            "dwell_s": round(dwell_s, 1),
            "candidates": {oid: choice.features.of(i) for oid, i in zip(ids, choice.candidates, strict=True)},
            **({"listing": True} if listing else {}),  # a kiosk list: counts no cap, also after a restart
        },
        price_cents=price_cents,
        sku=intended.sku if intended else None,
        attribution_window_h=intended.attribution_window_h if intended else None,
    )


def commanded(
    decision_id: str, touchpoint: str, zone: str, offer: Offer, command_id: str, wall: WallTime
) -> DecisionRecord:
    """The record of a show the cloud commanded: that offer, for anyone, under the command's name as its policy."""
    return DecisionRecord(
        decision_id=decision_id,
        at=wall.iso(),
        ntp_synced=wall.ntp_synced,
        touchpoint=touchpoint,
        zone=zone,
        customer_ref=None,
        offer_id=offer.offer_id,
        eligible=[offer.offer_id],
        scores={offer.offer_id: 1.0},
        policy=f"cloud-command:{command_id}",
    )
