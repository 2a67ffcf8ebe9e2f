"""The roster's secrets (BLE day keys, face embeddings) cross the store broker sealed to each agent's device key:
anyone else on the broker sees ciphertext only, and a copy opens only for its store, roster, version and host."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from datetime import UTC, datetime

import pytest
import tomli_w

from edge_agent.cli import main
from edge_agent.cloud import sealed
from edge_agent.cloud.envelope import BundleRejected, seal
from edge_agent.config import MqttSettings
from edge_agent.keys import DeviceKey
from edge_agent.mqtt import MqttLink
from edge_agent.store.roster import RosterEntry
from simulators.cloud import roster_bundle
from tests.factories import DEVICE, STORE, config_dict, customer, mqtt_settings

TODAY = datetime.now(UTC).strftime("%Y%m%d")
KEY_B64 = base64.b64encode(bytes(32)).decode()  # any Ed25519 public key will do: nothing is verified
RAW_DAY_KEY = bytes.fromhex("00112233445566778899aabbccddeeff")
DAY_KEY = base64.b64encode(RAW_DAY_KEY).decode("ascii")
SECRETS = {"alice": {"day_keys": {TODAY: DAY_KEY}}}


def alice_with_ble() -> RosterEntry:
    consents = {"checkin": True, "ble": True, "personalisation": True}
    return RosterEntry(customer_ref="alice", consent_epoch=1, consents=consents, day_keys={TODAY: DAY_KEY})


def test_each_host_opens_its_own_copy_and_no_copy_opens_anywhere_else():
    a, b, outsider = DeviceKey.generate(), DeviceKey.generate(), DeviceKey.generate()
    copies = sealed.seal(
        SECRETS, {"host-a": a.public().seal, "host-b": b.public().seal}, store=STORE, kind="roster", version=4
    )
    assert set(copies) == {"host-a", "host-b"} and copies["host-a"] != copies["host-b"]
    assert all(DAY_KEY not in c and RAW_DAY_KEY.hex() not in c for c in copies.values())
    where = {"store": STORE, "kind": "roster", "version": 4}
    for device, key in (("host-a", a), ("host-b", b)):
        opened = sealed.open_secrets(copies[device], key.seal_key, device=device, **where)
        assert opened["alice"].day_keys == {TODAY: DAY_KEY}
    moved = [
        (copies["host-a"], outsider, where | {"device": "host-a"}),  # another host's key
        (copies["host-a"], b, where | {"device": "host-b"}),  # host-a's copy handed to host-b
        (copies["host-a"], a, where | {"device": "host-a", "version": 5}),  # into a later roster
        (copies["host-a"], a, where | {"device": "host-a", "kind": "roster_delta"}),
        (copies["host-a"], a, where | {"device": "host-a", "store": "store-other"}),
        (base64.b64encode(b"\x00" * 80).decode(), a, where | {"device": "host-a"}),
        ("not base64!", a, where | {"device": "host-a"}),
    ]
    for copy, key, context in moved:
        with pytest.raises(BundleRejected) as refused:
            sealed.open_secrets(copy, key.seal_key, **context)
        assert refused.value.code == "unsealable" and "sealed.host" in refused.value.reason


def test_a_sealed_copy_of_bad_secrets_is_refused_naming_the_field():
    key = DeviceKey.generate()
    bad = {"alice": {"day_keys": {TODAY: base64.b64encode(b"short").decode()}}}
    copy = sealed.seal(bad, {"h": key.public().seal}, store=STORE, kind="roster", version=1)["h"]
    with pytest.raises(BundleRejected) as refused:
        sealed.open_secrets(copy, key.seal_key, store=STORE, kind="roster", version=1, device="h")
    assert refused.value.code == "invalid" and "16 bytes" in refused.value.reason


async def test_the_broker_sees_ciphertext_only_and_the_agent_still_recognises_her(
    tmp_path, issuer, broker, cloud, running
):
    """Any client that can read the store's topics (a scanner node's credentials, a bridge) reads the retained
    roster; before sealing it held every day key in clear."""
    eavesdropper = MqttLink(
        MqttSettings(host=broker.host, port=broker.port, reconnect_min_s=0.1, reconnect_max_s=0.5),
        "eavesdropper",
        subscriptions=[f"retail/v1/{STORE}/#"],
        persistent=False,
    )
    listening = asyncio.create_task(eavesdropper.run())
    try:
        agent = await running(mqtt_settings(tmp_path, issuer, broker, cloud), seeded=False)
        await cloud.wait_for(lambda: cloud.status.get(DEVICE) == "online" and eavesdropper.connected.is_set())
        await cloud.publish_roster(roster_bundle(1, [alice_with_ble(), customer("bob")]))
        await cloud.wait_for(lambda: agent.store.bundle_versions.current("roster") == 1)
        assert agent.store.roster.ble_day_keys([TODAY]) == {"alice": {TODAY: RAW_DAY_KEY}}
        heard = []
        while not eavesdropper.inbox.empty():
            heard.append(eavesdropper.inbox.get_nowait().payload)
        roster = [p for p in heard if b'"kind":"roster"' in p]
        assert roster, "the eavesdropper got the roster"
        everything = b"".join(heard)
        inner = b"".join(base64.urlsafe_b64decode(json.loads(p)["payload"] + "==") for p in roster)
        for secret in (RAW_DAY_KEY, DAY_KEY.encode(), RAW_DAY_KEY.hex().encode()):
            assert secret not in everything and secret not in inner
        assert b'"sealed"' in inner and b'"alice"' in inner  # who is on the roster is not a secret; keys are
    finally:
        await eavesdropper.close()
        listening.cancel()


async def test_a_roster_sealed_for_other_hosts_applies_without_secrets(tmp_path, issuer, broker, cloud, running):
    agent = await running(mqtt_settings(tmp_path, issuer, broker, cloud), seeded=False)
    await cloud.wait_for(lambda: cloud.status.get(DEVICE) == "online")
    cloud.devices = {"edge-other": DeviceKey.generate().public()}  # the operator registered another host only
    await cloud.publish_roster(roster_bundle(1, [alice_with_ble()]))
    await cloud.wait_for(lambda: agent.store.bundle_versions.current("roster") == 1)
    assert agent.store.roster.get("alice") is not None and agent.store.roster.ble_day_keys([TODAY]) == {}
    assert agent.cloud.downlink.counts["roster:secrets_not_for_this_host"] == 1


async def test_secrets_in_clear_or_a_tampered_copy_are_refused_and_the_last_good_roster_stays(
    tmp_path, issuer, broker, cloud, running
):
    agent = await running(mqtt_settings(tmp_path, issuer, broker, cloud), seeded=False)
    await cloud.wait_for(lambda: cloud.status.get(DEVICE) == "online")
    await cloud.publish_roster(roster_bundle(1, [alice_with_ble()]))
    await cloud.wait_for(lambda: agent.store.bundle_versions.current("roster") == 1)

    clear = roster_bundle(2, [alice_with_ble()])  # a cloud that forgot to seal
    await cloud.publish("roster", sealed_envelope(cloud, "roster", clear), retain=True)
    tampered = cloud.sealed_roster("roster", roster_bundle(3, [alice_with_ble()]))
    copy = bytearray(base64.b64decode(tampered["sealed"][DEVICE]))
    copy[-1] ^= 1
    tampered["sealed"][DEVICE] = base64.b64encode(bytes(copy)).decode()
    await cloud.publish("roster", sealed_envelope(cloud, "roster", tampered), retain=True)
    results = await cloud.wait_for(lambda: len(cloud.of_kind("bundle_result")) >= 3 and cloud.of_kind("bundle_result"))
    assert [(r["version"], r["status"], r.get("code")) for r in results] == [
        (1, "applied", None),
        (2, "rejected", "invalid"),
        (3, "rejected", "unsealable"),
    ]
    assert "customers[0]: day_keys and face_embeddings travel sealed" in results[1]["reason"]
    assert agent.store.bundle_versions.current("roster") == 1
    assert agent.store.roster.ble_day_keys([TODAY]) == {"alice": {TODAY: RAW_DAY_KEY}}


def sealed_envelope(cloud, kind, bundle):
    """Signed as the cloud signs, without the simulator's own sealing step (to send exactly `bundle`)."""
    return seal(cloud.key, kind, cloud.store, json.dumps(bundle).encode())


def test_keys_new_device_writes_an_owner_only_key_and_prints_what_the_cloud_registers(tmp_path, capsys, issuer):
    assert main(["keys", "new", "--device", "--dir", str(tmp_path)]) == 0
    public = json.loads(capsys.readouterr().out)
    key_file = tmp_path / "device.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert DeviceKey.load(key_file, "k").public().as_json() == public
    assert main(["keys", "new", "--device", "--dir", str(tmp_path)]) == 2  # never overwritten
    assert "exists" in capsys.readouterr().err

    data = config_dict(tmp_path, issuer, mqtt={"host": "127.0.0.1", "port": 1, "bundle_public_keys": [KEY_B64]})
    data["store"]["device_key_file"] = str(key_file)
    (tmp_path / "store.toml").write_text(tomli_w.dumps(data))
    os.chmod(key_file, 0o644)  # the agent refuses to start on a key others may read
    assert main(["run", "--config", str(tmp_path / "store.toml")]) == 2
    err = capsys.readouterr().err
    assert "store.device_key_file" in err and "mode 0644" in err


def test_the_device_key_derivation_matches_the_published_vector():
    """docs/protocols/sealed-roster.md: a cloud or another host can check its own code against it."""
    key = DeviceKey(bytes(range(32)))
    assert key.public().as_json() == {
        "seal": "Ey0sM/WRN3N0HeHOsi8yfDEVebdxZp8Zw3JiUhQgASk=",
        "sign": "+3S1E9nmMr61QOY6aMrXGxbq65PB1QmRDUSel6oS2/Q=",
    }
