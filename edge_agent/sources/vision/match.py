"""Matching a face embedding against the enrolled, consenting customers of this store.

The gallery is a matrix of unit vectors, so one matrix product gives every cosine similarity. It holds
only what `FaceEmbeddings.consented()` returns; a face below the threshold matches nobody and its
vector is dropped by the caller at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class Match:
    customer_ref: str
    similarity: float


def similarity(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float:
    """Cosine similarity of two unit vectors."""
    return float(np.dot(a, b))


class FaceGallery:
    def __init__(self, entries: Sequence[tuple[str, npt.NDArray[np.float32]]] = ()):
        self._refs = np.array([ref for ref, _ in entries], dtype=object)
        self._matrix = np.stack([v for _, v in entries]) if entries else np.zeros((0, 128), dtype=np.float32)

    def __len__(self) -> int:
        return len(set(self._refs.tolist()))

    def without(self, customer_ref: str) -> FaceGallery:
        """The same gallery less one customer (erased, or withdrew face consent)."""
        keep = self._refs != customer_ref
        gallery = FaceGallery()
        gallery._refs, gallery._matrix = self._refs[keep], self._matrix[keep]
        return gallery

    def best(self, vector: npt.NDArray[np.float32], threshold: float, *, among: set[str] | None = None) -> Match | None:
        """The most similar enrolled customer (restricted to `among` if given), if at or above threshold."""
        if not len(self._refs):
            return None
        scores = self._matrix @ vector
        if among is not None:
            scores = np.where(np.isin(self._refs, list(among)), scores, -np.inf)
        i = int(np.argmax(scores))
        if scores[i] < threshold:
            return None
        return Match(str(self._refs[i]), float(scores[i]))
