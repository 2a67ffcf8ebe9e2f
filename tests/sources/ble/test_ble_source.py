"""The BLE source without a radio: the bleak callback hand-over, the bounded queue, token refresh."""

from __future__ import annotations

from types import SimpleNamespace

from edge_agent.bus import Bus
from edge_agent.clock import Clock
from edge_agent.config import from_dict
from edge_agent.events import Sighting
from edge_agent.sources.ble.scanner import Advert, BleSource
from edge_agent.store import open_store
from simulators.phone import phone_for
from tests.factories import config_dict

ALICE = phone_for("alice", "chain-test")
T0 = 1_800_000_000.0


class FakeClock(Clock):
    def __init__(self) -> None:
        super().__init__()
        self.t, self.u = 100.0, T0

    def mono(self) -> float:
        return self.t

    def unix(self) -> float:
        return self.u


class Untouchable:
    """A bleak device whose address must never be read."""

    def __getattr__(self, name):
        raise AssertionError(f"the callback read device.{name}")


async def source(tmp_path, issuer, **ble):
    data = config_dict(tmp_path, issuer)
    data["ble"] = {"receivers": [{"id": "edge-test", "zone": "entrance"}], **ble}
    settings = from_dict(data)
    store = open_store(settings.database.path)
    store.roster.upsert([ALICE.roster_entry(T0, {"ble": True}, phone_model="iphone")], updated_at="t1")
    bus = Bus()
    clock = FakeClock()
    src = BleSource(settings, store, bus, clock)
    await src.refresh(force=True)
    return src, bus, clock, store


def advert_data(unix, rssi=-50, tx=None):
    return SimpleNamespace(rssi=rssi, manufacturer_data=ALICE.advert(unix), service_data={}, tx_power=tx)


async def test_the_callback_copies_the_advert_and_never_the_device(tmp_path, issuer):
    src, bus, _clock, _ = await source(tmp_path, issuer, reference_by_model={"iphone": -56.0})
    sightings = bus.subscribe(Sighting, "t")
    src._on_detect(Untouchable(), advert_data(T0))
    assert src.drain() == 1
    s = sightings.queue.get_nowait()
    assert (s.subject.key, s.zone, s.receiver, s.rssi, s.ref_dbm) == (
        "customer:alice",
        "entrance",
        "edge-test",
        -50,
        -56.0,
    )


async def test_the_queue_is_bounded_and_counts_what_it_drops(tmp_path, issuer):
    src, _bus, _clock, _ = await source(tmp_path, issuer, queue_size=100)
    for _ in range(150):
        src.enqueue(Advert("edge-test", 1.0, -60.0, ALICE.advert(T0)))
    assert src.dropped == 50
    assert src.drain() == 100 and src.drain() == 0
    assert src.resolver.counts["resolved"] == 100


async def test_tokens_follow_the_clock_and_the_roster(tmp_path, issuer):
    src, _bus, clock, store = await source(tmp_path, issuer)
    later = T0 + 3 * 600  # three intervals on: the old table no longer covers it
    assert src.resolver.handle(Advert("edge-test", 1.0, -60.0, ALICE.advert(later))) is None
    assert await src.refresh() is False  # nothing changed yet
    clock.u = later
    assert await src.refresh() is True
    assert src.resolver.handle(Advert("edge-test", 1.0, -60.0, ALICE.advert(later))) is not None
    store.roster.upsert([ALICE.roster_entry(T0, {"ble": False})], updated_at="t2")
    assert await src.refresh() is True
    assert src.resolver.handle(Advert("edge-test", 1.0, -60.0, ALICE.advert(later))) is None


async def test_beacons_are_read_for_calibration_and_other_adverts_ignored(tmp_path, issuer):
    src, _bus, _clock, _ = await source(tmp_path, issuer, beacons=["ibeacon:00010203-0405-0607-0809-0a0b0c0d0e0f:1:10"])
    ibeacon = bytes.fromhex("0215") + bytes(range(16)) + bytes.fromhex("0001000ac5")
    someone_elses = bytes.fromhex("0215") + bytes(range(1, 17)) + bytes.fromhex("0001000ac5")
    assert src.resolver.handle(Advert("edge-test", 1.0, -70.0, {0x004C: ibeacon})) is None
    assert src.resolver.handle(Advert("edge-test", 1.0, -70.0, {0x004C: someone_elses})) is None
    assert src.resolver.handle(Advert("edge-test", 1.0, -70.0, {0x0006: b"\x01\x09"})) is None
    assert src.resolver.handle(Advert("edge-test", 1.0, -70.0, {0xFFFF: b"\x53\x01" + bytes(16)})) is None
    assert dict(src.resolver.counts) == {"beacon": 1, "other": 2, "unknown_token": 1}
    [beacon] = src.health()["beacons"].values()
    assert beacon == {
        "edge-test": {"rssi": -70.0, "mean_dbm": -70.0, "readings": 1, "measured_power": -59, "age_s": 99.0}
    }


async def test_withdrawing_ble_at_the_kiosk_deletes_the_keys_and_stops_resolution(tmp_path, issuer):
    src, _bus, _clock, store = await source(tmp_path, issuer)
    assert src.resolver.handle(Advert("edge-test", 1.0, -60.0, ALICE.advert(T0))) is not None
    store.consents.set("alice", "ble", False, at="2027-01-15T08:00:01", touchpoint="kiosk-a")
    assert store.db.execute("SELECT count(*) FROM ble_day_keys").fetchone()[0] == 0
    assert store.db.execute("SELECT count(*) FROM ble_phones").fetchone()[0] == 0
    assert await src.refresh() is True
    assert src.resolver.handle(Advert("edge-test", 1.0, -60.0, ALICE.advert(T0))) is None
