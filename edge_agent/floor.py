"""Where receivers hang → the reference level of a phone whose model nobody measured.

A phone of a model missing from `[ble.reference_by_model]` that does not advertise its TX power gets the store's
`reference_dbm`, and a phone 4 dB weaker than that reads ~1.5× further away: it is never close enough to enter a
zone. The receivers' floor positions let the agent learn its level instead: wherever the phone is, its filtered
levels at three or more receivers must all be `reference − 10·n·log10(distance)` for one position and one
reference. Over a grid of floor positions, the reference that fits the levels best at the best-fitting position
is one measurement of the phone's reference; their running mean is what the distance is computed with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .config import Receiver

GRID_STEP_M = 0.5
MARGIN_M = 3.0  # shoppers stand a little beyond the outermost receivers too


class Floor:
    def __init__(self, receivers: Sequence[Receiver], path_loss_exponent: float):
        placed = [r for r in receivers if r.x_m is not None and r.y_m is not None]
        self.receivers = frozenset(r.id for r in placed)
        if not placed:
            self._loss: dict[str, np.ndarray] = {}
            return
        xs = [r.x_m for r in placed]
        ys = [r.y_m for r in placed]
        gx = np.arange(min(xs) - MARGIN_M, max(xs) + MARGIN_M + GRID_STEP_M / 2, GRID_STEP_M)  # type: ignore[type-var]
        gy = np.arange(min(ys) - MARGIN_M, max(ys) + MARGIN_M + GRID_STEP_M / 2, GRID_STEP_M)  # type: ignore[type-var]
        cx, cy = (a.ravel() for a in np.meshgrid(gx, gy))
        self._loss = {
            r.id: 10 * path_loss_exponent * np.log10(np.sqrt((cx - r.x_m) ** 2 + (cy - r.y_m) ** 2 + r.height_m**2))
            for r in placed
        }

    def reference(self, levels: Mapping[str, tuple[float, float]], prior_dbm: float, prior_var: float) -> float | None:
        """The reference level (dBm at 1 m) that best explains `levels` (receiver → filtered dBm, its variance) at
        the position where they fit best, pulled towards `prior_dbm` with variance `prior_var`; None with fewer
        than three placed receivers hearing the phone (then any reference fits some position)."""
        heard = [(rid, level, var) for rid, (level, var) in levels.items() if rid in self._loss]
        if len(heard) < 3:
            return None
        weights = np.array([1.0 / var for _, _, var in heard])[:, None]
        at_one_m = np.stack([level + self._loss[rid] for rid, level, _ in heard])  # each receiver's reference per cell
        prior_w = 1.0 / prior_var
        total = weights.sum() + prior_w
        ref = ((weights * at_one_m).sum(axis=0) + prior_w * prior_dbm) / total
        misfit = (weights * (at_one_m - ref) ** 2).sum(axis=0) + prior_w * (ref - prior_dbm) ** 2
        return float(ref[int(np.argmin(misfit))])
