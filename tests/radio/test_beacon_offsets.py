"""Receiver offsets from the store's fixed beacons: per receiver readings, the least-squares offsets, the config,
and the whole path — the real bleak scanner over the simulated BlueZ and a scanner node over a real Mosquitto."""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import pytest

from edge_agent import devices
from edge_agent.app import Agent
from edge_agent.config import ConfigError, from_dict
from edge_agent.radio.beacon_offsets import MEAN_READINGS, MIN_READINGS, BeaconLevels
from simulators.bluez import PrivateBus, SimulatedBlueZ, dbus_available
from tests.factories import OPS, STORE, config_dict, wait_for
from tests.sources.ble.test_remote_scanners import KEY, publisher

BEACON_A = "ibeacon:00010203-0405-0607-0809-0a0b0c0d0e0f:1:10"
BEACON_B = "ibeacon:00010203-0405-0607-0809-0a0b0c0d0e0f:1:11"
BEACON_C = "ibeacon:00010203-0405-0607-0809-0a0b0c0d0e0f:1:12"
RECEIVERS = {"edge-test": (0.0, 0.0), "esp32-bakery": (8.0, 0.0), "esp32-dairy": (16.0, 0.0), "esp32-deli": (30.0, 0)}
PLACED = {BEACON_A: (4.0, 1.0), BEACON_B: (10.0, 1.0), BEACON_C: (30.0, 3.0)}
NO_ISSUER = SimpleNamespace(public_key_b64=KEY)  # the config needs a check-in key; these tests check in nobody


def ble(host_offset=0.0, exponent=2.2, **more):
    data = config_dict(Path("unused"), NO_ISSUER)
    data["zones"] = [{"id": z} for z in ("entrance", "bakery", "dairy", "deli")]
    data["touchpoints"] = []
    data["ble"] = {
        "path_loss_exponent": exponent,
        "beacons": list(PLACED),
        "receivers": [
            {"id": rid, "zone": zone, "x_m": x, "y_m": y, **({"offset_db": host_offset} if rid == "edge-test" else {})}
            for (rid, (x, y)), zone in zip(RECEIVERS.items(), ("entrance", "bakery", "dairy", "deli"), strict=True)
        ],
        "beacon_positions": [{"beacon": b, "x_m": x, "y_m": y, "height_m": 2.0} for b, (x, y) in PLACED.items()],
        **more,
    }
    return from_dict(data).ble


def expected(beacon, receiver, exponent=2.2, measured_power=-59):
    (bx, by), (rx, ry) = PLACED[beacon], RECEIVERS[receiver]
    return measured_power - 10 * exponent * math.log10(max(0.5, math.dist((bx, by, 2.0), (rx, ry, 2.0))))


def hear(levels, beacon, receiver, offset, beacon_error=0.0, n=400, rng=None, noise=4.0):
    rng = rng or random.Random(f"{beacon}{receiver}")
    for i in range(n):
        rssi = expected(beacon, receiver) + beacon_error + offset + rng.gauss(0, noise)
        levels.record(beacon, receiver, round(rssi), -59, float(i))


def test_every_receiver_keeps_its_own_reading_of_a_beacon():
    levels = BeaconLevels(ble(), "edge-test")
    levels.record(BEACON_A, "edge-test", -70.0, -59, 1.0)
    levels.record(BEACON_A, "esp32-bakery", -64.0, -59, 2.0)
    levels.record(BEACON_A, "edge-test", -72.0, -59, 3.0)
    beacons = levels.health(now=4.0)["beacons"]
    assert beacons[BEACON_A]["edge-test"] == {
        "rssi": -72.0,
        "mean_dbm": -71.0,
        "readings": 2,
        "measured_power": -59,
        "age_s": 1.0,
    }
    assert beacons[BEACON_A]["esp32-bakery"]["rssi"] == -64.0  # the other receiver's reading is not overwritten


def test_offsets_are_recovered_through_beacons_heard_in_common_whatever_the_beacons_own_error():
    levels = BeaconLevels(ble(), "edge-test")
    # the host and the bakery node hear beacon A, the bakery and dairy nodes beacon B; both beacons advertise a
    # measured power that is off (+2 and -1.5 dB): the offsets must come out relative to the host's receiver
    hear(levels, BEACON_A, "edge-test", 0.0, beacon_error=2.0)
    hear(levels, BEACON_A, "esp32-bakery", 2.5, beacon_error=2.0)
    hear(levels, BEACON_B, "esp32-bakery", 2.5, beacon_error=-1.5)
    hear(levels, BEACON_B, "esp32-dairy", -3.0, beacon_error=-1.5)
    offsets = levels.offsets()
    assert offsets["edge-test"] == 0.0
    assert abs(offsets["esp32-bakery"] - 2.5) <= 0.6
    assert abs(offsets["esp32-dairy"] - (-3.0)) <= 0.8
    health = levels.health(now=500.0)["receiver_offsets"]
    assert health["esp32-dairy"] == {"configured_db": 0.0, "suggested_db": offsets["esp32-dairy"]}


def test_the_host_keeps_its_configured_offset_and_the_others_follow_it():
    levels = BeaconLevels(ble(host_offset=1.0), "edge-test")
    hear(levels, BEACON_A, "edge-test", 1.0)
    hear(levels, BEACON_A, "esp32-bakery", 3.5)
    offsets = levels.offsets()
    assert offsets["edge-test"] == 1.0 and abs(offsets["esp32-bakery"] - 3.5) <= 0.6


def test_a_receiver_no_beacon_links_to_the_host_gets_no_suggestion():
    levels = BeaconLevels(ble(), "edge-test")
    hear(levels, BEACON_A, "edge-test", 0.0)
    hear(levels, BEACON_A, "esp32-bakery", 2.0)
    hear(levels, BEACON_C, "esp32-deli", 4.0)  # beacon C: heard by the deli node alone
    hear(levels, BEACON_B, "esp32-dairy", 1.0, n=MIN_READINGS - 1)  # too few readings to count
    assert set(levels.offsets()) == {"edge-test", "esp32-bakery"}
    health = levels.health(now=500.0)["receiver_offsets"]
    assert health["esp32-deli"]["suggested_db"] is None and health["esp32-dairy"]["suggested_db"] is None
    assert BeaconLevels(ble(), "edge-test").offsets() == {}  # nothing heard yet


def test_a_beacon_heard_near_the_receivers_floor_is_corrected_for_the_readings_it_missed():
    """A weak beacon (RSSI −75 at 1 m, −88.5 dBm at both receivers): the host hears it 1.3 σ above a −95 dBm
    floor, the bakery node, 4 dB weaker, 0.5 σ: only readings above the floor arrive, so the plain means differ by
    ~2.3 dB, not 4."""
    levels = BeaconLevels(ble(), "edge-test")
    rng = random.Random(5)
    for receiver, offset in (("edge-test", 0.0), ("esp32-bakery", -4.0)):
        for i in range(3000):
            rssi = expected(BEACON_A, receiver, measured_power=-75) + offset + rng.gauss(0, math.hypot(4.0, 2.7))
            if rssi >= -95.0:
                levels.record(BEACON_A, receiver, round(rssi), -75, float(i))
    plain = levels.heard[BEACON_A]["esp32-bakery"].mean - levels.heard[BEACON_A]["edge-test"].mean
    assert plain > -3.0  # what the uncorrected means would suggest
    assert abs(levels.offsets()["esp32-bakery"] - (-4.0)) <= 0.4


def test_the_mean_forgets_slowly_so_a_moved_receiver_is_followed():
    levels = BeaconLevels(ble(), "edge-test")
    for i in range(MEAN_READINGS):
        levels.record(BEACON_A, "edge-test", -70.0, -59, float(i))
    for i in range(3 * MEAN_READINGS):
        levels.record(BEACON_A, "edge-test", -60.0, -59, float(MEAN_READINGS + i))
    mean = levels.heard[BEACON_A]["edge-test"].mean
    assert -61.0 < mean < -60.0


def test_a_new_path_loss_exponent_from_the_fleet_changes_the_offsets():
    levels = BeaconLevels(ble(), "edge-test")
    hear(levels, BEACON_A, "edge-test", 0.0, noise=0.0)
    hear(levels, BEACON_A, "esp32-bakery", 2.0, noise=0.0)
    hear(levels, BEACON_B, "esp32-bakery", 2.0, noise=0.0)
    hear(levels, BEACON_B, "esp32-dairy", 0.0, noise=0.0)
    before = levels.offsets()
    levels.reconfigure(ble(exponent=3.0))
    after = levels.offsets()
    # beacon A is as far from the host as from bakery; B is nearer bakery than dairy
    assert after["esp32-bakery"] == before["esp32-bakery"] and after["esp32-dairy"] != before["esp32-dairy"]


@pytest.mark.parametrize(
    ("change", "key", "expected"),
    [
        ({"beacon_positions": [{"beacon": "ibeacon:nope", "x_m": 1, "y_m": 1}]}, "beacon_positions[0].beacon", "an id"),
        (
            {"beacon_positions": [{"beacon": BEACON_A, "x_m": 1, "y_m": 1}, {"beacon": BEACON_A, "x_m": 2, "y_m": 2}]},
            "beacon_positions[1].beacon",
            "placed once",
        ),
        ({"receivers": [{"id": "edge-test", "zone": "entrance"}]}, "beacon_positions", "floor positions"),
        ({"beacon_positions": [{"beacon": BEACON_A, "x_m": 1}]}, "beacon_positions[0].y_m", "required"),
    ],
)
def test_bad_beacon_positions_are_refused_naming_the_key(change, key, expected):
    data = config_dict(Path("unused"), NO_ISSUER)
    data["ble"] = {
        "beacons": [BEACON_A],
        "receivers": [{"id": "edge-test", "zone": "entrance", "x_m": 0, "y_m": 0}],
        "beacon_positions": [{"beacon": BEACON_A, "x_m": 1, "y_m": 1}],
        **change,
    }
    with pytest.raises(ConfigError) as info:
        from_dict(data)
    [problem] = [p for p in info.value.problems if p.key == f"ble.{key}"]
    assert expected in str(problem)


def test_a_placed_beacon_profile_places_every_id_it_advertises(tmp_path):
    data = config_dict(tmp_path, NO_ISSUER)
    data["ble"] = {
        "beacon_profiles": ["entrance-ibeacon"],
        "receivers": [{"id": "edge-test", "zone": "entrance", "x_m": 0, "y_m": 0}],
        "beacon_positions": [{"beacon": "entrance-ibeacon", "x_m": 1, "y_m": 7, "height_m": 2.1}],
    }
    settings = devices.with_profiles(from_dict(data))
    placed = {p.beacon: (p.x_m, p.y_m, p.height_m) for p in settings.ble.beacon_positions}
    assert set(placed) == set(settings.ble.beacons) and len(placed) == 2  # its iBeacon and Eddystone frames
    assert set(placed.values()) == {(1.0, 7.0, 2.1)}


def ibeacon(minor: int) -> bytes:
    return bytes.fromhex("0215") + bytes(range(16)) + (1).to_bytes(2, "big") + minor.to_bytes(2, "big") + b"\xc5"


@pytest.mark.skipif(not dbus_available(), reason="needs dbus-daemon (Debian package dbus)")
async def test_healthz_suggests_the_nodes_offset_from_a_beacon_heard_by_the_bluez_scanner_and_the_node(
    tmp_path, issuer, broker, monkeypatch
):
    data = config_dict(tmp_path, issuer)
    data["sources"] = {"checkin": True, "ble": True}
    data["mqtt"] = {"host": "127.0.0.1", "port": broker.port, "bundle_public_keys": [KEY]}
    data["ble"] = {
        "remote_scanners": True,
        "beacons": [BEACON_A],
        "receivers": [
            {"id": "edge-test", "zone": "entrance", "x_m": 0.0, "y_m": 0.0},
            {"id": "esp32-bakery", "zone": "bakery", "x_m": 8.0, "y_m": 0.0, "offset_db": 0.0},
        ],
        "beacon_positions": [{"beacon": BEACON_A, "x_m": 4.0, "y_m": 1.0}],
    }
    with PrivateBus() as private:
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", private.address)
        sim = SimulatedBlueZ(private.address)
        await sim.start()
        agent = Agent(from_dict(data))
        await agent.start()
        node = publisher(broker.port)
        frame = {"rssi": -70, "mfg": {"76": ibeacon(10).hex()}}  # what the host hears, the node 3 dB stronger
        try:
            await wait_for(lambda: agent.remote_scanners.connected, what="subscriber connected")
            levels = agent.ble.resolver.beacons
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not {"edge-test", "esp32-bakery"} <= set(levels.offsets()):
                sim.advertise("beacon-a", -70, {0x004C: ibeacon(10)})
                payload = {"v": 1, "scanner": "esp32-bakery", "adverts": [{**frame, "rssi": -67}]}
                node.publish(f"retail/v1/{STORE}/scanners/esp32-bakery/adverts", json.dumps(payload))
                await asyncio.sleep(0.05)
            async with aiohttp.ClientSession() as http:
                health = await (await http.get(f"{agent.url}/healthz", headers=OPS)).json()
                scraped = await (await http.get(f"{agent.url}/metrics", headers=OPS)).text()
        finally:
            node.loop_stop()
            node.disconnect()
            await agent.stop()
            await sim.stop()
    heard = health["ble"]["beacons"][BEACON_A]
    assert heard["edge-test"]["mean_dbm"] == -70.0 and heard["esp32-bakery"]["mean_dbm"] == -67.0
    assert heard["edge-test"]["readings"] >= MIN_READINGS and heard["esp32-bakery"]["readings"] >= MIN_READINGS
    assert health["ble"]["receiver_offsets"] == {
        "edge-test": {"configured_db": 0.0, "suggested_db": 0.0},
        "esp32-bakery": {"configured_db": 0.0, "suggested_db": 3.0},  # the beacon is as far from both
    }
    assert f'edge_ble_beacon_mean_dbm{{beacon="{BEACON_A}",receiver="esp32-bakery"}} -67.0' in scraped
    assert 'edge_ble_offset_suggested_db{receiver="esp32-bakery"} 3.0' in scraped
