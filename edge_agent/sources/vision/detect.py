"""People and face detection on a frame: pre-processing and decoding around an onnxruntime session.

Both detectors are plain functions of a frame (no state, no I/O) so they run in an executor thread and
are easy to test. Boxes are `[x1, y1, x2, y2]` in frame pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

_STRIDES = (8, 16, 32)


@dataclass(frozen=True, slots=True)
class Detection:
    box: tuple[float, float, float, float]
    score: float


@dataclass(frozen=True, slots=True)
class Face:
    box: tuple[float, float, float, float]
    score: float
    landmarks: npt.NDArray[
        np.float32
    ]  # 5×2: right eye, left eye, nose tip, right and left mouth corner (image left to right)


def nms(boxes: npt.NDArray[np.floating[Any]], scores: npt.NDArray[np.floating[Any]], iou: float) -> list[int]:
    """Greedy non-maximum suppression; returns the kept indices, best first."""
    order = scores.argsort()[::-1]
    keep: list[int] = []
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        xx1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        overlap = inter / (areas[i] + areas[rest] - inter + 1e-9)
        order = rest[overlap <= iou]
    return keep


def _box(row: npt.NDArray[np.floating[Any]]) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = row
    return float(x1), float(y1), float(x2), float(y2)


def _grid(height: int, width: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Anchor cell offsets and strides of a YOLOX-style head, in the order the model emits them."""
    cells, strides = [], []
    for s in _STRIDES:
        ys, xs = np.mgrid[0 : height // s, 0 : width // s]
        cells.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
        strides.append(np.full(xs.size, s))
    return np.concatenate(cells).astype(np.float32), np.concatenate(strides).astype(np.float32)[:, None]


class PersonDetector:
    """YOLOX-family person detector (YOLOX-nano: COCO class 0; the light detector: its only class)."""

    def __init__(self, session: Any, *, threshold: float = 0.5, iou: float = 0.45):
        self._session = session
        self._input = session.get_inputs()[0].name
        _, _, self.height, self.width = session.get_inputs()[0].shape
        self._cells, self._strides = _grid(self.height, self.width)
        self._tensors: dict[tuple[int, ...], npt.NDArray[np.float32]] = {}
        self.threshold = threshold
        self.iou = iou

    def preprocess(self, frame: np.ndarray) -> tuple[npt.NDArray[np.float32], float]:
        """Letterbox top-left onto grey 114, as the model was trained; returns the tensor and the scale.

        The tensor is reused for frames of the same size (the padding never changes), so a camera's
        frames cost one resize and one copy; callers run one frame at a time (the inference executor).
        """
        ratio = min(self.height / frame.shape[0], self.width / frame.shape[1])
        resized = cv2.resize(frame, (round(frame.shape[1] * ratio), round(frame.shape[0] * ratio)))
        tensor = self._tensors.get(resized.shape[:2])
        if tensor is None:
            tensor = self._tensors[resized.shape[:2]] = np.full((1, 3, self.height, self.width), 114, np.float32)
        tensor[0, :, : resized.shape[0], : resized.shape[1]] = resized.transpose(2, 0, 1)
        return tensor, ratio

    def infer(self, tensor: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        raw: npt.NDArray[np.float32] = self._session.run(None, {self._input: tensor})[0][0]
        return raw

    def decode(self, raw: npt.NDArray[np.float32], ratio: float) -> list[Detection]:
        scores = raw[:, 4] * raw[:, 5]  # objectness × person (class 0 in both models)
        mask = scores >= self.threshold
        if not mask.any():
            return []
        raw, scores = raw[mask], scores[mask]
        centre = (raw[:, :2] + self._cells[mask]) * self._strides[mask]
        size = np.exp(raw[:, 2:4]) * self._strides[mask]
        boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1) / ratio
        return [Detection(_box(boxes[i]), float(scores[i])) for i in nms(boxes, scores, self.iou)]

    def __call__(self, frame: np.ndarray) -> list[Detection]:
        tensor, ratio = self.preprocess(frame)
        return self.decode(self.infer(tensor), ratio)


class FaceDetector:
    """YuNet face detector with five landmarks; the frame is scaled to at most `max_side` and padded to 32."""

    def __init__(self, session: Any, *, threshold: float = 0.6, iou: float = 0.3, max_side: int = 640):
        self._session = session
        self._input = session.get_inputs()[0].name
        self._outputs = [f"{kind}_{s}" for kind in ("cls", "obj", "bbox", "kps") for s in _STRIDES]
        self.threshold = threshold
        self.iou = iou
        self.max_side = max_side
        self._grids: dict[
            tuple[int, int], tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]
        ] = {}  # one per camera size

    def __call__(self, frame: np.ndarray) -> list[Face]:
        ratio = min(1.0, self.max_side / max(frame.shape[:2]))
        height, width = (int(np.ceil(d * ratio / 32) * 32) for d in frame.shape[:2])
        canvas = np.zeros((height, width, 3), dtype=np.uint8)
        resized = cv2.resize(frame, None, fx=ratio, fy=ratio) if ratio < 1.0 else frame
        canvas[: resized.shape[0], : resized.shape[1]] = resized
        heads = self._session.run(self._outputs, {self._input: canvas.transpose(2, 0, 1)[None].astype(np.float32)})
        cls, obj, bbox, kps = (np.concatenate([h[0] for h in heads[i * 3 : i * 3 + 3]]) for i in range(4))
        scores = np.sqrt(np.clip(cls[:, 0], 0, 1) * np.clip(obj[:, 0], 0, 1))
        mask = scores >= self.threshold
        if not mask.any():
            return []
        if (height, width) not in self._grids:
            self._grids[(height, width)] = _grid(height, width)
        cells, strides = self._grids[(height, width)]
        cells, strides, scores = cells[mask], strides[mask], scores[mask]
        centre = (bbox[mask, :2] + cells) * strides
        size = np.exp(bbox[mask, 2:4]) * strides
        boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1) / ratio
        points = ((kps[mask].reshape(-1, 5, 2) + cells[:, None, :]) * strides[:, :, None]) / ratio
        return [
            Face(_box(boxes[i]), float(scores[i]), points[i].astype(np.float32)) for i in nms(boxes, scores, self.iou)
        ]
