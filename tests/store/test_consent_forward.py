"""Consent only moves forward: a roster, full or delta, never lowers a customer's consent epoch nor re-grants a
channel withdrawn in the store at a later epoch, and a withdrawn channel's secrets stay gone."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from edge_agent.events import ConsentChanged
from edge_agent.store.roster import RosterEntry, forward
from simulators.cloud import roster_bundle
from tests.factories import DEVICE, mqtt_settings

TODAY = datetime.now(UTC).strftime("%Y%m%d")
DAY_KEY = base64.b64encode(bytes(range(16))).decode("ascii")
CHANNELS = ("checkin", "ble", "face", "personalisation", "assisted")
consent_sets = st.dictionaries(st.sampled_from(CHANNELS), st.booleans())


def alice(epoch: int, **consents: bool) -> RosterEntry:
    granted = {"checkin": True, "ble": True, "personalisation": True, **consents}
    return RosterEntry(
        customer_ref="alice",
        consent_epoch=epoch,
        consents=granted,
        day_keys={TODAY: DAY_KEY} if granted["ble"] else {},
    )


@given(st.integers(0, 9), consent_sets, st.integers(0, 9), consent_sets)
def test_the_epoch_never_goes_down_and_a_withdrawal_here_survives_any_roster_not_newer(
    cloud_epoch, cloud_consents, held_epoch, held_consents
):
    entry = RosterEntry(customer_ref="alice", consent_epoch=cloud_epoch, consents=cloud_consents)
    applied = forward(entry, (held_epoch, held_consents))
    assert applied.consent_epoch == max(cloud_epoch, held_epoch)
    if cloud_epoch > held_epoch:
        assert applied.consents == cloud_consents  # the cloud knows of a later change: it wins whole
    else:
        withdrawn_here = {ch for ch, ok in held_consents.items() if not ok}
        assert not any(applied.consents_to(ch) for ch in withdrawn_here)
        if cloud_epoch < held_epoch:
            assert applied.consents == held_consents  # a roster made before the store's change changes nothing
        else:
            assert {ch for ch in CHANNELS if applied.consents_to(ch)} <= {
                ch for ch in CHANNELS if entry.consents_to(ch)
            }


def test_a_customer_new_to_the_store_is_taken_as_the_cloud_sends_them():
    entry = alice(3)
    assert forward(entry, None) == entry


async def test_a_roster_from_before_a_kiosk_withdrawal_neither_regrants_nor_restores_day_keys(
    tmp_path, issuer, broker, cloud, running
):
    """The attack: replaying (or just slowly sending) a roster built before the shopper withdrew in the store."""
    agent = await running(mqtt_settings(tmp_path, issuer, broker, cloud), seeded=False)
    await cloud.wait_for(lambda: cloud.status.get(DEVICE) == "online")
    await cloud.publish_roster(roster_bundle(1, [alice(1)]))
    await cloud.wait_for(lambda: agent.store.bundle_versions.current("roster") == 1)
    assert agent.store.roster.ble_day_keys([TODAY]) == {"alice": {TODAY: bytes(range(16))}}

    wall = agent.clock.wall()  # the shopper turns Bluetooth off at the kiosk
    epoch = agent.store.consents.set("alice", "ble", False, at=wall.iso(), touchpoint="kiosk-a")
    agent.bus.publish(ConsentChanged("alice", "ble", False, wall))
    assert epoch == 2 and agent.store.roster.ble_day_keys([TODAY]) == {}

    for version, stale in ((2, alice(1)), (3, alice(2))):  # made before the change, or at its epoch
        await cloud.publish_roster(roster_bundle(version, [stale]))
        await cloud.wait_for(lambda v=version: agent.store.bundle_versions.current("roster") == v)
        held = agent.store.roster.get("alice")
        assert held is not None and held.consent_epoch == 2 and not held.consents_to("ble")
        assert held.consents_to("checkin") and agent.store.roster.ble_day_keys([TODAY]) == {}

    await cloud.publish_roster(roster_bundle(4, [alice(3)]))  # she turned it on again in the app: a later epoch
    await cloud.wait_for(lambda: agent.store.bundle_versions.current("roster") == 4)
    held = agent.store.roster.get("alice")
    assert held is not None and held.consent_epoch == 3 and held.consents_to("ble")
    assert agent.store.roster.ble_day_keys([TODAY]) == {"alice": {TODAY: bytes(range(16))}}


async def test_a_delta_cannot_regrant_either(tmp_path, issuer, broker, cloud, running):
    agent = await running(mqtt_settings(tmp_path, issuer, broker, cloud), seeded=False)
    await cloud.wait_for(lambda: cloud.status.get(DEVICE) == "online")
    await cloud.publish_roster(roster_bundle(1, [alice(1)]))
    await cloud.wait_for(lambda: agent.store.bundle_versions.current("roster") == 1)
    agent.store.consents.set("alice", "ble", False, at=agent.clock.wall().iso(), touchpoint="kiosk-a")
    delta = {"version": 2, "base_version": 1, "issued_at": "2026-12-05T10:00:00+00:00"}
    delta["upsert"] = [alice(1).model_dump(mode="json")]
    await cloud.publish_delta(delta)
    await cloud.wait_for(lambda: agent.store.bundle_versions.current("roster") == 2)
    held = agent.store.roster.get("alice")
    assert held is not None and held.consent_epoch == 2 and not held.consents_to("ble")
    assert agent.store.roster.ble_day_keys([TODAY]) == {}
