"""Face alignment and embedding: five landmarks → ArcFace 112×112 crop → MobileFaceNet → unit 128-d vector.

The crop and the vector exist only in memory, inside the vision source; neither is logged or stored
(the roster brings the enrolled embeddings; a face that matches nobody is dropped at once).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

# Where the five landmarks sit in the 112×112 crop MobileFaceNet was trained on (the ArcFace template).
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)
_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def align(frame: np.ndarray, landmarks: npt.NDArray[np.float32]) -> np.ndarray | None:
    """The 112×112 face crop, by the similarity transform that maps the landmarks onto the template."""
    matrix, _ = cv2.estimateAffinePartial2D(landmarks.astype(np.float32), ARCFACE_TEMPLATE, method=cv2.LMEDS)
    if matrix is None:
        return None
    return cv2.warpAffine(frame, matrix, (112, 112), borderValue=(0, 0, 0))


class Embedder:
    def __init__(self, session: Any):
        self._session = session
        self._input = session.get_inputs()[0].name

    def __call__(self, crop_bgr: np.ndarray) -> npt.NDArray[np.float32]:
        rgb = cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        tensor = ((rgb - _MEAN) / _STD).transpose(2, 0, 1)[None]
        vector = self._session.run(None, {self._input: np.ascontiguousarray(tensor)})[0][0]
        return normalise(vector)


def normalise(vector: npt.ArrayLike) -> npt.NDArray[np.float32]:
    vector = np.asarray(vector, dtype=np.float32)
    # float32 already (a Python float does not widen it); numpy's stubs say float64, so say float32 (no copy)
    return (vector / max(float(np.linalg.norm(vector)), 1e-12)).astype(np.float32, copy=False)
