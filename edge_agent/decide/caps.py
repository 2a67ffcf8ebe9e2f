"""Frequency caps and cool-downs over rolling windows, counted in memory from the decisions made (and
rebuilt from the decision log on start), so checking them costs no database read."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import KeysView

from ..store.offers import LONGEST_WINDOW_S, Cap

_KEEP_S = float(LONGEST_WINDOW_S)
_NONE: KeysView[str] = {}.keys()


class CapLedger:
    def __init__(self) -> None:
        self._customer_offer: dict[str, dict[str, deque[float]]] = defaultdict(lambda: defaultdict(deque))
        self._customer: dict[str, deque[float]] = defaultdict(deque)
        self._screen: dict[str, dict[str, deque[float]]] = defaultdict(lambda: defaultdict(deque))
        self._converted: dict[str, dict[str, float]] = defaultdict(dict)

    def shown(self, touchpoint: str, customer_ref: str | None, offer_id: str, at: float) -> None:
        self._screen[touchpoint][offer_id].append(at)
        if customer_ref is not None:
            self._customer_offer[customer_ref][offer_id].append(at)
            self._customer[customer_ref].append(at)

    def forget(self, customer_ref: str) -> None:
        """Erasure: drop everything counted about this customer."""
        self._customer_offer.pop(customer_ref, None)
        self._customer.pop(customer_ref, None)
        self._converted.pop(customer_ref, None)

    def prune(self, now: float) -> int:
        """Drop history older than the longest window, so memory follows recent traffic; returns keys dropped."""
        cutoff = now - _KEEP_S
        dropped = 0
        for table in (self._customer_offer, self._screen):
            for owner in list(table):
                per_offer = table[owner]
                for offer_id in list(per_offer):
                    times = per_offer[offer_id]
                    while times and times[0] < cutoff:
                        times.popleft()
                    if not times:
                        del per_offer[offer_id]
                        dropped += 1
                if not per_offer:
                    del table[owner]
        for ref in list(self._customer):
            times = self._customer[ref]
            while times and times[0] < cutoff:
                times.popleft()
            if not times:
                del self._customer[ref]
                dropped += 1
        for ref in list(self._converted):
            self._converted[ref] = {o: t for o, t in self._converted[ref].items() if t >= cutoff}
            if not self._converted[ref]:
                del self._converted[ref]
        return dropped

    def converted(self, customer_ref: str, offer_id: str, at: float) -> None:
        self._converted[customer_ref][offer_id] = max(at, self._converted[customer_ref].get(offer_id, at))

    def customer_count(self, customer_ref: str, window_s: float, now: float) -> int:
        return _count(self._customer.get(customer_ref), window_s, now)

    def blocked(
        self, caps: tuple[Cap, ...], touchpoint: str, customer_ref: str | None, offer_id: str, now: float
    ) -> bool:
        """True if any cap would be exceeded by showing the offer once more: the strictest cap wins."""
        for cap in caps:
            if cap.scope == "screen":
                seen = self._screen.get(touchpoint, {}).get(offer_id)
            elif customer_ref is None:
                continue
            elif cap.scope == "customer":
                seen = self._customer.get(customer_ref)
            else:
                seen = self._customer_offer.get(customer_ref, {}).get(offer_id)
            if _count(seen, cap.window_s, now) >= cap.max:
                return True
        return False

    def screen_offers(self, touchpoint: str) -> KeysView[str]:
        """Offers shown on this screen within the remembered history (a live view)."""
        return self._screen[touchpoint].keys() if touchpoint in self._screen else _NONE

    def customer_offers(self, customer_ref: str) -> KeysView[str]:
        """Offers shown to this customer within the remembered history (a live view)."""
        return self._customer_offer[customer_ref].keys() if customer_ref in self._customer_offer else _NONE

    def cooling(self, customer_ref: str) -> dict[str, float]:
        """offer_id → when this customer last converted on it."""
        return self._converted.get(customer_ref, {})


def _count(times: deque[float] | None, window_s: float, now: float) -> int:
    if not times:
        return 0
    while times and times[0] < now - _KEEP_S:
        times.popleft()
    cutoff = now - window_s
    n = 0
    for t in reversed(times):
        if t < cutoff:
            break
        n += 1
    return n
