"""Operator tools behind `edge-agent enroll` and `edge-agent faces verify`: still images in, JSON out.

Enrolment computes embeddings on the store host so the photos never need to leave it; only the
embeddings (base64 float32, unit length) are printed, for the operator to upload with the customer's
consent. Each image must show exactly one recognisable face, so nobody else is enrolled by mistake.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from ...config import VisionSettings
from ...store.faces import encode_embedding
from .match import similarity
from .pipeline import VisionModels, face_vectors


class ImageError(Exception):
    """An image the tools cannot use; the message names the file and why."""


def one_face(models: VisionModels, path: Path, settings: VisionSettings) -> npt.NDArray[np.float32]:
    image = cv2.imread(str(path))
    if image is None:
        raise ImageError(f"{path}: not a readable image (JPEG, PNG, ...)")
    faces = face_vectors(models, image, settings.faces.min_face_px)
    if len(faces) != 1:
        found = f"found {len(faces)} faces of at least {settings.faces.min_face_px} px"
        raise ImageError(f"{path}: {found}; use an image with exactly one face")
    return faces[0][1]


def enroll(models: VisionModels, customer_ref: str, images: list[Path], settings: VisionSettings) -> dict[str, Any]:
    vectors = [one_face(models, path, settings) for path in images]
    return {
        "customer_ref": customer_ref,
        "face_embeddings": [encode_embedding(v) for v in vectors],
        "images": len(vectors),
        "note": "upload with the customer's roster entry; the agent uses it only while consents include 'face'",
    }


def verify(models: VisionModels, a: Path, b: Path, settings: VisionSettings) -> dict[str, Any]:
    score = similarity(one_face(models, a, settings), one_face(models, b, settings))
    threshold = settings.faces.verify_threshold
    return {"similarity": round(score, 4), "threshold": threshold, "same_person": score >= threshold}
