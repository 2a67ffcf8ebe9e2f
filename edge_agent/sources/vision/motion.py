"""Motion gating: inference runs only when enough of a small, blurred grey copy of the frame changed."""

from __future__ import annotations

import cv2
import numpy as np


class MotionGate:
    def __init__(self, *, threshold: float = 0.002, width: int = 160, pixel_delta: int = 20):
        self.threshold = threshold  # the fraction of pixels that must change
        self.width = width
        self.pixel_delta = pixel_delta
        self._previous: np.ndarray | None = None

    def moved(self, frame: np.ndarray) -> bool:
        """True for the first frame, after a change of size, and whenever the changed fraction is above threshold."""
        scale = self.width / frame.shape[1]
        small = cv2.resize(frame, (self.width, max(1, round(frame.shape[0] * scale))), interpolation=cv2.INTER_AREA)
        grey = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), (5, 5), 0)
        previous, self._previous = self._previous, grey
        if previous is None or previous.shape != grey.shape:
            return True
        changed = np.count_nonzero(cv2.absdiff(grey, previous) > self.pixel_delta)
        return bool(changed / grey.size > self.threshold)
