"""Frequency caps and cool-downs over rolling windows, counted in memory from the decisions made (and
rebuilt from the decision log on start), so checking them costs no database read.

Shows are kept as far back as the longest cap in force looks (`keep_s`, set by the engine from the offers and
default caps; at most a month), so the history holds every customer shown an offer in that time: each customer's
is one list of (when, offer) in the order shown, about 90 bytes a show (a deque per customer and offer took
~4 KB a customer, tens of MB in a busy month). A screen's is per offer: screens are few. Conversions are kept a
month, for cool-downs.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Collection, KeysView

from ..store.offers import LONGEST_WINDOW_S, Cap

_KEEP_S = float(LONGEST_WINDOW_S)
_NONE: KeysView[str] = {}.keys()


class CapLedger:
    def __init__(self, keep_s: float = _KEEP_S) -> None:
        self._customer: dict[str, list[tuple[float, str]]] = {}  # customer → (when, offer) shown, oldest first
        self._screen: dict[str, dict[str, list[float]]] = {}  # touchpoint → offer → when shown, oldest first
        self._converted: dict[str, dict[str, float]] = {}
        self.keep_s = keep_s  # how far back shows are kept

    def shown(self, touchpoint: str, customer_ref: str | None, offer_id: str, at: float) -> None:
        self._screen.setdefault(touchpoint, {}).setdefault(offer_id, []).append(at)
        if customer_ref is not None:
            self._customer.setdefault(customer_ref, []).append((at, offer_id))

    def forget(self, customer_ref: str) -> None:
        """Erasure: drop everything counted about this customer."""
        self._customer.pop(customer_ref, None)
        self._converted.pop(customer_ref, None)

    def forget_shows(self) -> None:
        """Every show, before the history is read again from the decision log."""
        self._customer.clear()
        self._screen.clear()

    def prune(self, now: float) -> int:
        """Drop shows older than `keep_s` and conversions older than a month, so memory follows recent traffic;
        returns keys dropped."""
        cutoff = now - self.keep_s
        dropped = 0
        for touchpoint in list(self._screen):
            per_offer = self._screen[touchpoint]
            for offer_id in list(per_offer):
                times = per_offer[offer_id]
                del times[: bisect_left(times, cutoff)]
                if not times:
                    del per_offer[offer_id]
                    dropped += 1
            if not per_offer:
                del self._screen[touchpoint]
        for ref in list(self._customer):
            shows = self._customer[ref]
            del shows[: bisect_left(shows, cutoff, key=_when)]
            if not shows:
                del self._customer[ref]
                dropped += 1
        cutoff = now - _KEEP_S
        for ref in list(self._converted):
            self._converted[ref] = {o: t for o, t in self._converted[ref].items() if t >= cutoff}
            if not self._converted[ref]:
                del self._converted[ref]
        return dropped

    def converted(self, customer_ref: str, offer_id: str, at: float) -> None:
        cooling = self._converted.setdefault(customer_ref, {})
        cooling[offer_id] = max(at, cooling.get(offer_id, at))

    def customer_count(self, customer_ref: str, window_s: float, now: float) -> int:
        return _count_shows(self._customer.get(customer_ref, ()), None, now - window_s)

    def blocked(
        self, caps: tuple[Cap, ...], touchpoint: str, customer_ref: str | None, offer_id: str, now: float
    ) -> bool:
        """True if any cap would be exceeded by showing the offer once more: the strictest cap wins."""
        for cap in caps:
            cutoff = now - cap.window_s
            if cap.scope == "screen":
                seen = _count_times(self._screen.get(touchpoint, {}).get(offer_id, ()), cutoff)
            elif customer_ref is None:
                continue
            else:
                only = None if cap.scope == "customer" else offer_id
                seen = _count_shows(self._customer.get(customer_ref, ()), only, cutoff)
            if seen >= cap.max:
                return True
        return False

    def screen_offers(self, touchpoint: str) -> KeysView[str]:
        """Offers shown on this screen within the remembered history (a live view)."""
        return self._screen[touchpoint].keys() if touchpoint in self._screen else _NONE

    def customer_offers(self, customer_ref: str) -> Collection[str]:
        """Offers shown to this customer within the remembered history."""
        return {offer_id for _, offer_id in self._customer.get(customer_ref, ())}

    def cooling(self, customer_ref: str) -> dict[str, float]:
        """offer_id → when this customer last converted on it."""
        return self._converted.get(customer_ref, {})


def _when(show: tuple[float, str]) -> float:
    return show[0]


def _count_times(times: list[float] | tuple[()], cutoff: float) -> int:
    """How many of the times (oldest first) are at or after `cutoff`."""
    return len(times) - bisect_left(times, cutoff)


def _count_shows(shows: list[tuple[float, str]] | tuple[()], offer_id: str | None, cutoff: float) -> int:
    """How many shows (oldest first) at or after `cutoff`, of `offer_id` or of any offer."""
    n = 0
    for at, shown in reversed(shows):
        if at < cutoff:
            break
        if offer_id is None or shown == offer_id:
            n += 1
    return n
