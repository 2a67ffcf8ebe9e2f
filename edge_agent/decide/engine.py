"""The offer engine: presence and context in, a decision per touchpoint out.

A customer who enters a zone (or checks in again) gets an offer on every touchpoint of that zone; when they
leave, the touchpoint turns to the next customer still there, or to anonymous content, which rotates
through the best contextual offers every `signage.rotate_s`.

A decision: business rules shrink the slate (validity, stock, targeting, consent, caps, cool-downs,
replenishment suppression), then the pure choice (choice.py) scores what is left, splits customers into arms
and draws the intended offer with known probabilities. Every decision is written (record.py, with its outbox
row) before the screen is told, so proof of play always refers to a stored decision. The engine is the only
writer of decision records: a show the cloud commands reaches it as `ShowRequested`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from prometheus_client.core import CounterMetricFamily, Metric

from ..bus import Bus
from ..clock import Clock
from ..config import Settings, Touchpoint
from ..events import (
    ConsentChanged,
    ContextUpdate,
    Crowd,
    Customer,
    Erased,
    Idle,
    OffersChanged,
    Presence,
    PresenceKind,
    Show,
    ShowRequested,
    WallTime,
)
from ..ops.progress import Progress
from ..store import Store
from ..store.faults import StorageRefused
from ..store.offers import LONGEST_WINDOW_S
from ..store.roster import RosterEntry
from . import record
from .caps import CapLedger
from .catalog import OfferCatalog
from .choice import Choice, choose
from .context import ContextState
from .eligibility import PERSONALISATION, apply_caps, customer_capped, eligible, personalised
from .pricing import price
from .profile import ProfileBook
from .scoring import Features
from .slate import Slate

log = logging.getLogger(__name__)


@dataclass
class _Showing:
    customer_ref: str | None = None
    offer_id: str | None = None


class OfferEngine:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        catalog: OfferCatalog,
        bus: Bus,
        clock: Clock,
        rng: random.Random | None = None,
        progress: Progress | None = None,
    ):
        self._settings = settings
        self._store = store
        self._catalog = catalog
        self._bus = bus
        self._clock = clock
        self._rng = rng or random.Random()
        self._zone = ZoneInfo(settings.store.timezone)  # "ends today" is the store's today
        d = settings.decide
        self.context = ContextState(
            settings.store.timezone,
            quiet_below=d.crowd_quiet_below,
            busy_from=d.crowd_busy_from,
            crowd_max_age_s=d.crowd_max_age_s,
            long_dwell_s=d.long_dwell_s,
        )
        self.profiles = ProfileBook(store, d.profile_days)
        self.caps = CapLedger(keep_s=0.0)  # nothing read from the log yet
        self._caps_generation = 0  # the catalogue's generation the cap history follows
        self._touchpoints = {tp.id: tp for tp in settings.touchpoints}
        self._showing = {tp.id: _Showing() for tp in settings.touchpoints}
        self._present: dict[str, dict[str, float]] = {z.id: {} for z in settings.zones}
        self._presence = bus.subscribe(Presence, "engine", maxsize=10_000)
        self._consents = bus.subscribe(ConsentChanged, "engine", maxsize=1000)
        self._contexts = bus.subscribe(ContextUpdate, "engine", maxsize=16)
        self._crowds = bus.subscribe(Crowd, "engine", maxsize=1_000)
        bus.on(Erased, "engine", lambda e: self.forget(e.customer_ref))
        bus.on(OffersChanged, "engine", lambda _: catalog.reload())
        bus.on(ShowRequested, "engine", self.show_requested, raises=True)  # acknowledged only once logged
        self.counts: Counter[str] = Counter()
        self._progress = progress
        if progress is not None:  # a vital part: presence waiting and no decision for too long stalls the agent
            progress.watch("engine", max_silence_s=settings.ops.stall_after_s, pending=self.backlog)
        self._restore()

    def _restore(self) -> None:
        """Rebuild caps and cool-downs from the log, so a restart does not reset anyone's counts."""
        now = self._clock.wall().at
        self._follow_caps()
        for ref, offer_id, at in self._store.conversions.latest(
            (now - timedelta(seconds=LONGEST_WINDOW_S)).timestamp()
        ):
            self.caps.converted(ref, offer_id, at)

    def _follow_caps(self) -> None:
        """Keep shows only as far back as a cap in force looks (memory follows the caps the marketer set); when new
        offers bring a cap that looks further back than what is kept, read the shows again from the decision log."""
        if self._caps_generation == self._catalog.generation:
            return
        self._caps_generation = self._catalog.generation
        window = self._catalog.longest_cap_s()
        if window > self.caps.keep_s:
            self.caps.forget_shows()
            since = (self._clock.wall().at - timedelta(seconds=window)).isoformat(timespec="milliseconds")
            for touchpoint, ref, offer_id, at in self._store.decisions.shown_since(since):
                self.caps.shown(touchpoint, ref, offer_id, datetime.fromisoformat(at).timestamp())
        self.caps.keep_s = window

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._consume(), name="engine.presence")
            tg.create_task(self._consume_context(), name="engine.context")
            tg.create_task(self._consume_crowd(), name="engine.crowd")
            tg.create_task(self._rotate_forever(), name="engine.rotate")
            tg.create_task(self._consent_changes(), name="engine.consent")

    def backlog(self) -> int:
        return sum(s.queue.qsize() for s in (self._presence, self._consents, self._contexts, self._crowds))

    def _beat(self) -> None:
        if self._progress is not None:
            self._progress.beat("engine")

    async def _consent_changes(self) -> None:
        """Personalisation changed: re-decide every touchpoint showing that shopper, so it takes effect at once.

        (A withdrawn identifying channel reaches us as the presence tracker's exit instead.)
        """
        async for change in self._consents:
            if change.channel != PERSONALISATION:
                continue
            for tp in self._settings.touchpoints:
                if self._showing[tp.id].customer_ref == change.customer_ref:
                    self._decide(tp, change.customer_ref, self._clock.mono())
            self._beat()

    async def _consume(self) -> None:
        async for presence in self._presence:
            try:
                self.on_presence(presence)
            except Exception:
                self.counts["errors"] += 1
                log.exception("decision failed; the touchpoints keep their current content")
            self._beat()

    async def _consume_context(self) -> None:
        async for update in self._contexts:
            self.context.on_context(update)
            self._beat()

    async def _consume_crowd(self) -> None:
        async for crowd in self._crowds:
            self.context.on_crowd(crowd)
            self._beat()

    async def _rotate_forever(self) -> None:
        while True:
            self.rotate_anonymous()
            self.caps.prune(self._clock.wall().at.timestamp())
            await asyncio.sleep(self._settings.signage.rotate_s)

    def forget(self, customer_ref: str) -> None:
        """Erasure: the engine's memory of a customer (caps, cool-downs, cached profile, who is where) goes
        too, and a screen showing them their offer turns to anyone; called on `Erased`, after the store's erasure."""
        self.caps.forget(customer_ref)
        self.profiles.invalidate(customer_ref)
        for here in self._present.values():
            here.pop(customer_ref, None)
        for tp in self._settings.touchpoints:
            if self._showing[tp.id].customer_ref == customer_ref:
                self._decide(tp, None, self._clock.mono())  # their offer leaves the screen now

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
                    self._decide(tp, successor, p.mono)
            return
        if p.kind is PresenceKind.ENTER or p.explicit:
            here.pop(ref, None)
            here[ref] = p.mono  # most recent last
            for tp in self._settings.touchpoints_in(p.zone):
                self._decide(tp, ref, p.mono, p.dwell_s)

    def show_requested(self, request: ShowRequested) -> None:
        """A show the cloud commanded: logged as a decision of its own (for anyone), then shown."""
        offer = self._store.offers.get(request.offer_id)
        zone = self._settings.zone_of(request.touchpoint)
        if offer is None or zone is None:  # the downlink checked both before asking
            raise LookupError(f"no offer {request.offer_id!r} or no touchpoint {request.touchpoint!r} here")
        wall = self._clock.wall()
        self._store.decisions.record(
            record.commanded(request.show_id, request.touchpoint, zone, offer, request.command_id, wall)
        )
        mono = self._clock.mono()
        self._bus.publish(
            Show(
                touchpoint=request.touchpoint,
                show_id=request.show_id,
                offer=offer.display(self._settings.store.language),
                customer_ref=None,
                mono=mono,
                origin_mono=mono,
            )
        )

    def reconfigure(self, settings: Settings) -> None:
        """A fleet desired config: crowd and dwell thresholds now, `signage.rotate_s` from the next rotation."""
        self._settings = settings
        d = settings.decide
        self.context.retune(
            quiet_below=d.crowd_quiet_below,
            busy_from=d.crowd_busy_from,
            crowd_max_age_s=d.crowd_max_age_s,
            long_dwell_s=d.long_dwell_s,
        )

    def rotate_anonymous(self) -> None:
        for tp in self._settings.touchpoints:
            if self._showing[tp.id].customer_ref is None:
                self._decide(tp, None, self._clock.mono())

    def offers_for(
        self, customer_ref: str, touchpoint: str, limit: int = 10, *, record: bool = False
    ) -> list[dict[str, Any]]:
        """The offers this customer may see here, best first, priced; what a kiosk lists for them.

        The same rules as a screen apply: without personalisation consent, or in the holdout, the list is
        the contextual one for anyone. With `record`, the list is what a kiosk puts in front of them: each
        offer is logged as a decision (with the arm) and carries its `show_id` for proof of play and claims;
        the first is the engine's own pick with its propensity, the rest are listed as themselves. No cap is
        counted (the shopper asked to see them).
        """
        tp = self._touchpoints.get(touchpoint)
        if tp is None:
            raise KeyError(f"no touchpoint {touchpoint!r}")
        wall = self._clock.wall()
        entry = self._store.roster.get(customer_ref)
        choice = self._choose(tp, entry, wall.at, self._clock.mono(), explore=False)
        slate = self._catalog.slate(tp)
        shown = [choice.shown] if choice.shown is not None else []
        presentable = choice.presentable if choice.presentable is not None else choice.ordered
        rest = [i for i in presentable if i not in shown]
        listed = (shown + rest)[: max(0, limit)]
        if not record:
            return [self._priced(slate, i, wall.at, entry) for i in listed]
        customer = personalised(entry)
        ref = customer.customer_ref if customer else None
        out = []
        for n, i in enumerate(listed):
            first = n == 0
            intended, propensity = (choice.intended, choice.propensity) if first else (i, None)
            decision_id = self._log(tp, slate, choice, i, intended, propensity, ref, wall, listing=True)
            out.append({**self._priced(slate, i, wall.at, entry), "show_id": decision_id})
        self.counts["kiosk_listings"] += 1
        return out

    def _decide(self, tp: Touchpoint, customer_ref: str | None, origin_mono: float, dwell_s: float = 0.0) -> None:
        """Decide and show; with the disk full the decision cannot be logged, so the touchpoint keeps its content."""
        try:
            with self._store.faults.writing("decide", "the decision"):
                self._decide_and_show(tp, customer_ref, origin_mono, dwell_s)
        except StorageRefused:
            self.counts["errors"] += 1  # counted and logged (once per episode) by the store

    def _decide_and_show(
        self, tp: Touchpoint, customer_ref: str | None, origin_mono: float, dwell_s: float = 0.0
    ) -> None:
        entry: RosterEntry | None = self._store.roster.get(customer_ref) if customer_ref else None
        wall = self._clock.wall()
        showing = self._showing[tp.id]
        choice = self._choose(tp, entry, wall.at, self._clock.mono(), dwell_s=dwell_s, current=showing.offer_id)
        slate = self._catalog.slate(tp)
        self.counts["decisions"] += 1
        customer = personalised(entry)
        ref = customer.customer_ref if customer else None
        if choice.shown is None:
            showing.customer_ref, showing.offer_id = (entry.customer_ref if entry else None), None
            self._bus.publish(Idle(touchpoint=tp.id, mono=self._clock.mono()))
            return
        chosen = slate.offers[choice.shown]
        display = self._priced(slate, choice.shown, wall.at, entry)
        decision_id = self._log(tp, slate, choice, choice.shown, choice.intended, choice.propensity, ref, wall, dwell_s)
        # Only once it is logged is it what the touchpoint shows (a refused write leaves the screen as it was).
        showing.customer_ref, showing.offer_id = (entry.customer_ref if entry else None), chosen.offer_id
        self.caps.shown(tp.id, ref, chosen.offer_id, wall.at.timestamp())
        self._bus.publish(
            Show(
                touchpoint=tp.id,
                show_id=decision_id,
                offer=display,
                customer_ref=ref,
                mono=self._clock.mono(),
                origin_mono=origin_mono,
            )
        )

    def _log(
        self,
        tp: Touchpoint,
        slate: Slate,
        choice: Choice,
        shown: int,
        intended: int | None,
        propensity: float | None,
        ref: str | None,
        wall: WallTime,
        dwell_s: float = 0.0,
        listing: bool = False,
    ) -> str:
        """Write one decision (with its outbox row) and return its id, before anything is displayed."""
        decision_id = uuid.uuid4().hex
        chosen = slate.offers[shown]
        self._store.decisions.record(
            record.chosen(
                decision_id,
                tp,
                slate,
                choice,
                shown,
                intended,
                propensity,
                ref,
                wall,
                price_cents=price(chosen, wall.at, self._catalog.policy.pricing_bounds, self._zone).price_cents,
                eligible_set=self._catalog.eligible_set(slate, choice.mask),
                policy=self._catalog.scorer.version,
                dwell_s=dwell_s,
                listing=listing,
            )
        )
        return decision_id

    def _priced(self, slate: Slate, i: int, now: datetime, entry: RosterEntry | None) -> dict[str, Any]:
        """The offer as a touchpoint shows it: priced now, in the shopper's language (else the store's)."""
        offer = slate.offers[i]
        p = price(offer, now, self._catalog.policy.pricing_bounds, self._zone)
        return {
            **offer.display(entry.language if entry is not None else None, self._settings.store.language),
            "audience": offer.audience,
            "price_cents": p.price_cents,
            "was_cents": p.was_cents,
            "label": p.label,
        }

    def _choose(
        self,
        tp: Touchpoint,
        entry: RosterEntry | None,
        now: datetime,
        mono: float,
        *,
        dwell_s: float = 0.0,
        current: str | None = None,
        explore: bool = True,
    ) -> Choice:
        """The rules shrink the slate, the customer's profile joins the features, then the pure choice."""
        self._follow_caps()
        policy = self._catalog.policy
        slate = self._catalog.slate(tp)
        now_unix = now.timestamp()
        customer = personalised(entry)
        ref = customer.customer_ref if customer else None
        capped = ref is not None and customer_capped(self.caps, policy.default_caps, ref, now_unix)
        personal = customer is not None and not capped
        tags = self.context.tags(tp.zone, now, mono, dwell_s)
        features = Features(slate, tags)
        mask = eligible(slate, now_unix, personal=personal)
        apply_caps(mask, slate, self.caps, policy.default_caps, tp.id, ref, now_unix)
        if customer is not None and personal:
            profile = self.profiles.get(customer.customer_ref, now_unix, self._catalog.sku_category)
            features.add_profile(customer.segments, profile, policy.bought_together, now_unix)
            if features.suppressed:
                mask[features.suppressed] = False
        return choose(
            slate,
            features,
            tags,
            mask,
            self._catalog.scorer,
            policy,
            ref if personal else None,
            capped=capped,
            rng=self._rng,
            explore=explore,
            current=current,
        )

    def metrics(self) -> Iterator[Metric]:
        yield CounterMetricFamily("edge_decisions", "Offer decisions made", value=self.counts["decisions"])
        yield CounterMetricFamily("edge_decision_errors", "Decisions that failed", value=self.counts["errors"])
