"""Bad input at the check-in and kiosk identification boundaries, below HTTP: tokens correctly signed by the
app's key but carrying any claims, and any identification attempt, are accepted or refused with a code, a
reason and a 4xx status, and every outcome is counted once."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.sources.checkin.kiosk_id import IdentifyRefused, KioskIdentifier
from edge_agent.sources.checkin.source import CheckinRejected
from edge_agent.sources.checkin.token import CheckinClaims, issue
from tests.factories import STORE
from tests.surfaces import ALICE_LOYALTY, ALICE_PHONE, ROSTER, seeded, surfaces_settings

from .strategies import json_values

NOW = int(time.time())
CHECKIN_MEMBERS = {m.customer_ref for m in ROSTER if m.consents.get("checkin")}


@pytest.fixture
def agent(tmp_path, issuer):
    agent = seeded(surfaces_settings(tmp_path, issuer))
    yield agent
    agent.store.close()


def near(*good: object) -> st.SearchStrategy[object]:
    return st.sampled_from(good) | json_values


claims = st.builds(
    CheckinClaims,
    customer_ref=near("alice", "bob", "nobody", "x" * 129),
    touchpoint=near("screen-a", "kiosk-a", "nowhere"),
    store=near(STORE, "store-other"),
    issued_at=near(NOW, NOW - 3600, NOW + 3600, 2**63, -1),
    expires_at=near(NOW + 60, NOW - 60, NOW + 10**6, 2**70),
    token_id=near("t-1", "t-2", ""),
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(claims)
def test_a_signed_token_with_any_claims_is_accepted_or_refused_and_counted(agent, issuer, drawn):
    checkin = agent.checkin
    before = checkin.accepted + sum(checkin.rejected.values())
    try:
        accepted = checkin.accept(issue(issuer.key, drawn))
    except CheckinRejected as exc:
        assert exc.code and exc.reason and 400 <= exc.status < 500
    else:
        assert accepted.customer_ref == drawn.customer_ref and accepted.customer_ref in CHECKIN_MEMBERS
    assert checkin.accepted + sum(checkin.rejected.values()) == before + 1


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(near("qr", "loyalty", "phone"), near(ALICE_LOYALTY, ALICE_PHONE, "40099999", "+44", "x" * 5000))
def test_any_identification_at_a_kiosk_is_a_customer_or_a_counted_refusal(agent, method, value):
    identifier = KioskIdentifier(agent.settings, agent.store, agent.bus, agent.clock, agent.checkin)
    before = sum(identifier.outcomes.values())
    try:
        ref = identifier.identify("kiosk-a", method, value)  # the kiosk API has checked the touchpoint
    except IdentifyRefused as exc:
        assert exc.code and exc.reason and 400 <= exc.status < 500
    else:
        assert ref in {"alice", "bob"}
    assert sum(identifier.outcomes.values()) == before + 1
