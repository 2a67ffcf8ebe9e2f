from datetime import UTC, datetime, timedelta

import numpy as np

from edge_agent.bus import Bus
from edge_agent.clock import Clock
from edge_agent.config import Touchpoint
from edge_agent.decide.catalog import OfferCatalog, targets
from edge_agent.decide.eligibility import eligible, personalised
from edge_agent.decide.engine import OfferEngine
from edge_agent.decide.profile import Profile
from edge_agent.decide.scoring import Features
from edge_agent.decide.slate import Slate
from edge_agent.events import Customer, Idle, Presence, PresenceKind, Show, WallTime
from edge_agent.store import open_store
from tests.factories import customer, offer

NOW = datetime.now(UTC)


def ids(offers):
    return [o.offer_id for o in offers]


def _slate(offers):
    return Slate.build(sorted(offers, key=lambda o: o.offer_id))


def _eligible(offers, *, personal, zone="entrance", kind="screen"):
    tp = Touchpoint(id=f"{kind}-x", kind=kind, zone=zone)
    slate = Slate.build(sorted((o for o in offers if targets(o, tp)), key=lambda o: o.offer_id))
    return [slate.offers[i].offer_id for i in np.flatnonzero(eligible(slate, NOW.timestamp(), personal=personal))]


def test_eligibility_checks_window_zone_touchpoint_stock_and_consent():
    offers = [
        offer("open"),
        offer("future", valid_from=NOW + timedelta(hours=1), valid_to=NOW + timedelta(days=1)),
        offer("past", valid_from=NOW - timedelta(days=2), valid_to=NOW - timedelta(seconds=1)),
        offer("bakery-only", zones=("bakery",)),
        offer("kiosk-only", touchpoints=("kiosk",)),
        offer("sold-out", stock=0),
        offer("in-stock", stock=3),
        offer("members", audience="personalised"),
    ]
    assert _eligible(offers, personal=False) == ["in-stock", "open"]
    assert _eligible(offers, personal=False, kind="kiosk") == ["in-stock", "kiosk-only", "open"]
    assert _eligible(offers, personal=True, zone="bakery") == ["bakery-only", "in-stock", "members", "open"]


def test_personalisation_needs_its_own_consent():
    assert personalised(customer("bob", personalisation=False)) is None
    assert personalised(None) is None
    assert personalised(customer("alice")).customer_ref == "alice"


def test_linear_score_weighs_priority_segments_and_context():
    offers = [
        offer("b", priority=1.0),
        offer("a", priority=1.0),
        offer("coffee", segments=("coffee",), priority=0.5),
        offer("umbrella", context_tags=("weather:rain", "zone:entrance")),
    ]
    slate = _slate(offers)
    features = Features(slate, {"weather:rain", "zone:entrance", "daypart:morning"})
    weights = {"priority": 1.0, "segment_match": 1.0, "context_match": 0.5}
    assert dict(zip([o.offer_id for o in slate.offers], features.score(weights), strict=True)) == {
        "a": 1.0,
        "b": 1.0,
        "coffee": 0.5,
        "umbrella": 1.0,
    }
    features.add_profile(("coffee",), Profile(), {}, NOW.timestamp())
    assert features.score(weights)[slate.position["coffee"]] == 1.5
    assert features.of(slate.position["umbrella"]) == {"context_match": 2.0}


def _engine(settings, offers, roster):
    store = open_store(settings.database.path)
    store.offers.replace_all(offers)
    store.roster.upsert(roster, updated_at="t")
    bus = Bus()
    shows = bus.subscribe(Show, "test")
    idles = bus.subscribe(Idle, "test")
    return OfferEngine(settings, store, OfferCatalog(store), bus, Clock()), store, shows, idles


def _presence(kind, who="alice", zone="entrance", explicit=False):
    return Presence(Customer(who), zone, kind, 0.0, 1.0, WallTime(NOW, True), explicit=explicit)


def _drain(q):
    out = []
    while not q.queue.empty():
        out.append(q.queue.get_nowait())
    return out


def test_a_customer_entering_gets_an_offer_on_every_touchpoint_of_the_zone(settings):
    offers = [offer("welcome"), offer("coffee", audience="personalised", segments=("coffee",))]
    engine, store, shows, _ = _engine(settings, offers, [customer("alice", segments=("coffee",))])
    engine.on_presence(_presence(PresenceKind.ENTER))
    got = _drain(shows)
    assert sorted(s.touchpoint for s in got) == ["kiosk-a", "screen-a"]
    assert {s.offer["offer_id"] for s in got} == {"coffee"}
    assert {s.customer_ref for s in got} == {"alice"}
    stored = store.decisions.get(got[0].show_id)
    assert stored.customer_ref == "alice" and stored.eligible == ["coffee", "welcome"]
    assert stored.scores == {"coffee": 1.0, "welcome": 0.0}


def test_without_personalisation_consent_the_shopper_sees_content_for_anyone(settings):
    offers = [offer("welcome"), offer("coffee", audience="personalised")]
    engine, store, shows, _ = _engine(settings, offers, [customer("bob", personalisation=False)])
    engine.on_presence(_presence(PresenceKind.ENTER, who="bob"))
    got = _drain(shows)
    assert {s.offer["offer_id"] for s in got} == {"welcome"}
    assert {store.decisions.get(s.show_id).customer_ref for s in got} == {None}


def test_on_exit_the_screen_turns_to_whoever_is_still_there_or_to_anyone(settings):
    offers = [
        offer("welcome"),
        offer("for-a", audience="personalised", segments=("a",)),
        offer("for-c", audience="personalised", segments=("c",)),
    ]
    roster = [customer("alice", segments=("a",)), customer("carl", segments=("c",))]
    engine, _, shows, _ = _engine(settings, offers, roster)
    engine.on_presence(_presence(PresenceKind.ENTER, "alice"))
    engine.on_presence(_presence(PresenceKind.ENTER, "carl"))
    _drain(shows)
    engine.on_presence(_presence(PresenceKind.EXIT, "carl"))
    assert {s.offer["offer_id"] for s in _drain(shows)} == {"for-a"}
    engine.on_presence(_presence(PresenceKind.EXIT, "alice"))
    after = _drain(shows)
    assert {s.customer_ref for s in after} == {None}
    assert {s.offer["offer_id"] for s in after} <= {"welcome"}


def test_anonymous_content_rotates_and_idles_when_nothing_is_eligible(settings):
    engine, store, shows, idles = _engine(settings, [offer("a"), offer("b", priority=1.0)], [])
    order = []
    for _ in range(3):
        engine.rotate_anonymous()
        order.append(next(s.offer["offer_id"] for s in _drain(shows) if s.touchpoint == "screen-a"))
    assert order == ["b", "a", "b"]
    store.offers.replace_all([])
    engine._catalog.reload()
    engine.rotate_anonymous()
    assert sorted(i.touchpoint for i in _drain(idles)) == ["kiosk-a", "screen-a", "screen-b"]


def test_a_dwell_without_a_new_act_changes_nothing(settings):
    engine, _, shows, _ = _engine(settings, [offer("a")], [customer("alice")])
    engine.on_presence(_presence(PresenceKind.ENTER))
    _drain(shows)
    engine.on_presence(_presence(PresenceKind.DWELL))
    assert _drain(shows) == []
    engine.on_presence(_presence(PresenceKind.DWELL, explicit=True))
    assert len(_drain(shows)) == 2
