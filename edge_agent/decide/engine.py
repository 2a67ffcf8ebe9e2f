"""The offer engine: presence in, a decision per touchpoint out.

A customer who enters a zone (or checks in again) gets an offer on every touchpoint of that zone; when they
leave, the touchpoint turns to the next customer still there, or to anonymous content, which rotates
through the eligible offers every `signage.rotate_s`. Every decision is written (with its outbox row)
before the screen is told, so proof of play always refers to a stored decision.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from dataclasses import dataclass

from ..bus import Bus
from ..clock import Clock
from ..config import Settings
from ..events import ConsentChanged, Customer, Idle, Presence, PresenceKind, Show
from ..store import Store
from ..store.decisions import DecisionRecord
from ..store.offers import Offer
from ..store.roster import RosterEntry
from .catalog import OfferCatalog
from .eligibility import PERSONALISATION, eligible, personalised
from .scoring import POLICY, ranked

log = logging.getLogger(__name__)


@dataclass
class _Showing:
    customer_ref: str | None = None
    offer_id: str | None = None


class OfferEngine:
    def __init__(self, settings: Settings, store: Store, catalog: OfferCatalog, bus: Bus, clock: Clock):
        self._settings = settings
        self._store = store
        self._catalog = catalog
        self._bus = bus
        self._clock = clock
        self._showing = {tp.id: _Showing() for tp in settings.touchpoints}
        self._present: dict[str, dict[str, float]] = {z.id: {} for z in settings.zones}
        self._presence = bus.subscribe(Presence, "engine", maxsize=10_000)
        self._consents = bus.subscribe(ConsentChanged, "engine", maxsize=1000)
        self.counts: Counter[str] = Counter()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._consume(), name="engine.presence")
            tg.create_task(self._rotate_forever(), name="engine.rotate")
            tg.create_task(self._consent_changes(), name="engine.consent")

    def offers_for(self, customer_ref: str, touchpoint: str, limit: int) -> list[Offer]:
        """The best offers for this shopper at this touchpoint now, best first (for a kiosk or a tablet).

        Same rules as a screen's decision: without personalisation consent the shopper sees what anyone would.
        """
        zone = self._settings.zone_of(touchpoint)
        if zone is None:
            return []
        customer = personalised(self._store.roster.get(customer_ref))
        now = self._clock.wall().at
        return [
            o
            for o, _ in ranked(eligible(self._catalog.for_zone(zone), zone=zone, now=now, customer=customer), customer)
        ][:limit]

    async def _consent_changes(self) -> None:
        """Personalisation changed: re-decide every touchpoint showing that shopper, so it takes effect at once.

        (A withdrawn identifying channel reaches us as the presence tracker's exit instead.)
        """
        async for change in self._consents:
            if change.channel != PERSONALISATION:
                continue
            for tp in self._settings.touchpoints:
                if self._showing[tp.id].customer_ref == change.customer_ref:
                    self._decide(tp.id, tp.zone, change.customer_ref, self._clock.mono())

    async def _consume(self) -> None:
        async for presence in self._presence:
            try:
                self.on_presence(presence)
            except Exception:
                self.counts["errors"] += 1
                log.exception("decision failed; the touchpoints keep their current content")

    async def _rotate_forever(self) -> None:
        while True:
            self.rotate_anonymous()
            await asyncio.sleep(self._settings.signage.rotate_s)

    def on_presence(self, p: Presence) -> None:
        if not isinstance(p.subject, Customer) or p.zone not in self._present:
            return  # anonymous people only feed counts, never a personal decision
        ref = p.subject.customer_ref
        here = self._present[p.zone]
        if p.kind is PresenceKind.EXIT:
            here.pop(ref, None)
            for tp in self._settings.touchpoints_in(p.zone):
                if self._showing[tp.id].customer_ref == ref:
                    successor = next(reversed(here), None)
                    self._decide(tp.id, p.zone, successor, p.mono)
            return
        if p.kind is PresenceKind.ENTER or p.explicit:
            here.pop(ref, None)
            here[ref] = p.mono  # most recent last
            for tp in self._settings.touchpoints_in(p.zone):
                self._decide(tp.id, p.zone, ref, p.mono)

    def rotate_anonymous(self) -> None:
        for tp in self._settings.touchpoints:
            if self._showing[tp.id].customer_ref is None:
                self._decide(tp.id, tp.zone, None, self._clock.mono())

    def _decide(self, touchpoint: str, zone: str, customer_ref: str | None, origin_mono: float) -> None:
        entry: RosterEntry | None = self._store.roster.get(customer_ref) if customer_ref else None
        customer = personalised(entry)
        wall = self._clock.wall()
        options = ranked(eligible(self._catalog.for_zone(zone), zone=zone, now=wall.at, customer=customer), customer)
        showing = self._showing[touchpoint]
        chosen = options[0][0] if options else None
        if customer is None and len(options) > 1:
            chosen = _next_after(options, showing.offer_id)  # anonymous content rotates
        self.counts["decisions"] += 1
        ref = customer.customer_ref if customer else None
        showing.customer_ref = entry.customer_ref if entry else None
        showing.offer_id = chosen.offer_id if chosen else None
        if chosen is None:
            self._bus.publish(Idle(touchpoint=touchpoint, mono=self._clock.mono()))
            return
        decision_id = uuid.uuid4().hex
        self._store.decisions.record(
            DecisionRecord(
                decision_id=decision_id,
                at=wall.iso(),
                ntp_synced=wall.ntp_synced,
                touchpoint=touchpoint,
                zone=zone,
                customer_ref=ref,
                offer_id=chosen.offer_id,
                eligible=[o.offer_id for o, _ in options],
                scores={o.offer_id: s for o, s in options},
                policy=POLICY,
            )
        )
        self._bus.publish(
            Show(
                touchpoint=touchpoint,
                show_id=decision_id,
                offer=chosen.display(),
                customer_ref=ref,
                mono=self._clock.mono(),
                origin_mono=origin_mono,
            )
        )


def _next_after(options: list, current: str | None):
    ids = [o.offer_id for o, _ in options]
    if current not in ids:
        return options[0][0]
    return options[(ids.index(current) + 1) % len(options)][0]
