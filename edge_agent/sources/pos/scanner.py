"""A barcode scanner at the till in serial mode (each scan a line: the code, then CR or CR LF): a kiosk's claim
code scanned from the shopper's phone or printout is redeemed at once, as on the till's page; a loyalty card
identifies the shopper for the till's next receipt (one that names no loyalty number itself, within
`IDENTIFY_S`); anything else (a product's barcode scanned by mistake) is counted and dropped. Pure apart from
the store: the serial reading is the till source's."""

from __future__ import annotations

import re
from collections import Counter

from ...clock import Clock
from ...store import Store
from ...store.claims import RedeemRefused, normalise_code

IDENTIFY_S = 120.0  # a loyalty card scanned this long before a receipt still names its shopper
_PRINTABLE = re.compile(r"^[\x21-\x7e]{1,64}$")


class TillScanner:
    def __init__(self, store: Store, clock: Clock):
        self._store = store
        self._clock = clock
        self._card: tuple[str, float] | None = None  # (loyalty id, mono when scanned)
        self.counts: Counter[str] = Counter()

    def scan(self, raw: bytes) -> str:
        """One scanned line; what it was: `redeemed`, `claim_<refusal>`, `loyalty`, `not_ours` or `malformed`."""
        text = raw.decode("ascii", errors="replace").strip()
        outcome = self._outcome(text)
        self.counts[outcome] += 1
        return outcome

    def _outcome(self, text: str) -> str:
        if not _PRINTABLE.match(text):
            return "malformed"
        code = normalise_code(text)
        if code is not None and self._store.claims.get(code) is not None:
            try:
                self._store.claims.redeem(code, at=self._clock.wall().iso())
            except RedeemRefused as exc:
                return f"claim_{exc.code}"
            return "redeemed"
        if self._store.roster.find(loyalty_id=text) is not None:
            self._card = (text, self._clock.mono())
            return "loyalty"
        return "not_ours"

    def card_for_receipt(self) -> str | None:
        """The loyalty card scanned for the receipt now ending, if recent; used once."""
        card, self._card = self._card, None
        if card is None or self._clock.mono() - card[1] > IDENTIFY_S:
            return None
        return card[0]
