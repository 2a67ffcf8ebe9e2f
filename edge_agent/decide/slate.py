"""A slate: the offers that may ever run on one touchpoint (zone and touchpoint targeting), as arrays, so a
decision filters or scores thousands of offers with a few vector operations.

Validity, stock and audience are arrays; inverted indexes (segment, sku, category, context tag → offer
positions) let a profile or a context touch only the offers it concerns.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from ..store.offers import Offer

Floats = npt.NDArray[np.float64]
Flags = npt.NDArray[np.bool_]
Positions = npt.NDArray[np.intp]


def _index(groups: dict[str, list[int]]) -> dict[str, Positions]:
    return {k: np.asarray(v, dtype=np.intp) for k, v in groups.items()}


@dataclass
class Slate:
    offers: list[Offer]
    position: dict[str, int]
    valid_from: Floats
    valid_to: Floats
    in_stock: Flags
    personalised: Flags
    priority: Floats
    by_segment: dict[str, Positions]
    by_sku: dict[str, Positions]
    by_category: dict[str, Positions]
    by_tag: dict[str, Positions]
    catalog_index: Positions  # each offer's position in the whole catalogue (offers in id order)
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

    def live(self, now_unix: float) -> Flags:
        """Valid now and in stock."""
        return (self.valid_from <= now_unix) & (now_unix < self.valid_to) & self.in_stock

    def __len__(self) -> int:
        return len(self.offers)
