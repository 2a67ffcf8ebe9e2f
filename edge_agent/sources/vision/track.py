"""A small IoU tracker: detections → anonymous tracks with a dwell time, and nothing else.

A track is a box and a random id that lives only as long as the track; it carries no image and no
appearance feature, so a person who leaves and comes back is a new, unrelated track.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .detect import Detection


@dataclass
class Track:
    track_id: str
    box: tuple[float, float, float, float]
    first_seen: float
    last_seen: float
    hits: int = 1
    visible: bool = True  # matched in the latest analysed frame

    def dwell(self, now: float) -> float:
        return max(0.0, now - self.first_seen)


def iou_matrix(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    xx1 = np.maximum(a[:, None, 0], b[None, :, 0])
    yy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    xx2 = np.minimum(a[:, None, 2], b[None, :, 2])
    yy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    iou: npt.NDArray[np.float64] = inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9)
    return iou


class Tracker:
    """Greedy IoU association; a track is confirmed after `min_hits` frames and dropped `hold_s` after its last."""

    def __init__(self, *, iou: float = 0.25, hold_s: float = 1.5, min_hits: int = 2):
        self.iou = iou
        self.hold_s = hold_s
        self.min_hits = min_hits
        self._tracks: list[Track] = []
        self._prefix = secrets.token_hex(3)  # ids differ across restarts, so they never link two visits
        self._next = 0

    def update(self, detections: list[Detection], now: float) -> list[Track]:
        """Associate this frame's detections; returns the confirmed tracks still alive."""
        unmatched = list(range(len(detections)))
        for track in self._tracks:
            track.visible = False
        if self._tracks and detections:
            overlap = iou_matrix(
                np.array([t.box for t in self._tracks]), np.array([d.box for d in detections], dtype=np.float64)
            )
            while overlap.size and overlap.max() >= self.iou:
                ti, di = np.unravel_index(int(overlap.argmax()), overlap.shape)
                track = self._tracks[ti]
                track.box, track.last_seen, track.hits, track.visible = detections[di].box, now, track.hits + 1, True
                overlap[ti, :] = -1
                overlap[:, di] = -1
                unmatched.remove(int(di))
        for new in unmatched:
            self._next += 1
            self._tracks.append(Track(f"{self._prefix}-{self._next}", detections[new].box, now, now))
        self._tracks = [t for t in self._tracks if now - t.last_seen <= self.hold_s]
        return self.confirmed()

    def keep_alive(self, now: float) -> list[Track]:
        """Nothing moved in the scene: everyone visible in the last analysed frame is still there.

        A track the last analysis missed is not renewed, so someone who left just before the scene went
        still does not linger; expired tracks are dropped here as in `update`.
        """
        for track in self._tracks:
            if track.visible:
                track.last_seen = now
        self._tracks = [t for t in self._tracks if now - t.last_seen <= self.hold_s]
        return self.confirmed()

    def confirmed(self) -> list[Track]:
        return [t for t in self._tracks if t.hits >= self.min_hits]
