"""App check-in: a verified token becomes a Sighting of a consenting customer at a touchpoint.

Every refusal names its reason and leaves no trace: the token id is claimed (against replay) only after
every other check passed, and nothing about a refused token is stored or logged.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, Metric

from ...bus import Bus
from ...clock import Clock
from ...config import Settings
from ...errors import Refused
from ...events import Channel, Customer, Sighting, TokenUsed
from ...keys import public_key_from_b64
from ...store import Store
from ...store.faults import StorageRefused
from .token import TokenError, verify

log = logging.getLogger(__name__)

_STATUS = {
    "malformed": 400,
    "bad_signature": 401,
    "expired": 401,
    "not_yet_valid": 401,
    "wrong_store": 403,
    "unknown_touchpoint": 403,
    "no_consent": 403,
    "replayed": 409,
    "storage_full": 503,
}


class CheckinRejected(Refused):
    """A check-in refused, with the HTTP status its code maps to."""

    def __init__(self, code: str, reason: str):
        super().__init__(code, reason)
        self.status = _STATUS[code]


@dataclass(frozen=True)
class CheckinAccepted:
    touchpoint: str
    zone: str
    customer_ref: str  # for the kiosk that scanned the token; never sent back over the check-in API


class CheckinSource:
    def __init__(self, settings: Settings, store: Store, bus: Bus, clock: Clock):
        self._settings = settings
        self._cfg = settings.checkin
        self._keys = [public_key_from_b64(k) for k in settings.checkin.public_keys]
        self._store = store
        self._bus = bus
        self._clock = clock
        self.accepted = 0
        self.rejected: Counter[str] = Counter()

    def accept(self, token: object) -> CheckinAccepted:
        try:
            with self._store.faults.writing("checkin", "the check-in"):
                result = self._accept(token)
        except (TokenError, CheckinRejected, StorageRefused) as exc:
            self.rejected[exc.code] += 1
            log.info("check-in refused: %s", exc.code)
            if not isinstance(exc, CheckinRejected):
                raise CheckinRejected(exc.code, exc.reason) from None
            raise
        self.accepted += 1
        return result

    def _accept(self, token: object) -> CheckinAccepted:
        mono = self._clock.mono()
        claims = verify(token, self._keys)
        now = self._clock.unix()
        skew = self._cfg.clock_skew_s
        if claims.store != self._settings.store.id:
            raise CheckinRejected("wrong_store", f"token is for store {claims.store!r}, this is another store")
        if claims.expires_at < now - skew:
            raise CheckinRejected("expired", "token has expired; ask the app for a new one")
        if claims.issued_at > now + skew:
            raise CheckinRejected("not_yet_valid", "token is issued in the future; check the clocks")
        if claims.expires_at - claims.issued_at > self._cfg.max_lifetime_s:
            raise CheckinRejected("malformed", f"token lifetime exceeds {self._cfg.max_lifetime_s:g} s")
        zone = self._settings.zone_of(claims.touchpoint)
        if zone is None:
            raise CheckinRejected("unknown_touchpoint", f"touchpoint {claims.touchpoint!r} is not in this store")
        entry = self._store.roster.get(claims.customer_ref)
        if entry is None or not entry.consents_to(Channel.CHECKIN):
            raise CheckinRejected("no_consent", "no check-in consent on this store's roster for that customer")
        if not self._store.nonces.claim(claims.token_id, claims.expires_at + skew):
            raise CheckinRejected("replayed", "token was already used")
        self._bus.publish(TokenUsed(claims.token_id, claims.expires_at + skew))
        self._bus.publish(
            Sighting(
                subject=Customer(claims.customer_ref),
                zone=zone,
                channel=Channel.CHECKIN,
                mono=mono,
                wall=self._clock.wall(),
                touchpoint=claims.touchpoint,
                explicit=True,
            )
        )
        return CheckinAccepted(touchpoint=claims.touchpoint, zone=zone, customer_ref=claims.customer_ref)

    def prune(self) -> int:
        return self._store.nonces.prune(self._clock.unix())

    def metrics(self) -> Iterator[Metric]:
        checkins = CounterMetricFamily("edge_checkins", "App check-ins by outcome", labels=["outcome"])
        checkins.add_metric(["accepted"], self.accepted)
        for code, n in self.rejected.items():
            checkins.add_metric([code], n)
        yield checkins
