"""Where receivers hang → where a phone is, and the reference level of a phone whose model nobody measured.

Each receiver's filtered level says how far the phone is from it; together, on a grid over the floor (0.5 m),
they say where it is: the cell whose distances explain every level best (least squares in dB). A zone's
distance is then measured from that cell, so a receiver farther away that hears the phone too tempers one whose
reading a body happens to shadow.

A phone of a model missing from `[ble.reference_by_model]` that does not advertise its TX power gets the store's
`reference_dbm`, and one 4 dB weaker than that reads ~1.5× further away: it hardly ever gets close enough to
enter a zone. With three or more receivers hearing it, its levels must all be `reference − 10·n·log10(distance)`
for one position and one reference: the reference that fits best at the best-fitting cell is one measurement of
the phone's own, and their running mean is what its distances are computed with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..config import Receiver

GRID_STEP_M = 0.5
MAX_CELLS = 40_000  # ~0.6 MB per receiver, and a placement in well under a millisecond
MARGIN_M = 3.0  # shoppers stand a little beyond the outermost receivers too


@dataclass(frozen=True, slots=True)
class Located:
    """Where a phone is placed on the floor (m), and each hearing receiver's distance from there."""

    x: float
    y: float
    distances: dict[str, float]


class Floor:
    def __init__(self, receivers: Sequence[Receiver], path_loss_exponent: float):
        at = {r.id: (r.x_m, r.y_m, r.height_m) for r in receivers if r.x_m is not None and r.y_m is not None}
        self.receivers = frozenset(at)
        self._dist: dict[str, npt.NDArray[np.float64]] = {}
        self._x = self._y = np.zeros(0)
        if at:
            xs, ys = [x for x, _, _ in at.values()], [y for _, y, _ in at.values()]
            width, depth = max(xs) - min(xs) + 2 * MARGIN_M, max(ys) - min(ys) + 2 * MARGIN_M
            step = max(GRID_STEP_M, (width * depth / MAX_CELLS) ** 0.5)  # a vast floor gets a coarser grid
            gx = np.arange(min(xs) - MARGIN_M, max(xs) + MARGIN_M + step / 2, step)
            gy = np.arange(min(ys) - MARGIN_M, max(ys) + MARGIN_M + step / 2, step)
            cx, cy = (a.ravel() for a in np.meshgrid(gx, gy))
            self._x, self._y = cx, cy
            self._dist = {rid: np.sqrt((cx - x) ** 2 + (cy - y) ** 2 + h**2) for rid, (x, y, h) in at.items()}
        self._row = {rid: i for i, rid in enumerate(self._dist)}
        # each receiver's path loss to every cell (dB), a row per receiver, and its square: the fits below are
        # weighted sums of squares over the hearing receivers, expanded into two matrix-vector products
        self._loss = np.array([10 * path_loss_exponent * np.log10(d) for d in self._dist.values()]).reshape(
            len(self._dist), len(self._x)
        )
        self._both = np.vstack([self._loss**2, self._loss])  # loss², then loss: one product gives Σ w·loss² + Σ v·loss

    def __len__(self) -> int:
        """How many cells the floor has."""
        return len(self._x)

    def locate(self, levels: Mapping[str, tuple[float, float]], ref: float) -> Located | None:
        """The floor cell that best explains every receiver's level (receiver → filtered dBm, its variance) for a
        phone of reference `ref`, and each hearing receiver's distance (m) from it; None when fewer than two hear it.
        The best cell, not an average over cells: an average weighs the many far cells of a floor against the few
        near a receiver and pushes every phone out."""
        heard = [(rid, level, var) for rid, (level, var) in levels.items() if rid in self._row]
        if len(heard) < 2:  # one receiver alone says as much from its level
            return None
        w, c = self._weighted(heard)
        c -= ref
        # Σ w·(c + loss)² over the receivers, less the Σ w·c² every cell shares
        misfit = np.concatenate([w, 2 * w * c]) @ self._both
        best = int(np.argmin(misfit))
        distances = {rid: float(self._dist[rid][best]) for rid, _, _ in heard}
        return Located(float(self._x[best]), float(self._y[best]), distances)

    def reference(self, levels: Mapping[str, tuple[float, float]]) -> float | None:
        """The reference level (dBm at 1 m) that best explains `levels` (receiver → filtered dBm, its variance) at
        the cell where they fit best; None with fewer than three placed receivers hearing the phone (then any
        reference fits some position). No pull towards a default: near a receiver the fit is loose, and a pull
        there biases every measurement of a weak phone back towards the default (the running mean averages the
        looseness out instead)."""
        heard = [(rid, level, var) for rid, (level, var) in levels.items() if rid in self._row]
        if len(heard) < 3:
            return None
        w, level = self._weighted(heard)
        total = w.sum()
        # each receiver's reference per cell is level + loss: their weighted mean, and the weighted squares about it
        # (Σ w·(level + loss)² − total·ref²) less the Σ w·level² every cell shares
        loss_sum = np.concatenate([np.zeros(len(w)), w]) @ self._both  # Σ w·loss
        squares = np.concatenate([w, 2 * w * level]) @ self._both  # Σ w·loss² + Σ 2·w·level·loss
        ref = (w @ level + loss_sum) / total
        misfit = squares - total * ref * ref
        return float(ref[int(np.argmin(misfit))])

    def _weighted(
        self, heard: list[tuple[str, float, float]]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Per receiver row: the weight (1 / variance) of a hearing one, 0 of the others; and its level."""
        w, level = np.zeros(len(self._row)), np.zeros(len(self._row))
        for rid, lv, var in heard:
            w[self._row[rid]], level[self._row[rid]] = 1.0 / var, lv
        return w, level
