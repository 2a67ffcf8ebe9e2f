"""Recognising the BLE frames the agent cares about in an advert's manufacturer and service data.

Three kinds: the app's rotating token (our company id, 0x53 0x01, 16 bytes; or in iBeacon shape, the token
as the proximity UUID with the fixed major/minor TOKEN_MAJOR/TOKEN_MINOR, for Android apps that use an iBeacon
transmitter library and scanner firmware that passes iBeacon ids on unchanged), Apple iBeacon and Eddystone
UID/URL from the store's own fixed beacons (used to check receivers and calibrate). Also builds an iBeacon's
manufacturer data (`ibeacon_data`), as each host advertises its zone beacon (zone_advertiser.py). Pure, no I/O;
anything malformed or truncated is simply not a frame (None), never an exception.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass

from .tokens import parse_payload

APPLE = 0x004C
TOKEN_MAJOR, TOKEN_MINOR = 0x5345, 0x4101  # "SE", "A" + scheme 1: an iBeacon whose UUID is the rotating token
FIRST_METRE_DB = 41  # a TX power "at 0 m" (Eddystone, Android's TX power level) less this is the level at 1 m
EDDYSTONE_UUID = "0000feaa-0000-1000-8000-00805f9b34fb"
_URL_SCHEMES = ("http://www.", "https://www.", "http://", "https://")
_URL_CODES = (
    *(".com/", ".org/", ".edu/", ".net/", ".info/", ".biz/", ".gov/"),
    *(".com", ".org", ".edu", ".net", ".info", ".biz", ".gov"),
)


@dataclass(frozen=True, slots=True)
class IBeacon:
    uuid: str
    major: int
    minor: int
    measured_power: int  # RSSI at 1 m, as calibrated by the beacon's owner

    @property
    def beacon_id(self) -> str:
        return f"ibeacon:{self.uuid}:{self.major}:{self.minor}"


@dataclass(frozen=True, slots=True)
class Eddystone:
    beacon_id: str  # eddystone:<namespace hex>:<instance hex> or eddystone-url:<url>
    tx_power_0m: int  # calibrated power at 0 m

    @property
    def measured_power(self) -> int:
        return self.tx_power_0m - FIRST_METRE_DB


@dataclass(frozen=True, slots=True)
class TokenFrame:
    token: bytes
    measured_power: int | None = None  # RSSI at 1 m the app advertised (iBeacon shape only)


def token_in(manufacturer_data: Mapping[int, bytes], company_id: int) -> TokenFrame | None:
    """The rotating token, if the advert carries one: under our company id, or in iBeacon shape."""
    data = manufacturer_data.get(company_id)
    token = None if data is None else parse_payload(data)
    if token is not None:
        return TokenFrame(token)
    beacon = ibeacon_in(manufacturer_data)
    if beacon is None or (beacon.major, beacon.minor) != (TOKEN_MAJOR, TOKEN_MINOR):
        return None
    return TokenFrame(bytes.fromhex(beacon.uuid.replace("-", "")), beacon.measured_power)


def ibeacon_data(uuid: bytes, major: int, minor: int, measured_power: int) -> bytes:
    """The Apple manufacturer data value (after the company id) of an iBeacon: 0x02 0x15, the 16-byte proximity
    UUID, major and minor (uint16 big-endian), the RSSI at 1 m (int8). What `ibeacon_in` reads back."""
    if len(uuid) != 16:
        raise ValueError(f"an iBeacon UUID is 16 bytes, got {len(uuid)}")
    if not (0 <= major <= 0xFFFF and 0 <= minor <= 0xFFFF):
        raise ValueError(f"major and minor are uint16, got {major} and {minor}")
    if not -128 <= measured_power <= 127:
        raise ValueError(f"the measured power is an int8, got {measured_power}")
    return bytes([0x02, 0x15]) + uuid + struct.pack(">HHb", major, minor, measured_power)


def ibeacon_payload(token: bytes, measured_power: int) -> bytes:
    """The Apple manufacturer data of the token in iBeacon shape (what the phone side advertises)."""
    return ibeacon_data(token, TOKEN_MAJOR, TOKEN_MINOR, measured_power)


def ibeacon_in(manufacturer_data: Mapping[int, bytes]) -> IBeacon | None:
    data = manufacturer_data.get(APPLE)
    if data is None or len(data) != 23 or data[0] != 0x02 or data[1] != 0x15:
        return None
    raw = bytes(data[2:18]).hex()
    uuid = f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"
    major, minor, power = struct.unpack(">HHb", data[18:23])
    return IBeacon(uuid, major, minor, power)


def eddystone_in(service_data: Mapping[str, bytes]) -> Eddystone | None:
    data = service_data.get(EDDYSTONE_UUID)
    if data is None or len(data) < 3:
        return None
    kind, power = data[0], struct.unpack("b", data[1:2])[0]
    if kind == 0x00 and len(data) in (18, 20):
        return Eddystone(f"eddystone:{bytes(data[2:12]).hex()}:{bytes(data[12:18]).hex()}", power)
    if kind == 0x10 and 4 <= len(data) <= 20 and data[2] < len(_URL_SCHEMES):
        url = _URL_SCHEMES[data[2]]
        for byte in data[3:]:
            if byte < len(_URL_CODES):
                url += _URL_CODES[byte]
            elif 0x21 <= byte <= 0x7E:
                url += chr(byte)
            else:
                return None
        return Eddystone(f"eddystone-url:{url}", power)
    return None
