"""What an ESPresense node publishes for one device it keeps, read unchanged. Pure, no I/O.

Topic `{channel}/devices/{device id}/{room}`, UTF-8 JSON, as its firmware's `BleFingerprint::fill` writes it:

    {"mac": "…", "id": "iBeacon:<uuid>-<major>-<minor>", "name": "…", "rssi@1m": -59, "rssi": -70.25,
     "rxAdj": 0, "rssiVar": 1.2, "distance": 2.3, "var": 0.4, "close": true, "int": 340}

ESPresense reports ids, not adverts. The ones the agent can use are iBeacon ids: the app's token in its
iBeacon shape (the token as the UUID, the marker major and minor) and the store's fixed beacons. They are
turned back into the iBeacon frame they came from, with the `rssi@1m` the beacon advertised, so they are
resolved exactly as an advert heard by the agent's own adapter. `rssi` is already the node's filtered level
(a median over its recent readings, `rxAdj` taken off). Every other id (`md:ffff:18`, `apple:…`, `name:…`,
an address) carries nothing the agent reads and is left alone; `mac` and `name` are never read.
"""

from __future__ import annotations

import re

from ... import json_input
from ...errors import Refused
from .frames import APPLE, ibeacon_data
from .scanner import Advert

MAX_BYTES = 2048
DEFAULT_POWER_1M = -59  # what ESPresense itself assumes for a beacon that does not say
_IBEACON_ID = re.compile(
    r"^iBeacon:([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})-([0-9]{1,5})-([0-9]{1,5})$"
)


class EspresenseRefused(Refused):
    """A node message not taken; `reason` names the field, never the device."""


def parse(payload: bytes, receiver: str, now_mono: float) -> Advert | None:
    """The advert an iBeacon id stands for, or None for an id the agent does not read."""
    data = json_input.any_object(payload, max_bytes=MAX_BYTES, refuse=EspresenseRefused, what="message")
    if not isinstance(data.get("id"), str):
        raise EspresenseRefused("malformed", "message must have an id")
    found = _IBEACON_ID.match(data["id"])
    if found is None:
        return None
    uuid, major, minor = bytes.fromhex(found.group(1).replace("-", "")), int(found.group(2)), int(found.group(3))
    if major > 0xFFFF or minor > 0xFFFF:
        raise EspresenseRefused("bad_field", "id: major and minor must be 0..65535")
    rssi = json_input.number(data.get("rssi"), "rssi", -127, 20, EspresenseRefused)
    power = data.get("rssi@1m", DEFAULT_POWER_1M)
    power_1m = int(json_input.number(power, "rssi@1m", -127, 20, EspresenseRefused))
    return Advert(receiver, now_mono, rssi, {APPLE: ibeacon_data(uuid, major, minor, power_1m)})
