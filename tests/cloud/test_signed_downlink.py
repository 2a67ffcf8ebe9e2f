"""Attacks on the downlink through a real Mosquitto: anyone who can publish on the store's topics (a scanner node's
credentials, a bridge, a recording) tries to erase a customer, put an offer on a screen or fake the context.
Only messages the cloud signed for this store, this device and about now are carried out, each once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.cloud.envelope import seal
from edge_agent.events import ContextUpdate
from edge_agent.ops import metrics
from simulators.cloud import CloudSim, roster_bundle
from tests.factories import DEVICE, STORE, customer, mqtt_settings


async def _ready(tmp_path, issuer, broker, cloud, running):
    agent = await running(mqtt_settings(tmp_path, issuer, broker, cloud))
    await cloud.wait_for(lambda: cloud.status.get(DEVICE) == "online" and agent.cloud.link.connected.is_set())
    await cloud.publish_roster(roster_bundle(1, [customer("alice"), customer("bob")]))
    await cloud.wait_for(lambda: agent.store.bundle_versions.current("roster") == 1)
    return agent


def _erase(command_id: str, device: str = DEVICE, issued_at: datetime | None = None) -> bytes:
    body = {"command_id": command_id, "device": device, "type": "erase", "customer_ref": "alice", "consent_epoch": 1}
    return json.dumps(body | {"issued_at": (issued_at or datetime.now(UTC)).isoformat()}).encode()


def _verdict(cloud: CloudSim, command_id: str | None, code: str) -> bool:
    return any(a.get("code") == code and a.get("command_id") == command_id for a in cloud.of_kind("command_result"))


async def test_only_the_clouds_own_command_for_this_store_and_device_erases(
    tmp_path, issuer, broker, cloud, running, monkeypatch
):
    agent = await _ready(tmp_path, issuer, broker, cloud, running)
    monkeypatch.setattr(agent.clock, "synced", lambda: True)  # NTP has set this host's clock: age counts
    attacks = [
        (f"cmd/{DEVICE}", _erase("a-unsigned"), None, "malformed"),  # plain JSON, as the old protocol took it
        (f"cmd/{DEVICE}", seal(Ed25519PrivateKey.generate(), "command", STORE, _erase("a-1")), None, "bad_signature"),
        (f"cmd/{DEVICE}", seal(cloud.key, "command", "store-other", _erase("a-2")), None, "other_store"),
        (f"cmd/{DEVICE}", seal(cloud.key, "command", STORE, _erase("a-3", device="edge-9")), "a-3", "wrong_device"),
        ("cmd/*", seal(cloud.key, "command", STORE, _erase("a-4")), "a-4", "wrong_device"),  # one host's, to all
        (f"cmd/{DEVICE}", seal(cloud.key, "offers", STORE, _erase("a-5")), None, "wrong_kind"),
        (
            f"cmd/{DEVICE}",
            seal(cloud.key, "command", STORE, _erase("a-6", issued_at=datetime.now(UTC) - timedelta(days=9))),
            "a-6",
            "stale",
        ),
        (
            f"cmd/{DEVICE}",
            seal(cloud.key, "command", STORE, _erase("a-7", issued_at=datetime.now(UTC) + timedelta(hours=1))),
            "a-7",
            "stale",
        ),
    ]
    for topic, payload, _, _ in attacks:
        await cloud.publish(topic, payload)
    for _, _, command_id, code in attacks:
        await cloud.wait_for(lambda c=command_id, k=code: _verdict(cloud, c, k))
    assert agent.store.roster.get("alice") is not None  # the victim is untouched
    counts = agent.cloud.downlink.counts
    assert {k: n for k, n in counts.items() if k.startswith("cmd:rejected:")} == {
        "cmd:rejected:malformed": 1,
        "cmd:rejected:bad_signature": 1,
        "cmd:rejected:other_store": 1,
        "cmd:rejected:wrong_device": 2,
        "cmd:rejected:wrong_kind": 1,
        "cmd:rejected:stale": 2,
    }
    scraped = metrics.render(agent.metrics).decode()
    assert 'edge_downlink_refused_total{code="wrong_device",kind="cmd"} 2.0' in scraped

    # The real one is carried out, once; the same bytes replayed later are not carried out again.
    command_id, genuine = cloud.signed_command(DEVICE, "erase", customer_ref="alice", consent_epoch=1)
    await cloud.publish(f"cmd/{DEVICE}", genuine)
    await cloud.wait_for(lambda: (cloud.ack_for(command_id) or {}).get("status") == "done")
    assert agent.store.roster.get("alice") is None and agent.store.roster.get("bob") is not None
    await cloud.publish(f"cmd/{DEVICE}", genuine)
    await cloud.wait_for(lambda: counts["cmd:duplicate"] == 1)


async def test_a_replayed_command_is_refused_after_a_restart_too(tmp_path, issuer, broker, cloud, running):
    agent = await _ready(tmp_path, issuer, broker, cloud, running)
    command_id, show = cloud.signed_command(DEVICE, "show", touchpoint="screen-a", offer_id="welcome")
    await cloud.publish(f"cmd/{DEVICE}", show)
    await cloud.wait_for(lambda: (cloud.ack_for(command_id) or {}).get("status") == "ok")
    commanded = "SELECT count(*) FROM decisions WHERE policy = ?"
    assert agent.store.db.execute(commanded, [f"cloud-command:{command_id}"]).fetchone()[0] == 1
    await agent.stop()

    again = await running(agent.settings, seeded=False)
    await cloud.wait_for(lambda: again.cloud.link.connected.is_set())
    await cloud.publish(f"cmd/{DEVICE}", show)
    await cloud.wait_for(lambda: again.cloud.downlink.counts["cmd:duplicate"] == 1)
    assert again.store.db.execute(commanded, [f"cloud-command:{command_id}"]).fetchone()[0] == 1


async def test_only_signed_newer_context_reaches_the_engine(tmp_path, issuer, broker, cloud, running):
    agent = await _ready(tmp_path, issuer, broker, cloud, running)
    contexts = agent.bus.subscribe(ContextUpdate, "test")
    fake = {"version": 99, "issued_at": datetime.now(UTC).isoformat(), "weather": {"sky": "snow"}}
    await cloud.publish("context", json.dumps(fake).encode(), retain=True)  # unsigned
    await cloud.publish("context", seal(Ed25519PrivateKey.generate(), "context", STORE, json.dumps(fake).encode()))
    await cloud.publish("context", seal(cloud.key, "context", "store-other", json.dumps(fake).encode()))
    await cloud.context({"sky": "rain"})
    update = await contexts.get()
    assert update.weather == {"sky": "rain"} and contexts.queue.empty()
    old = {"version": 0, "issued_at": datetime.now(UTC).isoformat(), "weather": {"sky": "sun"}}
    await cloud.publish("context", seal(cloud.key, "context", STORE, json.dumps(old).encode()))
    await cloud.context({"sky": "clear"})
    assert (await contexts.get()).weather == {"sky": "clear"}
    counts = agent.cloud.downlink.counts
    assert {k: n for k, n in counts.items() if k.startswith("context:")} == {
        "context:rejected:malformed": 1,
        "context:rejected:bad_signature": 1,
        "context:rejected:other_store": 1,
        "context:rejected:invalid": 1,  # version 0: versions start at 1
        "context:applied": 2,
    }
