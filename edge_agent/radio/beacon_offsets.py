"""The store's fixed beacons as each receiver hears them, and the receiver offsets they imply.

Two receivers hanging side by side read the same phone a few dB apart (antenna, case, mounting), and every dB
is ~10 % of distance. `[[ble.receivers]] offset_db` corrects that, relative to this host's own receiver: the one
the phone models' 1 m references are measured with. A fixed beacon of known position and measured power says
what each receiver should hear; what it does hear, averaged, gives that receiver's offset:

    mean_rssi(beacon, receiver) = measured_power + beacon_error − 10·n·log10(distance) + offset(receiver)

One equation per beacon and receiver that heard it long enough; the unknowns are every receiver's offset and
every beacon's own error (its advertised measured power is only as good as whoever measured it). Least squares
with this host's receiver held at its configured offset solves them for every receiver linked to it through
beacons heard in common; one beacon heard by the host and a node is enough for that node. Far pairs weigh less
(the path-loss exponent is known only so well), and a mean near a receiver's sensitivity is corrected for the
readings it missed (sensitivity.py).
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import BleSettings
from .sensitivity import Sensitivity

MEAN_READINGS = 6000  # the mean's memory: ~35 min of a beacon advertising every 350 ms
MIN_READINGS = 30  # readings of a beacon before a receiver's mean counts towards the offsets
EXPONENT_ERROR = 0.1  # how well a calibration walk knows the path-loss exponent
MEAN_ERROR_DB = 0.3  # how well a receiver's mean reading of a beacon is known


@dataclass(slots=True)
class Heard:
    """One receiver's hearing of one beacon: the last reading and a running mean (then a moving one)."""

    rssi: float
    mean: float
    readings: int
    mono: float
    measured_power: int

    def add(self, rssi: float, measured_power: int, mono: float) -> None:
        self.readings += 1
        self.mean += (rssi - self.mean) / min(self.readings, MEAN_READINGS)
        self.rssi, self.measured_power, self.mono = rssi, measured_power, mono


class BeaconLevels:
    """Per store beacon and receiver, what was heard; bounded by the configured beacons and receivers."""

    def __init__(self, ble: BleSettings, reference_receiver: str):
        self.heard: dict[str, dict[str, Heard]] = {}
        self._sensitivity = Sensitivity()  # of the raw beacon readings
        self._reference = reference_receiver
        self.reconfigure(ble)

    def reconfigure(self, ble: BleSettings) -> None:
        self._exponent = ble.path_loss_exponent
        self._spread = math.hypot(ble.noise_db, ble.shadow_db)  # of single readings of a still transmitter
        self._offsets = {r.id: r.offset_db for r in ble.receivers}
        self._receivers = {
            r.id: (r.x_m, r.y_m, r.height_m) for r in ble.receivers if r.x_m is not None and r.y_m is not None
        }
        self._beacons = {p.beacon: (p.x_m, p.y_m, p.height_m) for p in ble.beacon_positions}

    def record(self, beacon: str, receiver: str, rssi: float, measured_power: int, mono: float) -> None:
        """One reading (raw: before the receiver's offset); O(1)."""
        self._sensitivity.note(receiver, rssi)
        by_receiver = self.heard.setdefault(beacon, {})
        heard = by_receiver.get(receiver)
        if heard is None:
            by_receiver[receiver] = Heard(rssi, rssi, 1, mono, measured_power)
        else:
            heard.add(rssi, measured_power, mono)

    def deviations(self) -> dict[tuple[str, str], tuple[float, float]]:
        """(beacon, receiver) → (mean reading less what the beacon's measured power and the distance predict, the
        weight of that in the fit), for placed beacons heard by placed receivers at least MIN_READINGS times.

        The weight is 1 / the variance the path-loss model adds at that distance (an exponent known to
        ±EXPONENT_ERROR is ±1 dB at 10 m, ±1.6 dB at 40 m): a beacon halfway between two receivers compares them
        whatever the exponent, and a far receiver's reading of it counts for little."""
        out = {}
        for beacon, by_receiver in self.heard.items():
            at = self._beacons.get(beacon)
            for receiver, heard in by_receiver.items():
                rx = self._receivers.get(receiver)
                if at is None or rx is None or heard.readings < MIN_READINGS:
                    continue
                loss = 10 * math.log10(max(1.0, math.dist(at, rx)))
                level = self._sensitivity.true_level(receiver, heard.mean, self._spread)[0]  # sensitivity.py
                deviation = level - (heard.measured_power - self._exponent * loss)
                out[beacon, receiver] = deviation, 1.0 / (MEAN_ERROR_DB**2 + (EXPONENT_ERROR * loss) ** 2)
        return out

    def offsets(self) -> dict[str, float]:
        """Every receiver's offset (dB) that the beacons imply, for those linked to this host's receiver through
        beacons heard in common (this host's receiver keeps its configured offset)."""
        deviations = self.deviations()
        linked = _linked(self._reference, deviations)
        if self._reference not in linked:
            return {}
        receivers = sorted(linked - {self._reference})
        beacons = sorted({b for b, r in deviations if r in linked})
        column = {name: i for i, name in enumerate([*receivers, *beacons])}
        rows, values = [], []
        for (beacon, receiver), (deviation, weight) in deviations.items():
            if receiver not in linked:
                continue
            row = np.zeros(len(column))
            row[column[beacon]] = 1.0
            if receiver == self._reference:
                deviation -= self._offsets.get(receiver, 0.0)
            else:
                row[column[receiver]] = 1.0
            rows.append(row * math.sqrt(weight))
            values.append(deviation * math.sqrt(weight))
        solved = np.linalg.lstsq(np.array(rows), np.array(values), rcond=None)[0]
        out = {r: round(float(solved[column[r]]), 1) for r in receivers}
        out[self._reference] = self._offsets.get(self._reference, 0.0)
        return out

    def health(self, now: float) -> dict[str, Any]:
        """`beacons`: per beacon and receiver, the last and mean readings; `receiver_offsets`: per receiver that
        heard a placed beacon, its configured offset and the one the beacons suggest (null: not linked to this
        host's receiver by a beacon both heard MIN_READINGS times)."""
        beacons = {
            beacon: {
                receiver: {
                    "rssi": h.rssi,
                    "mean_dbm": round(h.mean, 1),
                    "readings": h.readings,
                    "measured_power": h.measured_power,
                    "age_s": round(now - h.mono, 1),
                }
                for receiver, h in by_receiver.items()
            }
            for beacon, by_receiver in self.heard.items()
        }
        suggested = self.offsets()
        heard_placed = {r for b, by_receiver in self.heard.items() if b in self._beacons for r in by_receiver}
        offsets = {
            r: {"configured_db": self._offsets[r], "suggested_db": suggested.get(r)}
            for r in sorted(heard_placed & self._receivers.keys())
        }
        return {"beacons": beacons, "receiver_offsets": offsets}


def _linked(start: str, pairs: Collection[tuple[str, str]]) -> set[str]:
    """The receivers reachable from `start` through beacons heard in common ((beacon, receiver) pairs); empty if
    `start` heard none."""
    by_beacon: dict[str, set[str]] = {}
    for beacon, receiver in pairs:
        by_beacon.setdefault(beacon, set()).add(receiver)
    if not any(start in members for members in by_beacon.values()):
        return set()
    seen, todo = {start}, [start]
    while todo:
        receiver = todo.pop()
        for members in by_beacon.values():
            if receiver in members:
                todo += [r for r in members - seen]
                seen |= members
    return seen
