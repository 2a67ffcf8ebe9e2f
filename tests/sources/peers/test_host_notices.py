"""What one host tells the store's other hosts, signed, over a real Mosquitto: a kiosk withdrawal reaches every
host at once (and a host that was away when it is back), a check-in token used at one host is refused at the
others; a notice from a host not listed, with a bad signature or on another host's topic changes nothing."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.app import Agent
from edge_agent.config import from_dict
from edge_agent.events import ConsentChanged
from edge_agent.keys import DeviceKey
from edge_agent.sources.checkin.source import CheckinRejected
from edge_agent.sources.peers.notices import Notices, seal
from simulators.phone import phone_for
from tests.factories import STORE, config_dict, seed, wait_for

ALICE = phone_for("alice", "chain-test")
KEYS = {"host-a": DeviceKey(bytes(range(32))), "host-b": DeviceKey(bytes(range(1, 33)))}
TODAY = datetime.now(UTC).strftime("%Y%m%d")


def host(tmp_path, issuer, broker, device: str) -> Agent:
    folder = tmp_path / device
    folder.mkdir(exist_ok=True)
    if not (folder / "device.key").exists():
        KEYS[device].write(folder / "device.key")
    others = [{"device": d, "sign": k.public().as_json()["sign"]} for d, k in KEYS.items() if d != device]
    data = config_dict(folder, issuer, fleet={"hosts": others})
    data["store"] = {**data["store"], "device_id": device, "device_key_file": str(folder / "device.key")}
    data["mqtt"] = {
        "host": broker.host,
        "port": broker.port,
        "bundle_public_keys": ["A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="],
        "reconnect_min_s": 0.1,
        "reconnect_max_s": 0.5,
    }
    agent = Agent(from_dict(data))
    seed(agent, roster=[ALICE.roster_entry(time.time(), {"ble": True, "checkin": True, "personalisation": True})])
    return agent


def withdraw_at_kiosk(agent: Agent, channel: str) -> None:
    """What the kiosk does when the shopper switches a channel off."""
    wall = agent.clock.wall()
    agent.store.consents.set("alice", channel, False, at=wall.iso(), touchpoint="kiosk-a")
    agent.bus.publish(ConsentChanged("alice", channel, False, wall))


async def test_a_withdrawal_and_a_used_token_reach_the_other_host_at_once(tmp_path, issuer, broker):
    a, b = host(tmp_path, issuer, broker, "host-a"), host(tmp_path, issuer, broker, "host-b")
    heard = b.bus.subscribe(ConsentChanged, "test")
    await a.start()
    await b.start()
    try:
        await wait_for(lambda: a.notices.link.connected.is_set() and b.notices.link.connected.is_set(), what="links")
        await asyncio.sleep(0.5)  # the subscriptions in place
        assert b.store.roster.ble_day_keys([TODAY])
        withdraw_at_kiosk(a, "ble")
        change = await asyncio.wait_for(heard.get(), 10)
        assert (change.customer_ref, change.channel, change.granted) == ("alice", "ble", False)
        assert change.from_host == "host-a"
        held = b.store.roster.get("alice")
        assert held is not None and not held.consents_to("ble") and held.consent_epoch >= 1
        assert b.store.roster.ble_day_keys([TODAY]) == {}  # her day keys are gone there too
        reported = [row for row in b.store.outbox.peek("events", limit=1000) if row.kind == "consent"]
        assert reported == []  # the kiosk host reports it to the cloud, not every host

        token = issuer.token("alice", "screen-a")
        a.checkin.accept(token)
        await wait_for(lambda: b.notices.counts["tokens"] >= 1, what="the token noticed")
        try:
            b.checkin.accept(token)
        except CheckinRejected as exc:
            assert exc.code == "replayed"
        else:
            raise AssertionError("a token used at host-a was accepted at host-b")
    finally:
        await a.stop()
        await b.stop()


async def test_a_host_that_was_away_gets_the_withdrawal_when_it_is_back(tmp_path, issuer, broker):
    b = host(tmp_path, issuer, broker, "host-b")
    await b.start()
    await wait_for(lambda: b.notices.link.connected.is_set(), what="host-b once")
    await asyncio.sleep(0.5)
    await b.stop()  # its session stays with the broker

    a = host(tmp_path, issuer, broker, "host-a")
    await a.start()
    try:
        await wait_for(lambda: a.notices.link.connected.is_set(), what="host-a")
        withdraw_at_kiosk(a, "personalisation")
        await wait_for(lambda: a.notices.counts["sent"] >= 1, what="sent")
        back = Agent(b.settings)
        await back.start()
        try:
            await wait_for(lambda: back.notices.counts["withdrawals"] >= 1, what="the queued notice")
            assert not back.store.roster.get("alice").consents_to("personalisation")
        finally:
            await back.stop()
    finally:
        await a.stop()


async def test_notices_from_strangers_or_forged_change_nothing(tmp_path, issuer, broker):
    b = host(tmp_path, issuer, broker, "host-b")
    await b.start()
    attacker = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="attacker")
    attacker.connect(broker.host, broker.port)
    attacker.loop_start()
    try:
        await wait_for(lambda: b.notices.link.connected.is_set(), what="host-b")
        await asyncio.sleep(0.5)
        notices = Notices(v=1, at=datetime.now(UTC), withdrawals=[{"ref": "alice", "channel": "ble", "epoch": 99}])
        base = f"retail/v1/{STORE}/hosts"
        attempts = {
            "unknown_host": (f"{base}/host-x", seal(DeviceKey.generate(), STORE, "host-x", notices)),
            "bad_signature": (f"{base}/host-a", seal(DeviceKey.generate(), STORE, "host-a", notices)),
            "wrong_topic": (f"{base}/host-c", seal(KEYS["host-a"], STORE, "host-a", notices)),
            "malformed": (f"{base}/host-a", b'{"device": "host-a"}'),
        }
        for topic, payload in attempts.values():
            attacker.publish(topic, payload, qos=1)
        other_store = seal(KEYS["host-a"], "store-other", "host-a", notices)  # genuine, for another store
        attacker.publish(f"{base}/host-a", other_store, qos=1)
        await wait_for(lambda: sum(n for k, n in b.notices.counts.items() if k.startswith("refused:")) >= 5)
        refused = {k: n for k, n in b.notices.counts.items() if k.startswith("refused:")}
        assert refused == {
            "refused:unknown_host": 1,
            "refused:bad_signature": 2,  # a stranger's key, and host-a's own signature over another store
            "refused:wrong_topic": 1,
            "refused:malformed": 1,
        }
        assert b.store.roster.get("alice").consents_to("ble") and b.notices.counts["withdrawals"] == 0
    finally:
        attacker.loop_stop()
        attacker.disconnect()
        await b.stop()
