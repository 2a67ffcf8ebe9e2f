"""Stale consent fails closed: with a cloud link, a roster not refreshed for too long identifies nobody.

Consent is withdrawn in the cloud too (the app, customer service); a store cut off from it for days would
keep recognising people who said no. So when `[mqtt] max_roster_age_s` has passed since the last roster
(full or delta) from the cloud was applied, BLE and face stop resolving anyone until a fresh one arrives.
A roster that never came from the cloud (loaded by the demo or the CLI) is as old as its newest write.
"""

from __future__ import annotations

import logging
from datetime import datetime

from ..clock import Clock
from ..store import Store

log = logging.getLogger(__name__)
CHECK_EVERY_S = 1.0  # the age is read from the database at most this often


class RosterAge:
    def __init__(self, store: Store, clock: Clock, max_age_s: float | None):
        self._store = store
        self._clock = clock
        self.max_age_s = max_age_s
        self.refused = 0  # identifications refused because the roster was stale
        self._stale = False
        self._checked = float("-inf")
        self.age_s: float | None = None

    def stale(self) -> bool:
        """True while the roster is older than allowed; cheap enough for every advert."""
        if self.max_age_s is None:
            return False
        now = self._clock.mono()
        if now - self._checked >= CHECK_EVERY_S:
            self._checked = now
            self._update()
        return self._stale

    def refuse(self) -> None:
        self.refused += 1

    def _update(self) -> None:
        assert self.max_age_s is not None
        row = self._store.db.execute("SELECT applied_at FROM bundle_versions WHERE kind = 'roster'").fetchone()
        if row is None:
            row = self._store.db.execute("SELECT max(updated_at) FROM customers").fetchone()
        at = row[0] if row else None
        self.age_s = None if at is None else max(0.0, self._clock.unix() - datetime.fromisoformat(at).timestamp())
        stale = self.age_s is None or self.age_s > self.max_age_s
        if stale != self._stale:
            if stale:
                log.warning(
                    "roster is %s old, more than [mqtt] max_roster_age_s = %.0f s: BLE and faces identify nobody"
                    " until a fresh roster arrives",
                    "unknown" if self.age_s is None else f"{self.age_s:.0f} s",
                    self.max_age_s,
                )
            else:
                log.info("a fresh roster arrived: BLE and faces identify consenting customers again")
        self._stale = stale

    def health(self) -> dict[str, object]:
        self.stale()
        return {
            "max_age_s": self.max_age_s,
            "age_s": None if self.age_s is None else round(self.age_s, 1),
            "stale": self._stale,
            "refused": self.refused,
        }
