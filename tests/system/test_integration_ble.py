"""The real bleak scanner over a simulated BlueZ on a private D-Bus, end to end to Presence and the store."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

import pytest
from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

from edge_agent.app import Agent
from edge_agent.config import from_dict
from edge_agent.events import Presence, PresenceKind
from edge_agent.sources.ble.bluez_calls import add_match
from simulators.bluez import ADAPTER, PrivateBus, SimulatedBlueZ, dbus_available, fake_address
from simulators.phone import phone_for
from tests.factories import config_dict, seed, wait_for

pytestmark = pytest.mark.skipif(not dbus_available(), reason="needs dbus-daemon (Debian package dbus)")

CHAIN = "chain-test"
ALICE, BOB, CAROL = (phone_for(ref, CHAIN) for ref in ("alice", "bob", "carol"))
STRANGER = phone_for("stranger", CHAIN)


@pytest.fixture
def bus(monkeypatch):
    with PrivateBus() as private:
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", private.address)
        yield private


def ble_settings(tmp_path, issuer, stall_s=1.5):
    data = config_dict(tmp_path, issuer)
    data["sources"] = {"checkin": True, "ble": True}
    data["ble"] = {
        "receivers": [{"id": "edge-test", "zone": "entrance"}],
        "stall_s": stall_s,
        "window_s": 3.0,
    }
    return from_dict(data)


def roster(now, alice_ble=True):
    return [
        ALICE.roster_entry(now, {"checkin": True, "ble": alice_ble, "personalisation": True}, segments=("coffee",)),
        BOB.roster_entry(now, {"checkin": True, "personalisation": True}),  # never opted in to BLE
        CAROL.roster_entry(now, {"checkin": True, "ble": False}),  # withdrew BLE
    ]


JUNK = [  # truncated token, wrong version, short iBeacon, broken Eddystone, empty: none may raise
    ({0xFFFF: b"\x53\x01\x00"}, None),
    ({0xFFFF: b"\x53\x02" + bytes(16)}, None),
    ({0x004C: b"\x02\x15\x00"}, None),
    ({}, {"0000feaa-0000-1000-8000-00805f9b34fb": b"\x10"}),
    ({}, {}),
]


async def advertise_forever(sim, phones, rssi=-55, junk=False):
    while True:
        now = time.time()
        for phone in phones:
            sim.advertise(phone.customer_ref, rssi, phone.advert(now))
        if junk:
            for i, (mfg, svc) in enumerate(JUNK):
                sim.advertise(f"junk-{i}", rssi, mfg, svc)
        await asyncio.sleep(0.1)


@pytest.fixture
async def agent(tmp_path, issuer, bus):
    a = Agent(ble_settings(tmp_path, issuer))
    seed(a, roster=roster(time.time()))
    yield a
    await a.stop()


def presences(agent):
    sub = agent.bus.subscribe(Presence, "test", maxsize=10_000)
    seen: list[Presence] = []

    async def collect():
        async for p in sub:
            seen.append(p)

    return seen, asyncio.create_task(collect())


async def test_an_opted_in_phone_is_placed_and_nobody_else_leaves_a_trace(agent, bus, caplog):
    caplog.set_level(logging.DEBUG)
    sim = SimulatedBlueZ(bus.address)
    await sim.start()
    seen, collector = presences(agent)
    await agent.start()
    feeder = asyncio.create_task(advertise_forever(sim, [ALICE, BOB, CAROL, STRANGER], junk=True))
    try:
        await wait_for(lambda: any(p.subject.key == "customer:alice" for p in seen), what="alice's enter")
        await wait_for(lambda: agent.ble.resolver.counts["unknown_token"] >= 60, what="other phones' adverts")
        await wait_for(lambda: agent.ble.resolver.counts["other"] >= 30, what="the junk adverts")
        # the screens act on it: a decision for alice at her zone's touchpoints
        await wait_for(
            lambda: agent.store.db.execute("SELECT count(*) FROM decisions WHERE customer_ref = 'alice'").fetchone()[0],
            what="a decision for alice",
        )
    finally:
        feeder.cancel()
        collector.cancel()
        await sim.stop()
    enter = next(p for p in seen if p.subject.key == "customer:alice")
    assert (enter.kind, enter.zone) == (PresenceKind.ENTER, "entrance")
    assert sim.filters.get("DuplicateData") is True  # duplicate filtering off: every advert reaches us
    assert {p.subject.key for p in seen} == {"customer:alice"}
    assert agent.restarts["ble"] == 0  # junk and strangers never crashed the source
    # bob and carol are on the roster (check-in) but their phones are strangers to BLE
    keys = agent.store.db.execute("SELECT DISTINCT customer_ref FROM ble_day_keys").fetchall()
    assert keys == [("alice",)]
    for table in ("decisions", "impressions", "outbox"):
        refs = {r[0] for r in agent.store.db.execute(f"SELECT customer_ref FROM {table}").fetchall()}
        assert not refs & {"bob", "carol", "stranger"}
    traces = [fake_address(p.customer_ref) for p in (ALICE, BOB, CAROL, STRANGER)]
    traces += [p.token(time.time()).hex() for p in (ALICE, BOB, CAROL, STRANGER)]
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    db_bytes = b"".join(p.read_bytes() for p in agent.settings.database.path.parent.glob("agent.db*"))
    for trace in traces:
        assert trace not in logged and trace.lower() not in logged.lower()
        assert trace.encode() not in db_bytes and trace.replace(":", "").encode() not in db_bytes
    for name in ("bob", "carol", "stranger"):
        assert name not in logged


async def test_withdrawing_ble_consent_stops_resolution_within_seconds(agent, bus):
    sim = SimulatedBlueZ(bus.address)
    await sim.start()
    await agent.start()
    feeder = asyncio.create_task(advertise_forever(sim, [ALICE]))
    try:
        await wait_for(lambda: agent.ble.resolver.counts["resolved"] >= 5, what="alice resolved")
        agent.store.roster.upsert(roster(time.time(), alice_ble=False)[:1], updated_at=datetime.now(UTC).isoformat())
        await wait_for(lambda: agent.ble.resolver.tokens.customers == 0, what="tokens rebuilt without alice")
        resolved = agent.ble.resolver.counts["resolved"]
        unknown = agent.ble.resolver.counts["unknown_token"]
        await wait_for(lambda: agent.ble.resolver.counts["unknown_token"] >= unknown + 10, what="more adverts")
        assert agent.ble.resolver.counts["resolved"] == resolved
        assert agent.store.db.execute("SELECT count(*) FROM ble_day_keys").fetchone()[0] == 0
    finally:
        feeder.cancel()
        await sim.stop()


async def test_missing_adapter_and_bluez_restart_are_survived(agent, bus, caplog):
    caplog.set_level(logging.INFO)
    await agent.start()  # no BlueZ on the bus yet
    await wait_for(lambda: "BLE adapter hci0 unavailable" in caplog.text, what="the unavailable log line")
    assert agent.health()["components"]["engine"] == "running"
    sim = SimulatedBlueZ(bus.address)
    await sim.start()
    feeder = asyncio.create_task(advertise_forever(sim, [ALICE]))
    try:
        await wait_for(lambda: agent.ble.scanning and agent.ble.resolver.counts["resolved"] >= 3, what="scanning")
        await sim.restart()
        before = agent.ble.resolver.counts["resolved"]
        await wait_for(lambda: "restarting the scan" in caplog.text, what="the stall log line")
        await wait_for(lambda: agent.ble.resolver.counts["resolved"] >= before + 3, what="adverts after restart")
    finally:
        feeder.cancel()
        await sim.stop()
    assert agent.restarts["ble"] == 0


async def test_a_pulled_adapter_and_a_restarted_bluez_are_noticed_from_d_bus_not_the_stall_timer(
    tmp_path, issuer, bus, caplog
):
    caplog.set_level(logging.INFO)
    agent = Agent(ble_settings(tmp_path, issuer, stall_s=600.0))  # the stall timer cannot be what recovers
    seed(agent, roster=roster(time.time()))
    sim = SimulatedBlueZ(bus.address)
    await sim.start()
    await agent.start()
    feeder = asyncio.create_task(advertise_forever(sim, [ALICE]))
    resolved = lambda: agent.ble.resolver.counts["resolved"]  # noqa: E731
    try:
        await wait_for(lambda: agent.ble.scanning and resolved() >= 3, what="scanning")
        sim.unplug_adapter()
        await wait_for(lambda: "the adapter was removed; restarting the scan" in caplog.text, what="the loss")
        # Failed restarts after 0, 1, 3, 7 and 15 s: the back-off is now 16 s, and coming back must not wait for it.
        await wait_for(lambda: agent.ble.scan_failures >= 5, timeout=45, what="failed restarts while unplugged")
        sim.plug_adapter()
        before = resolved()
        await wait_for(lambda: resolved() >= before + 3, timeout=12, what="adverts soon after the adapter is back")
        await sim.restart()
        await wait_for(lambda: agent.ble.adapter_losses >= 2, what="the BlueZ restart noticed")
        before = resolved()
        await wait_for(lambda: resolved() >= before + 3, what="adverts after the BlueZ restart")
    finally:
        feeder.cancel()
        await agent.stop()
        await sim.stop()
    assert agent.restarts["ble"] == 0
    assert "no advert on hci0" not in caplog.text  # the stall timer never fired


async def test_the_simulated_bluez_rides_out_a_dbus_daemon_that_stops_reading(bus):
    """A busy machine can leave dbus-daemon unscheduled while adverts keep coming: the simulator's socket fills,
    and it must wait for room, not drop its connection (which would end every scan in the test or demo)."""
    sim = SimulatedBlueZ(bus.address)
    await sim.start()
    listener = await MessageBus(bus_address=bus.address).connect()
    heard: list[str] = []
    listener.add_message_handler(lambda m: heard.append(m.path) if m.member == "PropertiesChanged" else None)
    reply = await add_match(listener, "type='signal',sender='org.bluez',member='PropertiesChanged'")
    assert reply is not None and reply.message_type is MessageType.METHOD_RETURN
    start = Message(destination="org.bluez", path=sim.adapter_path, interface=ADAPTER, member="StartDiscovery")
    assert (await listener.call(start)).message_type is MessageType.METHOD_RETURN
    try:
        sim.advertise("phone", -60, {0xFFFF: b"\x00"})  # the device appears: its later adverts change properties
        bus.pause()
        try:
            for i in range(4000):  # far more than a socket's buffer holds
                sim.advertise("phone", -60, {0xFFFF: i.to_bytes(2, "big") + bytes(60)})
            await asyncio.sleep(0.5)
        finally:
            bus.resume()
        phone = f"{sim.adapter_path}/dev_{fake_address('phone').replace(':', '_')}"
        await wait_for(lambda: heard.count(phone) == 4000, what="every advert after the daemon woke up", timeout=60)
        assert sim.connected and sim.counts["adverts"] == 4001
    finally:
        listener.disconnect()
        await sim.stop()


async def test_the_token_in_ibeacon_shape_is_heard_through_bleak_and_only_for_consenting_phones(agent, bus):
    """An Android app with an iBeacon transmitter library advertises the same token as the proximity UUID."""
    sim = SimulatedBlueZ(bus.address)
    await sim.start()
    seen, collector = presences(agent)
    await agent.start()

    async def beacons_forever():
        while True:
            for phone in (ALICE, BOB, STRANGER):
                sim.advertise(phone.customer_ref, -55, phone.ibeacon_advert(time.time(), measured_power=-61))
            await asyncio.sleep(0.1)

    feeder = asyncio.create_task(beacons_forever())
    try:
        await wait_for(lambda: any(p.subject.key == "customer:alice" for p in seen), what="alice's enter")
        await wait_for(lambda: agent.ble.resolver.counts["unknown_token"] >= 20, what="the others' beacons")
    finally:
        feeder.cancel()
        collector.cancel()
        await sim.stop()
    assert {p.subject.key for p in seen} == {"customer:alice"}
    assert agent.ble.resolver.counts["beacon"] == 0  # a token in iBeacon shape is never taken for a store beacon
