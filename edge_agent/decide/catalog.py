"""The offers in memory, one slate per touchpoint, as arrays: a decision never scans the database and
filters or scores thousands of offers with a few vector operations.

A slate holds the offers that may ever run on that touchpoint (zone and touchpoint targeting), their
validity, stock and audience as arrays, and inverted indexes (segment, sku, category, context tag → offer
positions) so a profile or a context touches only the offers it concerns.
"""

from __future__ import annotations

import base64
import logging
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from ..config import Touchpoint
from ..store import Store
from ..store.offers import Offer
from ..store.policy import DecisionPolicy
from .policies import LinearScorer, Scorer, scorer_for

log = logging.getLogger(__name__)


def _index(groups: dict[str, list[int]]) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, dtype=np.intp) for k, v in groups.items()}


@dataclass
class Slate:
    offers: list[Offer]
    position: dict[str, int]
    valid_from: np.ndarray
    valid_to: np.ndarray
    in_stock: np.ndarray
    personalised: np.ndarray
    priority: np.ndarray
    by_segment: dict[str, np.ndarray]
    by_sku: dict[str, np.ndarray]
    by_category: dict[str, np.ndarray]
    by_tag: dict[str, np.ndarray]
    catalog_index: np.ndarray  # each offer's position in the whole catalogue (offers in id order)
    screen_capped: frozenset[str] = frozenset()  # offers with a per-screen cap of their own
    customer_capped: list[int] = field(default_factory=list)  # offers with a per-customer cap of their own

    @classmethod
    def build(cls, offers: list[Offer], catalog_index: list[int] | None = None) -> Slate:
        groups: dict[str, dict[str, list[int]]] = {k: defaultdict(list) for k in ("segment", "sku", "category", "tag")}
        for i, o in enumerate(offers):
            for s in set(o.segments):
                groups["segment"][s].append(i)
            if o.sku:
                groups["sku"][o.sku].append(i)
            if o.category:
                groups["category"][o.category].append(i)
            for t in set(o.context_tags):
                groups["tag"][t].append(i)
        return cls(
            offers=offers,
            position={o.offer_id: i for i, o in enumerate(offers)},
            valid_from=np.array([o.valid_from.timestamp() for o in offers], dtype=float),
            valid_to=np.array([o.valid_to.timestamp() for o in offers], dtype=float),
            in_stock=np.array([o.stock is None or o.stock > 0 for o in offers], dtype=bool),
            personalised=np.array([o.audience == "personalised" for o in offers], dtype=bool),
            priority=np.array([o.priority for o in offers], dtype=float),
            by_segment=_index(groups["segment"]),
            by_sku=_index(groups["sku"]),
            by_category=_index(groups["category"]),
            by_tag=_index(groups["tag"]),
            catalog_index=np.asarray(catalog_index if catalog_index is not None else range(len(offers)), dtype=np.intp),
            screen_capped=frozenset(o.offer_id for o in offers if any(c.scope == "screen" for c in o.caps)),
            customer_capped=[i for i, o in enumerate(offers) if any(c.scope == "customer" for c in o.caps)],
        )

    def live(self, now_unix: float) -> np.ndarray:
        """Valid now and in stock."""
        return (self.valid_from <= now_unix) & (now_unix < self.valid_to) & self.in_stock

    def __len__(self) -> int:
        return len(self.offers)


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


def targets(offer: Offer, tp: Touchpoint) -> bool:
    if offer.zones and tp.zone not in offer.zones:
        return False
    return not offer.touchpoints or tp.id in offer.touchpoints or tp.kind in offer.touchpoints
