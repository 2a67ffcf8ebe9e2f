"""Receivers a store can buy or install, read as their firmware publishes them: a Theengs Gateway (the real one,
from PyPI, scanning the simulated BlueZ and publishing to a real Mosquitto) and ESPresense nodes (their exact
payloads). Addresses are dropped at the boundary; only consenting customers are placed; hostile messages are
refused, never raised."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.app import Agent
from edge_agent.config import from_dict
from edge_agent.events import Presence
from edge_agent.sources.ble import espresense_format, frames, theengs_format
from edge_agent.sources.ble.espresense_format import EspresenseRefused
from edge_agent.sources.ble.theengs_format import GatewayMessageRefused
from simulators.bluez import PrivateBus, SimulatedBlueZ, dbus_available, fake_address
from simulators.phone import phone_for
from tests.factories import config_dict, seed, wait_for

ALICE = phone_for("alice", "chain-test")  # consents to BLE
BOB = phone_for("bob", "chain-test")  # opted in, but not to BLE
KEY = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="  # a bundle key the tests never sign with
MAC = "C1:57:2B:9A:10:7E"


def _token_hex(phone=ALICE) -> str:
    """What Theengs Gateway puts in `manufacturerdata`: the company id little-endian, as on air, then the data."""
    company, value = next(iter(phone.advert(time.time()).items()))
    return company.to_bytes(2, "little").hex() + value.hex()


# --- Theengs Gateway's messages ----------------------------------------------------------------------------------


def test_a_gateway_message_becomes_an_advert_and_its_address_is_never_read():
    payload = json.dumps({"manufacturerdata": _token_hex(), "id": MAC, "rssi": -61, "mfr": "?"}).encode()
    advert = theengs_format.parse(payload, "gw-deli", 10.0)
    assert advert is not None and (advert.receiver, advert.rssi, advert.mono) == ("gw-deli", -61.0, 10.0)
    assert frames.token_in(advert.manufacturer_data, 0xFFFF).token == ALICE.token(time.time())
    assert MAC not in repr(advert) and MAC.replace(":", "") not in repr(advert)
    eddystone = {"servicedata": "00ee" + "00" * 16, "servicedatauuid": "feaa", "id": MAC, "rssi": -70, "txpower": -12}
    advert = theengs_format.parse(json.dumps(eddystone).encode(), "gw-deli", 10.0)
    assert advert is not None and advert.service_data == {frames.EDDYSTONE_UUID: bytes.fromhex("00ee" + "00" * 16)}
    assert advert.tx_power == -12
    named_only = {"name": "Kitchen speaker", "id": MAC, "rssi": -80}
    assert theengs_format.parse(json.dumps(named_only).encode(), "gw-deli", 10.0) is None


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"\xff", "malformed"),
        (b"[1, 2]", "malformed"),
        (json.dumps({"manufacturerdata": "zz", "rssi": -60}).encode(), "bad_field"),
        (json.dumps({"manufacturerdata": "ff", "rssi": -60}).encode(), "bad_field"),
        (json.dumps({"manufacturerdata": "ffff01", "rssi": "loud"}).encode(), "bad_field"),
        (json.dumps({"manufacturerdata": "ffff01", "rssi": True}).encode(), "bad_field"),
        (json.dumps({"servicedata": "00", "rssi": -60}).encode(), "bad_field"),  # no uuid beside it
        (json.dumps({"manufacturerdata": "ffff01", "rssi": -60, "txpower": 900}).encode(), "bad_field"),
        (b"{" + b" " * 5000 + b"}", "too_large"),
    ],
)
def test_a_message_no_gateway_sends_is_refused_with_a_reason(payload, code):
    with pytest.raises(GatewayMessageRefused) as err:
        theengs_format.parse(payload, "gw-deli", 1.0)
    assert err.value.code == code and MAC not in err.value.reason


@given(
    st.binary(max_size=200)
    | st.dictionaries(st.text(max_size=20), st.none() | st.integers() | st.text(max_size=70)).map(
        lambda d: json.dumps(d).encode()
    )
)
def test_any_gateway_bytes_are_read_or_refused_never_raised(payload):
    try:
        theengs_format.parse(payload, "gw-deli", 1.0)
    except GatewayMessageRefused as exc:
        assert exc.code in {"malformed", "bad_field", "too_large"}


# --- ESPresense's messages -------------------------------------------------------------------------------------


def _espresense(device_id: str, rssi: float = -70.25) -> bytes:
    """A device as ESPresense's `BleFingerprint::fill` reports it (every field it writes for a beacon)."""
    return json.dumps(
        {
            "mac": "c1572b9a107e",
            "id": device_id,
            "name": "Alice's phone",
            "rssi@1m": -58,
            "rssi": rssi,
            "rxAdj": 0,
            "rssiVar": 1.37,
            "distance": 2.31,
            "var": 0.42,
            "close": True,
            "int": 341,
        }
    ).encode()


def _token_id(phone=ALICE) -> str:
    """The app's token in its iBeacon shape, as ESPresense names it: iBeacon:<uuid>-<major>-<minor>."""
    beacon = frames.ibeacon_in({frames.APPLE: frames.ibeacon_payload(phone.token(time.time()), -58)})
    assert beacon is not None
    return f"iBeacon:{beacon.uuid}-{beacon.major}-{beacon.minor}"


def test_an_espresense_ibeacon_id_is_read_back_into_its_frame_and_other_ids_are_left_alone():
    advert = espresense_format.parse(_espresense(_token_id()), "esp-coffee", 5.0)
    assert advert is not None and advert.rssi == -70.25 and advert.receiver == "esp-coffee"
    frame = frames.token_in(advert.manufacturer_data, 0xFFFF)
    assert frame is not None and frame.token == ALICE.token(time.time()) and frame.measured_power == -58
    assert "c1572b9a107e" not in repr(advert) and "Alice" not in repr(advert)
    fixed = espresense_format.parse(_espresense("iBeacon:e2c56db5-dffb-48d2-b060-d0f5a71096e0-1-2"), "esp", 5.0)
    assert fixed is not None and frames.ibeacon_in(fixed.manufacturer_data).beacon_id.endswith(":1:2")
    for other in ("md:ffff:18", "apple:1005:9", "name:alices-iphone", "c1572b9a107e", "sd:0xfd6f"):
        assert espresense_format.parse(_espresense(other), "esp", 5.0) is None


@given(
    st.binary(max_size=200)
    | st.dictionaries(
        st.sampled_from(["id", "rssi", "rssi@1m", "mac"]), st.none() | st.integers() | st.text(max_size=60)
    ).map(lambda d: json.dumps(d).encode())
)
def test_any_espresense_bytes_are_read_or_refused_never_raised(payload):
    try:
        espresense_format.parse(payload, "esp", 1.0)
    except EspresenseRefused as exc:
        assert exc.code in {"malformed", "bad_field", "too_large"}


# --- over a real broker --------------------------------------------------------------------------------------


def _profile(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return str(path)


def receiving_agent(tmp_path, issuer, port, receivers):
    data = config_dict(tmp_path, issuer)
    data["mqtt"] = {"host": "127.0.0.1", "port": port, "bundle_public_keys": [KEY], "keepalive_s": 5}
    data["ble"] = {"remote_scanners": True, "receivers": receivers}
    agent = Agent(from_dict(data))
    now = time.time()
    seed(agent, roster=[ALICE.roster_entry(now, {"ble": True}), BOB.roster_entry(now, {"checkin": True})])
    return agent, agent.bus.subscribe(Presence, "test", maxsize=1000)


def publisher(port):
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="espresense-coffee")
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


async def test_espresense_over_a_real_broker_places_the_consenting_phone_and_keeps_its_node_alive(
    tmp_path, issuer, broker, caplog
):
    profile = _profile(tmp_path, "esp-coffee", 'kind = "espresense"\nname = "coffee"\nroom = "coffee"\n')
    agent, sub = receiving_agent(
        tmp_path, issuer, broker.port, [{"id": "esp-coffee", "zone": "bakery", "profile": profile}]
    )
    caplog.set_level(logging.DEBUG)
    await agent.start()
    pub = publisher(broker.port)
    remote = agent.remote_scanners
    try:
        await wait_for(lambda: remote.connected and pub.is_connected(), what="both connected")
        pub.publish("espresense/devices/md:ffff:18/coffee", _espresense("md:ffff:18"))
        pub.publish(f"espresense/devices/{_token_id(BOB)}/coffee", _espresense(_token_id(BOB), -55))
        pub.publish("espresense/devices/c1572b9a107e/coffee", b"{not json")
        for _ in range(4):  # the node's throttled reports of a standing shopper
            pub.publish(f"espresense/devices/{_token_id()}/coffee", _espresense(_token_id(), -55))
        presence = await asyncio.wait_for(sub.get(), 20)
        assert (presence.subject.key, presence.zone, presence.kind.value) == ("customer:alice", "bakery", "enter")
        assert remote.counts["unread"] >= 1 and remote.counts["refused:malformed"] == 1
        assert agent.ble.resolver.counts["unknown_token"] >= 1  # Bob's token: no BLE consent, never resolved
        assert {key for key, _ in agent.presence.placed()} == {"customer:alice"}
        pub.publish("espresense/rooms/coffee/status", b"offline", retain=True)
        await wait_for(lambda: "esp-coffee" in remote.silent, what="the node's last will noticed")
        pub.publish("espresense/rooms/coffee/telemetry", json.dumps({"ip": "10.0.0.9", "uptime": 12}).encode())
        await wait_for(lambda: "esp-coffee" not in remote.silent, what="its telemetry again")
        assert "c1572b9a107e" not in caplog.text and "Alice" not in caplog.text
    finally:
        pub.loop_stop()
        pub.disconnect()
        await agent.stop()


@pytest.mark.skipif(not dbus_available(), reason="dbus-daemon is not installed (tests/run installs it)")
async def test_theengs_gateway_itself_scanning_the_simulated_bluez_feeds_only_consenting_customers(
    tmp_path, issuer, broker, caplog
):
    """Theengs Gateway from PyPI, unchanged, with the settings its profile documents; three phones near it:
    Alice (consents to BLE), Bob (opted in, not to BLE), a stranger's device advertising something else."""
    profile = _profile(
        tmp_path,
        "gw-deli",
        'kind = "theengs-gateway"\nname = "deli gateway"\npublish_topic = "home/gw-deli/BTtoMQTT"\n',
    )
    agent, sub = receiving_agent(
        tmp_path, issuer, broker.port, [{"id": "gw-deli", "zone": "bakery", "profile": profile}]
    )
    caplog.set_level(logging.DEBUG)
    with PrivateBus() as bus:
        bluez = SimulatedBlueZ(bus.address)
        await bluez.start()
        log = (tmp_path / "gateway.log").open("wb")  # a file, not a pipe nobody reads while it runs: never full
        gateway = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "TheengsGateway",
                "-H",
                "127.0.0.1",
                "-P",
                str(broker.port),
                "-pt",
                "home/gw-deli/BTtoMQTT",
                "-padv",
                "1",
                "-pa",
                "1",
                "-D",
                "0",
                "-tb",
                "0",
                "-ll",
                "WARNING",
            ],
            env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": bus.address, "HOME": str(tmp_path)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        await agent.start()
        try:
            await wait_for(lambda: agent.remote_scanners.connected, what="the agent on the broker")
            gateway_log = tmp_path / "gateway.log"
            await wait_for(
                lambda: bluez.discovering or gateway.poll() is not None,
                timeout=120,
                what=f"the gateway scanning (its log: {gateway_log})",
            )
            assert gateway.poll() is None, gateway_log.read_text(errors="replace")[-2000:]
            deadline = time.monotonic() + 60
            while not any(key == "customer:alice" for key, _ in agent.presence.placed()):
                assert time.monotonic() < deadline, f"no presence; counts {dict(agent.remote_scanners.counts)}"
                now = time.time()
                bluez.advertise("alice-phone", -52, ALICE.advert(now))
                bluez.advertise("bob-phone", -50, BOB.advert(now))
                bluez.advertise("stranger", -45, {0x0075: bytes(range(20))})
                await asyncio.sleep(0.3)
            presence = await asyncio.wait_for(sub.get(), 5)
            assert (presence.subject.key, presence.zone) == ("customer:alice", "bakery")
            assert {key for key, _ in agent.presence.placed()} == {"customer:alice"}
            assert agent.ble.resolver.counts["unknown_token"] >= 1  # Bob's adverts arrived, and resolved to nobody
            health = json.dumps(agent.health())
            for device in ("alice-phone", "bob-phone", "stranger"):
                address = fake_address(device)
                assert address not in caplog.text and address.replace(":", "") not in caplog.text
                assert address not in health and address.replace(":", "") not in health
        finally:
            await agent.stop()
            gateway.terminate()
            try:
                gateway.wait(10)
            except subprocess.TimeoutExpired:
                gateway.kill()
                gateway.wait()
            await bluez.stop()
            log.close()
