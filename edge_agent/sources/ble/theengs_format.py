"""What a Theengs Gateway (or an OpenMQTTGateway) publishes for one advert, read unchanged. Pure, no I/O.

Topic `{publish_topic}/{address without colons}`, UTF-8 JSON, e.g. (Theengs Gateway 1.8, `-padv 1 -pa 1`):

    {"manufacturerdata": "ffff5301<32 hex digits>", "id": "C1:57:…", "rssi": -61, "mfr": "…"}
    {"servicedata": "00ee…", "servicedatauuid": "feaa", "id": "…", "rssi": -70, "txpower": -12, …}

`manufacturerdata` is the company id little-endian (as on air) then the data; `servicedatauuid` the 16-bit
service UUID of `servicedata` (one message per service data); `txpower` the advertised TX power level when the
gateway has it; whatever the gateway decoded besides (`brand`, `model`, sensor values…) is ignored. The
address — in the topic and in `id` — is never read: it is dropped at the boundary, not refused, and nothing
here can name the device.
"""

from __future__ import annotations

import re
from typing import Any

from ... import json_input
from ...errors import Refused
from .scanner import Advert

MAX_BYTES = 4096
_HEX = re.compile(r"^(?:[0-9a-fA-F]{2}){2,33}$")
_HEX_DATA = re.compile(r"^(?:[0-9a-fA-F]{2}){0,31}$")
_UUID16 = re.compile(r"^(?:0x)?([0-9a-fA-F]{4})$")


class GatewayMessageRefused(Refused):
    """A gateway message not taken; `reason` names the field, never the address or the data."""


def parse(payload: bytes, receiver: str, now_mono: float) -> Advert | None:
    """The advert in one message, or None when it carries nothing the agent reads (a name, a decoded sensor
    without its data); GatewayMessageRefused when it is not what a gateway sends."""
    data = json_input.any_object(payload, max_bytes=MAX_BYTES, refuse=GatewayMessageRefused, what="message")
    mfg = _manufacturer(data.get("manufacturerdata"))
    svc = _service(data.get("servicedata"), data.get("servicedatauuid"))
    if not mfg and not svc:
        return None
    rssi = json_input.number(data.get("rssi"), "rssi", -127, 20, GatewayMessageRefused)
    tx = data.get("txpower")
    tx_power = None if tx is None else int(json_input.number(tx, "txpower", -127, 127, GatewayMessageRefused))
    return Advert(receiver, now_mono, rssi, mfg, svc, tx_power)


def _manufacturer(value: Any) -> dict[int, bytes]:
    if value is None:
        return {}
    if not isinstance(value, str) or not _HEX.match(value):
        raise GatewayMessageRefused("bad_field", "manufacturerdata must be hex: a company id and up to 31 bytes")
    raw = bytes.fromhex(value)
    return {int.from_bytes(raw[:2], "little"): raw[2:]}


def _service(value: Any, uuid: Any) -> dict[str, bytes]:
    if value is None:
        return {}
    if not isinstance(value, str) or not _HEX_DATA.match(value):
        raise GatewayMessageRefused("bad_field", "servicedata must be hex of up to 31 bytes")
    short = _UUID16.match(uuid) if isinstance(uuid, str) else None
    if short is None:
        raise GatewayMessageRefused("bad_field", "servicedatauuid must be a 16-bit UUID in hex beside servicedata")
    return {f"0000{short.group(1).lower()}-0000-1000-8000-00805f9b34fb": bytes.fromhex(value)}
