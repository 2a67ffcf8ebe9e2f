"""App reports by both ways in, to a running agent: the store Wi-Fi listener (one route, rate-limited, nothing else
served) and the cloud's relay through a real Mosquitto (signed envelope). Either way the shopper is placed in the
zone of the beacon heard, by the same verifier."""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.cloud.envelope import seal
from edge_agent.config import from_dict
from edge_agent.keys import DeviceKeyError
from edge_agent.ops import metrics
from edge_agent.sources.ble import zone_beacons
from edge_agent.sources.ble.report_listener import RateLimit
from edge_agent.sources.ble.reports import HeardBeacon
from edge_agent.sources.ble.tokens import interval_of
from simulators.cloud import roster_bundle
from simulators.phone import phone_for
from tests.factories import DEVICE, OPS, STORE, config_dict, device_key_file, mqtt_section, wait_for

from .test_ble_source import FakeClock

KEY = bytes(range(32))
ALICE = phone_for("alice", "chain-test")


def beacon_key_file(folder: Path) -> str:
    path = folder / "zone-beacon.key"
    path.write_text(KEY.hex() + "\n")
    path.chmod(0o600)
    return str(path)


def reporting(tmp_path, issuer, **overrides):
    data = config_dict(
        tmp_path,
        issuer,
        sources={"checkin": True, "ble_reports": True},
        ble={
            "receivers": [{"id": DEVICE, "zone": "entrance"}],
            "zone_beacon": {
                "uuid": "e2c56db5-dffb-48d2-b060-d0f5a71096e0",
                "major": 7,
                "key_file": beacon_key_file(tmp_path),
            },
        },
        **overrides,
    )
    return data


def report(zone: str, rssi: int = -60, proximity: str = "near") -> bytes:
    at = int(time.time())
    return ALICE.report(at, (HeardBeacon(7, zone_beacons.minor(KEY, zone, interval_of(at)), rssi, proximity),))


async def test_a_phone_on_the_store_wifi_is_placed_by_its_report_and_sees_nothing_else(tmp_path, issuer, running):
    data = reporting(tmp_path, issuer)
    data["http"] = {"host": "127.0.0.1", "port": 0, "report_listen": "127.0.0.1:0", "report_rate_per_minute": 1000}
    agent = await running(from_dict(data))
    agent.store.roster.upsert([ALICE.roster_entry(time.time(), {"ble": True})], updated_at="2030-01-01T00:00:00")
    await agent.ble.refresh(force=True)
    url = agent.report_listener.url
    async with aiohttp.ClientSession() as http:
        sent = report("bakery")
        async with http.post(f"{url}/api/ble/report", data=sent) as resp:
            assert resp.status == 202 and await resp.json() == {"taken": True}
        await wait_for(lambda: ("customer:alice", "bakery") in agent.presence.placed(), what="alice at the bakery")
        async with http.post(f"{url}/api/ble/report", data=sent) as resp:
            assert resp.status == 409 and await resp.json() == {"error": "replay"}
        async with http.post(f"{url}/api/ble/report", data=b"not json") as resp:
            assert resp.status == 400 and await resp.json() == {"error": "malformed"}
        async with http.post(f"{url}/api/ble/report", data=b"x" * 5000) as resp:
            assert resp.status == 413
        for path in ("/healthz", "/metrics", "/dashboard", "/api/kiosk/identify"):  # the LAN sees one route only
            async with http.get(f"{url}{path}") as resp:
                assert resp.status == 404
        async with http.get(f"{agent.url}/healthz", headers=OPS) as resp:
            health = (await resp.json())["ble_reports"]
        assert health["reports"] == {"taken_lan": 1, "refused_replay": 1, "refused_malformed": 1}
        assert health["listener"]["url"].endswith("/api/ble/report")
    text = metrics.render(agent.metrics).decode()
    assert 'edge_ble_app_reports_total{result="taken_lan"} 1.0' in text


async def test_the_listener_tells_a_flooding_address_to_wait(tmp_path, issuer, running):
    data = reporting(tmp_path, issuer)
    data["http"] = {"host": "127.0.0.1", "port": 0, "report_listen": "127.0.0.1:0", "report_rate_per_minute": 3}
    agent = await running(from_dict(data))
    statuses, waits = [], []
    async with aiohttp.ClientSession() as http:
        for _ in range(8):  # within a minute, or across at most one minute's end: at most 6 may pass
            async with http.post(f"{agent.report_listener.url}/api/ble/report", data=b"{}") as resp:
                statuses.append(resp.status)
                waits.append(resp.headers.get("Retry-After"))
    assert statuses.count(429) >= 2 and set(statuses) <= {400, 429}
    assert all(w is not None and 1 <= int(w) <= 60 for s, w in zip(statuses, waits, strict=True) if s == 429)
    assert agent.report_listener.counts["rate_limited"] == statuses.count(429)


def test_the_rate_limit_counts_each_address_by_the_minute():
    clock = FakeClock()
    clock.t = 120.0
    limit = RateLimit(2, clock)
    assert [limit.wait_s("10.0.0.5") for _ in range(3)] == [0.0, 0.0, 60.0]
    assert limit.wait_s("10.0.0.6") == 0.0  # another phone is not held back
    clock.t = 150.0
    assert limit.wait_s("10.0.0.5") == 30.0
    clock.t = 180.0
    assert limit.wait_s("10.0.0.5") == 0.0


async def test_a_report_relayed_by_the_cloud_places_the_shopper_and_a_forged_relay_is_refused(
    tmp_path, issuer, broker, cloud, running
):
    data = reporting(tmp_path, issuer, mqtt=mqtt_section(broker, cloud))
    data["store"]["device_key_file"] = device_key_file(tmp_path)
    agent = await running(from_dict(data))
    await cloud.wait_for(lambda: agent.cloud.link.connected.is_set())
    await cloud.publish_roster(roster_bundle(1, [ALICE.roster_entry(time.time(), {"ble": True})]))
    await cloud.wait_for(lambda: agent.ble.resolver.tokens.customers == 1)
    await cloud.publish("ble/report", seal(Ed25519PrivateKey.generate(), "ble_report", STORE, report("bakery")))
    await cloud.relay_report(report("bakery"))
    await wait_for(lambda: ("customer:alice", "bakery") in agent.presence.placed(), what="alice at the bakery")
    assert agent.cloud.downlink.counts["ble_report:rejected:bad_signature"] == 1
    assert agent.reports.counts == {"taken_cloud": 1}


def test_the_operator_makes_the_stores_zone_beacon_key_once(tmp_path):
    from edge_agent.cli import main
    from edge_agent.keys import zone_beacon_key

    assert main(["keys", "new", "--zone-beacon", "--dir", str(tmp_path)]) == 0
    path = tmp_path / "zone-beacon.key"
    assert path.stat().st_mode & 0o777 == 0o600 and len(zone_beacon_key(path)) == 32
    before = path.read_bytes()
    assert main(["keys", "new", "--zone-beacon", "--dir", str(tmp_path)]) == 2  # never overwritten
    assert path.read_bytes() == before
    path.chmod(0o644)
    with pytest.raises(DeviceKeyError, match="chmod 600"):
        zone_beacon_key(path)
