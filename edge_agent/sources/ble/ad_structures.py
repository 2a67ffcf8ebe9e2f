"""An advert's raw advertising data, read into what the agent keeps: manufacturer data, service data, TX power.

The bytes are what the controller received: a run of AD structures (Bluetooth Core Specification, Vol 3, Part C,
§11; the types in the Assigned Numbers), each a length octet, then the AD type and its data (length - 1 octets).
A receiver that passes adverts on raw — an ESPHome Bluetooth proxy — sends the advertising data and the scan
response back to back in one field, so a zero length octet (the spec's early end of one of them, or the padding
some chips send) is skipped, not taken as the end of both.

Read as bleak gives them: manufacturer data by company id (the two octets after the type, little-endian), service
data by the service's full 128-bit UUID in lower case (16- and 32-bit UUIDs on the Bluetooth base UUID), TX power
as a signed octet. Pure, no I/O, never raises: a structure that runs past the end stops the reading, and a
structure too short for its type is left out; what was whole is kept and `intact` says whether anything was not.
The device address is no part of the advertising data: it never reaches this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MANUFACTURER_DATA = 0xFF
SERVICE_DATA_16 = 0x16
SERVICE_DATA_32 = 0x20
SERVICE_DATA_128 = 0x21
TX_POWER_LEVEL = 0x0A
BASE_UUID_TAIL = "-0000-1000-8000-00805f9b34fb"  # the Bluetooth base UUID after its first 32 bits


@dataclass(frozen=True, slots=True)
class AdFields:
    """What one advert's data says that the agent reads; `intact` False if part of it was malformed or cut."""

    manufacturer_data: dict[int, bytes] = field(default_factory=dict)
    service_data: dict[str, bytes] = field(default_factory=dict)
    tx_power: int | None = None
    intact: bool = True


def uuid16(value: int) -> str:
    """A 16-bit service UUID in its full form: 0xfeaa -> 0000feaa-0000-1000-8000-00805f9b34fb."""
    return f"0000{value:04x}{BASE_UUID_TAIL}"


def _uuid128(little_endian: bytes) -> str:
    h = little_endian[::-1].hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def parse(data: bytes) -> AdFields:
    """The manufacturer data, service data and TX power in `data`; never raises."""
    manufacturer: dict[int, bytes] = {}
    services: dict[str, bytes] = {}
    tx_power: int | None = None
    intact = True
    at, end = 0, len(data)
    while at < end:
        length = data[at]
        if length == 0:  # the end of the advertising data, or padding before the scan response
            at += 1
            continue
        if at + 1 + length > end:  # runs past the end: nothing after this can be framed
            intact = False
            break
        kind = data[at + 1]
        body = data[at + 2 : at + 1 + length]
        at += 1 + length
        if kind == MANUFACTURER_DATA:
            if len(body) < 2:
                intact = False
                continue
            manufacturer[body[0] | body[1] << 8] = bytes(body[2:])
        elif kind == SERVICE_DATA_16:
            if len(body) < 2:
                intact = False
                continue
            services[uuid16(body[0] | body[1] << 8)] = bytes(body[2:])
        elif kind == SERVICE_DATA_32:
            if len(body) < 4:
                intact = False
                continue
            services[f"{int.from_bytes(body[:4], 'little'):08x}{BASE_UUID_TAIL}"] = bytes(body[4:])
        elif kind == SERVICE_DATA_128:
            if len(body) < 16:
                intact = False
                continue
            services[_uuid128(body[:16])] = bytes(body[16:])
        elif kind == TX_POWER_LEVEL:
            if len(body) != 1:
                intact = False
                continue
            tx_power = body[0] - 256 if body[0] > 127 else body[0]
    return AdFields(manufacturer, services, tx_power, intact)
