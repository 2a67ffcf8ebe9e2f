"""Turning scores into choice probabilities that are known exactly, so every decision can be evaluated
off-policy: epsilon-greedy or softmax over the best candidates, with a probability floor."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from ..store.policy import Exploration


def probabilities(scores: Sequence[float], exploration: Exploration) -> list[float]:
    """One probability per score (best first or not), summing to one; each at least the floor when the
    floor is feasible (n * floor <= 1), else uniform."""
    n = len(scores)
    if n == 0:
        return []
    best = max(range(n), key=lambda i: scores[i])
    if exploration.kind == "softmax":
        top = scores[best]
        weights = [math.exp((s - top) / exploration.temperature) for s in scores]
        total = sum(weights)
        probs = [w / total for w in weights]
    else:
        eps = exploration.epsilon if exploration.kind == "epsilon_greedy" else 0.0
        probs = [eps / n] * n
        probs[best] += 1.0 - eps
    floor = exploration.floor
    if floor > 0:
        if n * floor >= 1.0:
            return [1.0 / n] * n
        probs = [floor + (1.0 - n * floor) * p for p in probs]
    return probs


def draw(probs: Sequence[float], rng: random.Random) -> int:
    """An index drawn with the given probabilities."""
    x = rng.random()
    acc = 0.0
    for i, p in enumerate(probs):
        acc += p
        if x < acc:
            return i
    return max(range(len(probs)), key=lambda i: probs[i])  # rounding left x above the last sum
