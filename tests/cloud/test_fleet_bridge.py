"""Two touchpoint hosts on the store's Mosquitto share presence; the store's broker is bridged to the chain's
with systemd/mosquitto-store-bridge.conf (placeholders filled in), over TLS with the chain's ACL."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from pathlib import Path

import pytest

from edge_agent.config import MqttSettings, from_dict
from edge_agent.events import Anonymous, Channel, Customer, Sighting
from edge_agent.mqtt import MqttLink
from simulators.broker import Mosquitto
from simulators.cloud import CloudSim
from tests.factories import STORE, config_dict, device_key_file, fleet

from .test_cloud_tls import ACL, ThrowawayCA

BRIDGE_CONF = Path(__file__).resolve().parents[2] / "systemd" / "mosquitto-store-bridge.conf"
# What the chain's operator adds to the ACL for the fleet: desired config down, reported state and bridge state up.
FLEET_ACL = ACL + "pattern read retail/v1/%u/config\npattern write retail/v1/%u/+/config/reported\n"
FLEET_ACL += "pattern write retail/v1/%u/bridge/status\n"


@pytest.fixture
def brokers(tmp_path):
    pki = tmp_path / "pki"
    pki.mkdir()
    ca = ThrowawayCA(pki)
    chain = Mosquitto(tmp_path / "chain", settings=ca.broker_settings("chain-broker", FLEET_ACL)).start()
    certs = tmp_path / "bridge-certs"
    certs.mkdir()
    store_cert, store_key = ca.issue(STORE)
    shutil.copy(ca.path, certs / "chain-ca.crt")
    shutil.copy(store_cert, certs / "store.crt")
    shutil.copy(store_key, certs / "store.key")
    bridge = (
        BRIDGE_CONF.read_text(encoding="utf-8")
        .replace("@STORE_ID@", STORE)
        .replace("@CHAIN_HOST@", chain.host)
        .replace("@CHAIN_PORT@", str(chain.port))
        .replace("@CERT_DIR@", str(certs))
    )
    assert "@" not in bridge.replace("@STORE_ID@", "")  # every placeholder filled
    store = Mosquitto(tmp_path / "store", settings="allow_anonymous true\n" + bridge).start()
    yield store, chain, ca
    store.stop()
    chain.stop()


def host_settings(tmp_path, issuer, store_broker, cloud, device):
    mqtt = {
        "host": store_broker.host,
        "port": store_broker.port,
        "bundle_public_keys": [cloud.public_key_b64],
        "reconnect_min_s": 0.2,
        "reconnect_max_s": 1.0,
    }
    settings = fleet(device, share_presence=True, share_interval_s=0.2)
    data = config_dict(tmp_path / device, issuer, mqtt=mqtt, fleet=settings)
    data["store"] = {
        **data["store"],
        "device_id": device,
        "device_key_file": device_key_file(tmp_path / device, device),
    }
    return from_dict(data)


async def test_two_hosts_share_presence_and_the_chain_gets_both_through_the_bridge(tmp_path, issuer, brokers, running):
    store_broker, chain, ca = brokers
    cert, key = ca.issue("cloud")
    cloud = await CloudSim(
        chain.host, chain.port, STORE, tls={"tls_ca_file": ca.path, "tls_cert_file": cert, "tls_key_file": key}
    ).start()
    # A watcher on the chain's broker that sees everything the store's bridge lets through.
    watch_cert, watch_key = ca.issue("cloud")
    watcher = MqttLink(
        MqttSettings(
            host=chain.host,
            port=chain.port,
            tls_ca_file=ca.path,
            tls_cert_file=watch_cert,
            tls_key_file=watch_key,
            reconnect_min_s=0.1,
            reconnect_max_s=1.0,
        ),
        "chain-watcher",
        subscriptions=["retail/v1/#"],
        persistent=False,
    )
    watching = asyncio.create_task(watcher.run())
    topics: set[str] = set()

    async def collect() -> None:  # as they come, so a long run never fills the watcher's inbox
        while True:
            topics.add((await watcher.inbox.get()).topic)

    collecting = asyncio.create_task(collect())
    try:
        a = await running(host_settings(tmp_path, issuer, store_broker, cloud, "host-a"))
        b = await running(host_settings(tmp_path, issuer, store_broker, cloud, "host-b"))
        await cloud.wait_for(lambda: cloud.status.get("host-a") == "online" and cloud.status.get("host-b") == "online")
        await asyncio.wait_for(a.peers.link.connected.wait(), 30)
        await asyncio.wait_for(b.peers.link.connected.wait(), 30)

        # Down through the bridge: one desired config for the store reaches both hosts; both report it up.
        await cloud.publish_config({"version": 1, "settings": {"presence": {"hold_down_s": 30.0}}})
        await cloud.wait_for(lambda: all(cloud.reported.get(h, {}).get("version") == 1 for h in ("host-a", "host-b")))

        # A consented shopper checks in at host A, and A's camera counts someone: host B sees both.
        wall = a.clock.wall()
        a.bus.publish(Sighting(Customer("alice"), "bakery", Channel.CHECKIN, a.clock.mono(), wall))
        a.bus.publish(Sighting(Anonymous("track-7"), "entrance", Channel.VISION, a.clock.mono(), wall))
        await cloud.wait_for(lambda: Customer("alice") in b.presence.present("bakery"))
        await cloud.wait_for(lambda: b.presence.counts().get("entrance", {}).get("anonymous", 0) >= 1)
        assert b.peers.counts["sightings"] >= 2 and not any(k.startswith("refused") for k in b.peers.counts)

        # Up through the bridge: both hosts decided for alice, and the chain got both decisions.
        def decided_for_alice():
            return {cloud.device_of[e["uuid"]] for e in cloud.of_kind("decision") if e.get("customer_ref") == "alice"}

        await cloud.wait_for(lambda: decided_for_alice() == {"host-a", "host-b"}, timeout=60)

        # Presence sharing stays in the store: nothing of it crossed the bridge, while host B's events did.
        await cloud.wait_for(lambda: any(t.endswith("/host-b/events") for t in topics))
        assert not [t for t in topics if "/presence/" in t]
    finally:
        await cloud.close()
        await watcher.close()
        collecting.cancel()
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
