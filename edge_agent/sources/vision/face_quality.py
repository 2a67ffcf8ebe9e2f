"""Is this frame good enough to enrol the shopper at the kiosk? One face, close, frontal, lit and sharp.

Runs in the inference executor beside the rest of the pipeline. A frame that fails says why (`Hint`), which
the kiosk turns into advice ("come closer", "hold still"); only a frame that passes gives up its embedding,
and only when it shows exactly one face, so nobody passing behind the shopper is ever enrolled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import cv2
import numpy as np
import numpy.typing as npt

from ...config import EnrolmentSettings
from .detect import Face
from .embed import Embedder, align


class Hint(StrEnum):
    NO_FACE = "no_face"
    SEVERAL_FACES = "several_faces"
    TOO_FAR = "too_far"
    TURNED = "turned"
    TOO_DARK = "too_dark"
    TOO_BRIGHT = "too_bright"
    BLURRED = "blurred"
    SOMEONE_ELSE = "someone_else"  # a good face, but not the one the enrolment began with
    NO_PICTURE = "no_picture"  # the camera delivers nothing


@dataclass(frozen=True)
class Sample:
    """What one frame gave an enrolment: an embedding, or the reason there is none."""

    vector: npt.NDArray[np.float32] | None
    hint: Hint | None = None


def short_side(face: Face) -> float:
    x1, y1, x2, y2 = face.box
    return min(x2 - x1, y2 - y1)


def pose(landmarks: npt.NDArray[np.float32]) -> tuple[float, float]:
    """(turn, tilt°): the nose off the eyes' midpoint along the eye line, as a share of the eyes' distance
    (0 looking straight at the camera), and the eye line's angle from level."""
    eye_a, eye_b, nose = landmarks[0], landmarks[1], landmarks[2]
    across = eye_b - eye_a
    span = float(across @ across)
    if span == 0:
        return math.inf, 0.0
    turn = abs(float((nose - eye_a) @ across) / span - 0.5)
    return turn, math.degrees(math.atan2(float(across[1]), float(across[0])))


def sample(
    frame: np.ndarray, faces: list[Face], embedder: Embedder, rules: EnrolmentSettings, min_face_px: int
) -> Sample:
    """The frame's verdict. `faces` are every face the detector found; any of at least `min_face_px` (what
    recognition would use) counts as someone in view."""
    in_view = [f for f in faces if short_side(f) >= min_face_px]
    if not in_view:
        return Sample(None, Hint.NO_FACE)
    if len(in_view) > 1:
        return Sample(None, Hint.SEVERAL_FACES)
    face = in_view[0]
    if short_side(face) < rules.min_face_px:
        return Sample(None, Hint.TOO_FAR)
    turn, tilt = pose(face.landmarks)
    if turn > rules.max_turn or abs(tilt) > rules.max_tilt_deg:
        return Sample(None, Hint.TURNED)
    crop = align(frame, face.landmarks)
    if crop is None:
        return Sample(None, Hint.TURNED)
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    brightness = float(grey.mean())
    if brightness < rules.min_brightness:
        return Sample(None, Hint.TOO_DARK)
    if brightness > rules.max_brightness:
        return Sample(None, Hint.TOO_BRIGHT)
    if float(cv2.Laplacian(grey, cv2.CV_64F).var()) < rules.min_sharpness:
        return Sample(None, Hint.BLURRED)
    return Sample(embedder(crop))
