"""Plain builders for the vision tests: a face's embedding, photos re-encoded or moved, a store that enrols."""

from __future__ import annotations

import base64
from pathlib import Path

import cv2
import numpy as np

from edge_agent.config import Settings, from_dict
from edge_agent.sources.vision.pipeline import VisionModels, face_vectors
from simulators.checkin_app import CheckinIssuer
from tests.factories import config_dict, device_key_file
from tests.surfaces import KIOSK_TOKEN

# An [mqtt] section whose broker is never there: the outbox keeps what would go up.
OFFLINE_MQTT = {"host": "127.0.0.1", "port": 1, "bundle_public_keys": [base64.b64encode(bytes(32)).decode()]}


def enrolment_config(tmp_path: Path, issuer: CheckinIssuer, models_path: Path, cloud_key: str, mqtt: dict) -> Settings:
    """A store whose kiosk-a has a camera (the video `tmp_path/kiosk.avi`, looped) that enrols shoppers, sealing
    their faces to `cloud_key`; faces are identified 1:N."""
    data = config_dict(
        tmp_path,
        issuer,
        sources={"checkin": True, "vision": True},
        mqtt=mqtt,
        vision={
            "models_dir": str(models_path),
            "intra_op_threads": 1,
            "cameras": [
                {"id": "kiosk-cam", "source": str(tmp_path / "kiosk.avi"), "zone": "entrance"}
                | {"touchpoint": "kiosk-a", "loop": True, "max_fps": 5}
            ],
            "faces": {"identify": True, "enrolment": {"cloud_key": cloud_key, "timeout_s": 20}},
        },
    )
    data["store"]["device_key_file"] = device_key_file(tmp_path)
    data["surfaces"]["auth"]["kiosk_tokens"] = [KIOSK_TOKEN]
    return from_dict(data)


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
