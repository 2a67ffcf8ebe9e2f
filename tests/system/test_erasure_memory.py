"""Erasure (a cloud command or a roster that drops someone) clears every room's memory before the receipt."""

from __future__ import annotations

import asyncio
import time

import numpy as np

from edge_agent.bus import Bus
from edge_agent.clock import Clock
from edge_agent.config import from_dict
from edge_agent.events import ConsentChanged, Erased, Idle, Presence, PresenceKind, Show
from edge_agent.sources.ble.scanner import Advert
from edge_agent.sources.vision.source import VisionSource
from edge_agent.store import open_store
from edge_agent.store.faces import encode_embedding
from edge_agent.store.roster import RosterEntry
from simulators.cloud import roster_bundle
from simulators.phone import phone_for
from tests.factories import DEFAULT_OFFERS, DEVICE, config_dict, device_key_file, mqtt_section, seed, wait_for

ALICE, BOB = phone_for("alice", "chain-test"), phone_for("bob", "chain-test")
CONSENTS = {"checkin": True, "ble": True, "personalisation": True}


def _settings(tmp_path, issuer, broker, cloud):
    data = config_dict(tmp_path, issuer, mqtt=mqtt_section(broker, cloud))
    data["store"]["device_key_file"] = device_key_file(tmp_path)
    data["ble"] = {"remote_scanners": True, "receivers": [{"id": "edge-test", "zone": "entrance"}]}
    return from_dict(data)


def _advert(phone, rssi=-50.0):
    return Advert("edge-test", time.monotonic(), rssi, phone.advert(time.time()))


def _collect(agent, kind):
    sub, seen = agent.bus.subscribe(kind, f"test.{kind.__name__}", maxsize=10_000), []

    async def run():
        async for event in sub:
            seen.append(event)

    return seen, asyncio.create_task(run())


async def _placed_with_offer(agent, phone):
    ref = phone.customer_ref
    shows, task = _collect(agent, Show)
    try:
        while not any(s.customer_ref == ref and s.touchpoint == "screen-a" for s in shows):
            agent.ble.enqueue(_advert(phone))
            await asyncio.sleep(0.1)
    finally:
        task.cancel()
    assert (f"customer:{ref}", "entrance") in agent.presence.placed()


async def test_erasing_a_present_customer_clears_screen_presence_and_tokens_before_the_receipt(
    tmp_path,
    issuer,
    broker,
    cloud,
    running,
):
    agent = await running(_settings(tmp_path, issuer, broker, cloud), seeded=False)
    seed(agent, DEFAULT_OFFERS, [ALICE.roster_entry(time.time(), CONSENTS, segments=("coffee",))])
    await agent.ble.refresh(force=True)
    await wait_for(lambda: agent.cloud.link.connected.is_set(), timeout=30.0, what="the link")
    await asyncio.wait_for(_placed_with_offer(agent, ALICE), 30)
    presences, p_task = _collect(agent, Presence)
    screens, s_task = _collect(agent, Show)
    idles, i_task = _collect(agent, Idle)
    at_receipt = {}

    def receipt_queued():  # what memory looked like when the receipt reached the outbox
        rows = [r for r in agent.store.outbox.peek("ack") if r.kind == "erasure_receipt"]
        if rows and not at_receipt:
            at_receipt["placed"] = set(agent.presence.placed())
            at_receipt["resolves"] = agent.ble.resolver.tokens.resolve(ALICE.token(time.time()))
        return rows

    erase = await cloud.command(DEVICE, "erase", customer_ref="alice", consent_epoch=3)
    await wait_for(receipt_queued, timeout=30.0, what="the receipt in the outbox")
    assert ("customer:alice", "entrance") not in at_receipt["placed"] and at_receipt["resolves"] is None
    receipt = await cloud.wait_for(lambda: cloud.ack_for(erase))
    assert receipt["status"] == "done"
    await wait_for(lambda: any(p.kind is PresenceKind.EXIT for p in presences), timeout=30.0, what="alice's exit")
    await wait_for(lambda: screens or idles, timeout=30.0, what="the screen turning to anyone")
    for t in (p_task, s_task, i_task):
        t.cancel()
    assert [(p.subject.key, p.kind) for p in presences][:1] == [("customer:alice", PresenceKind.EXIT)]
    assert all(s.customer_ref is None for s in screens)
    assert agent.engine._showing["screen-a"].customer_ref is None
    # her phone keeps advertising: it no longer resolves, nothing new is placed
    agent.ble.enqueue(_advert(ALICE))
    await wait_for(lambda: agent.ble.resolver.counts["unknown_token"] >= 1, timeout=30.0, what="the advert handled")
    assert not any(key == "customer:alice" for key, _ in agent.presence.placed())


async def test_a_roster_that_drops_a_present_customer_clears_them_at_once(
    tmp_path,
    issuer,
    broker,
    cloud,
    running,
):
    agent = await running(_settings(tmp_path, issuer, broker, cloud), seeded=False)
    now = time.time()
    await wait_for(lambda: agent.cloud.link.connected.is_set(), timeout=30.0, what="the link")
    seed(agent, DEFAULT_OFFERS, [])
    await cloud.publish_roster(roster_bundle(1, [ALICE.roster_entry(now, CONSENTS), BOB.roster_entry(now, CONSENTS)]))
    await wait_for(lambda: agent.store.bundle_versions.current("roster") == 1, timeout=30.0, what="the roster")
    await agent.ble.refresh(force=True)
    await asyncio.wait_for(_placed_with_offer(agent, ALICE), 30)
    await cloud.publish_roster(roster_bundle(2, [BOB.roster_entry(now, CONSENTS)]))
    await wait_for(lambda: agent.store.bundle_versions.current("roster") == 2, timeout=30.0, what="the second roster")
    # at once, not after a hold-down or the next roster poll
    assert not any(key == "customer:alice" for key, _ in agent.presence.placed())
    assert agent.ble.resolver.tokens.resolve(ALICE.token(time.time())) is None
    assert agent.ble.resolver.tokens.resolve(BOB.token(time.time())) == "bob"


def _unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return v / np.linalg.norm(v)


def test_an_erased_or_withdrawn_face_stops_matching_at_once(tmp_path, issuer):
    data = config_dict(tmp_path, issuer)
    data["vision"] = {"faces": {"identify": True}, "cameras": []}
    settings = from_dict(data)
    store, bus, clock = open_store(tmp_path / "v.db"), Bus(), Clock()
    faces = {ref: _unit(i) for i, ref in enumerate(("alice", "bob", "carol"))}
    store.roster.upsert(
        [
            RosterEntry(customer_ref=ref, consents={"face": True}, face_embeddings=[encode_embedding(v)])
            for ref, v in faces.items()
        ],
        updated_at="t",
    )
    vision = VisionSource(settings, store, bus, clock)
    vision._refresh_gallery()
    gallery = lambda: vision._gallery  # noqa: E731

    def matches(ref):
        found = gallery().best(faces[ref], 0.9)
        return found is not None and found.customer_ref == ref

    assert all(matches(ref) for ref in faces)
    bus.publish(Erased("alice", clock.wall()))
    bus.publish(ConsentChanged("bob", "face", False, clock.wall()))
    assert not matches("alice") and not matches("bob") and matches("carol")
    assert vision.health()["enrolled"] == 1
    store.close()
