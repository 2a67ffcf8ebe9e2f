"""The offers in memory, indexed by zone, so a decision never scans the database."""

from __future__ import annotations

from collections import defaultdict

from ..store import Store
from ..store.offers import Offer


class OfferCatalog:
    def __init__(self, store: Store):
        self._store = store
        self._everywhere: list[Offer] = []
        self._by_zone: dict[str, list[Offer]] = {}
        self.reload()

    def reload(self) -> None:
        """Rebuild the index from the store; call after a bundle is applied."""
        everywhere: list[Offer] = []
        by_zone: dict[str, list[Offer]] = defaultdict(list)
        for offer in self._store.offers.all():
            if offer.zones:
                for zone in offer.zones:
                    by_zone[zone].append(offer)
            else:
                everywhere.append(offer)
        self._everywhere, self._by_zone = everywhere, dict(by_zone)

    def for_zone(self, zone: str) -> list[Offer]:
        return self._everywhere + self._by_zone.get(zone, [])

    def __len__(self) -> int:
        return len(self._everywhere) + sum(len(v) for v in self._by_zone.values())
