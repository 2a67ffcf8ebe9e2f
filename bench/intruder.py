"""Intruder: what someone on the store LAN tries, against the real parts, and how much of it is refused.

The store's Mosquitto as shipped (config and ACL), the cloud simulator behind the bridge's stand-in user, and two
touchpoint hosts (in this process) with device keys, a sealed roster and each other's keys. The intruder holds a
scanner node's broker credentials, a host's, or (as a compromised bridge would) the cloud's path into the store,
and can reach the hosts' HTTP port. Each attack is one entry: refused (the victim's state unchanged, the attempt
counted) or not; `secrets_seen` counts BLE day keys found in clear in anything the intruder received. An attack
that is not refused is listed under `open`.

`python -m bench intruder [--quick]`; the last line is one JSON object:
{"attacks_tried": N, "attacks_refused": N, "secrets_seen": 0, "open": [...], "attacks": {name: bool}, ...}
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.app import Agent
from edge_agent.cloud.envelope import seal
from edge_agent.config import from_dict
from edge_agent.events import ConsentChanged
from edge_agent.keys import DeviceKey
from edge_agent.sources.checkin.source import CheckinRejected
from edge_agent.sources.peers import notices
from simulators.broker import store_broker
from simulators.checkin_app import CheckinIssuer
from simulators.cloud import CloudSim, roster_bundle
from simulators.phone import phone_for

STORE, CHAIN, NODE = "store-bench", "chain-bench", "esp32-bakery"
HOSTS = ("host-a", "host-b")
PASSWORDS = {"host-a": "pw-host-a-1", "host-b": "pw-host-b-1", NODE: "pw-node-1", "cloud": "pw-cloud-1"}
KIOSK_TOKEN = "kiosk-token-for-the-bench-01"
LOYALTY = "40012345"
BASE = f"retail/v1/{STORE}"
SETTLE_S = 1.0  # how long a refused message gets to show an effect it should not have


class Store:
    """Everything the attacks need: the broker, the cloud, the two hosts, the victim's day key."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.keys = {h: DeviceKey.generate() for h in HOSTS}
        self.issuer = CheckinIssuer(STORE)
        self.alice = phone_for("alice", CHAIN)
        self.day_keys = [k for k in self.alice.roster_entry(time.time(), {"ble": True}).decoded_day_keys().values()]
        self.broker = store_broker(workdir / "broker", STORE, PASSWORDS, hosts=list(HOSTS), nodes=[NODE])
        self.cloud: CloudSim
        self.hosts: dict[str, Agent] = {}

    def secret_file(self, name: str, text: str) -> Path:
        path = self.workdir / name
        path.write_text(text + "\n")
        path.chmod(0o600)
        return path

    def settings(self, device: str) -> dict[str, Any]:
        folder = self.workdir / device
        folder.mkdir(exist_ok=True)
        self.keys[device].write(folder / "device.key")
        others = [{"device": d, "sign": self.keys[d].public().as_json()["sign"]} for d in HOSTS if d != device]
        return {
            "store": {
                "id": STORE,
                "chain_id": CHAIN,
                "device_id": device,
                "device_key_file": str(folder / "device.key"),
            },
            "zones": [{"id": "entrance"}],
            "touchpoints": [
                {"id": "screen-a", "kind": "screen", "zone": "entrance"},
                {"id": "kiosk-a", "kind": "kiosk", "zone": "entrance"},
            ],
            "database": {"path": str(folder / "agent.db")},
            "http": {"host": "127.0.0.1", "port": 0},
            "checkin": {"public_keys": [self.issuer.public_key_b64]},
            "surfaces": {
                # the intruder is on the store LAN: this host's own browsers are not taken as paired either
                "auth": {"kiosk_tokens": [KIOSK_TOKEN], "local_screens_paired": False},
                "kiosk": {"phone_salt": "bench-salt"},
            },
            "fleet": {"hosts": others},
            "mqtt": {
                "host": "127.0.0.1",
                "port": self.broker.port,
                "username": device,
                "password_file": str(self.secret_file(f"{device}.pw", PASSWORDS[device])),
                "bundle_public_keys": [self.cloud.public_key_b64],
                "reconnect_min_s": 0.1,
                "reconnect_max_s": 0.5,
            },
        }

    async def __aenter__(self) -> Store:
        self.broker.start()
        login = ("cloud", self.secret_file("cloud.pw", PASSWORDS["cloud"]))
        devices = {h: k.public() for h, k in self.keys.items()}
        self.cloud = await CloudSim("127.0.0.1", self.broker.port, STORE, devices=devices, login=login).start()
        for device in HOSTS:
            agent = Agent(from_dict(self.settings(device)))
            await agent.start()
            self.hosts[device] = agent
        await self.cloud.wait_for(lambda: all(self.cloud.status.get(h) == "online" for h in HOSTS))
        await self.publish_roster(1)
        await self.cloud.wait_for(lambda: all(a.notices and a.notices.link.connected.is_set() for a in self.agents))
        return self

    @property
    def agents(self) -> list[Agent]:
        return list(self.hosts.values())

    async def publish_roster(self, version: int) -> None:
        """Alice (BLE, check-in, her loyalty card) and Bob (check-in), both at consent epoch 1."""
        consents = {"ble": True, "checkin": True, "personalisation": True}
        alice = self.alice.roster_entry(time.time(), consents).model_copy(update={"consent_epoch": 1})
        alice = alice.model_copy(update={"loyalty_id": LOYALTY})
        bob = alice.model_copy(update={"customer_ref": "bob", "loyalty_id": None, "day_keys": {}})
        await self.cloud.publish_roster(roster_bundle(version, [alice, bob]))
        await self.cloud.wait_for(
            lambda: all(a.store.bundle_versions.current("roster") == version for a in self.agents)
        )

    async def __aexit__(self, *exc: object) -> None:
        for agent in self.hosts.values():
            await agent.stop()
        await self.cloud.close()
        self.broker.stop()

    @property
    def a(self) -> Agent:
        return self.hosts["host-a"]

    @property
    def b(self) -> Agent:
        return self.hosts["host-b"]

    def client(self, user: str | None, client_id: str) -> tuple[mqtt.Client, list[bytes]]:
        heard: list[bytes] = []
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        if user is not None:
            c.username_pw_set(user, PASSWORDS[user])
        c.on_message = lambda _c, _u, m: heard.append(bytes(m.payload))
        c.connect("127.0.0.1", self.broker.port)
        c.loop_start()
        return c, heard

    def secrets_in(self, heard: list[bytes]) -> int:
        """Day keys found in clear: raw, base64, hex, and inside any envelope's payload."""
        blobs = list(heard)
        for message in heard:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                payload = json.loads(message)["payload"]
                blobs.append(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        forms = [f for k in self.day_keys for f in (k, base64.b64encode(k), k.hex().encode())]
        return sum(1 for blob in blobs for form in forms if form in blob)

    def alice_intact(self) -> bool:
        return all(a.store.roster.get(ref) is not None for a in self.agents for ref in ("alice", "bob"))


async def _settle() -> None:
    await asyncio.sleep(SETTLE_S)


def _done(c: mqtt.Client) -> None:
    c.loop_stop()
    c.disconnect()


# --- the attacks: each returns (refused, secrets seen) ----------------------------------------------------------

Attack = Callable[[Store], Awaitable[tuple[bool, int]]]


async def node_reads_the_store(s: Store) -> tuple[bool, int]:
    node, heard = s.client(NODE, "node-reader")
    for topic in ("#", f"{BASE}/#", f"{BASE}/roster", f"{BASE}/+/events", f"{BASE}/hosts/+"):
        node.subscribe(topic, qos=1)
    await _settle()
    _done(node)
    return heard == [], s.secrets_in(heard)


async def bridge_reads_the_roster(s: Store) -> tuple[bool, int]:
    """Whoever reads the retained roster on the broker or the bridge (here with the bridge's own access)."""
    reader, heard = s.client("cloud", "roster-reader")
    reader.subscribe(f"{BASE}/roster", qos=1)
    await _settle()
    _done(reader)
    seen = s.secrets_in(heard)
    return bool(heard) and seen == 0, seen


async def node_publishes_downlink(s: Store) -> tuple[bool, int]:
    node, _ = s.client(NODE, "node-writer")
    genuine = s.cloud.signed_command("host-a", "erase", customer_ref="alice", consent_epoch=1)[1]
    before = dict(s.a.cloud.downlink.counts)
    for topic, payload in (
        (f"{BASE}/cmd/host-a", genuine),
        (f"{BASE}/cmd/*", b'{"type": "erase"}'),
        (f"{BASE}/roster", b"{}"),
        (f"{BASE}/presence/host-a", b"{}"),
        (f"{BASE}/hosts/host-a", b"{}"),
        (f"{BASE}/host-a/events", b"[]"),
    ):
        node.publish(topic, payload, qos=1)
    await _settle()
    _done(node)
    return dict(s.a.cloud.downlink.counts) == before and s.alice_intact(), 0


async def host_credentials_publish_a_command(s: Store) -> tuple[bool, int]:
    imposter, _ = s.client("host-b", "host-b-imposter")
    genuine = s.cloud.signed_command("host-a", "erase", customer_ref="alice", consent_epoch=1)[1]
    imposter.publish(f"{BASE}/cmd/host-a", genuine, qos=1)
    await _settle()
    _done(imposter)
    return s.alice_intact(), 0


async def _through_the_bridge(s: Store, payload: bytes, topic: str = f"{BASE}/cmd/host-a") -> bool:
    """Delivered as a compromised bridge would: only the signature and its bindings can refuse it."""
    before = sum(n for k, n in s.a.cloud.downlink.counts.items() if ":rejected:" in k)
    await s.cloud.publish(topic.removeprefix(f"{BASE}/"), payload)
    await _settle()
    after = sum(n for k, n in s.a.cloud.downlink.counts.items() if ":rejected:" in k)
    return after == before + 1 and s.alice_intact()


def _erase(device: str = "host-a") -> bytes:
    body = {"command_id": f"x-{time.monotonic_ns()}", "device": device, "issued_at": datetime.now(UTC).isoformat()}
    return json.dumps(body | {"type": "erase", "customer_ref": "alice", "consent_epoch": 1}).encode()


async def unsigned_command(s: Store) -> tuple[bool, int]:
    return await _through_the_bridge(s, _erase()), 0


async def forged_command(s: Store) -> tuple[bool, int]:
    return await _through_the_bridge(s, seal(Ed25519PrivateKey.generate(), "command", STORE, _erase())), 0


async def another_stores_command(s: Store) -> tuple[bool, int]:
    return await _through_the_bridge(s, seal(s.cloud.key, "command", "store-other", _erase())), 0


async def another_hosts_command(s: Store) -> tuple[bool, int]:
    return await _through_the_bridge(s, seal(s.cloud.key, "command", STORE, _erase("host-b"))), 0


async def replayed_command(s: Store) -> tuple[bool, int]:
    command_id, show = s.cloud.signed_command("host-a", "ping")
    await s.cloud.publish("cmd/host-a", show)
    await s.cloud.wait_for(lambda: s.cloud.ack_for(command_id) is not None)
    duplicates = s.a.cloud.downlink.counts["cmd:duplicate"]
    await s.cloud.publish("cmd/host-a", show)
    await _settle()
    return s.a.cloud.downlink.counts["cmd:duplicate"] == duplicates + 1, 0


async def unsigned_context(s: Store) -> tuple[bool, int]:
    fake = {"version": 99, "issued_at": datetime.now(UTC).isoformat(), "weather": {"sky": "snow"}}
    return await _through_the_bridge(s, json.dumps(fake).encode(), f"{BASE}/context"), 0


async def stale_roster_regrants(s: Store) -> tuple[bool, int]:
    wall = s.a.clock.wall()
    s.a.store.consents.set("alice", "ble", False, at=wall.iso(), touchpoint="kiosk-a")
    s.a.bus.publish(ConsentChanged("alice", "ble", False, wall))
    await _settle()  # the withdrawal reaches host-b
    await s.publish_roster(2)  # made before her withdrawal: epoch 1, Bluetooth on
    held = [a.store.roster.get("alice") for a in s.hosts.values()]
    return all(h is not None and not h.consents_to("ble") for h in held) and all(
        not a.store.roster.ble_day_keys([datetime.now(UTC).strftime("%Y%m%d")]) for a in s.hosts.values()
    ), 0


async def typed_number_grants_ble(s: Store) -> tuple[bool, int]:
    base = f"{s.b.url}/api/kiosk/kiosk-a"
    headers = {"Authorization": f"Bearer {KIOSK_TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        opened = await (await http.post(f"{base}/identify", json={"method": "loyalty", "value": LOYALTY})).json()
        session = {"X-Kiosk-Session": opened["session"]}
        grant = await http.post(f"{base}/consent", json={"channel": "face", "granted": True}, headers=session)
    held = s.b.store.roster.get("alice")
    return grant.status == 403 and held is not None and not held.consents_to("face"), 0


async def token_reused_at_another_host(s: Store) -> tuple[bool, int]:
    token = s.issuer.token("alice", "screen-a")
    s.a.checkin.accept(token)
    await _settle()
    try:
        s.b.checkin.accept(token)
    except CheckinRejected as exc:
        return exc.code == "replayed", 0
    return False, 0


async def forged_host_notice(s: Store) -> tuple[bool, int]:
    fake = notices.Notices(v=1, at=datetime.now(UTC), withdrawals=[{"ref": "bob", "channel": "checkin", "epoch": 9}])
    before = s.b.notices.counts["refused:bad_signature"]
    await s.cloud.publish("hosts/host-a", notices.seal(DeviceKey.generate(), STORE, "host-a", fake))
    await _settle()
    bob = s.b.store.roster.get("bob")
    refused = s.b.notices.counts["refused:bad_signature"] == before + 1
    return refused and bob is not None and bob.consents_to("checkin"), 0


async def unpaired_screen_watches(s: Store) -> tuple[bool, int]:
    """Open a screen's WebSocket with a guessed key, and try to acknowledge a show (forged proof of play)."""
    url = f"{s.a.url.replace('http', 'ws', 1)}/ws/screen/screen-a"
    impressions = s.a.store.impressions.count()
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        await ws.send_json({"type": "hello", "key": "guessed"})
        await ws.send_json({"type": "ack", "show_id": "any", "displayed_at": datetime.now(UTC).isoformat()})
        frames = []
        while (msg := await ws.receive(timeout=15)).type is aiohttp.WSMsgType.TEXT:
            frames.append(msg.data)
    return frames == [] and ws.close_code == 4401 and s.a.store.impressions.count() == impressions, 0


ATTACKS: list[Attack] = [
    node_reads_the_store,
    bridge_reads_the_roster,
    node_publishes_downlink,
    host_credentials_publish_a_command,
    unsigned_command,
    forged_command,
    another_stores_command,
    another_hosts_command,
    replayed_command,
    unsigned_context,
    stale_roster_regrants,
    typed_number_grants_ble,
    token_reused_at_another_host,
    forged_host_notice,
    unpaired_screen_watches,
]


async def run(quick: bool) -> dict[str, Any]:
    started = time.monotonic()
    results: dict[str, bool] = {}
    secrets = 0
    with tempfile.TemporaryDirectory(prefix="bench-intruder-") as tmp:
        async with Store(Path(tmp)) as store:
            for attack in ATTACKS:
                refused, seen = await attack(store)
                results[attack.__name__] = refused
                secrets += seen
    return {
        "attacks_tried": len(results),
        "attacks_refused": sum(results.values()),
        "secrets_seen": secrets,
        "open": [name for name, refused in results.items() if not refused],
        "attacks": results,
        "seconds": round(time.monotonic() - started, 1),
    }
