"""One phone's RSSI at one receiver, filtered: standing still and walking are two different signals.

A shopper mostly stands (at a shelf, for tens of seconds) and sometimes walks. Standing, the true level does not
move, and what wanders is body shadowing (`shadow_db`, correlated over a few seconds): the longer the average, the
better — a standing phone near a zone's edge that one filter follows through every shadowing dip drops out of the
zone. Walking, the level moves by several dB a second, and only a quick filter keeps up — a slow one lags every
enter and exit by seconds. One Kalman filter must pick one speed; two, run side by side and weighed by how well
each has been predicting the readings (an interacting multiple model filter), need not:

- *standing*: the level is constant (drifting by `STILL_DRIFT_DB2` dB²/s at most), each reading has noise and
  shadowing (`noise_db`² + `shadow_db`²);
- *walking*: the level drifts as a random walk by `drift_db` per √s, each reading has `noise_db` of noise.

A shopper standing is expected to start walking within `stand_s` and one walking to stop within `walk_s`; before
each reading each model starts from a mix of both estimates, weighed by how likely the phone switched since the
last one. The estimate is their mixture by the probability of each. A reading further than `gate_sigma` standard
deviations from a model's prediction is clipped to that bound, so one reflection moves it only a little. O(1) time
and memory per reading, whatever the advert rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import BleSettings

STILL_DRIFT_DB2 = 0.05  # how far a standing phone's level may still creep (a turn, a step), dB² per second
_FLOOR_P = 0.001  # neither model is ever ruled out: a phone that stood for minutes can start walking at once


@dataclass(slots=True)
class Level:
    level: float = float("-inf")  # the estimate of the RSSI (dBm, offset removed) and its variance
    variance: float = 0.0
    count: int = 0
    last: float = float("-inf")
    still: float = 0.0  # the standing model's estimate and variance
    still_var: float = 0.0
    moving: float = 0.0  # the walking model's
    moving_var: float = 0.0
    p_still: float = 0.5  # the probability the phone is standing

    def update(self, now: float, rssi: float, cfg: BleSettings) -> None:
        noise = cfg.noise_db * cfg.noise_db
        still_noise = noise + cfg.shadow_db * cfg.shadow_db
        if self.count == 0 or now - self.last > cfg.window_s:  # first reading, or a restart after silence
            self.moving, self.moving_var, self.still, self.still_var = rssi, noise, rssi, still_noise
            self.p_still, self.count = 0.5, 1
        else:
            dt = now - self.last
            starts = 1.0 - math.exp(-dt / cfg.stand_s)  # a standing shopper set off since the last reading
            stops = 1.0 - math.exp(-dt / cfg.walk_s)
            w = self.p_still
            c_still = w * (1.0 - starts) + (1.0 - w) * stops
            stayed_still = w * (1.0 - starts) / c_still  # it stood before, given that it stands now
            stayed_moving = (1.0 - w) * (1.0 - stops) / (1.0 - c_still)
            xs, ps = _mix(stayed_still, self.still, self.still_var, self.moving, self.moving_var)
            xm, pm = _mix(stayed_moving, self.moving, self.moving_var, self.still, self.still_var)
            xs, ps, fit_s = _kalman(xs, ps + STILL_DRIFT_DB2 * dt, rssi, still_noise, cfg.gate_sigma)
            xm, pm, fit_m = _kalman(xm, pm + cfg.drift_db * cfg.drift_db * dt, rssi, noise, cfg.gate_sigma)
            ws, wm = c_still * fit_s, (1.0 - c_still) * fit_m
            self.p_still = min(1.0 - _FLOOR_P, max(_FLOOR_P, ws / (ws + wm)))
            self.still, self.still_var, self.moving, self.moving_var = xs, ps, xm, pm
            self.count += 1
        self.last = now
        self.level, self.variance = _mix(self.p_still, self.still, self.still_var, self.moving, self.moving_var)


def _mix(w: float, a: float, var_a: float, b: float, var_b: float) -> tuple[float, float]:
    """Mean and variance of a mixture: `a` with weight w, `b` with 1 − w."""
    mean = w * a + (1.0 - w) * b
    return mean, w * (var_a + (a - mean) ** 2) + (1.0 - w) * (var_b + (b - mean) ** 2)


def _kalman(level: float, prior: float, rssi: float, noise: float, gate_sigma: float) -> tuple[float, float, float]:
    """One Kalman update with the innovation clipped; and how likely the (clipped) reading was, up to a constant."""
    spread = prior + noise
    bound = gate_sigma * math.sqrt(spread)
    innovation = max(-bound, min(bound, rssi - level))
    gain = prior / spread
    likelihood = math.exp(-0.5 * innovation * innovation / spread) / math.sqrt(spread)
    return level + gain * innovation, (1.0 - gain) * prior, likelihood
