"""A consenting customer's profile from what they bought here: last purchase per product, their own
replenishment cycle per product (median days between purchases), category affinities and recent items.
Cached per customer; a new purchase invalidates the entry."""

from __future__ import annotations

import statistics
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from itertools import pairwise

from ..store import Store

DAY = 86_400.0
RECENT_DAYS = 30


@dataclass(frozen=True, slots=True)
class Profile:
    last_bought: dict[str, float] = field(default_factory=dict)  # sku → unix time
    cycle_days: dict[str, float] = field(default_factory=dict)  # sku → the customer's own cycle
    affinity: dict[str, float] = field(default_factory=dict)  # category → share of their purchases
    recent: frozenset[str] = frozenset()  # skus bought in the last RECENT_DAYS


NO_PURCHASES = Profile()


def replenishment(last_unix: float | None, cycle_days: float | None, now_unix: float) -> str:
    """'due' once 90 % of the cycle has passed, 'suppressed' within the first half, else 'none'."""
    if last_unix is None or cycle_days is None:
        return "none"
    elapsed = (now_unix - last_unix) / DAY
    if elapsed >= 0.9 * cycle_days:
        return "due"
    if elapsed < 0.5 * cycle_days:
        return "suppressed"
    return "none"


class ProfileBook:
    def __init__(self, store: Store, history_days: float, max_cached: int = 5_000):
        self._store = store
        self._history_s = history_days * DAY
        self._max = max_cached
        self._cache: OrderedDict[str, Profile] = OrderedDict()

    def get(self, customer_ref: str, now_unix: float, sku_category: dict[str, str]) -> Profile:
        profile = self._cache.get(customer_ref)
        if profile is not None:
            self._cache.move_to_end(customer_ref)
            return profile
        profile = self._build(customer_ref, now_unix, sku_category)
        self._cache[customer_ref] = profile
        if len(self._cache) > self._max:
            self._cache.popitem(last=False)
        return profile

    def invalidate(self, customer_ref: str | None = None) -> None:
        """Forget one customer (they bought something) or everyone (the catalogue changed)."""
        if customer_ref is None:
            self._cache.clear()
        else:
            self._cache.pop(customer_ref, None)

    def _build(self, customer_ref: str, now_unix: float, sku_category: dict[str, str]) -> Profile:
        history = self._store.purchases.history(customer_ref, now_unix - self._history_s)
        if not history:
            return NO_PURCHASES  # most cached customers: one shared profile, not ~600 bytes each
        days: dict[str, list[float]] = defaultdict(list)
        categories: dict[str, float] = defaultdict(float)
        for b in history:
            day = b.at_unix // DAY
            if not days[b.sku] or days[b.sku][-1] != day:
                days[b.sku].append(day)
            category = sku_category.get(b.sku)
            if category:
                categories[category] += 1
        last = {}
        for b in history:
            last[b.sku] = b.at_unix
        cycles = {sku: statistics.median(b - a for a, b in pairwise(d)) for sku, d in days.items() if len(d) > 1}
        total = sum(categories.values())
        return Profile(
            last_bought=last,
            cycle_days=cycles,
            affinity={c: n / total for c, n in categories.items()} if total else {},
            recent=frozenset(sku for sku, t in last.items() if now_unix - t <= RECENT_DAYS * DAY),
        )
