import time

import pytest

from edge_agent.bus import Bus
from edge_agent.clock import Clock
from edge_agent.events import Channel, Customer, Sighting
from edge_agent.sources.checkin.source import CheckinRejected, CheckinSource
from edge_agent.store import open_store
from simulators.checkin_app import CheckinIssuer
from tests.factories import DEFAULT_ROSTER


@pytest.fixture
def source(settings):
    store = open_store(settings.database.path)
    store.roster.upsert(DEFAULT_ROSTER, updated_at="t")
    bus = Bus()
    sightings = bus.subscribe(Sighting, "test")
    yield CheckinSource(settings, store, bus, Clock()), store, sightings
    store.close()


def _state(store):
    return {t: store.db[t].count for t in ("checkin_nonces", "decisions", "impressions", "outbox")}


def test_a_valid_token_becomes_an_explicit_checkin_sighting(source, issuer):
    checkin, _, sightings = source
    accepted = checkin.accept(issuer.token("alice", "kiosk-a"))
    assert (accepted.touchpoint, accepted.zone) == ("kiosk-a", "entrance")
    s = sightings.queue.get_nowait()
    assert s.subject == Customer("alice") and s.zone == "entrance" and s.channel is Channel.CHECKIN
    assert s.explicit and s.touchpoint == "kiosk-a"
    assert checkin.accepted == 1


@pytest.mark.parametrize(
    ("make", "code", "status"),
    [
        (lambda i: CheckinIssuer("store-test").token("alice", "kiosk-a"), "bad_signature", 401),
        (lambda i: i.token("alice", "kiosk-a", now=time.time() - 3600), "expired", 401),
        (lambda i: i.token("alice", "kiosk-a", now=time.time() + 3600), "not_yet_valid", 401),
        (lambda i: i.token("alice", "kiosk-a", lifetime_s=86_400), "malformed", 400),
        (lambda i: CheckinIssuer("store-other", key=i.key).token("alice", "kiosk-a"), "wrong_store", 403),
        (lambda i: i.token("alice", "back-office"), "unknown_touchpoint", 403),
        (lambda i: i.token("nobody", "kiosk-a"), "no_consent", 403),
        (lambda i: i.token("carol", "kiosk-a"), "no_consent", 403),  # in roster, check-in consent withheld
        (lambda i: "SEA1.garbage", "malformed", 400),
    ],
)
def test_refused_tokens_name_the_reason_and_change_nothing(source, issuer, make, code, status):
    checkin, store, sightings = source
    before = _state(store)
    with pytest.raises(CheckinRejected) as info:
        checkin.accept(make(issuer))
    assert (info.value.code, info.value.status) == (code, status)
    assert info.value.reason
    assert _state(store) == before
    assert sightings.queue.empty()
    assert checkin.rejected[code] == 1


def test_a_replayed_token_is_refused(source, issuer):
    checkin, _, sightings = source
    token = issuer.token("alice", "screen-b")
    checkin.accept(token)
    with pytest.raises(CheckinRejected) as info:
        checkin.accept(token)
    assert info.value.code == "replayed" and info.value.status == 409
    assert sightings.queue.qsize() == 1


def test_replay_protection_survives_a_restart(settings, issuer):
    token = issuer.token("alice", "screen-b")
    for expected in ("accepted", "replayed"):
        store = open_store(settings.database.path)
        store.roster.upsert(DEFAULT_ROSTER, updated_at="t")
        checkin = CheckinSource(settings, store, Bus(), Clock())
        try:
            checkin.accept(token)
            outcome = "accepted"
        except CheckinRejected as exc:
            outcome = exc.code
        store.close()
        assert outcome == expected
