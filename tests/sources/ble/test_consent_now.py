"""Consent changes reach the BLE resolver at once, and a stale roster identifies nobody (fails closed)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from edge_agent.bus import Bus
from edge_agent.config import from_dict
from edge_agent.events import ConsentChanged
from edge_agent.sources.ble.scanner import Advert, BleSource
from edge_agent.sources.roster_age import RosterAge
from edge_agent.store import open_store
from edge_agent.store.bundles import RosterBundle, apply_roster
from tests.factories import config_dict

from .test_ble_source import ALICE, T0, FakeClock, source

HOUR = 3600.0


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="milliseconds")


async def test_a_ble_withdrawal_at_the_kiosk_stops_resolution_before_the_next_roster_poll(tmp_path, issuer):
    src, bus, clock, store = await source(tmp_path, issuer)
    advert = Advert("edge-test", 1.0, -60.0, ALICE.advert(T0))
    assert src.resolver.handle(advert) is not None
    store.consents.set("alice", "ble", False, at="2027-01-15T08:00:01", touchpoint="kiosk-a")
    bus.publish(ConsentChanged("alice", "ble", False, clock.wall()))  # what the kiosk does
    assert src.resolver.handle(advert) is None  # no refresh in between
    assert src.health()["customers_resolvable"] == 0


async def test_a_grant_or_another_channel_leaves_the_tokens_alone(tmp_path, issuer):
    src, bus, clock, _store = await source(tmp_path, issuer)
    bus.publish(ConsentChanged("alice", "face", False, clock.wall()))
    bus.publish(ConsentChanged("alice", "ble", True, clock.wall()))
    assert src.resolver.handle(Advert("edge-test", 1.0, -60.0, ALICE.advert(T0))) is not None


async def test_a_stale_roster_identifies_nobody_until_a_fresh_one_arrives(tmp_path, issuer, caplog):
    settings = from_dict(config_dict(tmp_path, issuer, ble={"receivers": [{"id": "edge-test", "zone": "entrance"}]}))
    store, bus, clock = open_store(settings.database.path), Bus(), FakeClock()
    entry = ALICE.roster_entry(T0, {"ble": True})
    store.roster.upsert([entry], updated_at=_iso(T0 - 3 * HOUR))  # loaded three hours ago, never refreshed
    age = RosterAge(store, clock, max_age_s=2 * HOUR)
    src = BleSource(settings, store, bus, clock, roster_age=age)
    await src.refresh(force=True)
    caplog.set_level(logging.INFO, logger="edge_agent.sources.roster_age")

    for _ in range(5):
        clock.t += 0.5
        assert src.resolver.handle(Advert("edge-test", clock.t, -60.0, ALICE.advert(T0))) is None
    assert src.resolver.counts["refused_stale_roster"] == 5 and age.refused == 5
    assert age.health() == {"max_age_s": 2 * HOUR, "age_s": 3 * HOUR, "stale": True, "refused": 5}
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1  # logged once, not per advert

    bundle = RosterBundle(version=1, issued_at=datetime.fromtimestamp(T0, UTC), customers=[])
    bundle = bundle.model_copy(update={"customers": [entry]})  # as the downlink hands it on, its sealed copy opened
    apply_roster(store.db, store.bundle_versions, store.roster, bundle, _iso(T0 - 60))
    clock.t += 2  # the age is re-read at most once a second
    assert src.resolver.handle(Advert("edge-test", clock.t, -60.0, ALICE.advert(T0))) is not None
    assert age.health()["stale"] is False and "fresh roster" in caplog.records[-1].getMessage()


def test_the_age_limit_applies_only_with_a_cloud_link(tmp_path, issuer):
    from edge_agent.app import Agent

    agent = Agent(from_dict(config_dict(tmp_path, issuer)))
    try:
        assert agent.roster_age.stale() is False and agent.health()["roster"]["max_age_s"] is None
    finally:
        agent.store.close()
