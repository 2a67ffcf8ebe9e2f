"""The message one touchpoint host publishes so the store's other hosts know who it sees. Pure, no I/O.

Topic `{mqtt.topic_prefix}/{store}/presence/{device}` on the store's own broker, QoS 0, not retained, UTF-8
JSON, at most 64 KiB, about once a second while the host sees anyone:

    {"v": 1, "device": "host-bakery",
     "customers": [{"ref": "c-8812", "zone": "bakery", "channel": "ble", "age_ms": 420,
                    "receiver": "host-bakery", "rssi": -63.5, "ref_dbm": -59.0}],     receiver..ref_dbm: radio only
     "anonymous": {"bakery": 3, "entrance": 1}}

`customers` holds only shoppers this host resolved from the roster under the consent of the channel
(`checkin`, `ble`, `face`): the roster's `customer_ref`, never a token, address, image or embedding.
Radio sightings keep their receiver and RSSI, so every host's placement filters readings of all receivers;
other channels are one entry per shopper and zone. `anonymous` is a count per zone of the people the
cameras tracked, with no track ids. Nothing here is bridged to the chain's broker: it stays in the store.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ...errors import Refused
from ...events import Anonymous, Channel, Customer, Sighting
from ..node_message import NODE_ID, open_message

VERSION = 1
MAX_BYTES = 64 * 1024
MAX_CUSTOMERS = 500
MAX_AGE_MS = 10_000
SHARED_CHANNELS = (Channel.CHECKIN, Channel.BLE, Channel.FACE)
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
_CUSTOMER_KEYS = {"ref", "zone", "channel", "age_ms", "receiver", "rssi", "ref_dbm"}


class PeerMessageError(Refused):
    """A whole shared-presence message refused."""


@dataclass(frozen=True)
class SharedCustomer:
    ref: str
    zone: str
    channel: Channel
    age_s: float
    receiver: str | None = None
    rssi: float | None = None
    ref_dbm: float | None = None


@dataclass(frozen=True)
class PeerBatch:
    device: str
    customers: list[SharedCustomer]
    anonymous: dict[str, int]
    refused: list[str]  # one reason per entry left out


def encode(device: str, sightings: list[Sighting], now_mono: float) -> bytes | None:
    """One message for what this host saw since the last one (shared sightings excluded); None if nothing."""
    customers: dict[tuple[Any, ...], dict[str, Any]] = {}
    tracks: dict[str, set[str]] = {}
    for i, s in enumerate(sightings):
        if s.origin is not None:
            continue  # another host's: it shares its own
        if isinstance(s.subject, Anonymous):
            tracks.setdefault(s.zone, set()).add(s.subject.track_id)
            continue
        if s.channel not in SHARED_CHANNELS:
            continue
        entry: dict[str, Any] = {
            "ref": s.subject.customer_ref,
            "zone": s.zone,
            "channel": s.channel.value,
            "age_ms": min(MAX_AGE_MS, max(0, round((now_mono - s.mono) * 1000))),
        }
        if s.receiver is not None and s.rssi is not None:
            entry.update(receiver=s.receiver, rssi=s.rssi, ref_dbm=s.ref_dbm)
            key: tuple[Any, ...] = (i,)  # every reading counts for the radio filter
        else:
            key = (s.subject.customer_ref, s.zone, s.channel)  # the latest is enough
        customers[key] = entry
    if not customers and not tracks:
        return None
    body = {
        "v": VERSION,
        "device": device,
        "customers": list(customers.values())[-MAX_CUSTOMERS:],
        "anonymous": {zone: len(ids) for zone, ids in tracks.items()},
    }
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def device_of(topic: str) -> str | None:
    """`…/presence/{device}` → device."""
    head, _, device = topic.rpartition("/")
    return device if head.endswith("/presence") and NODE_ID.match(device) else None


def parse(payload: bytes, topic_device: str | None, zones: set[str]) -> PeerBatch:
    data, device = open_message(
        payload,
        refuse=PeerMessageError,
        max_bytes=MAX_BYTES,
        version=VERSION,
        sender_key="device",
        keys={"v", "device", "customers", "anonymous"},
        topic_sender=topic_device,
    )
    items = data.get("customers", [])
    if not isinstance(items, list) or len(items) > MAX_CUSTOMERS:
        raise PeerMessageError("malformed", f"customers must be a list of at most {MAX_CUSTOMERS}")
    counts = data.get("anonymous", {})
    if not isinstance(counts, dict):
        raise PeerMessageError("malformed", "anonymous must be an object of zone → count")
    good: list[SharedCustomer] = []
    refused: list[str] = []
    for i, item in enumerate(items):
        try:
            good.append(_customer(item, zones))
        except ValueError as exc:
            refused.append(f"customers[{i}]: {exc}")
    anonymous: dict[str, int] = {}
    for zone, count in counts.items():
        if zone not in zones:
            refused.append(f"anonymous[{zone!r}]: not a zone of this store")
        elif not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= 1000:
            refused.append(f"anonymous[{zone!r}]: must be an integer in 0..1000, got {count!r}")
        else:
            anonymous[zone] = count
    return PeerBatch(device, good, anonymous, refused)


def _customer(item: Any, zones: set[str]) -> SharedCustomer:
    if not isinstance(item, dict):
        raise ValueError("must be an object")
    extra = set(item) - _CUSTOMER_KEYS
    if extra:
        raise ValueError(f"unknown keys {sorted(extra)} (only customer_ref, zone, channel and radio readings)")
    ref, zone, channel = item.get("ref"), item.get("zone"), item.get("channel")
    if not isinstance(ref, str) or not _REF.match(ref):
        raise ValueError("ref must be a customer_ref")
    if not isinstance(zone, str) or zone not in zones:  # a list or an object here must not reach a set lookup
        raise ValueError(f"zone {zone!r:.40} is not a zone of this store")
    if not isinstance(channel, str) or channel not in {c.value for c in SHARED_CHANNELS}:
        raise ValueError(f"channel must be one of {', '.join(c.value for c in SHARED_CHANNELS)}, got {channel!r:.40}")
    age = item.get("age_ms", 0)
    if not isinstance(age, int) or isinstance(age, bool) or not 0 <= age <= MAX_AGE_MS:
        raise ValueError(f"age_ms must be an integer in 0..{MAX_AGE_MS}, got {age!r}")
    receiver, rssi, ref_dbm = item.get("receiver"), item.get("rssi"), item.get("ref_dbm")
    if (receiver is None) != (rssi is None):
        raise ValueError("receiver and rssi come together or not at all")
    if receiver is not None and (not isinstance(receiver, str) or not NODE_ID.match(receiver)):
        raise ValueError("receiver must be a receiver id")
    for name, value, low, high in (("rssi", rssi, -127, 20), ("ref_dbm", ref_dbm, -100, 0)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high
        ):
            raise ValueError(f"{name} must be a number in {low}..{high}, got {value!r}")
    return SharedCustomer(
        ref,
        zone,
        Channel(channel),
        age / 1000.0,
        receiver,
        None if rssi is None else float(rssi),
        None if ref_dbm is None else float(ref_dbm),
    )


def sightings(batch: PeerBatch, now_mono: float, wall: Any) -> list[Sighting]:
    """The batch as Sightings for this host's presence tracker, each marked with the host that saw it."""
    out = [
        Sighting(
            Customer(c.ref),
            c.zone,
            c.channel,
            now_mono - c.age_s,
            wall,
            rssi=c.rssi,
            receiver=c.receiver,
            ref_dbm=c.ref_dbm,
            origin=batch.device,
        )
        for c in batch.customers
    ]
    for zone, count in batch.anonymous.items():
        out.extend(
            Sighting(Anonymous(f"{batch.device}/{zone}/{i}"), zone, Channel.VISION, now_mono, wall, origin=batch.device)
            for i in range(count)
        )
    return out
