"""The zone beacon this host advertises through BlueZ: exactly the iBeacon of its zone and interval, a new minor
each interval, back after bluetoothd restarts and the adapter returns, said once when there is no bus at all;
and the simulated BlueZ's LEAdvertisingManager1 answering as bluetoothd does."""

from __future__ import annotations

import asyncio
import logging
import struct
import uuid

import pytest
from dbus_fast import Message, MessageFlag, MessageType, Variant
from dbus_fast.aio import MessageBus

from edge_agent.clock import Clock
from edge_agent.config import from_dict
from edge_agent.sources.ble import frames, zone_advertiser, zone_beacons
from edge_agent.sources.ble.zone_advertiser import ZoneAdvertiser
from simulators.bluez import ADVERTISEMENT, ADVERTISING_MANAGER, PROPERTIES, PrivateBus, SimulatedBlueZ, dbus_available
from tests.factories import config_dict, running_task, wait_for

needs_dbus = pytest.mark.skipif(not dbus_available(), reason="needs dbus-daemon (Debian package dbus)")

APP_UUID = "8a3c5a1e-2f4b-4c7d-9e10-1f2a3b4c5d6e"
KEY = bytes(range(32))
T0 = 1_800_000_005.0  # in interval 3 000 000


class SteppedClock(Clock):
    """Wall time moved by the test; monotonic time real."""

    def __init__(self) -> None:
        super().__init__()
        self.u = T0

    def unix(self) -> float:
        return self.u


def beacon_settings(tmp_path, issuer, **zone_beacon):
    key_file = tmp_path / "zone-beacon.key"
    key_file.write_text(KEY.hex())
    key_file.chmod(0o600)
    data = config_dict(tmp_path, issuer)
    data["ble"] = {
        "receivers": [{"id": "edge-test", "zone": "entrance"}],
        "zone_beacon": {"advertise": True, "uuid": APP_UUID, "major": 42, "key_file": str(key_file), **zone_beacon},
    }
    return from_dict(data)


def ibeacon(minor, measured_power=-59):
    """The Apple manufacturer data of the store's beacon, written out independently of frames.py."""
    return bytes([0x02, 0x15]) + uuid.UUID(APP_UUID).bytes + struct.pack(">HHb", 42, minor, measured_power)


def samples(adv):
    return {(s.name, s.labels["zone"]): s.value for family in adv.metrics() for s in family.samples}


@pytest.fixture
def bus(monkeypatch):
    with PrivateBus() as private:
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", private.address)
        yield private


@pytest.fixture
async def bluez(bus):
    sim = SimulatedBlueZ(bus.address)
    await sim.start()
    yield sim
    await sim.stop()


# --- the iBeacon value ---


def test_an_ibeacon_is_built_as_ibeacon_in_reads_it():
    raw = bytes(range(16))
    data = frames.ibeacon_data(raw, 42, 28186, -59)
    assert data.hex() == "0215" + raw.hex() + "002a" + "6e1a" + "c5"
    assert frames.ibeacon_in({frames.APPLE: data}) == frames.IBeacon(
        "00010203-0405-0607-0809-0a0b0c0d0e0f", 42, 28186, -59
    )
    for major, minor, power in ((0, 0xFFFF, 127), (0xFFFF, 0, -128)):
        beacon = frames.ibeacon_in({frames.APPLE: frames.ibeacon_data(raw, major, minor, power)})
        assert beacon is not None and (beacon.major, beacon.minor, beacon.measured_power) == (major, minor, power)
    for bad in ((bytes(15), 1, 1, -59), (raw, 0x10000, 1, -59), (raw, 1, -1, -59), (raw, 1, 1, -129)):
        with pytest.raises(ValueError):
            frames.ibeacon_data(*bad)
    # the token in iBeacon shape is the same bytes as before the builder was generalised
    assert frames.ibeacon_payload(raw, -61) == bytes.fromhex("0215") + raw + bytes.fromhex("53454101c3")


# --- the advertiser over the simulated BlueZ ---


@needs_dbus
async def test_bluez_reads_the_zone_ibeacon_of_this_interval_as_configured(tmp_path, issuer, bluez):
    settings = beacon_settings(tmp_path, issuer, interval_ms=200, tx_power_dbm=4, measured_power_dbm=-61)
    clock = SteppedClock()
    adv = ZoneAdvertiser(settings, KEY, clock)
    minor = zone_beacons.minor(KEY, "entrance", 3_000_000)
    async with running_task(adv.run()):
        await wait_for(lambda: adv.advertising and bluez.advertisements, what="the advert registered")
        [advert] = bluez.advertisements
        assert advert.properties == {
            "Type": "broadcast",
            "ManufacturerData": {0x004C: ibeacon(minor, -61)},
            "MinInterval": 200,
            "MaxInterval": 200,
            "TxPower": 4,
        }
        assert bluez.on_air(advert) == bytes([26, 0xFF, 0x4C, 0x00]) + ibeacon(minor, -61)
        assert frames.ibeacon_in(advert.manufacturer_data) == frames.IBeacon(APP_UUID, 42, minor, -61)
        assert zone_beacons.zone_of(KEY, ["entrance", "bakery"], minor, clock.u) == "entrance"
        health = adv.health()
        assert health["since"] is not None and health["since"] >= 0
        assert health == {
            "advertising": True,
            "adapter": "hci0",
            "zone": "entrance",
            "uuid": APP_UUID,
            "major": 42,
            "minor": minor,
            "interval_ms": 200,
            "tx_power_dbm": 4,
            "measured_power_dbm": -61,
            "registrations": 1,
            "failures": 0,
            "since": health["since"],
            "last_error": None,
        }
        assert samples(adv) == {
            ("edge_ble_zone_beacon_advertising", "entrance"): 1,
            ("edge_ble_zone_beacon_registrations_total", "entrance"): 1,
            ("edge_ble_zone_beacon_failures_total", "entrance"): 0,
        }
    # the agent stopped: its connection closed, bluetoothd drops what it had registered
    await wait_for(lambda: not bluez.advertisements, what="the advert gone with the agent")
    assert not adv.advertising and adv.health()["since"] is None


@needs_dbus
async def test_without_tx_power_the_adapter_chooses_and_the_defaults_apply(tmp_path, issuer, bluez):
    adv = ZoneAdvertiser(beacon_settings(tmp_path, issuer), KEY, SteppedClock())
    async with running_task(adv.run()):
        await wait_for(lambda: bluez.advertisements, what="the advert registered")
        [advert] = bluez.advertisements
    assert advert.properties == {
        "Type": "broadcast",
        "ManufacturerData": {0x004C: ibeacon(zone_beacons.minor(KEY, "entrance", 3_000_000))},
        "MinInterval": 100,
        "MaxInterval": 100,
    }


@needs_dbus
async def test_each_new_interval_is_registered_with_its_minor_and_the_old_one_withdrawn(tmp_path, issuer, bluez):
    clock = SteppedClock()
    adv = ZoneAdvertiser(beacon_settings(tmp_path, issuer), KEY, clock)
    minors = [zone_beacons.minor(KEY, "entrance", j) for j in (3_000_000, 3_000_001, 3_000_002)]
    assert len(set(minors)) == 3

    def advertised():
        return [ibeacon_minor(a) for a in bluez.advertised]

    async with running_task(adv.run()):
        await wait_for(lambda: adv.advertising, what="the first advert")
        clock.u += 590  # still interval 3 000 000: nothing changes
        await asyncio.sleep(2 * zone_advertiser.TICK_S)
        assert len(bluez.advertised) == 1
        clock.u += 10
        await wait_for(lambda: len(bluez.advertised) == 2 and adv.advertising, what="the second interval's advert")
        clock.u += 600
        await wait_for(lambda: len(bluez.advertised) == 3 and adv.advertising, what="the third interval's advert")
        assert advertised() == minors
        assert [ibeacon_minor(a) for a in bluez.advertisements] == minors[2:]  # only the current one is on air
        assert bluez.counts["call:UnregisterAdvertisement"] == 2
        assert (adv.health()["minor"], adv.registrations, adv.failures) == (minors[2], 3, 0)


def ibeacon_minor(advert):
    beacon = frames.ibeacon_in(advert.manufacturer_data)
    assert beacon is not None and (beacon.uuid, beacon.major) == (APP_UUID, 42)
    return beacon.minor


@needs_dbus
async def test_it_registers_again_after_bluetoothd_restarts(tmp_path, issuer, bluez, caplog):
    caplog.set_level(logging.INFO, logger=zone_advertiser.__name__)
    adv = ZoneAdvertiser(beacon_settings(tmp_path, issuer), KEY, SteppedClock())
    async with running_task(adv.run()):
        await wait_for(lambda: adv.advertising, what="the first advert")
        first = bluez.advertisements[0].properties
        await bluez.restart()  # bluetoothd forgets it: only a new registration brings it back
        await wait_for(lambda: len(bluez.advertised) == 2 and adv.advertising, what="the advert registered again")
        assert bluez.advertisements[0].properties == first
        assert adv.registrations == 2 and adv.failures >= 1
    lines = [r.getMessage() for r in caplog.records if r.name == zone_advertiser.__name__]
    assert any("bluetoothd left the bus" in line or "adapter was removed" in line for line in lines)
    assert any("advertising again" in line for line in lines)


@needs_dbus
async def test_it_is_released_with_the_adapter_and_registers_when_it_is_back(tmp_path, issuer, bluez):
    adv = ZoneAdvertiser(beacon_settings(tmp_path, issuer), KEY, SteppedClock())
    async with running_task(adv.run()):
        await wait_for(lambda: adv.advertising, what="the first advert")
        bluez.unplug_adapter()
        assert bluez.counts["released"] == 1 and not bluez.advertisements
        await wait_for(lambda: not adv.advertising, what="the loss noticed")
        await wait_for(lambda: adv.failures >= 2, what="a registration refused while the adapter is away")
        assert "UnknownObject" in adv.health()["last_error"]
        assert samples(adv)[("edge_ble_zone_beacon_advertising", "entrance")] == 0
        bluez.plug_adapter()
        await wait_for(lambda: adv.advertising and bluez.advertisements, what="the advert registered again")
        assert ibeacon_minor(bluez.advertisements[0]) == zone_beacons.minor(KEY, "entrance", 3_000_000)
        assert samples(adv)[("edge_ble_zone_beacon_advertising", "entrance")] == 1
        assert adv.health()["registrations"] == 2


@needs_dbus
async def test_it_registers_as_soon_as_bluetoothd_appears_not_at_its_next_retry(tmp_path, issuer, bus, monkeypatch):
    monkeypatch.setattr(zone_advertiser, "RETRY_MIN_S", 120.0)  # a retry by the timer would come far too late
    adv = ZoneAdvertiser(beacon_settings(tmp_path, issuer), KEY, SteppedClock())
    sim = SimulatedBlueZ(bus.address)
    try:
        async with running_task(adv.run()):
            await wait_for(lambda: adv.failures >= 1, what="the registration refused: no bluetoothd")
            assert "ServiceUnknown" in adv.health()["last_error"] and not adv.advertising
            await sim.start()
            await wait_for(lambda: adv.advertising and sim.advertisements, timeout=30, what="registered when it came")
    finally:
        await sim.stop()


async def test_without_a_system_bus_it_says_so_once_and_keeps_trying(tmp_path, issuer, monkeypatch, caplog):
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path / 'no-bus'}")
    monkeypatch.setattr(zone_advertiser, "NO_BUS_RETRY_S", 0.05)
    caplog.set_level(logging.DEBUG, logger=zone_advertiser.__name__)
    adv = ZoneAdvertiser(beacon_settings(tmp_path, issuer), KEY, SteppedClock())
    async with running_task(adv.run()):
        await wait_for(lambda: adv.failures >= 3, what="three tries")
    ours = [r for r in caplog.records if r.name == zone_advertiser.__name__]
    warnings = [r.getMessage() for r in ours if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "no system D-Bus" in warnings[0]
    assert adv.health()["advertising"] is False and "no system D-Bus" in adv.health()["last_error"]


def test_a_key_of_the_wrong_size_or_a_missing_zone_is_refused_at_once(tmp_path, issuer):
    settings = beacon_settings(tmp_path, issuer)
    with pytest.raises(ValueError, match="32 bytes"):
        ZoneAdvertiser(settings, KEY.hex().encode(), SteppedClock())
    no_uuid = settings.ble.zone_beacon.model_copy(update={"uuid": None})
    ble = settings.ble.model_copy(update={"zone_beacon": no_uuid})
    with pytest.raises(ValueError, match="uuid"):
        ZoneAdvertiser(settings.model_copy(update={"ble": ble}), KEY, SteppedClock())


# --- the simulated LEAdvertisingManager1, with a bare client ---


class BareClient:
    """An advertising client on the bus that serves each advert's properties from a dict, and notes Releases."""

    def __init__(self, bus: MessageBus):
        self.bus = bus
        self.adverts: dict[str, dict[str, Variant]] = {}
        self.released: list[str] = []
        bus.add_message_handler(self._on_message)

    def _on_message(self, msg):
        if msg.message_type != MessageType.METHOD_CALL or msg.path not in self.adverts:
            return None
        if msg.member == "GetAll" and msg.body == [ADVERTISEMENT]:
            return Message.new_method_return(msg, "a{sv}", [self.adverts[msg.path]])
        if msg.member == "Release":
            assert msg.flags & MessageFlag.NO_REPLY_EXPECTED
            self.released.append(msg.path)
            return True
        return None

    async def call(self, member, signature, body):
        reply = await self.bus.call(
            Message(
                destination="org.bluez",
                path="/org/bluez/hci0",
                interface=ADVERTISING_MANAGER,
                member=member,
                signature=signature,
                body=body,
            )
        )
        return reply.error_name if reply.message_type == MessageType.ERROR else "ok"

    async def register(self, path, **props):
        self.adverts[path] = {
            "Type": Variant("s", "broadcast"),
            "ManufacturerData": Variant("a{qv}", {0x004C: Variant("ay", ibeacon(1))}),
            **props,
        }
        return await self.call("RegisterAdvertisement", "oa{sv}", [path, {}])

    async def instances(self):
        reply = await self.bus.call(
            Message(
                destination="org.bluez",
                path="/org/bluez/hci0",
                interface=PROPERTIES,
                member="GetAll",
                signature="s",
                body=[ADVERTISING_MANAGER],
            )
        )
        props = reply.body[0]
        return props["ActiveInstances"].value, props["SupportedInstances"].value


@needs_dbus
async def test_the_simulated_manager_answers_as_bluetoothd(bus, bluez):
    client = BareClient(await MessageBus(bus_address=bus.address).connect())
    try:
        assert await client.instances() == (0, 5)
        assert await client.register("/a/1") == "ok"
        assert await client.instances() == (1, 4)
        assert await client.register("/a/1") == "org.bluez.Error.AlreadyExists"
        assert await client.call("UnregisterAdvertisement", "o", ["/a/nowhere"]) == "org.bluez.Error.DoesNotExist"
        assert await client.register("/a/2", Type=Variant("s", "beacon")) == "org.bluez.Error.Failed"
        assert await client.register("/a/3", MinInterval=Variant("u", 100)) == "org.bluez.Error.Failed"  # no max
        assert await client.register("/a/4", MinInterval=Variant("u", 10), MaxInterval=Variant("u", 10)) == (
            "org.bluez.Error.Failed"  # 10 ms is below the 20 ms the Core spec allows
        )
        too_long = Variant("a{qv}", {0x004C: Variant("ay", bytes(28))})  # 32 bytes on air
        assert await client.register("/a/5", ManufacturerData=too_long) == "org.bluez.Error.Failed"
        for n in range(2, 6):
            assert await client.register(f"/b/{n}") == "ok"
        assert await client.register("/b/6") == "org.bluez.Error.NotPermitted"
        assert await client.call("UnregisterAdvertisement", "o", ["/b/5"]) == "ok"
        assert [a.path for a in bluez.advertisements] == ["/a/1", "/b/2", "/b/3", "/b/4"]
        bluez.unplug_adapter()
        await wait_for(lambda: len(client.released) == 4, what="every advert released")
        assert sorted(client.released) == ["/a/1", "/b/2", "/b/3", "/b/4"]
        assert await client.register("/c/1") == "org.freedesktop.DBus.Error.UnknownObject"
        bluez.plug_adapter()
        assert await client.register("/c/1") == "ok"
    finally:
        client.bus.disconnect()
    await wait_for(lambda: not bluez.advertisements, what="the client's adverts dropped when it left the bus")
    assert len(bluez.advertised) == 6
