"""Deterministic experiment assignment, compatible with GrowthBook's SDKs (hash versions 1 and 2).

The same customer_ref, seed and weights give the same variation here, in the cloud and in any GrowthBook
SDK, so the analysis can be rerun anywhere. Pure functions; no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..store.offers import Experiment
from ..store.policy import Holdout

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193


def fnv1a32(text: str) -> int:
    h = _FNV_OFFSET
    for ch in text:
        h = ((h ^ ord(ch)) * _FNV_PRIME) & 0xFFFFFFFF
    return h


def gb_hash(seed: str, value: str, version: int) -> float | None:
    """GrowthBook's bucket in [0, 1): v1 has 3 decimals, v2 (re-hashed, no seed bias) has 4; None if unknown."""
    if version == 1:
        return (fnv1a32(value + seed) % 1000) / 1000
    if version == 2:
        return (fnv1a32(str(fnv1a32(seed + value))) % 10000) / 10000
    return None


def bucket_ranges(n: int, coverage: float, weights: Sequence[float] | None) -> list[tuple[float, float]]:
    """GrowthBook's getBucketRange: each variation's slice of [0, 1), shrunk to `coverage` from its start."""
    coverage = min(max(coverage, 0.0), 1.0)
    if not weights or len(weights) != n or not 0.99 <= sum(weights) <= 1.01:
        weights = [1.0 / n] * n
    ranges, start = [], 0.0
    for w in weights:
        ranges.append((start, start + coverage * w))
        start += w
    return ranges


def choose_variation(bucket: float, ranges: Sequence[tuple[float, float]]) -> int:
    for i, (lo, hi) in enumerate(ranges):
        if lo <= bucket < hi:
            return i
    return -1


def assign(experiment: Experiment, customer_ref: str) -> str | None:
    """The customer's variation name, or None if coverage leaves them out of the experiment."""
    bucket = gb_hash(experiment.seed or experiment.key, customer_ref, experiment.hash_version)
    if bucket is None:
        return None
    ranges = bucket_ranges(len(experiment.variations), experiment.coverage, experiment.weights)
    i = choose_variation(bucket, ranges)
    return experiment.variations[i] if i >= 0 else None


def in_holdout(holdout: Holdout, customer_ref: str) -> bool:
    """The global holdout uses its own seed, so it is independent of every offer's experiment."""
    if holdout.fraction <= 0:
        return False
    bucket = gb_hash(holdout.seed, customer_ref, holdout.hash_version)
    return bucket is not None and bucket < holdout.fraction
