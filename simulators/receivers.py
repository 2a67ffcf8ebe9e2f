"""What each kind of receiver a store can buy sends the agent for the adverts it hears, for the shopper simulator.

Each kind turns one advert heard at a receiver into what its firmware publishes, and the agent's own reader for
that kind turns it back into an `Advert` (so the evaluation runs through the same parsing as the live agent):

- `adapter`: this host's own adapter, or a node in our format: the advert as heard.
- `theengs-gateway`: Theengs Gateway's JSON (its `ble_gateway.py`, 1.8): `manufacturerdata` = the first
  manufacturer data only, company id little-endian; the address as `id`; no TX power for an advert it cannot
  decode (bleak's `tx_power` is not published), so the agent falls back on the phone model's calibration.
- `esphome-proxy`: the raw advertising data the proxy forwards (flags, manufacturer data, TX power level when
  the phone advertises it), batched: ESPHome sends raw adverts in batches every 100 ms.
- `espresense`: an ESPresense node (its `BleFingerprint.cpp`, `AdaptivePercentileRSSI`): it sees the app's token
  only in its iBeacon shape (the app must advertise that shape for ESPresense; manufacturer data it does not know
  becomes a bare `md:ffff:18`); it keeps per device the median of the last 15 s of readings (at most 20), with
  outliers beyond 1.5 × the interquartile range left out; and it reports a device at most every `skip_ms`
  (5 s by default, on a slot of its own), earlier only when the device moved more than `skip_distance` (0.5 m)
  by its distance estimate (absorption 2.7), and then at most `skip_ms / 2` early.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from edge_agent.radio.placer import distance_m
from edge_agent.sources.ble import espresense_format, frames, theengs_format, tokens
from edge_agent.sources.ble.scanner import Advert
from simulators.bluez import fake_address
from simulators.esphome_proxy import ad_bytes

KINDS = ("adapter", "theengs-gateway", "esphome-proxy", "espresense")
ESPRESENSE_SKIP_MS = 5000
ESPRESENSE_SKIP_DISTANCE_M = 0.5
ESPRESENSE_MAX_DIVISOR = 10
ESPRESENSE_ABSORPTION = 2.7
ESPRESENSE_WINDOW_S, ESPRESENSE_MAX_READINGS = 15.0, 20
APP_IBEACON_POWER = -59  # what the app advertises as its level at 1 m in the token's iBeacon shape
ESPHOME_BATCH_S = 0.1


@dataclass(frozen=True)
class Heard:
    """One advert at one receiver, as the simulator knows it (the device id never reaches the agent)."""

    t: float
    receiver: str
    device: str
    rssi: float
    manufacturer_data: dict[int, bytes]
    tx_power: int | None
    level: float | None = None  # the level without this advert's noise or the receiver's gain (for the oracle)


Through = Callable[[Heard], Advert | None]


def through(kind: str, company_id: int = tokens.TEST_COMPANY_ID) -> Through:
    """The path from a heard advert to the agent's `Advert` through a receiver of `kind`."""
    if kind == "adapter":
        return lambda h: Advert(h.receiver, h.t, h.rssi, h.manufacturer_data, {}, h.tx_power)
    if kind == "theengs-gateway":
        return _theengs
    if kind == "esphome-proxy":
        return _esphome
    if kind == "espresense":
        return EspresenseNodes(company_id).hear
    raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")


def theengs_message(h: Heard) -> bytes:
    """What Theengs Gateway publishes for an advert it cannot decode (`-padv 1 -pa 1`)."""
    message: dict[str, object] = {"id": fake_address(h.device), "rssi": round(h.rssi)}
    if h.manufacturer_data:
        company, data = next(iter(h.manufacturer_data.items()))
        message["manufacturerdata"] = company.to_bytes(2, "little").hex() + data.hex()
    return json.dumps(message).encode()


def espresense_message(device_id: str, rssi: float, power_1m: int = APP_IBEACON_POWER) -> bytes:
    """What an ESPresense node publishes for a device it reports (the fields `BleFingerprint::fill` writes)."""
    distance = distance_m(rssi, power_1m, ESPRESENSE_ABSORPTION)
    return json.dumps(
        {
            "mac": "c0ffee000000",
            "id": device_id,
            "rssi@1m": power_1m,
            "rssi": round(rssi, 2),
            "rxAdj": 0,
            "rssiVar": 1.5,
            "distance": round(distance, 2),
            "var": 0.3,
            "int": 350,
        }
    ).encode()


def espresense_id(token: bytes) -> str:
    """How ESPresense names a phone advertising the token in its iBeacon shape: iBeacon:<uuid>-<major>-<minor>."""
    beacon = frames.ibeacon_in({frames.APPLE: frames.ibeacon_payload(token, APP_IBEACON_POWER)})
    assert beacon is not None
    return f"iBeacon:{beacon.uuid}-{beacon.major}-{beacon.minor}"


def _theengs(h: Heard) -> Advert | None:
    return theengs_format.parse(theengs_message(h), h.receiver, h.t)


def _esphome(h: Heard) -> Advert | None:
    from edge_agent.sources.ble import ad_structures

    fields = ad_structures.parse(ad_bytes(manufacturer=h.manufacturer_data, tx_power=h.tx_power))
    sent = math.ceil(h.t / ESPHOME_BATCH_S) * ESPHOME_BATCH_S  # in the proxy's next batch
    return Advert(h.receiver, sent, h.rssi, fields.manufacturer_data, fields.service_data, fields.tx_power)


@dataclass
class _Fingerprint:
    readings: deque[tuple[float, float]] = field(default_factory=deque)  # (t, rssi)
    next_report: float = 0.0
    last_distance: float | None = None


class EspresenseNodes:
    """Every ESPresense node of the floor, each keeping its own fingerprints of the devices it hears."""

    def __init__(self, company_id: int):
        self._company_id = company_id
        self._prints: dict[tuple[str, str], _Fingerprint] = {}

    def hear(self, h: Heard) -> Advert | None:
        frame = frames.token_in(h.manufacturer_data, self._company_id)
        if frame is None:
            return None  # not the app's token: ESPresense would publish an id without content
        device_id = espresense_id(frame.token)
        fp = self._prints.get((device_id, h.receiver))
        if fp is None:
            slot = int.from_bytes(hashlib.sha256(device_id.encode()).digest()[:4], "big") % ESPRESENSE_SKIP_MS
            start = math.floor(h.t * 1000 / ESPRESENSE_SKIP_MS) * ESPRESENSE_SKIP_MS + slot
            fp = self._prints[(device_id, h.receiver)] = _Fingerprint(next_report=start / 1000)
        fp.readings.append((h.t, h.rssi))
        window = fp.readings
        while window and (h.t - window[0][0] > ESPRESENSE_WINDOW_S or len(window) > ESPRESENSE_MAX_READINGS):
            window.popleft()
        rssi = _median_iqr([r for _, r in fp.readings])
        distance = distance_m(rssi, APP_IBEACON_POWER, ESPRESENSE_ABSORPTION)
        if not self._due(fp, h.t, distance):
            return None
        fp.last_distance = distance
        skip_s = ESPRESENSE_SKIP_MS / 1000
        fp.next_report = h.t + (skip_s - h.t % skip_s) % skip_s or h.t + skip_s
        return espresense_format.parse(espresense_message(device_id, rssi), h.receiver, h.t)

    @staticmethod
    def _due(fp: _Fingerprint, now: float, distance: float) -> bool:
        """ESPresense's `BleFingerprint::report`: on schedule, or early by a share of `skip_ms` for a large move."""
        if now >= fp.next_report:
            return True
        moved = min(abs(distance - (fp.last_distance if fp.last_distance is not None else distance)), 20.0)
        if moved < ESPRESENSE_SKIP_DISTANCE_M:
            return False
        log2 = math.log2(round(2 ** (moved / ESPRESENSE_SKIP_DISTANCE_M)))
        early = ESPRESENSE_SKIP_MS / max(2, min(ESPRESENSE_MAX_DIVISOR, ESPRESENSE_MAX_DIVISOR - log2)) / 1000
        return now >= fp.next_report - early


def _median_iqr(values: list[float]) -> float:
    """The median of the readings within 1.5 interquartile ranges of the quartiles (Tukey's fences)."""
    if len(values) < 4:
        return statistics.median(values)
    q1, _, q3 = statistics.quantiles(values, n=4)
    fence = 1.5 * (q3 - q1)
    kept = [v for v in values if q1 - fence <= v <= q3 + fence]
    return statistics.median(kept or values)
