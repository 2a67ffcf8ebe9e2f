"""The associate tablet: who nearby would welcome help, with a suggested offer and talking points.

Only shoppers who consented to assisted service appear, and then only by a short pseudonymous tag (the
roster has no names), the zone, how long they have been there, their interests and the suggested offer.
"""

from __future__ import annotations

import hashlib
from typing import Any

from aiohttp import web

from ..clock import Clock
from ..config import Settings
from ..decide.engine import OfferEngine
from ..presence import PresenceTracker
from ..store import Store
from .auth import Auth
from .http import page, private_json

ASSISTED = "assisted"


def tag(customer_ref: str) -> str:
    """A stable four-character handle staff can say out loud; not reversible to the customer_ref."""
    return hashlib.sha256(f"associate-tag:{customer_ref}".encode()).hexdigest()[:4].upper()


class AssociateView:
    def __init__(self, settings: Settings, store: Store, presence: PresenceTracker, engine: OfferEngine, clock: Clock):
        self._settings = settings
        self._store = store
        self._presence = presence
        self._engine = engine
        self._clock = clock
        self._zone_names = {z.id: z.name or z.id for z in settings.zones}

    def shoppers(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for ref, zone, dwell in self._presence.customers(self._clock.mono()):
            entry = self._store.roster.get(ref)
            if entry is None or not entry.consents_to(ASSISTED):
                continue
            touchpoints = self._settings.touchpoints_in(zone)
            offers = self._engine.offers_for(ref, touchpoints[0].id, 1) if touchpoints else []
            offer = offers[0] if offers else None
            points = []
            if entry.segments:
                points.append({"key": "interests", "values": list(entry.segments)})
            if offer:
                points.append({"key": "suggest", "values": [offer["title"]]})
                if offer["text"]:
                    points.append({"key": "mention", "values": [offer["text"]]})
            codes = self._store.claims.open_codes(ref)
            if codes:
                points.append({"key": "claimed", "values": [str(len(codes))]})
            out.append(
                {
                    "tag": tag(ref),
                    "zone": self._zone_names.get(zone, zone),
                    "dwell_s": round(dwell),
                    "offer": offer,
                    "talking_points": points,
                }
            )
        out.sort(key=lambda s: -s["dwell_s"])
        return out

    def routes(self, app: web.Application, auth: Auth) -> None:
        async def page_(_: web.Request) -> web.Response:
            return page("associate.html")

        async def api(_: web.Request) -> web.Response:
            return private_json({"shoppers": self.shoppers()})

        app.router.add_get("/associate", auth.guard("associate", page_, page_route=True))
        app.router.add_get("/api/associate", auth.guard("associate", api))
