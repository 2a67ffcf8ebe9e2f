"""The engine's rules end to end on a real store: caps, cool-downs, replenishment, holdout and experiment
arms, context from the bus, pricing, and what every decision logs."""

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from edge_agent.bus import Bus
from edge_agent.clock import Clock
from edge_agent.decide.catalog import OfferCatalog
from edge_agent.decide.engine import OfferEngine
from edge_agent.decide.experiments import assign, in_holdout
from edge_agent.decide.pricing import price
from edge_agent.events import (
    ContextUpdate,
    Crowd,
    Customer,
    Presence,
    PresenceKind,
    Purchase,
    PurchaseLine,
    Show,
    WallTime,
)
from edge_agent.store import open_store
from edge_agent.store.bundles import OfferBundle, apply_offers
from edge_agent.store.offers import Cap, Experiment
from edge_agent.store.policy import Exploration, Holdout, PricingBounds, ScoringPolicy
from tests.factories import customer, offer

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # a Tuesday morning


class FakeClock(Clock):
    def __init__(self, at: datetime):
        super().__init__()
        self.at = at
        self.m = 1000.0

    def mono(self) -> float:
        return self.m

    def wall(self) -> WallTime:
        return WallTime(self.at, True)

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)
        self.m += seconds


def _offer(offer_id, **fields):
    fields.setdefault("valid_from", T0 - timedelta(days=120))
    fields.setdefault("valid_to", T0 + timedelta(days=120))
    return offer(offer_id, **fields)


def make(settings, offers, roster, version=1, rng_seed=1, **bundle):
    store = open_store(settings.database.path)
    apply_offers(
        store.db,
        store.bundle_versions,
        store.offers,
        OfferBundle(version=version, issued_at=T0, offers=offers, **bundle),
        T0.isoformat(),
    )
    store.roster.upsert(roster, updated_at=T0.isoformat())
    bus = Bus()
    shows = bus.subscribe(Show, "test")
    clock = FakeClock(T0)
    engine = OfferEngine(settings, store, OfferCatalog(store), bus, clock, rng=random.Random(rng_seed))
    return engine, store, shows, clock


def enter(engine, clock, who, zone="entrance", explicit=True):
    engine.on_presence(
        Presence(Customer(who), zone, PresenceKind.ENTER, 0.0, clock.mono(), clock.wall(), explicit=explicit)
    )


def shown(shows, touchpoint="screen-a"):
    out = []
    while not shows.queue.empty():
        out.append(shows.queue.get_nowait())
    return [s for s in out if s.touchpoint == touchpoint]


def last(store, shows, touchpoint="screen-a"):
    got = shown(shows, touchpoint)
    assert got, "no show"
    return store.decisions.get(got[-1].show_id)


def test_caps_per_customer_and_offer_strictest_wins_and_windows_roll(settings):
    offers = [
        _offer(
            "top",
            priority=5,
            caps=(
                Cap(scope="customer_offer", max=5, window_s=86_400),
                Cap(scope="customer_offer", max=2, window_s=3_600),
            ),
        ),
        _offer("next", priority=1),
    ]
    engine, store, shows, clock = make(settings, offers, [customer("alice")])
    picks = []
    for _ in range(3):
        enter(engine, clock, "alice")
        picks.append(last(store, shows).offer_id)
        clock.advance(60)
    # two touchpoints in the zone: screen-a and kiosk-a each count, so the 1-hour cap of 2 is reached at once
    assert picks == ["top", "next", "next"]
    clock.advance(3_600)
    enter(engine, clock, "alice")
    assert last(store, shows).offer_id == "top"


def test_screen_cap_limits_an_offer_per_screen_for_anonymous_content(settings):
    offers = [_offer("promo", priority=5, caps=(Cap(scope="screen", max=1, window_s=3_600),)), _offer("filler")]
    engine, store, shows, _clock = make(settings, offers, [])
    engine.rotate_anonymous()
    assert last(store, shows).offer_id == "promo"
    engine.rotate_anonymous()
    engine.rotate_anonymous()
    assert {s.offer["offer_id"] for s in shown(shows)} == {"filler"}


def test_per_customer_cap_serves_the_customer_as_anyone(settings):
    offers = [_offer("mine", audience="personalised", priority=5), _offer("anyone")]
    caps = (Cap(scope="customer", max=2, window_s=3_600),)
    engine, store, shows, clock = make(settings, offers, [customer("alice")], default_caps=caps)
    enter(engine, clock, "alice")
    first = last(store, shows)
    assert (first.offer_id, first.arm) == ("mine", "default")
    enter(engine, clock, "alice")
    capped = last(store, shows)
    assert (capped.offer_id, capped.arm, capped.customer_ref) == ("anyone", "capped", "alice")


def test_cool_down_after_a_conversion(settings):
    offers = [_offer("coffee", priority=5, sku="coffee", cooldown_s=7 * 86_400), _offer("tea")]
    engine, store, shows, clock = make(settings, offers, [customer("alice")])
    engine.caps.converted("alice", "coffee", clock.wall().at.timestamp())
    enter(engine, clock, "alice")
    assert last(store, shows).offer_id == "tea"
    clock.advance(7 * 86_400 + 1)
    enter(engine, clock, "alice")
    assert last(store, shows).offer_id == "coffee"


def _bought(store, who, sku, at, txn):
    store.purchases.record(Purchase(txn, "till-1", who, (PurchaseLine(sku, 1, 250),), WallTime(at, True)))


def test_replenishment_suppresses_just_bought_and_promotes_what_is_due(settings):
    offers = [
        _offer("rice", audience="personalised", sku="rice", replenish_days=56),
        _offer("chocolate", priority=1.5),
    ]
    roster = [customer("alice"), customer("bea"), customer("cem")]
    engine, store, shows, clock = make(settings, offers, roster)
    _bought(store, "alice", "rice", T0 - timedelta(days=10), "t1")  # just bought: not again yet
    _bought(store, "bea", "rice", T0 - timedelta(days=52), "t2")  # 8 weeks nearly up: due
    # cem's own cycle is 20 days (not the offer's 56): due after 18 days
    for n, days in enumerate((59, 39, 19)):
        _bought(store, "cem", "rice", T0 - timedelta(days=days), f"t3-{n}")
    enter(engine, clock, "alice")
    a = last(store, shows)
    assert a.offer_id == "chocolate" and "rice" not in a.eligible
    enter(engine, clock, "bea")
    b = last(store, shows)
    assert b.offer_id == "rice"
    assert b.features["candidates"]["rice"] == {"replenishment_due": 1.0}
    enter(engine, clock, "cem")
    assert last(store, shows).offer_id == "rice"


def test_holdout_gets_the_contextual_choice_and_logs_what_was_intended(settings):
    holdout = Holdout(fraction=0.5, seed="h")
    refs = [f"c{i}" for i in range(40)]
    held = next(r for r in refs if in_holdout(holdout, r))
    treated = next(r for r in refs if not in_holdout(holdout, r))
    offers = [_offer("for-you", audience="personalised", priority=5), _offer("anyone", priority=1)]
    engine, store, shows, clock = make(
        settings, offers, [customer(held), customer(treated)], holdout=holdout, policy=ScoringPolicy(version="lin-7")
    )
    enter(engine, clock, held)
    h = last(store, shows)
    assert (h.arm, h.offer_id, h.intended_offer_id, h.policy) == ("holdout", "anyone", "for-you", "lin-7")
    enter(engine, clock, treated)
    t = last(store, shows)
    assert (t.arm, t.offer_id, t.intended_offer_id) == ("default", "for-you", "for-you")


def test_experiment_control_is_not_shown_the_offer(settings):
    experiment = Experiment(key="coffee-test")
    refs = [f"c{i}" for i in range(40)]
    ctl = next(r for r in refs if assign(experiment, r) == "control")
    trt = next(r for r in refs if assign(experiment, r) == "treatment")
    offers = [_offer("coffee", priority=5, experiment=experiment), _offer("tea")]
    engine, store, shows, clock = make(settings, offers, [customer(ctl), customer(trt)])
    enter(engine, clock, ctl)
    c = last(store, shows)
    assert (c.arm, c.offer_id, c.intended_offer_id, c.experiment) == ("control", "tea", "coffee", "coffee-test")
    enter(engine, clock, trt)
    t = last(store, shows)
    assert (t.arm, t.offer_id, t.experiment) == ("treatment", "coffee", "coffee-test")
    assert engine.offers_for(ctl, "kiosk-a", 5)[0]["offer_id"] == "tea"  # the kiosk list follows the arm too


def test_exploration_logs_exact_probabilities_and_the_propensity(settings):
    offers = [_offer(f"o{i}", priority=i) for i in range(6)]
    policy = ScoringPolicy(
        version="explore-1", exploration=Exploration(kind="softmax", temperature=2.0, floor=0.05, candidates=4)
    )
    engine, store, shows, clock = make(settings, offers, [customer("alice")], policy=policy)
    chosen = set()
    for _ in range(40):
        enter(engine, clock, "alice")
        d = last(store, shows)
        assert set(d.probabilities) == {"o5", "o4", "o3", "o2"}
        assert sum(d.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert min(d.probabilities.values()) >= 0.05
        assert d.propensity == pytest.approx(d.probabilities[d.intended_offer_id], abs=1e-6)
        assert d.eligible == ["o5", "o4", "o3", "o2", "o1", "o0"]
        chosen.add(d.offer_id)
    assert len(chosen) >= 3  # exploration really explores
    # a kiosk's list is not drawn: its first offer is the best, deterministically, and says so (propensity 1)
    listed = engine.offers_for("alice", "kiosk-a", 3, record=True)
    first = store.decisions.get(listed[0]["show_id"])
    assert (first.intended_offer_id, first.propensity) == ("o5", 1.0)
    assert first.probabilities == {"o5": 1.0, "o4": 0.0, "o3": 0.0, "o2": 0.0}
    assert [store.decisions.get(o["show_id"]).propensity for o in listed[1:]] == [None, None]  # listed, not chosen


def test_context_from_the_bus_changes_the_choice(settings):
    offers = [
        _offer("umbrella", context_tags=("weather:rain",)),
        _offer("ice-cream", priority=0.4),
        _offer("express-lane", context_tags=("crowd:busy",), priority=-1),
    ]
    engine, store, shows, clock = make(settings, offers, [customer("alice")])
    enter(engine, clock, "alice")
    assert last(store, shows).offer_id == "ice-cream"
    engine.context.on_context(ContextUpdate({"condition": "Rain", "temp_c": 9}, (), clock.wall()))
    enter(engine, clock, "alice")
    d = last(store, shows)
    assert d.offer_id == "umbrella"
    assert {"weather:rain", "daypart:morning", "dow:tue", "weekday", "zone:entrance"} <= set(d.features["context"])
    engine.context.on_crowd(Crowd("entrance", 25, clock.mono(), clock.wall()))
    enter(engine, clock, "alice")
    assert "crowd:busy" in last(store, shows).features["context"]
    clock.advance(600)  # the crowd count goes stale
    enter(engine, clock, "alice")
    assert not any(t.startswith("crowd:") for t in last(store, shows).features["context"])


def test_bought_together_and_affinity_come_from_purchases_and_the_bundle(settings):
    offers = [
        _offer("pasta-sauce", audience="personalised", sku="sauce", category="italian"),
        _offer("generic", priority=0.4),
    ]
    engine, store, shows, clock = make(settings, offers, [customer("alice")], bought_together={"pasta": ("sauce",)})
    _bought(store, "alice", "pasta", T0 - timedelta(days=3), "t1")
    enter(engine, clock, "alice")
    d = last(store, shows)
    assert d.offer_id == "pasta-sauce" and d.features["candidates"]["pasta-sauce"] == {"bought_together": 1.0}


def test_prices_follow_the_rules_and_never_leave_the_bounds():
    now = T0
    base = dict(price_cents=1000, currency="EUR")
    expiring = _offer(
        "bread",
        **base,
        expires_at=now + timedelta(hours=5),
        pricing=({"kind": "expiry", "within_h": 12, "percent_off": 60}, {"kind": "ends_today"}),
        valid_to=now + timedelta(hours=3),
    )
    p = price(expiring, now, PricingBounds(max_discount_pct=40), UTC)
    assert (p.price_cents, p.was_cents, p.percent_off, p.label) == (600, 1000, 40.0, "ends today")
    floored = expiring.model_copy(update={"floor_price_cents": 800})
    assert price(floored, now, PricingBounds(max_discount_pct=40), UTC).price_cents == 800
    overstock = _offer(
        "beans", **base, stock=500, pricing=({"kind": "overstock", "stock_above": 100, "percent_off": 15},)
    )
    assert price(overstock, now, PricingBounds(), UTC).price_cents == 850
    assert price(overstock.model_copy(update={"stock": 50}), now, PricingBounds(), UTC).price_cents == 1000
    aged = _offer(
        "cheese",
        **base,
        stocked_at=now - timedelta(days=6),
        pricing=({"kind": "age", "after_days": 5, "percent_off": 10},),
    )
    assert price(aged, now, PricingBounds(), UTC).price_cents == 900


@pytest.mark.parametrize(
    ("zone", "last_day", "at", "labelled"),
    [
        # a UTC−5 store: the offer's last day is 5 December until local midnight, 05:00 UTC on the 6th
        ("America/New_York", "2026-12-06T00:00:00-05:00", "2026-12-05T19:30:00-05:00", True),  # 00:30 UTC, the 6th
        ("America/New_York", "2026-12-06T00:00:00-05:00", "2026-12-04T21:00:00-05:00", False),  # 02:00 UTC, the 5th
        ("America/New_York", "2026-12-06T00:00:00-05:00", "2026-12-06T00:00:00-05:00", False),  # over
        # a UTC+1/+2 store on the night the clocks go back (25 October 2026, 03:00 CEST → 02:00 CET)
        ("Europe/Berlin", "2026-10-26T00:00:00+01:00", "2026-10-25T02:30:00+01:00", True),  # after the change
        ("Europe/Berlin", "2026-10-26T00:00:00+01:00", "2026-10-25T00:30:00+02:00", True),  # 22:30 UTC on the 24th
        ("Europe/Berlin", "2026-10-26T00:00:00+01:00", "2026-10-24T23:59:00+02:00", False),
    ],
)
def test_ends_today_follows_the_stores_day(zone, last_day, at, labelled):
    now = datetime.fromisoformat(at)
    offer = _offer(
        "soup",
        price_cents=300,
        currency="EUR",
        pricing=({"kind": "ends_today"},),
        valid_from=now - timedelta(days=3),
        valid_to=datetime.fromisoformat(last_day),
    )
    assert price(offer, now, PricingBounds(), ZoneInfo(zone)).label == ("ends today" if labelled else "")


def test_the_screen_gets_the_dynamic_price(settings):
    offers = [
        _offer(
            "bread",
            price_cents=400,
            currency="EUR",
            stock=300,
            pricing=({"kind": "overstock", "stock_above": 100, "percent_off": 25},),
        )
    ]
    engine, store, shows, clock = make(settings, offers, [customer("alice")])
    enter(engine, clock, "alice")
    s = shown(shows)[-1]
    assert (s.offer["price_cents"], s.offer["was_cents"]) == (300, 400)
    assert store.decisions.get(s.show_id).price_cents == 300


def test_caps_survive_a_restart(settings):
    offers = [_offer("top", priority=5, caps=(Cap(scope="customer_offer", max=1, window_s=3_600),)), _offer("other")]
    engine, store, shows, clock = make(settings, offers, [customer("alice")])
    enter(engine, clock, "alice")
    assert last(store, shows).offer_id == "top"
    bus = Bus()
    again = bus.subscribe(Show, "test")
    engine2 = OfferEngine(settings, store, OfferCatalog(store), bus, clock)
    enter(engine2, clock, "alice")
    assert last(store, again).offer_id == "other"


def test_shows_are_kept_as_far_back_as_a_cap_looks_and_read_again_for_a_cap_that_looks_further(settings):
    hourly = (Cap(scope="customer_offer", max=1, window_s=3_600),)
    offers = [_offer("top", priority=5, caps=hourly), _offer("other")]
    engine, store, shows, clock = make(settings, offers, [customer("alice")])
    enter(engine, clock, "alice")
    assert last(store, shows).offer_id == "top"
    clock.advance(2 * 3_600)
    engine.caps.prune(clock.wall().at.timestamp())
    assert engine.caps.customer_offers("alice") == set()  # older than any cap in force looks: not kept
    daily = (Cap(scope="customer_offer", max=1, window_s=86_400),)
    bundle = OfferBundle(version=2, issued_at=T0, offers=[_offer("top", priority=5, caps=daily), _offer("other")])
    apply_offers(store.db, store.bundle_versions, store.offers, bundle, clock.wall().at.isoformat())
    engine._catalog.reload()
    enter(engine, clock, "alice")  # the show two hours ago counts against the new daily cap: read from the log
    assert last(store, shows).offer_id == "other"


def test_offers_for_lists_priced_offers_by_consent(settings):
    offers = [_offer("mine", audience="personalised", priority=3), _offer("a", priority=1), _offer("b")]
    engine, store, _shows, _clock = make(settings, offers, [customer("alice"), customer("bob", personalisation=False)])
    assert [o["offer_id"] for o in engine.offers_for("alice", "kiosk-a", 10)] == ["mine", "a", "b"]
    assert [o["offer_id"] for o in engine.offers_for("bob", "kiosk-a", 2)] == ["a", "b"]
    assert engine.offers_for("nobody", "kiosk-a", 1)[0]["offer_id"] == "a"
    assert store.decisions.count() == 0  # listing is read-only
    with pytest.raises(KeyError):
        engine.offers_for("alice", "no-such-kiosk", 3)


def test_the_logged_eligible_set_decodes_to_every_eligible_offer(settings):
    import base64

    import numpy as np

    offers = [_offer(f"o{i:03d}", priority=i % 7) for i in range(120)] + [_offer("gone", stock=0)]
    engine, store, shows, clock = make(settings, offers, [customer("alice")], version=3)
    enter(engine, clock, "alice")
    d = last(store, shows)
    assert d.eligible_count == 120 and len(d.eligible) == 50  # the ranking is cut, the set is not
    version, bitmap = d.eligible_set.split(":")
    bits = np.unpackbits(np.frombuffer(base64.b64decode(bitmap), dtype=np.uint8))[: len(offers)]
    ids = sorted(o.offer_id for o in offers)
    assert version == "v3"
    assert {ids[i] for i in np.flatnonzero(bits)} == {f"o{i:03d}" for i in range(120)}


def test_forget_erases_the_engines_memory_and_clears_the_screen(settings):
    offers = [
        _offer("mine", audience="personalised", priority=5, caps=(Cap(scope="customer_offer", max=1, window_s=3_600),)),
        _offer("anyone"),
    ]
    engine, store, shows, clock = make(settings, offers, [customer("alice")])
    enter(engine, clock, "alice")
    assert last(store, shows).offer_id == "mine"
    store.db.execute("DELETE FROM customers WHERE customer_ref = 'alice'")
    engine.forget("alice")
    after = last(store, shows)
    assert (after.offer_id, after.customer_ref) == ("anyone", None)
    assert engine.caps.customer_offers("alice") == set() and engine.caps.cooling("alice") == {}


def test_cap_history_is_pruned_after_the_longest_window(settings):
    engine, _store, _shows, clock = make(settings, [_offer("a")], [customer("alice")])
    enter(engine, clock, "alice")
    assert engine.caps.prune(clock.wall().at.timestamp()) == 0
    assert engine.caps.prune(clock.wall().at.timestamp() + 32 * 86_400) >= 3  # customer, screen, kiosk
    assert engine.caps.screen_offers("screen-a") == set()


def test_local_events_count_while_they_run_and_bad_ones_are_refused(settings):
    engine, _store, _shows, clock = make(settings, [_offer("a")], [])
    wall = clock.wall()
    events = (
        {"kind": "Football", "starts_at": "2026-11-24T08:00:00Z", "ends_at": "2026-11-24T10:00:00Z"},
        {"kind": "market", "starts_at": "2026-11-25T08:00:00Z"},
        {"kind": "fair", "starts_at": "tomorrow"},
        {"starts_at": "2026-11-24T08:00:00Z"},
    )
    engine.context.on_context(ContextUpdate({"temp_c": 31}, events, wall))
    tags = engine.context.tags("entrance", wall.at, clock.mono())
    assert {"event:football", "temp:hot"} <= tags and "event:market" not in tags
    assert engine.context.rejected == {"local_event_bad_time": 1, "local_event_without_kind": 1}
    later = wall.at + timedelta(hours=2)
    assert "event:football" not in engine.context.tags("entrance", later, clock.mono())


def test_an_offer_is_shown_in_the_shoppers_language_else_the_stores(settings):
    """Translations per language: a shopper whose roster language has words sees them (on the screen and in the
    kiosk's list), `pt-BR` reads `pt`, and anyone else — unknown shoppers, a language without words — sees the
    store's default language."""
    settings = settings.model_copy(update={"store": settings.store.model_copy(update={"language": "de"})})
    words = {
        "fa": {"title": "قهوه با نصف قیمت", "body": "برای اعضا"},
        "de": {"title": "Kaffee zum halben Preis", "body": "Für Mitglieder"},
        "pt": {"title": "Café pela metade do preço"},
    }
    roster = [
        customer("alice").model_copy(update={"language": "fa"}),
        customer("bruno").model_copy(update={"language": "pt-BR"}),
        customer("carla").model_copy(update={"language": "it"}),
    ]
    coffee = _offer("coffee", title="Half-price coffee", body="For members", translations=words)
    engine, store, shows, clock = make(settings, [coffee], roster)
    seen = {}
    for who in ("alice", "bruno", "carla"):
        enter(engine, clock, who)
        got = shown(shows)[-1].offer
        seen[who] = (got["title"], got["language"])
    assert seen == {
        "alice": ("قهوه با نصف قیمت", "fa"),
        "bruno": ("Café pela metade do preço", "pt"),
        "carla": ("Kaffee zum halben Preis", "de"),
    }
    listed = engine.offers_for("alice", "kiosk-a", 3)
    assert (listed[0]["title"], listed[0]["text"]) == ("قهوه با نصف قیمت", "برای اعضا")
    assert coffee.display() == {**coffee.display(), "title": "Half-price coffee", "language": None}
    assert store.roster.get("alice").language == "fa"  # kept with the roster
