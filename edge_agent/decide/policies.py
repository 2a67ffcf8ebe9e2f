"""Scoring policies: the bundle's linear weights, or its ONNX model run with onnxruntime.

Both score the offers of a slate from the same features (scoring.Features); `only` limits the features to
the contextual ones for a choice made for anyone (holdout, anonymous).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import numpy as np

from ..store.policy import ScoringPolicy
from .scoring import Features


class Scorer(Protocol):
    version: str

    def score(self, features: Features, rows: np.ndarray, only: Iterable[str] | None = None) -> np.ndarray:
        """A score per offer of the slate; only `rows` need be meaningful."""
        ...


class LinearScorer:
    def __init__(self, policy: ScoringPolicy):
        self.version = policy.version
        self._weights = policy.weights

    def score(self, features: Features, rows: np.ndarray, only: Iterable[str] | None = None) -> np.ndarray:
        return features.score(self._weights, only)


class OnnxScorer:
    """One onnxruntime session on one thread: a decision scores a few thousand rows at most."""

    def __init__(self, policy: ScoringPolicy):
        import onnxruntime as ort  # only stores that ship ONNX policies need it

        assert policy.onnx is not None
        self.version = policy.version
        self._columns = policy.onnx.features
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            policy.onnx.model_bytes(), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name
        probe = self._run(np.zeros((2, len(self._columns)), dtype=np.float32))
        if probe.shape != (2,):
            raise ValueError(f"the model must give one score per row, gave shape {probe.shape} for 2 rows")

    def _run(self, matrix: np.ndarray) -> np.ndarray:
        out = self._session.run(None, {self._input: matrix})[0]
        return np.asarray(out, dtype=float).reshape(len(matrix), -1)[:, 0] if out.ndim == 2 else np.asarray(out)

    def score(self, features: Features, rows: np.ndarray, only: Iterable[str] | None = None) -> np.ndarray:
        scores = np.zeros(len(features))
        if len(rows) == 0:
            return scores
        allowed = set(only) if only is not None else None
        matrix = np.zeros((len(rows), len(self._columns)), dtype=np.float32)
        for j, name in enumerate(self._columns):
            column = features.arrays.get(name)
            if column is not None and (allowed is None or name in allowed):
                matrix[:, j] = column[rows]
        scores[rows] = self._run(matrix)
        return scores


def scorer_for(policy: ScoringPolicy) -> Scorer:
    return OnnxScorer(policy) if policy.kind == "onnx" else LinearScorer(policy)
