"""The offers in memory, one slate per touchpoint (slate.py), rebuilt from the store when the offers change:
a decision never scans the database."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator

import numpy as np
from prometheus_client.core import GaugeMetricFamily, Metric

from ..config import Touchpoint
from ..store import Store
from ..store.offers import Offer
from ..store.policy import DecisionPolicy
from .policies import LinearScorer, Scorer, scorer_for
from .slate import Slate

log = logging.getLogger(__name__)


class OfferCatalog:
    def __init__(self, store: Store):
        self._store = store
        self._offers: list[Offer] = []
        self._slates: dict[tuple[str, str, str], Slate] = {}
        self.policy = DecisionPolicy()
        self.scorer: Scorer = LinearScorer(self.policy.policy)
        self.rejected_models = 0
        self.version = 0
        self.generation = 0  # one more at every reload
        self.sku_category: dict[str, str] = {}
        self.reload()

    def reload(self) -> None:
        """Rebuild from the store; call after a bundle is applied."""
        self._offers = sorted(self._store.offers.all(), key=lambda o: o.offer_id)
        policy = self._store.policy.get()
        try:
            self.scorer = scorer_for(policy.policy)
        except Exception as exc:  # a model onnxruntime cannot load: keep scoring with the last good policy
            self.rejected_models += 1
            log.error(
                "scoring model %s cannot be used (%s); keeping %s", policy.policy.version, exc, self.scorer.version
            )
        self.policy = policy
        self.version = self._store.bundle_versions.current("offers")
        self.sku_category = {o.sku: o.category for o in self._offers if o.sku and o.category}
        self._slates = {}
        self.generation += 1

    def longest_cap_s(self) -> float:
        """The longest frequency-cap window of the offers and default caps in force (0 without caps)."""
        caps = [c for o in self._offers for c in o.caps] + list(self.policy.default_caps)
        return max((c.window_s for c in caps), default=0.0)

    def slate(self, touchpoint: Touchpoint) -> Slate:
        key = (touchpoint.id, touchpoint.kind, touchpoint.zone)
        slate = self._slates.get(key)
        if slate is None:
            picked = [i for i, o in enumerate(self._offers) if targets(o, touchpoint)]
            slate = Slate.build([self._offers[i] for i in picked], picked)
            self._slates[key] = slate
        return slate

    def eligible_set(self, slate: Slate, mask: np.ndarray) -> str:
        """The whole eligible set, compactly: a bitmap over this bundle's offers in id order (1 bit each)."""
        bits = np.zeros(len(self._offers), dtype=bool)
        bits[slate.catalog_index[mask]] = True
        return f"v{self.version}:" + base64.b64encode(np.packbits(bits).tobytes()).decode("ascii")

    def __len__(self) -> int:
        return len(self._offers)

    def metrics(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("edge_offers", "Offers in the catalogue", value=len(self))


def targets(offer: Offer, tp: Touchpoint) -> bool:
    if offer.zones and tp.zone not in offer.zones:
        return False
    return not offer.touchpoints or tp.id in offer.touchpoints or tp.kind in offer.touchpoints
