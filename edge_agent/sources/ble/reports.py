"""An app's report of the store beacons it heard (iPhones cannot advertise the token: they listen instead),
authenticated with a key only the phone and the stores that hold its day key can make. Pure, no I/O: the phone
side (`simulators/phone.py`) and the agent share one definition.

    RK_d    = HKDF-SHA256(DK_d, salt=none, info=b"SEA-RK", 16)                     DK_d: the day key of `at`
    report  = UTF-8 JSON {"v": 1, "token": hex(16), "at": unix seconds, "nonce": hex(8),
                          "beacons": [{"major": 0..65535, "minor": 0..65535, "rssi": -127..0,
                                       "proximity": "unknown" | "immediate" | "near" | "far"}, ...],
                          "tag": hex(16)}
    tag     = first 16 bytes of HMAC-SHA256(RK_d, M)
    M       = b"SEA-RPT-1" + token + uint32_be(at) + nonce + uint8(n)
              + for each of the n beacons, in order: uint16_be(major) + uint16_be(minor) + int8(rssi) + uint8(p)
    p       = the proximity's index in PROXIMITY: unknown 0, immediate 1, near 2, far 3

`token` is the phone's rotating token for the interval of `at` (tokens.py): it names the phone without naming
the customer, and only a store holding that customer's day key (consent to BLE) can resolve it and check the
tag. A report carries up to 8 beacons, as ranging gives them (iOS `CLBeacon`: `rssi` 0 when unknown, and the
proximity class); none means the phone left the store's region (region exit).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import struct
from dataclasses import dataclass
from typing import Any

from ... import json_input
from ...errors import Refused
from .tokens import hkdf16

VERSION = 1
MAX_BYTES = 2048
MAX_BEACONS = 8
TAG_BYTES = 16
NONCE_BYTES = 8
_HEX = re.compile(r"^[0-9a-f]*$")
_KEYS = ("v", "token", "at", "nonce", "beacons", "tag")


class ReportRefused(Refused):
    """A report that is not taken; `code` for counters, `reason` without the report's content."""


PROXIMITY = ("unknown", "immediate", "near", "far")  # CoreLocation's CLProximity, in its raw-value order


@dataclass(frozen=True, slots=True)
class HeardBeacon:
    major: int
    minor: int
    rssi: int  # 0: unknown (as iOS says it)
    proximity: str = "unknown"


@dataclass(frozen=True, slots=True)
class Report:
    token: bytes
    at: int
    nonce: bytes
    beacons: tuple[HeardBeacon, ...]
    tag: bytes


def report_key(day_key: bytes) -> bytes:
    return hkdf16(day_key, None, b"SEA-RK")


def signed_bytes(token: bytes, at: int, nonce: bytes, beacons: tuple[HeardBeacon, ...]) -> bytes:
    heard = b"".join(struct.pack(">HHbB", b.major, b.minor, b.rssi, PROXIMITY.index(b.proximity)) for b in beacons)
    return b"SEA-RPT-1" + token + struct.pack(">I", at) + nonce + bytes([len(beacons)]) + heard


def tag_of(key: bytes, token: bytes, at: int, nonce: bytes, beacons: tuple[HeardBeacon, ...]) -> bytes:
    return hmac.new(key, signed_bytes(token, at, nonce, beacons), hashlib.sha256).digest()[:TAG_BYTES]


def make(day_key: bytes, token: bytes, at: int, nonce: bytes, beacons: tuple[HeardBeacon, ...]) -> bytes:
    """The phone side: the report's JSON bytes."""
    tag = tag_of(report_key(day_key), token, at, nonce, beacons)
    body: dict[str, Any] = {
        "v": VERSION,
        "token": token.hex(),
        "at": at,
        "nonce": nonce.hex(),
        "beacons": [{"major": b.major, "minor": b.minor, "rssi": b.rssi, "proximity": b.proximity} for b in beacons],
        "tag": tag.hex(),
    }
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def parse(data: bytes) -> Report:
    """The report's fields, checked for form only (the tag needs the customer's day key: `verify`)."""
    raw = json_input.exact_object(data, _KEYS, max_bytes=MAX_BYTES, refuse=ReportRefused, what="report")
    if raw["v"] != VERSION:
        raise ReportRefused("version", f"v must be {VERSION}")
    token = _hex(raw["token"], 16, "token")
    nonce = _hex(raw["nonce"], NONCE_BYTES, "nonce")
    tag = _hex(raw["tag"], TAG_BYTES, "tag")
    at = raw["at"]
    if not isinstance(at, int) or isinstance(at, bool) or not 0 <= at < 2**32:
        raise ReportRefused("malformed", "at must be unix seconds (an integer)")
    beacons = raw["beacons"]
    if not isinstance(beacons, list) or len(beacons) > MAX_BEACONS:
        raise ReportRefused("malformed", f"beacons must be a list of at most {MAX_BEACONS}")
    return Report(token, at, nonce, tuple(_beacon(b, i) for i, b in enumerate(beacons)), tag)


def verify(report: Report, day_key: bytes) -> bool:
    expected = tag_of(report_key(day_key), report.token, report.at, report.nonce, report.beacons)
    return hmac.compare_digest(expected, report.tag)


def _hex(value: object, size: int, name: str) -> bytes:
    if not isinstance(value, str) or len(value) != 2 * size or not _HEX.match(value):
        raise ReportRefused("malformed", f"{name} must be {size} bytes in lower-case hex")
    return bytes.fromhex(value)


def _beacon(value: object, i: int) -> HeardBeacon:
    if isinstance(value, dict) and set(value) == {"major", "minor", "rssi", "proximity"}:
        major, minor, rssi, proximity = value["major"], value["minor"], value["rssi"], value["proximity"]
        integers = all(type(f) is int for f in (major, minor, rssi))  # not bool, not float
        if integers and 0 <= major <= 0xFFFF and 0 <= minor <= 0xFFFF and -127 <= rssi <= 0 and proximity in PROXIMITY:
            return HeardBeacon(major, minor, rssi, proximity)
    raise ReportRefused(
        "malformed",
        f"beacons[{i}] must be {{major 0..65535, minor 0..65535, rssi -127..0, proximity {'|'.join(PROXIMITY)}}}",
    )
