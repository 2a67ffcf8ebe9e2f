"""Remote scanner nodes: the message format (pure) and the subscriber against a real Mosquitto."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import time

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.app import Agent
from edge_agent.config import from_dict
from edge_agent.events import Presence
from edge_agent.ops import metrics
from edge_agent.sources.ble import frames
from edge_agent.sources.ble.node_format import RemoteAdvertError, parse, scanner_of, topic_filter
from edge_agent.sources.ble.nodes import RemoteScanners
from simulators.broker import Mosquitto
from simulators.phone import phone_for
from simulators.shoppers import SimClock
from tests.factories import STORE, config_dict, seed, wait_for

ALICE = phone_for("alice", "chain-test")
TOPIC = f"retail/v1/{STORE}/scanners/esp32-bakery/adverts"
KEY = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="  # a bundle key the tests never sign with


def message(scanner="esp32-bakery", adverts=None):
    if adverts is None:
        adverts = [{"rssi": -50, "mfg": {"65535": ALICE.advert(time.time())[0xFFFF].hex()}, "tx": -12, "age_ms": 200}]
    return json.dumps({"v": 1, "scanner": scanner, "adverts": adverts}).encode()


def test_a_good_message_becomes_adverts_without_addresses():
    batch = parse(message(), "esp32-bakery", now_mono=100.0)
    assert batch.refused == []
    [advert] = batch.adverts
    assert (advert.receiver, advert.rssi, advert.tx_power, advert.mono) == ("esp32-bakery", -50.0, -12, 99.8)
    assert advert.manufacturer_data[0xFFFF][:2] == b"\x53\x01"
    assert scanner_of(TOPIC) == "esp32-bakery" and scanner_of("retail/v1/x/other") is None
    assert scanner_of("chain-a/v2/s1/scanners/esp32-dairy/adverts") == "esp32-dairy"  # any mqtt.topic_prefix
    assert topic_filter("s1", "chain-a/v2") == "chain-a/v2/s1/scanners/+/adverts"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"\xff\xfe", "malformed"),
        (b"[1]", "malformed"),
        (b'{"v": 2, "scanner": "esp32-bakery", "adverts": []}', "version"),
        (b'{"v": 1, "scanner": "esp32-bakery", "adverts": [], "more": 1}', "malformed"),
        (b'{"v": 1, "scanner": "bad id!", "adverts": []}', "malformed"),
        (b'{"v": 1, "scanner": "esp32-dairy", "adverts": []}', "wrong_topic"),
        (b'{"v": 1, "scanner": "esp32-bakery", "adverts": {}}', "malformed"),
        (b"x" * 70_000, "too_large"),
    ],
)
def test_bad_messages_are_refused_with_a_reason(payload, code):
    with pytest.raises(RemoteAdvertError) as info:
        parse(payload, "esp32-bakery", 0.0)
    assert info.value.code == code and info.value.reason


def test_bad_adverts_are_left_out_one_by_one_and_addresses_are_refused():
    adverts = [
        {"rssi": -60},
        {"rssi": -60, "mac": "AA:BB:CC:DD:EE:FF"},
        {"rssi": 99},
        {"rssi": -60, "mfg": {"65535": "zz"}},
        {"rssi": -60, "mfg": {"70000": "00"}},
        {"rssi": -60, "svc": {"FEAA": "00"}},
        {"rssi": -60, "age_ms": -1},
        {"rssi": True},
        "nope",
    ]
    batch = parse(message(adverts=adverts), None, 0.0)
    assert len(batch.adverts) == 1
    assert len(batch.refused) == 8
    assert "address" in batch.refused[0] and "AA:BB" not in " ".join(batch.refused)


def publisher(port, username=None, password=None):
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="esp32-bakery")
    if username is not None:
        client.username_pw_set(username, password)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def scanner_agent(tmp_path, issuer, port, **mqtt):
    """An agent taking scanner node esp32-bakery's adverts from the broker at `port`, Alice consenting to BLE, and
    a subscription to its presence events."""
    data = config_dict(tmp_path, issuer)
    data["mqtt"] = {
        "host": "127.0.0.1",
        "port": port,
        "bundle_public_keys": [KEY],
        **mqtt,
    }
    data["ble"] = {"remote_scanners": True, "receivers": [{"id": "esp32-bakery", "zone": "bakery"}]}
    agent = Agent(from_dict(data))
    seed(agent, roster=[ALICE.roster_entry(time.time(), {"ble": True, "checkin": True})])
    return agent, agent.bus.subscribe(Presence, "test", maxsize=1000)


async def test_remote_sightings_over_a_real_broker_feed_presence_and_survive_a_broker_restart(tmp_path, issuer, broker):
    agent, sub = scanner_agent(tmp_path, issuer, broker.port, keepalive_s=5)
    await agent.start()
    pub = publisher(broker.port)
    remote = agent.remote_scanners
    try:
        await wait_for(lambda: remote.connected, what="subscriber connected")
        pub.publish(f"retail/v1/{STORE}/scanners/esp32-dairy/adverts", message("esp32-dairy"))  # not configured
        pub.publish(TOPIC, b"{broken")
        for _ in range(3):
            pub.publish(TOPIC, message())
        presence = await asyncio.wait_for(sub.get(), 20)
        assert (presence.subject.key, presence.zone, presence.kind.value) == ("customer:alice", "bakery", "enter")
        assert remote.counts["refused:unknown_scanner"] == 1 and remote.counts["refused:malformed"] == 1
        scraped = metrics.render(agent.metrics).decode()
        assert 'edge_ble_adverts_total{kind="resolved"}' in scraped and "edge_ble_scanning 0.0" in scraped
        broker.stop()
        await wait_for(lambda: not remote.connected, what="the loss noticed")
        broker.start()
        await wait_for(lambda: remote.connected, timeout=40, what="reconnected")
        before = remote.counts["adverts"]
        pub.loop_stop()
        pub = publisher(broker.port)
        await wait_for(lambda: pub.is_connected(), what="publisher back")
        # the subscription is renewed just after the connection: a node keeps sending, so resend until heard
        deadline = time.monotonic() + 30
        while remote.counts["adverts"] == before and time.monotonic() < deadline:
            pub.publish(TOPIC, message())
            await asyncio.sleep(0.5)
        assert remote.counts["adverts"] > before, "no adverts after the restart"
        assert agent.restarts["ble.remote"] == 0
    finally:
        pub.loop_stop()
        pub.disconnect()
        await agent.stop()


async def test_a_broker_that_wants_credentials_gets_the_mqtt_sections(tmp_path, issuer):
    """Scanner nodes on a store broker with passwords: the agent subscribes with `[mqtt]` username and password."""
    passwords = tmp_path / "passwd"
    for user, password in (("store-agent", "agent-secret-1"), ("esp32-bakery", "node-secret-1")):
        subprocess.run(
            ["mosquitto_passwd", "-b", *(["-c"] if user == "store-agent" else []), str(passwords), user, password],
            check=True,
            capture_output=True,
        )
    passwords.chmod(0o644)  # mosquitto reads it as the test's user
    secured = Mosquitto(tmp_path / "mosquitto", settings=f"allow_anonymous false\npassword_file {passwords}\n").start()
    secret = tmp_path / "mqtt-password"
    secret.write_text("agent-secret-1\n", encoding="utf-8")
    secret.chmod(0o600)
    agent, sub = scanner_agent(tmp_path, issuer, secured.port, username="store-agent", password_file=str(secret))
    await agent.start()
    pub = publisher(secured.port, "esp32-bakery", "node-secret-1")
    try:
        await wait_for(lambda: agent.remote_scanners.connected and pub.is_connected(), what="both connected")
        deadline = time.monotonic() + 20
        while sub.queue.empty() and time.monotonic() < deadline:  # until the subscription is in place
            pub.publish(TOPIC, message())
            await asyncio.sleep(0.3)
        presence = await asyncio.wait_for(sub.get(), 5)
        assert (presence.subject.key, presence.zone, presence.kind.value) == ("customer:alice", "bakery", "enter")
        health = agent.health()["remote_scanners"]
        assert health["connected"] is True and health["adverts"] >= 1 and health["messages"] >= 1
    finally:
        pub.loop_stop()
        pub.disconnect()
        await agent.stop()
        secured.stop()


def test_nodes_are_not_called_silent_while_the_broker_is_away(tmp_path, issuer):
    data = config_dict(tmp_path, issuer)
    data["mqtt"] = {"host": "127.0.0.1", "port": 1, "bundle_public_keys": [KEY]}
    data["ble"] = {
        "remote_scanners": True,
        "stall_s": 10.0,
        "receivers": [{"id": "esp32-bakery", "zone": "bakery", "profile": "esp32-bakery"}],
    }
    clock = SimClock()  # its `t` is the monotonic time
    remote = RemoteScanners(from_dict(data), source=None, clock=clock)
    for clock.t in (0.0, 30.0, 60.0):  # a minute without the broker: the link's news, not the node's
        remote.check_silence()
    assert remote.silent == set()
    remote.link.connected.set()  # the broker reached at 60 s
    for clock.t in (60.0, 69.0):
        remote.check_silence()
    assert remote.silent == set()
    clock.t = 70.0  # stall_s with the broker and nothing from the node
    remote.check_silence()
    assert remote.silent == {"esp32-bakery"}


async def test_a_node_that_falls_silent_is_reported_and_welcomed_back(tmp_path, issuer, broker, caplog):
    caplog.set_level(logging.INFO, logger="edge_agent.sources.ble.nodes")
    data = config_dict(tmp_path, issuer)
    data["mqtt"] = {"host": "127.0.0.1", "port": broker.port, "bundle_public_keys": [KEY]}
    data["ble"] = {
        "remote_scanners": True,
        "stall_s": 1.5,
        "receivers": [
            {"id": "esp32-bakery", "zone": "bakery", "profile": "esp32-bakery"},  # a node: expected from the start
            {"id": "esp32-dairy", "zone": "entrance"},  # a node once it has reported
            {"id": "edge-peer", "zone": "entrance"},  # another host's receiver (shared presence): never a node
        ],
    }
    agent = Agent(from_dict(data))
    await agent.start()
    pub = publisher(broker.port)
    remote = agent.remote_scanners
    dairy = f"retail/v1/{STORE}/scanners/esp32-dairy/adverts"
    try:
        await wait_for(lambda: remote.connected, what="subscriber connected")
        assert remote.health()["nodes"] == {"esp32-bakery": {"last_heard_s_ago": None, "silent": False}}
        # the bakery node never reports: silent once the broker has been reached for stall_s
        await wait_for(lambda: "esp32-bakery" in remote.silent, what="the bakery node reported silent")
        assert 'edge_ble_node_silent{scanner="esp32-bakery"} 1.0' in metrics.render(agent.metrics).decode()
        # the dairy node reports once, then stops
        while remote.counts["messages"] == 0:
            pub.publish(dairy, message("esp32-dairy", adverts=[]))
            await asyncio.sleep(0.2)
        assert remote.health()["nodes"]["esp32-dairy"]["silent"] is False
        await wait_for(lambda: "esp32-dairy" in remote.silent, what="the dairy node reported silent")
        await asyncio.sleep(1.0)
        silences = [r for r in caplog.records if "scanner node esp32-dairy: nothing heard" in r.getMessage()]
        assert len(silences) == 1  # once, not at every check
        # the bakery node comes up
        pub.publish(TOPIC, message(adverts=[]))
        await wait_for(lambda: "esp32-bakery" not in remote.silent, what="the bakery node heard")
        assert any("scanner node esp32-bakery heard again" in r.getMessage() for r in caplog.records)
        assert 'edge_ble_node_silent{scanner="esp32-bakery"} 0.0' in metrics.render(agent.metrics).decode()
        assert set(remote.health()["nodes"]) == {"esp32-bakery", "esp32-dairy"}
    finally:
        pub.loop_stop()
        pub.disconnect()
        await agent.stop()


@given(st.binary(max_size=2000))
def test_any_bytes_are_parsed_or_refused_never_raised(payload):
    try:
        parse(payload, "esp32-bakery", 0.0)
    except RemoteAdvertError as exc:
        assert exc.code and exc.reason


scalars = st.none() | st.booleans() | st.integers(-300, 70_000) | st.sampled_from(["", "53", "zz", "65535"])
json_values = scalars | st.dictionaries(st.sampled_from(["65535", "x", frames.EDDYSTONE_UUID]), scalars, max_size=2)
fields = st.sampled_from(["rssi", "mfg", "svc", "tx", "age_ms", "mac"])


@given(st.lists(st.dictionaries(fields, json_values, max_size=4), max_size=5))
def test_any_json_adverts_are_kept_or_refused_one_by_one(adverts):
    batch = parse(json.dumps({"v": 1, "scanner": "esp32-bakery", "adverts": adverts}).encode(), None, 0.0)
    assert len(batch.adverts) + len(batch.refused) == len(adverts)
