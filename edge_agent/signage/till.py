"""The till's side of a kiosk claim: look a code up and redeem it, once."""

from __future__ import annotations

from aiohttp import web

from ..clock import Clock
from ..store import Store
from ..store.claims import RedeemRefused, normalise_code
from .auth import Auth
from .http import error, json_body, private_json

_STATUS = {"unknown": 404, "already_redeemed": 409, "expired": 410}


class Till:
    def __init__(self, store: Store, clock: Clock):
        self._store = store
        self._clock = clock

    def routes(self, app: web.Application, auth: Auth) -> None:
        async def redeem(request: web.Request) -> web.Response:
            body = await json_body(request, {"code"})
            code = normalise_code(body["code"]) if isinstance(body["code"], str) else None
            if code is None:
                return error(400, "malformed", "a claim code is 8 letters and digits, like K7M2-QX9P")
            try:
                claim = self._store.claims.redeem(code, at=self._clock.wall().iso())
            except RedeemRefused as exc:
                return error(_STATUS[exc.code], exc.code, exc.reason)
            return private_json({"status": "redeemed", "code": claim.code, "offer_id": claim.offer_id})

        app.router.add_post("/api/till/redeem", auth.guard("till", redeem))
