"""Purchases become conversions: attribution windows, one conversion per decision, transaction dedup,
holdout baselines, claim codes, anonymity and erasure."""

from datetime import timedelta

from edge_agent.bus import Bus
from edge_agent.decide.attribution import Attribution
from edge_agent.events import Conversion, Purchase, PurchaseLine, WallTime
from edge_agent.signage.proof import ProofOfPlay
from edge_agent.store.policy import Holdout
from tests.factories import customer

from .test_decide_rules import _offer, enter, last, make


def setup(settings, **bundle):
    offers = [
        _offer("coffee", priority=5, sku="coffee", attribution_window_h=48, cooldown_s=86_400),
        _offer("bread", priority=1, sku="bread"),
    ]
    roster = [customer("alice"), customer("bea"), customer("bob", personalisation=False)]
    engine, store, shows, clock = make(settings, offers, roster, **bundle)
    bus = Bus()
    conversions = bus.subscribe(Conversion, "test")
    attribution = Attribution(store, engine.profiles, engine.caps, bus)
    return engine, store, shows, clock, attribution, conversions


def buy(clock, txn, who, *lines, offset_s=0.0):
    at = clock.wall().at + timedelta(seconds=offset_s)
    return Purchase(txn, "till-1", who, tuple(PurchaseLine(*line) for line in lines), WallTime(at, True))


def test_a_purchase_in_the_window_converts_the_decision_and_its_impression(settings):
    engine, store, shows, clock, attribution, conversions = setup(settings)
    enter(engine, clock, "alice")
    d = last(store, shows)
    proof = ProofOfPlay(store, Bus(), clock)
    assert proof.acknowledge("screen-a", {"show_id": d.decision_id})
    assert store.db.execute("SELECT arm FROM impressions").fetchone()[0] == "default"  # the arm rides along
    clock.advance(3_600)
    out = attribution.on_purchase(buy(clock, "t1", "alice", ("coffee", 2, 300), ("milk", 1, 120)))
    assert [(c.decision_id, c.offer_id, c.arm, c.via) for c in out] == [(d.decision_id, "coffee", "default", "window")]
    assert out[0].impression_id == store.impressions.for_decision(d.decision_id) is not None
    assert conversions.queue.get_nowait().decision_id == d.decision_id
    rows = [r for r in store.outbox.peek("events", 100) if r.kind == "conversion"]
    assert len(rows) == 1 and rows[0].payload["arm"] == "default"
    assert store.db.execute("SELECT drop_class FROM outbox WHERE kind = 'conversion'").fetchone()[0] == 0
    # the conversion starts the offer's cool-down
    enter(engine, clock, "alice")
    assert last(store, shows).offer_id == "bread"


def test_outside_the_window_nothing_converts(settings):
    engine, store, _shows, clock, attribution, _ = setup(settings)
    enter(engine, clock, "alice")
    clock.advance(49 * 3_600)
    assert attribution.on_purchase(buy(clock, "t1", "alice", ("coffee", 1, 300))) == []
    assert store.conversions.count() == 0


def test_a_repeated_transaction_counts_once_and_a_decision_converts_once(settings):
    engine, store, _shows, clock, attribution, _ = setup(settings)
    enter(engine, clock, "alice")
    clock.advance(60)
    first = attribution.on_purchase(buy(clock, "t1", "alice", ("coffee", 1, 300)))
    assert attribution.on_purchase(buy(clock, "t1", "alice", ("coffee", 1, 300))) == []
    assert attribution.counts["duplicate_transactions"] == 1
    # enter made two decisions (screen and kiosk): the latest converted; a second purchase takes the other
    second = attribution.on_purchase(buy(clock, "t2", "alice", ("coffee", 1, 300)))
    third = attribution.on_purchase(buy(clock, "t3", "alice", ("coffee", 1, 300)))
    assert len(first) == len(second) == 1 and third == []
    assert first[0].decision_id != second[0].decision_id
    assert store.conversions.count() == 2
    assert store.purchases.transactions() == 3


def test_holdout_customers_convert_as_the_baseline(settings):
    holdout = Holdout(fraction=0.5, seed="h2")
    engine, store, shows, clock, attribution, _ = setup(settings, holdout=holdout)
    ref = next(r for r in ("alice", "bea") if engine._catalog.policy.holdout and _held(holdout, r))
    enter(engine, clock, ref)
    d = last(store, shows)
    assert d.arm == "holdout" and d.intended_offer_id == "coffee"
    out = attribution.on_purchase(buy(clock, "t1", ref, ("coffee", 1, 300), offset_s=10))
    assert [(c.offer_id, c.arm, c.impression_id) for c in out] == [("coffee", "holdout", None)]


def _held(holdout, ref):
    from edge_agent.decide.experiments import in_holdout

    return in_holdout(holdout, ref)


def test_anonymous_purchases_store_nothing_about_anyone(settings):
    _engine, store, _shows, clock, attribution, _ = setup(settings)
    assert attribution.on_purchase(buy(clock, "t1", None, ("coffee", 1, 300))) == []
    assert store.db.execute("SELECT count(*) FROM purchases").fetchone()[0] == 0
    assert store.purchases.transactions() == 1
    assert attribution.counts["anonymous_transactions"] == 1


def _claim(store, clock, offer_id, decision_id):
    at = clock.wall().iso()
    return store.claims.claim(
        "alice", offer_id, touchpoint="kiosk-a", at=at, expires_at="9999-12-31T00:00:00+00:00", decision_id=decision_id
    ).code


def test_a_claim_code_converts_the_claimed_offer_once(settings):
    engine, store, shows, clock, attribution, _ = setup(settings)
    enter(engine, clock, "alice")
    d = last(store, shows)
    code = _claim(store, clock, "coffee", d.decision_id)
    clock.advance(5 * 86_400)  # long after the window: the claim still counts
    out = attribution.on_purchase(buy(clock, "t1", None, ("coffee", 1, 300, code.lower())))
    assert [(c.decision_id, c.customer_ref, c.via) for c in out] == [(d.decision_id, "alice", "claim")]
    assert attribution.on_purchase(buy(clock, "t2", None, ("coffee", 1, 300, code))) == []
    assert attribution.counts["claims_used_twice"] == 1
    assert attribution.on_purchase(buy(clock, "t3", None, ("coffee", 1, 300, "NOSUCHCODE"))) == []
    assert attribution.counts["unknown_claim_codes"] == 1


def test_erasing_a_customer_removes_purchases_conversions_and_claims(settings):
    engine, store, _shows, clock, attribution, _ = setup(settings)
    enter(engine, clock, "alice")
    _claim(store, clock, "coffee", None)
    attribution.on_purchase(buy(clock, "t1", "alice", ("coffee", 1, 300), offset_s=5))
    tables = ("purchases", "conversions", "claims")
    assert all(store.db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] == 1 for t in tables)
    store.db.execute("DELETE FROM customers WHERE customer_ref = 'alice'")
    for table in tables:
        assert store.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table


def test_a_newer_bundle_without_the_offer_still_lets_its_decisions_convert(settings):
    from edge_agent.store.bundles import OfferBundle, apply_offers

    from .test_decide_rules import T0

    engine, store, shows, clock, attribution, _ = setup(settings)
    enter(engine, clock, "alice")
    d = last(store, shows)
    assert (d.sku, d.attribution_window_h) == ("coffee", 48)
    newer = OfferBundle(version=2, issued_at=T0, offers=[_offer("bread", sku="bread")])
    apply_offers(store.db, store.bundle_versions, store.offers, newer, T0.isoformat())
    engine._catalog.reload()
    clock.advance(47 * 3_600)
    out = attribution.on_purchase(buy(clock, "t1", "alice", ("coffee", 1, 300)))
    assert [c.offer_id for c in out] == ["coffee"]
