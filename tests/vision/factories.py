"""Plain builders for the vision tests: a face's embedding, and photos re-encoded or moved."""

from __future__ import annotations

import cv2
import numpy as np

from edge_agent.sources.vision.pipeline import VisionModels, face_vectors


def embedding_of(models: VisionModels, image: np.ndarray) -> np.ndarray:
    faces = face_vectors(models, image, 40)
    assert len(faces) == 1, f"expected one face, found {len(faces)}"
    return faces[0][1]


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


def shifted(image: np.ndarray, dx: float = 0, dy: float = 0, scale: float = 1.0) -> np.ndarray:
    matrix = np.float32([[scale, 0, dx], [0, scale, dy]])
    return cv2.warpAffine(image, matrix, (image.shape[1], image.shape[0]), borderValue=(60, 60, 60))
