"""Properties: caps count exactly the decisions inside each rolling window; prices never leave the bounds."""

import tracemalloc
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from edge_agent.decide.caps import CapLedger
from edge_agent.decide.pricing import price
from edge_agent.store.offers import Cap
from edge_agent.store.policy import PricingBounds
from tests.factories import offer

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)

caps = st.lists(
    st.builds(
        Cap,
        scope=st.sampled_from(["customer_offer", "customer", "screen"]),
        max=st.integers(1, 5),
        window_s=st.sampled_from([60.0, 3_600.0, 86_400.0]),
    ),
    min_size=1,
    max_size=3,
)
history = st.lists(
    st.tuples(
        st.sampled_from(["s1", "s2"]),
        st.sampled_from(["alice", "bob"]),
        st.sampled_from(["o1", "o2"]),
        st.floats(0, 100_000),
    ),
    max_size=40,
)


@given(caps, history)
def test_a_cap_blocks_exactly_when_its_window_is_full(cap_list, shown):
    ledger = CapLedger()
    now = 100_000.0
    for screen, who, offer_id, ago in sorted(shown, key=lambda s: -s[3]):
        ledger.shown(screen, who, offer_id, now - ago)

    def count(cap):
        return sum(
            1
            for screen, who, offer_id, ago in shown
            if ago <= cap.window_s
            and (
                (cap.scope == "screen" and screen == "s1" and offer_id == "o1")
                or (cap.scope == "customer" and who == "alice")
                or (cap.scope == "customer_offer" and who == "alice" and offer_id == "o1")
            )
        )

    expected = any(count(c) >= c.max for c in cap_list)  # the strictest wins: any full window blocks
    assert ledger.blocked(tuple(cap_list), "s1", "alice", "o1", now) == expected


def test_a_month_of_customers_costs_under_a_kilobyte_each():
    """The ledger keeps every customer shown an offer within the longest cap window (a month): 20 000 customers
    shown four offers each must stay a few MB, not tens."""
    refs = [f"customer-{i:06d}" for i in range(20_000)]  # the roster's strings, not the ledger's cost
    offers = [f"offer-{i:03d}" for i in range(40)]
    ledger = CapLedger()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i, ref in enumerate(refs):
            for k in range(4):
                ledger.shown(f"screen-{k}", ref, offers[(i + 7 * k) % 40], 1_000.0 + i + k / 10)
        per_customer = (tracemalloc.get_traced_memory()[0] - before) / len(refs)
    finally:
        tracemalloc.stop()
    assert per_customer < 1_000, f"{per_customer:.0f} bytes a customer"
    assert ledger.blocked((Cap(scope="customer", max=4, window_s=86_400.0),), "screen-0", refs[-1], offers[0], 30_000.0)


@given(
    base=st.integers(1, 100_000),
    pct=st.lists(st.floats(0, 100), min_size=1, max_size=3),
    max_discount=st.floats(0, 100),
    floor_share=st.none() | st.floats(0, 1),
    stock=st.integers(0, 1_000),
    hours_left=st.floats(0.1, 200),
)
def test_prices_stay_within_the_bundle_bounds_and_the_floor(base, pct, max_discount, floor_share, stock, hours_left):
    rules = [{"kind": "overstock", "stock_above": 10, "percent_off": pct[0]}]
    rules += [{"kind": "expiry", "within_h": 48, "percent_off": p} for p in pct[1:]]
    floor = None if floor_share is None else int(base * floor_share)
    o = offer(
        "x",
        price_cents=base,
        currency="EUR",
        stock=stock,
        pricing=tuple(rules),
        floor_price_cents=floor,
        expires_at=NOW + timedelta(hours=hours_left),
        valid_from=NOW - timedelta(days=1),
        valid_to=NOW + timedelta(days=10),
    )
    p = price(o, NOW, PricingBounds(max_discount_pct=max_discount), UTC)
    assert p.price_cents is not None and p.price_cents <= base
    assert p.price_cents >= round(base * (1 - max_discount / 100)) - 1
    if floor is not None:
        assert p.price_cents >= floor
    assert (p.was_cents is None) == (p.price_cents == base)
