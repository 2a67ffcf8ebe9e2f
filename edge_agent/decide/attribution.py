"""Closing the loop: purchases from the till become conversions of the decisions that led to them.

Each transaction counts once (by transaction id). A line converts the customer's latest decision that
intended an offer for that product within the offer's attribution window, whatever its arm, so holdout
and control customers convert too (that is the baseline) and uplift is measured arm against arm. A line
with a claim code converts the claimed offer for certain. The purchase, its conversions and their outbox
rows commit together; with the disk full the purchase is held and tried again until it can be stored.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter

from ..bus import Bus
from ..events import Conversion, Purchase, PurchaseLine
from ..store import Store
from ..store.claims import normalise_code
from ..store.decisions import DecisionRecord
from ..store.faults import StorageRefused
from .caps import CapLedger
from .profile import ProfileBook

log = logging.getLogger(__name__)

STORAGE_RETRY_S = 1.0


class Attribution:
    def __init__(self, store: Store, profiles: ProfileBook, caps: CapLedger, bus: Bus):
        self._store = store
        self._profiles = profiles
        self._caps = caps
        self._bus = bus
        self._purchases = bus.subscribe(Purchase, "attribution", maxsize=10_000)
        self.counts: Counter[str] = Counter()

    async def run(self) -> None:
        async for purchase in self._purchases:
            while True:
                try:
                    with self._store.faults.writing("attribution", "the purchase"):
                        self.on_purchase(purchase)
                except StorageRefused:
                    # The till cannot send a receipt again: hold it (later ones wait in the subscription's
                    # queue, in order) and try again until the disk has room. Counted and logged by the store.
                    self.counts["storage_retries"] += 1
                    await asyncio.sleep(STORAGE_RETRY_S)
                    continue
                except Exception:
                    self.counts["errors"] += 1
                    log.exception("attributing transaction %s failed", purchase.txn_id)
                break

    def on_purchase(self, p: Purchase) -> list[Conversion]:
        with self._store.db.atomic():
            if not self._store.purchases.record(p):
                self.counts["duplicate_transactions"] += 1
                return []
            out = []
            for line in p.lines:
                conversion = self._claimed(p, line) if line.claim_code else self._in_window(p, line)
                if conversion is not None and self._store.conversions.record(conversion):
                    out.append(conversion)
        self.counts["transactions"] += 1
        if p.customer_ref is None:
            self.counts["anonymous_transactions"] += 1
        else:
            self._profiles.invalidate(p.customer_ref)
        for c in out:
            self.counts[f"conversions_{c.via}"] += 1
            self._caps.converted(c.customer_ref, c.offer_id, c.wall.at.timestamp())
            self._bus.publish(c)
        return out

    def _in_window(self, p: Purchase, line: PurchaseLine) -> Conversion | None:
        if p.customer_ref is None:
            return None
        d = self._store.decisions.latest_unconverted(p.customer_ref, line.sku, p.wall.iso())
        return self._conversion(p, line, d, "window") if d is not None else None

    def _claimed(self, p: Purchase, line: PurchaseLine) -> Conversion | None:
        assert line.claim_code is not None
        code = normalise_code(line.claim_code)
        claim = self._store.claims.get(code) if code else None
        if claim is None:
            self.counts["unknown_claim_codes"] += 1
            return self._in_window(p, line)
        if self._store.claims.redeem_for_txn(claim.code, p.txn_id, at=p.wall.iso()) is None:
            self.counts["claims_used_twice"] += 1
            return self._in_window(p, line)
        decision = self._store.decisions.get(claim.decision_id) if claim.decision_id else None
        if decision is None or decision.customer_ref != claim.customer_ref:
            # claimed from a list (a kiosk) rather than a shown decision: the attribution window decides
            self.counts["claims_without_decision"] += 1
            return self._in_window(p, line)
        return self._conversion(p, line, decision, "claim", claim.offer_id)

    def _conversion(
        self, p: Purchase, line: PurchaseLine, d: DecisionRecord, via: str, offer_id: str | None = None
    ) -> Conversion:
        offer_id = offer_id or d.intended_offer_id
        assert d.customer_ref is not None and offer_id is not None
        return Conversion(
            conversion_id=uuid.uuid4().hex,
            decision_id=d.decision_id,
            impression_id=self._store.impressions.for_decision(d.decision_id),
            customer_ref=d.customer_ref,
            offer_id=offer_id,
            arm=d.arm,
            txn_id=p.txn_id,
            sku=line.sku,
            via=via,
            wall=p.wall,
        )
