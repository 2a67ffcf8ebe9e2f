"""The store's zone beacons: each host advertises an iBeacon for its receiver's zone, and a report naming a
beacon is believed only if the beacon's minor is the one that zone advertises now. Pure, no I/O.

    proximity UUID = the chain's app UUID (one region for the app to monitor in every store)
    major          = the store's number
    minor(z, j)    = uint16_be(first 2 bytes of HMAC-SHA256(K, "SEA-ZB-1." + z + "." + decimal(j)))
    K              = the store's zone-beacon key (32 bytes, the same on every host of the store)
    j              = floor(unix_seconds / 600), the token's interval

So a minor proves the phone heard the beacon within the last few intervals: an invented or long-replayed one
names no zone. With 65 536 minors and a handful of zones, a guessed minor names a zone about once in 10 000
tries; the report's tag (reports.py) is what binds the phone, the minor only the place.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from .tokens import INTERVAL_S

WINDOW = 1  # intervals either side of now whose minors are believed: a report is sent within seconds


def minor(key: bytes, zone: str, interval: int) -> int:
    mac = hmac.new(key, f"SEA-ZB-1.{zone}.{interval}".encode(), hashlib.sha256).digest()
    return int.from_bytes(mac[:2], "big")


def zones_by_minor(key: bytes, zones: Iterable[str], interval: int) -> dict[int, str]:
    """Every minor the zones' beacons advertise within WINDOW of `interval`, and its zone (the first zone listed,
    should two collide): what a heard minor is looked up in, made once an interval."""
    table: dict[int, str] = {}
    for zone in zones:
        for j in range(interval - WINDOW, interval + WINDOW + 1):
            table.setdefault(minor(key, zone, j), zone)
    return table


def zone_of(key: bytes, zones: Iterable[str], heard_minor: int, unix_seconds: float) -> str | None:
    """The zone whose beacon advertised this minor around now, or None (stale, invented, or another store's)."""
    return zones_by_minor(key, zones, int(unix_seconds // INTERVAL_S)).get(heard_minor)
