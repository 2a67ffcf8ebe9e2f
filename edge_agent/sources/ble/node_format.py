"""The message a remote scanner node (an ESP32, or any device that speaks it) sends with what it heard. Pure.

Topic `{mqtt.topic_prefix}/{store}/scanners/{scanner}/adverts` (prefix `retail/v1` by default), QoS 0,
UTF-8 JSON, at most 64 KiB:

    {"v": 1, "scanner": "esp32-bakery",
     "adverts": [{"rssi": -61,                                   integer dBm, -127..20
                  "mfg": {"65535": "5301<32 hex digits>"},        company id (decimal) → data (hex), optional
                  "svc": {"0000feaa-0000-1000-8000-00805f9b34fb": "00ee…"},   service data (hex), optional
                  "tx": -12,                                      advertised TX power level, optional
                  "age_ms": 150}]}                                how long ago it was heard, optional, 0..10000

`scanner` must match the topic and a receiver in `ble.receivers`. Addresses are not part of the format: an
advert with `mac`, `addr` or `address` is refused, so a node that sends them is noticed and fixed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...errors import Refused
from ..node_message import open_message
from .scanner import Advert

VERSION = 1
MAX_BYTES = 64 * 1024
MAX_ADVERTS = 500
MAX_AGE_MS = 10_000
_ADVERT_KEYS = {"rssi", "mfg", "svc", "tx", "age_ms"}
_ADDRESS_KEYS = {"mac", "addr", "address"}
_HEX = re.compile(r"^(?:[0-9a-fA-F]{2}){0,31}$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class RemoteAdvertError(Refused):
    """A whole scanner-node message refused."""


@dataclass(frozen=True)
class RemoteBatch:
    scanner: str
    adverts: list[Advert]
    refused: list[str]  # one reason per advert left out


def topic_filter(store_id: str, prefix: str = "retail/v1") -> str:
    return f"{prefix}/{store_id}/scanners/+/adverts"


def scanner_of(topic: str) -> str | None:
    """The scanner id in `{prefix}/{store}/scanners/{scanner}/adverts`, whatever the prefix."""
    parts = topic.split("/")
    if len(parts) >= 5 and parts[-3] == "scanners" and parts[-1] == "adverts":
        return parts[-2]
    return None


def parse(payload: bytes, topic_scanner: str | None, now_mono: float) -> RemoteBatch:
    data, scanner = open_message(
        payload,
        refuse=RemoteAdvertError,
        max_bytes=MAX_BYTES,
        version=VERSION,
        sender_key="scanner",
        keys={"v", "scanner", "adverts"},
        topic_sender=topic_scanner,
    )
    adverts = data.get("adverts")
    if not isinstance(adverts, list) or len(adverts) > MAX_ADVERTS:
        raise RemoteAdvertError("malformed", f"adverts must be a list of at most {MAX_ADVERTS}")
    good: list[Advert] = []
    refused: list[str] = []
    for i, item in enumerate(adverts):
        try:
            good.append(_advert(item, scanner, now_mono))
        except ValueError as exc:
            refused.append(f"adverts[{i}]: {exc}")
    return RemoteBatch(scanner, good, refused)


def _advert(item: Any, scanner: str, now_mono: float) -> Advert:
    if not isinstance(item, dict):
        raise ValueError("must be an object")
    if _ADDRESS_KEYS & set(item):
        raise ValueError("carries a device address; addresses must not be sent")
    extra = set(item) - _ADVERT_KEYS
    if extra:
        raise ValueError(f"unknown keys {sorted(extra)}")
    rssi = _int(item.get("rssi"), "rssi", -127, 20)
    tx = None if item.get("tx") is None else _int(item["tx"], "tx", -127, 127)
    age = 0 if item.get("age_ms") is None else _int(item["age_ms"], "age_ms", 0, MAX_AGE_MS)
    mfg = _hex_map(item.get("mfg", {}), "mfg", _company)
    svc = _hex_map(item.get("svc", {}), "svc", _uuid)
    return Advert(scanner, now_mono - age / 1000.0, float(rssi), mfg, svc, tx)


def _int(value: Any, name: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in {low}..{high}, got {value!r}")
    return value


def _company(key: str) -> int:
    if not key.isdigit() or int(key) > 0xFFFF:
        raise ValueError(f"mfg key {key!r} must be a company id in 0..65535 (decimal)")
    return int(key)


def _uuid(key: str) -> str:
    if not _UUID.match(key):
        raise ValueError(f"svc key {key!r} must be a lower-case 128-bit UUID")
    return key


def _hex_map(value: Any, name: str, key_of: Any) -> Mapping[Any, bytes]:
    if not isinstance(value, dict) or len(value) > 8:
        raise ValueError(f"{name} must be an object of at most 8 entries")
    out = {}
    for key, data in value.items():
        if not isinstance(data, str) or not _HEX.match(data):
            raise ValueError(f"{name}[{key!r}] must be hex of at most 31 bytes")
        out[key_of(key)] = bytes.fromhex(data)
    return out
