"""The store broker as shipped (systemd/mosquitto-store.conf and mosquitto-store.acl, placeholders filled in), with
an agent, the cloud and an attacker holding a scanner node's credentials: the node publishes its adverts and
nothing else, reads nothing; the agent reads its store's downlink and writes only its own uplink."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.app import Agent
from edge_agent.config import from_dict
from edge_agent.events import Presence
from simulators.broker import store_broker
from simulators.cloud import CloudSim, roster_bundle
from tests.factories import DEVICE, DEVICE_KEY, STORE, config_dict, customer, device_key_file, seed, wait_for
from tests.sources.ble.test_remote_scanners import ALICE, message

SYSTEMD = Path(__file__).resolve().parents[2] / "systemd"
NODE, PASSWORDS = "esp32-bakery", {DEVICE: "agent-secret-1", "esp32-bakery": "node-secret-1", "cloud": "cloud-1"}
BASE = f"retail/v1/{STORE}"


@pytest.fixture
def broker_as_shipped(tmp_path):
    broker = store_broker(tmp_path / "broker", STORE, PASSWORDS, hosts=[DEVICE], nodes=[NODE]).start()
    yield broker
    broker.stop()


def client(port: int, user: str | None, client_id: str) -> tuple[mqtt.Client, list[mqtt.MQTTMessage], list[int]]:
    received: list[mqtt.MQTTMessage] = []
    connected: list[int] = []
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    if user is not None:
        c.username_pw_set(user, PASSWORDS.get(user, "guess"))
    c.on_message = lambda _c, _u, m: received.append(m)
    c.on_connect = lambda _c, _u, _f, rc, _p: connected.append(rc.value)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c, received, connected


async def settle(seconds: float = 1.0) -> None:
    await asyncio.sleep(seconds)


async def test_a_scanner_nodes_credentials_publish_adverts_and_nothing_else(tmp_path, issuer, broker_as_shipped):
    (tmp_path / "cloud-password").write_text(PASSWORDS["cloud"] + "\n")
    (tmp_path / "cloud-password").chmod(0o600)
    login = ("cloud", tmp_path / "cloud-password")
    cloud = await CloudSim(
        "127.0.0.1", broker_as_shipped.port, STORE, devices={DEVICE: DEVICE_KEY.public()}, login=login
    ).start()
    data = config_dict(tmp_path, issuer)
    data["store"]["device_key_file"] = device_key_file(tmp_path)
    (tmp_path / "agent-password").write_text(PASSWORDS[DEVICE] + "\n")
    (tmp_path / "agent-password").chmod(0o600)
    data["mqtt"] = {
        "host": "127.0.0.1",
        "port": broker_as_shipped.port,
        "username": DEVICE,
        "password_file": str(tmp_path / "agent-password"),
        "bundle_public_keys": [cloud.public_key_b64],
        "reconnect_max_s": 1.0,
    }
    data["ble"] = {"remote_scanners": True, "receivers": [{"id": NODE, "zone": "bakery"}]}
    agent = Agent(from_dict(data))
    seed(agent, roster=[ALICE.roster_entry(time.time(), {"ble": True, "checkin": True})])
    presence = agent.bus.subscribe(Presence, "test", maxsize=1000)
    await agent.start()
    node, node_heard, node_rc = client(broker_as_shipped.port, NODE, "node-attacker")
    stranger, _, stranger_rc = client(broker_as_shipped.port, None, "anonymous")
    try:
        await cloud.wait_for(lambda: cloud.status.get(DEVICE) == "online")
        await cloud.publish_roster(roster_bundle(1, [ALICE.roster_entry(time.time(), {"ble": True}), customer("bob")]))
        await wait_for(lambda: agent.store.bundle_versions.current("roster") == 1, what="the roster, as the agent")
        await wait_for(lambda: node_rc and stranger_rc, what="both answered")
        assert node_rc == [0] and stranger_rc[0] != 0  # no anonymous clients at all

        # It reads nothing: not the retained roster, not the agents' events, not other nodes.
        for topic in ("#", f"{BASE}/#", f"{BASE}/roster", f"{BASE}/+/events", f"{BASE}/scanners/+/adverts"):
            node.subscribe(topic, qos=1)
        # It writes only its adverts: an erase, a show, a fake host's presence, fake uplink events are dropped.
        downlink = dict(agent.cloud.downlink.counts)
        erase = cloud.signed_command(DEVICE, "erase", customer_ref="bob", consent_epoch=1)[1]  # replayed, genuine
        for topic, payload in (
            (f"{BASE}/cmd/{DEVICE}", erase),
            (f"{BASE}/cmd/*", b'{"type": "show"}'),
            (f"{BASE}/roster", b"{}"),
            (f"{BASE}/presence/edge-other", b"{}"),
            (f"{BASE}/{DEVICE}/events", b'[{"kind": "conversion"}]'),
        ):
            node.publish(topic, payload, qos=1)
        deadline = time.monotonic() + 20
        while presence.queue.empty() and time.monotonic() < deadline:  # what it is for: the agent places her
            node.publish(f"{BASE}/scanners/{NODE}/adverts", message(), qos=1)
            await asyncio.sleep(0.3)
        found = await asyncio.wait_for(presence.get(), 1)
        assert found.subject.key == "customer:alice" and found.zone == "bakery"
        await settle()
        assert node_heard == []
        assert dict(agent.cloud.downlink.counts) == downlink and agent.store.roster.get("bob") is not None
        assert not [e for e in cloud.events.values() if e.get("kind") == "conversion"]

        # The agent itself may not write a downlink topic either (its own password, another client id).
        imposter, _, imposter_rc = client(broker_as_shipped.port, DEVICE, "agent-imposter")
        await wait_for(lambda: imposter_rc, what="the imposter connected")
        imposter.publish(f"{BASE}/cmd/{DEVICE}", erase, qos=1)
        await settle()
        assert dict(agent.cloud.downlink.counts) == downlink and agent.store.roster.get("bob") is not None
        imposter.loop_stop()
        imposter.disconnect()
    finally:
        for c in (node, stranger):
            c.loop_stop()
            c.disconnect()
        await agent.stop()
        await cloud.close()
