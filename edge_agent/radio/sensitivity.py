"""A receiver hears nothing below its sensitivity: the mean of what it did hear is too loud near that level.

A phone far from a receiver, whose readings scatter by σ around a true level μ only a few σ above the receiver's
sensitivity S, is heard only when a reading happens to land above S; the filtered level tracks the mean of those,
which for a normal spread is μ + σ·φ(a)/Φ(a) with a = (μ − S)/σ (a truncated normal). Left as it is, every far
receiver says the phone is closer than it is — the placement on the floor plan is pulled towards it, and the
reference level learned for a phone model nobody measured comes out several dB too loud (in a big store with
receivers 20 m apart, three of them hear a phone only in the aisles, near their sensitivity).
Inverting that mean gives μ back.

The sensitivity itself is learned: the weakest reading a receiver reports, once it has reported enough of them. Only the
learned reference is corrected: correcting the levels a phone is placed from as well was measured to trade
precision for recall (`hypermarket`), and elsewhere no receiver hears a placed phone near its sensitivity.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Collection

MIN_READINGS = 500  # readings a receiver must report before its weakest one is taken as its sensitivity
_A = [-3.0 + 0.05 * i for i in range(161)]  # (μ − S)/σ from −3 to 5: below −3 the phone is as good as unheard


def _heard_mean(a: float) -> float:
    """(mean of readings above S − S)/σ for a true level a σ above the sensitivity S."""
    cdf = 0.5 * (1.0 + math.erf(a / math.sqrt(2.0)))
    return a + math.exp(-0.5 * a * a) / math.sqrt(2.0 * math.pi) / cdf


_Z = [_heard_mean(a) for a in _A]  # increasing in a


def true_level(heard_mean: float, sensitivity: float, spread: float) -> tuple[float, float]:
    """The level μ whose readings, with spread σ and only those above `sensitivity` heard, average `heard_mean`; and
    dμ/d(heard mean), by which an error of the heard mean grows (near the sensitivity a little of it is a lot of μ)."""
    z = (heard_mean - sensitivity) / spread
    if z >= _Z[-1]:
        return heard_mean, 1.0  # far above the sensitivity: (almost) nothing is missed
    i = max(1, bisect_left(_Z, z))
    z0, z1 = _Z[i - 1], _Z[i]
    slope = (_A[i] - _A[i - 1]) / (z1 - z0)
    level = sensitivity + spread * max(_A[0], _A[i - 1] + slope * (z - z0))
    return min(level, heard_mean), slope


class Sensitivity:
    """Each receiver's sensitivity, learned: the weakest reading it reported, once it has reported MIN_READINGS."""

    def __init__(self) -> None:
        self._weakest: dict[str, tuple[float, int]] = {}  # receiver → weakest reading (dBm), readings

    def note(self, receiver: str, rssi: float) -> None:
        weakest, readings = self._weakest.get(receiver, (rssi, 0))
        self._weakest[receiver] = (min(weakest, rssi), readings + 1)

    def keep(self, receivers: Collection[str]) -> None:
        """Forget the other receivers' sensitivities (their readings now mean something else, e.g. a new offset)."""
        self._weakest = {rid: w for rid, w in self._weakest.items() if rid in receivers}

    def true_level(self, receiver: str, heard_mean: float, spread: float) -> tuple[float, float]:
        """`true_level` at the receiver's sensitivity; the mean as it is, slope 1, while it is not yet known."""
        weakest, readings = self._weakest.get(receiver, (heard_mean, 0))
        return (heard_mean, 1.0) if readings < MIN_READINGS else true_level(heard_mean, weakest, spread)
