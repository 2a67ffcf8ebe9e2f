"""A zone beacon's minor rotates every interval, derives from the store's key and the zone, and names its
zone only around now: the published vector, and stale, invented or other-store minors naming nothing."""

from __future__ import annotations

import hashlib
import hmac

from edge_agent.sources.ble import zone_beacons

KEY = bytes(range(32))
AT = 1_800_000_000  # interval 3 000 000


def test_the_published_vector_and_an_independent_hmac():
    expected = int.from_bytes(hmac.new(KEY, b"SEA-ZB-1.entrance.3000000", hashlib.sha256).digest()[:2], "big")
    assert zone_beacons.minor(KEY, "entrance", 3_000_000) == expected == 28186
    assert zone_beacons.minor(KEY, "bakery", 3_000_000) == 49391
    assert zone_beacons.minor(KEY, "entrance", 3_000_001) != 28186  # it rotates


def test_a_minor_names_its_zone_only_around_now_and_only_with_the_stores_key():
    zones = ["entrance", "bakery"]
    for dj, zone in ((0, "entrance"), (-1, "entrance"), (1, "entrance"), (0, "bakery")):
        heard = zone_beacons.minor(KEY, zone, 3_000_000 + dj)
        assert zone_beacons.zone_of(KEY, zones, heard, AT) == zone
    stale = zone_beacons.minor(KEY, "entrance", 3_000_000 - 2)
    assert zone_beacons.zone_of(KEY, zones, stale, AT) is None
    other_store = zone_beacons.minor(bytes(32), "entrance", 3_000_000)
    assert zone_beacons.zone_of(KEY, zones, other_store, AT) is None
    invented = [m for m in range(0, 65536, 997) if zone_beacons.zone_of(KEY, zones, m, AT)]
    assert len(invented) <= 1  # of 66 guesses, about none name a zone


def test_the_published_advert_vector():
    """docs/protocols/app-reports.md: the entrance's zone beacon of the vector store, as it goes on air."""
    from edge_agent.sources.ble import frames

    uuid = bytes.fromhex("e2c56db5dffb48d2b060d0f5a71096e0")
    data = frames.ibeacon_data(uuid, 42, zone_beacons.minor(KEY, "entrance", 3_000_000), -59)
    on_air = bytes([len(data) + 3, 0xFF, 0x4C, 0x00]) + data
    assert on_air.hex() == "1aff4c000215e2c56db5dffb48d2b060d0f5a71096e0002a6e1ac5"
    beacon = frames.ibeacon_in({frames.APPLE: data})
    assert beacon is not None and (beacon.major, beacon.minor, beacon.measured_power) == (42, 28186, -59)
