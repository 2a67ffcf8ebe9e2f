"""A shopper identifies themselves at a kiosk: the app's QR (a check-in token) or a typed loyalty / phone number.

Identification is a check-in: it needs the shopper's check-in consent and it tells the screens of the
kiosk's zone who is there. Typed numbers are weaker than a signed token, so failures are limited per kiosk
(a stranger cannot walk the number space), and the phone number is compared only as the roster's salted
hash. Nothing about a failed attempt is stored or logged.
"""

from __future__ import annotations

import logging
import re
from collections import Counter, deque

from ...bus import Bus
from ...clock import Clock
from ...config import Settings
from ...errors import Refused
from ...events import Channel, Customer, Sighting
from ...store import Store
from ...store.roster import phone_hash
from .source import CheckinRejected, CheckinSource

log = logging.getLogger(__name__)
METHODS = ("qr", "loyalty", "phone")
_LOYALTY = re.compile(r"[0-9]{6,20}")


class IdentifyRefused(Refused):
    """A kiosk identification refused; `status` is the HTTP status the kiosk API answers with."""

    def __init__(self, status: int, code: str, reason: str):
        super().__init__(code, reason)
        self.status = status


class KioskIdentifier:
    def __init__(self, settings: Settings, store: Store, bus: Bus, clock: Clock, checkin: CheckinSource | None):
        self._settings = settings
        self._cfg = settings.surfaces.kiosk
        self._store = store
        self._bus = bus
        self._clock = clock
        self._checkin = checkin
        self._failures: dict[str, deque[float]] = {}
        self.outcomes: Counter[str] = Counter()

    def identify(self, touchpoint: str, method: object, value: object) -> str:
        """The customer_ref of the shopper at this kiosk, or IdentifyRefused saying why."""
        try:
            ref = self._identify(touchpoint, method, value)
        except IdentifyRefused as exc:
            self.outcomes[exc.code] += 1
            raise
        self.outcomes[f"ok:{method}"] += 1
        return ref

    def _identify(self, touchpoint: str, method: object, value: object) -> str:
        if method not in METHODS or not isinstance(value, str) or not 0 < len(value) <= 4096:
            raise IdentifyRefused(400, "malformed", f"method must be one of {', '.join(METHODS)} and value a string")
        self._check_rate(touchpoint)
        if method == "qr":
            if self._checkin is None:
                raise IdentifyRefused(404, "disabled", "app check-in is switched off on this agent")
            try:
                return self._checkin.accept(value).customer_ref
            except CheckinRejected as exc:
                self._fail(touchpoint)
                raise IdentifyRefused(exc.status, exc.code, exc.reason) from None
        if method == "loyalty":
            digits = value.replace(" ", "")
            if not _LOYALTY.fullmatch(digits):
                raise IdentifyRefused(400, "malformed", "a loyalty number is 6 to 20 digits")
            ref = self._store.roster.find(loyalty_id=digits)
        else:
            hashed = phone_hash(self._cfg.phone_salt, value)
            if hashed is None:
                raise IdentifyRefused(400, "malformed", "a phone number is 6 to 15 digits, with or without +")
            ref = self._store.roster.find(phone_hash=hashed)
        entry = self._store.roster.get(ref) if ref else None
        if entry is None or not entry.consents_to(Channel.CHECKIN):
            self._fail(touchpoint)
            raise IdentifyRefused(404, "not_found", "no member with that number has opted in at this store")
        zone = self._settings.zone_of(touchpoint)
        assert zone is not None
        self._bus.publish(
            Sighting(
                subject=Customer(entry.customer_ref),
                zone=zone,
                channel=Channel.CHECKIN,
                mono=self._clock.mono(),
                wall=self._clock.wall(),
                touchpoint=touchpoint,
                explicit=True,
            )
        )
        return entry.customer_ref

    def _recent(self, touchpoint: str) -> deque[float]:
        window = self._failures.setdefault(touchpoint, deque())
        now = self._clock.mono()
        while window and window[0] <= now - 60:
            window.popleft()
        return window

    def _check_rate(self, touchpoint: str) -> None:
        window = self._recent(touchpoint)
        if len(window) >= self._cfg.max_failures_per_minute:
            wait = int(window[0] + 60 - self._clock.mono()) + 1
            raise IdentifyRefused(429, "locked", f"too many attempts at this kiosk; try again in {wait} s")

    def _fail(self, touchpoint: str) -> None:
        self._recent(touchpoint).append(self._clock.mono())
