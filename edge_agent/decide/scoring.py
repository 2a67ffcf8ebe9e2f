"""The features of every offer on a slate for one decision, and the linear score the bundle's policy
gives them. Contextual features apply to anyone; profile features only to a consenting customer.

Features (see store/policy.py FEATURES): priority (the marketer's), context_match (how many of the offer's
context tags hold now), segment_match (segments shared with the customer), affinity (the customer's share
of purchases in the offer's category), replenishment_due (the customer's cycle for the product has come
round), bought_together (the bundle says it goes with something they bought recently).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import numpy as np

from ..store.offers import Offer
from .profile import Profile, replenishment

if TYPE_CHECKING:
    from .slate import Slate


class Features:
    def __init__(self, slate: Slate, tags: Iterable[str]):
        n = len(slate)
        self._slate = slate
        self.arrays: dict[str, np.ndarray] = {"priority": slate.priority}
        context = np.zeros(n)
        for tag in tags:
            idx = slate.by_tag.get(tag)
            if idx is not None:
                context[idx] += 1
        self.arrays["context_match"] = context
        self.suppressed: list[int] = []

    def add_profile(
        self,
        segments: Iterable[str],
        profile: Profile,
        bought_together: Mapping[str, tuple[str, ...]],
        now_unix: float,
    ) -> None:
        slate, n = self._slate, len(self._slate)
        seg = np.zeros(n)
        for s in set(segments):
            idx = slate.by_segment.get(s)
            if idx is not None:
                seg[idx] += 1
        affinity = np.zeros(n)
        for category, share in profile.affinity.items():
            idx = slate.by_category.get(category)
            if idx is not None:
                affinity[idx] = share
        due = np.zeros(n)
        for sku, last in profile.last_bought.items():
            idx = slate.by_sku.get(sku)
            if idx is None:
                continue
            for i in idx:
                offer: Offer = slate.offers[i]
                state = replenishment(last, profile.cycle_days.get(sku, offer.replenish_days), now_unix)
                if state == "due":
                    due[i] = 1.0
                elif state == "suppressed":
                    self.suppressed.append(int(i))
        together = np.zeros(n)
        for sku in profile.recent:
            for other in bought_together.get(sku, ()):
                idx = slate.by_sku.get(other)
                if idx is not None:
                    together[idx] = 1.0
        self.arrays.update(segment_match=seg, affinity=affinity, replenishment_due=due, bought_together=together)

    def score(self, weights: Mapping[str, float], only: Iterable[str] | None = None) -> np.ndarray:
        names = self.arrays if only is None else [f for f in only if f in self.arrays]
        total = np.zeros(len(self._slate))
        for name in names:
            w = weights.get(name, 0.0)
            if w:
                total += w * self.arrays[name]
        return total

    def __len__(self) -> int:
        return len(self._slate)

    def of(self, i: int) -> dict[str, float]:
        """The non-zero features of one offer, for the decision log."""
        return {name: float(a[i]) for name, a in self.arrays.items() if a[i]}


CONTEXTUAL = ("priority", "context_match")
