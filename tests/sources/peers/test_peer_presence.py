"""The shared-presence message: only customer_refs and counts go out; bad or unconsented entries are refused."""

from __future__ import annotations

import json

import pytest

from edge_agent.app import Agent
from edge_agent.clock import Clock
from edge_agent.config import ConfigError, from_dict
from edge_agent.events import Anonymous, Channel, Customer, Sighting
from edge_agent.keys import DeviceKey
from edge_agent.sources.peers import signed
from edge_agent.sources.peers.message import PeerMessageError, device_of, encode, parse, sightings
from tests.factories import DEVICE, HOST_KEYS, STORE, config_dict, device_key_file, fleet, seed, signed_by

ZONES = {"entrance", "bakery"}


def _sighting(subject, zone="bakery", channel=Channel.BLE, mono=100.0, **radio):
    return Sighting(subject, zone, channel, mono, Clock().wall(), **radio)


def test_encode_shares_refs_and_counts_only_and_never_what_came_from_a_peer():
    seen = [
        _sighting(Customer("alice"), channel=Channel.CHECKIN, mono=99.0),
        _sighting(Customer("alice"), channel=Channel.CHECKIN, mono=99.5),  # the latest of the same is enough
        _sighting(Customer("dave"), receiver="rx-1", rssi=-61.0, ref_dbm=-59.0),
        _sighting(Customer("dave"), receiver="rx-1", rssi=-64.0),  # every radio reading counts
        _sighting(Anonymous("t1"), "entrance", Channel.VISION),
        _sighting(Anonymous("t1"), "entrance", Channel.VISION),
        _sighting(Anonymous("t2"), "entrance", Channel.VISION),
        _sighting(Customer("erin"), origin="host-b"),
    ]
    body = json.loads(encode("host-a", seen, now_mono=100.0))
    assert body["device"] == "host-a" and body["anonymous"] == {"entrance": 2}
    assert [(c["ref"], c["channel"], c["age_ms"]) for c in body["customers"]] == [
        ("alice", "checkin", 500),
        ("dave", "ble", 0),
        ("dave", "ble", 0),
    ]
    assert body["customers"][1]["rssi"] == -61.0 and "t1" not in json.dumps(body)
    assert encode("host-a", [_sighting(Customer("erin"), origin="host-b")], 100.0) is None


def test_parse_round_trips_into_sightings_marked_with_their_host():
    payload = encode("host-a", [_sighting(Customer("alice"), receiver="rx-1", rssi=-60.0)], now_mono=100.0)
    batch = parse(payload, device_of("retail/v1/s/presence/host-a"), ZONES)
    (s,) = sightings(batch, now_mono=500.0, wall=Clock().wall())
    assert (s.subject, s.zone, s.channel, s.receiver, s.rssi, s.origin) == (
        Customer("alice"),
        "bakery",
        Channel.BLE,
        "rx-1",
        -60.0,
        "host-a",
    )


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (b"\xff", "malformed"),
        (b"[]", "malformed"),
        (json.dumps({"v": 2, "device": "host-a"}).encode(), "version"),
        (json.dumps({"v": 1, "device": "host-b"}).encode(), "wrong_topic"),
        (json.dumps({"v": 1, "device": "host-a", "macs": []}).encode(), "malformed"),
        (b"x" * (65 * 1024), "too_large"),
    ],
)
def test_parse_refuses_whole_messages_with_a_code(message, code):
    with pytest.raises(PeerMessageError) as err:
        parse(message, "host-a", ZONES)
    assert err.value.code == code


def test_parse_refuses_bad_entries_by_name_and_keeps_the_good():
    body = {
        "v": 1,
        "device": "host-a",
        "customers": [
            {"ref": "alice", "zone": "bakery", "channel": "ble"},
            {"ref": "bob", "zone": "bakery", "channel": "ble", "mac": "aa:bb:cc:dd:ee:ff"},
            {"ref": "bob", "zone": "cellar", "channel": "ble"},
            {"ref": "bob", "zone": "bakery", "channel": "vision"},
            {"ref": "bob", "zone": "bakery", "channel": "ble", "rssi": -50},
        ],
        "anonymous": {"entrance": 2, "cellar": 1, "bakery": -1},
    }
    batch = parse(json.dumps(body).encode(), "host-a", ZONES)
    assert [c.ref for c in batch.customers] == ["alice"] and batch.anonymous == {"entrance": 2}
    reasons = " | ".join(batch.refused)
    for needle in (
        "customers[1]: unknown keys ['mac']",
        "zone 'cellar'",
        "channel must be one of",
        "receiver and rssi",
    ):
        assert needle in reasons
    assert "anonymous['cellar']" in reasons and "anonymous['bakery']" in reasons


async def test_a_peer_customer_without_consent_here_is_refused(tmp_path, issuer):
    key_file = device_key_file(tmp_path)
    settings = from_dict(
        config_dict(
            tmp_path,
            issuer,
            mqtt={"host": "127.0.0.1", "port": 1, "bundle_public_keys": [issuer.public_key_b64]},
            fleet=fleet(DEVICE, share_presence=True),
            store={
                "id": STORE,
                "chain_id": "chain-test",
                "device_id": DEVICE,
                "device_key_file": key_file,
            },
        )
    )
    agent = Agent(settings)
    seed(agent)  # carol has not consented to check-in; nobody called zed is in the roster
    got = agent.bus.subscribe(Sighting, "test")
    body = {
        "v": 1,
        "device": "host-b",
        "customers": [
            {"ref": "alice", "zone": "bakery", "channel": "checkin"},
            {"ref": "carol", "zone": "bakery", "channel": "checkin"},
            {"ref": "zed", "zone": "bakery", "channel": "checkin"},
        ],
    }
    assert agent.peers is not None
    agent.peers.handle("retail/v1/store-test/presence/host-b", signed_by("host-b", json.dumps(body).encode()))
    assert got.queue.get_nowait().subject == Customer("alice") and got.queue.empty()
    assert agent.peers.counts["refused:not_consented"] == 2
    agent.store.close()


def test_sharing_presence_needs_a_broker(tmp_path, issuer):
    with pytest.raises(ConfigError) as err:
        from_dict(config_dict(tmp_path, issuer, fleet={"share_presence": True}))
    assert "fleet.share_presence: got True, expected an [mqtt] section" in str(err.value)


async def test_presence_is_taken_only_signed_by_a_host_of_the_store(tmp_path, issuer):
    data = config_dict(
        tmp_path,
        issuer,
        mqtt={"host": "127.0.0.1", "port": 1, "bundle_public_keys": [issuer.public_key_b64]},
        fleet=fleet(DEVICE, share_presence=True),
    )
    data["store"]["device_key_file"] = device_key_file(tmp_path)
    agent = Agent(from_dict(data))
    seed(agent)
    got = agent.bus.subscribe(Sighting, "test")
    body = json.dumps(
        {"v": 1, "device": "host-b", "customers": [{"ref": "alice", "zone": "bakery", "channel": "checkin"}]}
    )
    stranger = DeviceKey.generate()
    topic = "retail/v1/store-test/presence/{}"
    for device, message in (
        ("host-b", body.encode()),  # unsigned, as a host without a key would send it
        ("host-b", signed.seal(stranger, "presence", STORE, "host-b", body.encode())),  # forged
        ("host-x", signed.seal(stranger, "presence", STORE, "host-x", body.encode())),  # not a host of the store
        ("host-b", signed.seal(HOST_KEYS["host-b"], "presence", "store-other", "host-b", body.encode())),
        ("host-b", signed.seal(HOST_KEYS["host-b"], "notices", STORE, "host-b", body.encode())),  # another kind
        ("host-a", signed_by("host-b", body.encode())),  # host-b's message on host-a's topic
    ):
        agent.peers.handle(topic.format(device), message)
    assert got.queue.empty()
    assert {k: n for k, n in agent.peers.counts.items() if k.startswith("refused:")} == {
        "refused:malformed": 1,
        "refused:bad_signature": 3,
        "refused:unknown_host": 1,
        "refused:wrong_topic": 1,
    }
    agent.peers.handle(topic.format("host-b"), signed_by("host-b", body.encode()))
    assert got.queue.get_nowait().subject == Customer("alice")
    agent.store.close()


def test_sharing_presence_needs_this_hosts_key_and_the_others(tmp_path, issuer):
    mqtt = {"host": "127.0.0.1", "port": 1, "bundle_public_keys": [issuer.public_key_b64]}
    with pytest.raises(ConfigError) as err:
        from_dict(config_dict(tmp_path, issuer, mqtt=mqtt, fleet={"share_presence": True}))
    assert "fleet.share_presence: got True, expected store.device_key_file" in str(err.value)
