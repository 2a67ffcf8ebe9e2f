"""The choice of one offer, pure: a slate's eligible offers and their features in, what is shown and why out.

The bundle's policy scores the eligible offers and draws the intended one with known probabilities (its
propensity is logged, so the cloud can evaluate the policy off-line). Holdout and control customers are shown
the best contextual offer instead, and the choice says what was intended, so conversions can be compared arm
against arm. Anyone else (anonymous, or a customer past their caps) sees the contextual ranking in rotation.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from ..store.policy import DecisionPolicy
from .experiments import assign, in_holdout
from .exploration import draw, probabilities
from .policies import Scorer
from .scoring import CONTEXTUAL, Features
from .slate import Slate

LOGGED_RANKING = 50  # eligible offers ranked and logged per decision; the whole set goes as a bitmap


@dataclass
class Choice:
    """What one decision chose and why; `shown` is None when nothing is eligible."""

    shown: int | None
    intended: int | None
    arm: str
    ordered: list[int]  # the best eligible, best first (at most LOGGED_RANKING)
    candidates: list[int]
    scores: np.ndarray
    probs: list[float]
    propensity: float | None
    features: Features
    tags: frozenset[str]
    mask: np.ndarray
    experiment: str | None = None
    presentable: list[int] | None = None  # what may be shown, best first (None: the ranking itself)


def choose(
    slate: Slate,
    features: Features,
    tags: frozenset[str],
    mask: np.ndarray,
    scorer: Scorer,
    policy: DecisionPolicy,
    ref: str | None,
    *,
    capped: bool,
    rng: random.Random,
    explore: bool = True,
    current: str | None = None,
) -> Choice:
    """`ref` is the customer the choice is personal to (None: a choice for anyone); without `explore` the best is
    taken (a kiosk list) instead of a draw or the next in rotation after `current`."""
    rows = np.flatnonzero(mask)
    scores = scorer.score(features, rows)
    ordered = best_first(rows, scores, LOGGED_RANKING)
    if not ordered:
        return Choice(None, None, "", [], [], scores, [], None, features, tags, mask)
    if ref is None:
        rotated = next_after(slate, ordered, current) if explore else ordered[0]
        arm = "capped" if capped else "anonymous"
        return Choice(rotated, rotated, arm, ordered, [rotated], scores, [1.0], 1.0, features, tags, mask)
    holdout = in_holdout(policy.holdout, ref)
    exploration = policy.policy.exploration
    candidates = ordered[: exploration.candidates]
    if explore:
        probs = probabilities([float(scores[i]) for i in candidates], exploration)
        j = draw(probs, rng)
    else:  # the best, deterministically (a kiosk's list): it had no chance of being anything else
        probs, j = [1.0] + [0.0] * (len(candidates) - 1), 0
    intended = candidates[j]

    def in_control(i: int) -> bool:
        exp = slate.offers[i].experiment
        return exp is not None and assign(exp, ref) == exp.variations[0]

    experiment = slate.offers[intended].experiment
    variation = assign(experiment, ref) if experiment is not None else None
    arm, shown_from = "default", ordered
    if holdout:
        arm = "holdout"
        open_to_all = np.flatnonzero(mask & ~slate.personalised)
        contextual = scorer.score(features, open_to_all, only=CONTEXTUAL)
        shown_from = best_first(open_to_all, contextual, LOGGED_RANKING)
    elif variation is not None:
        arm = variation
    presentable = [i for i in shown_from if not in_control(i)]
    shown = intended if arm != "holdout" and not in_control(intended) else next(iter(presentable), None)
    return Choice(
        shown,
        intended,
        arm,
        ordered,
        candidates,
        scores,
        probs,
        probs[j],
        features,
        tags,
        mask,
        experiment=experiment.key if experiment is not None and variation is not None and not holdout else None,
        presentable=presentable,
    )


def best_first(indices: np.ndarray, scores: np.ndarray, k: int) -> list[int]:
    """The k highest scores, best first; ties by offer id (slates are in id order, and the sort is stable).
    A partition first, so ten thousand eligible offers cost no full sort."""
    if len(indices) == 0:
        return []
    negative = -scores[indices]
    if len(indices) > k:
        kth = np.partition(negative, k - 1)[k - 1]
        keep = negative <= kth  # ties at the boundary stay, so the id order among them is kept
        indices, negative = indices[keep], negative[keep]
    ranked: list[int] = indices[np.argsort(negative, kind="stable")[:k]].tolist()
    return ranked


def next_after(slate: Slate, ordered: list[int], current: str | None) -> int:
    """Anonymous content rotates through the contextual ranking, best first."""
    i = slate.position.get(current) if current is not None else None
    if i is None or i not in ordered:
        return ordered[0]
    return ordered[(ordered.index(i) + 1) % len(ordered)]
