"""The local HTTP surface: screen pages and their WebSocket, the check-in API, the cached assets, and the
authenticated surfaces (kiosk, associate tablet, dashboard, till), each of which adds its own routes."""

from __future__ import annotations

import html
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from aiohttp import web

from ..config import Settings
from ..ops.metrics import CONTENT_TYPE
from ..sources.checkin.source import CheckinRejected, CheckinSource
from ..store.faults import StorageFaults, StorageRefused, is_storage_error
from .assets import AssetCache
from .auth import Auth, Handler
from .http import PAGE_HEADERS, error, json_body, page, refusals, static
from .hub import ScreenHub


class Surface(Protocol):
    def routes(self, app: web.Application, auth: Auth) -> None: ...


def build(
    settings: Settings,
    hub: ScreenHub,
    checkin: CheckinSource | None,
    health: Callable[[], dict[str, Any]],
    metrics: Callable[[], bytes],
    *,
    auth: Auth,
    assets: AssetCache,
    refused: Counter[str],
    surfaces: Iterable[Surface] = (),
    storage: StorageFaults | None = None,
) -> web.Application:
    limit = settings.http.max_request_bytes
    storage = storage or StorageFaults()

    @web.middleware
    async def refuse_large(request: web.Request, handler: Handler) -> web.StreamResponse:
        """Every route, whether or not it reads its body; a chunked body is cut at `limit` when it is read."""
        if request.content_length is not None and request.content_length > limit:
            return error(413, "too_large", f"the request body is over http.max_request_bytes ({limit} bytes)")
        return await handler(request)

    @web.middleware
    async def refuse_when_full(request: web.Request, handler: Handler) -> web.StreamResponse:
        """A surface whose write fails for a full or failing disk answers 503 with the reason, never a 500."""
        try:
            return await handler(request)
        except StorageRefused as exc:
            return error(503, exc.code, exc.reason)
        except sqlite3.OperationalError as exc:
            if not is_storage_error(exc):
                raise
            storage.failed("http", exc)
            full = StorageRefused("the request")
            return error(503, full.code, full.reason)

    app = web.Application(client_max_size=limit, middlewares=[refusals(refused), refuse_large, refuse_when_full])
    touchpoints = {tp.id: tp for tp in settings.touchpoints}

    async def index(_: web.Request) -> web.Response:
        rows = "".join(
            f'<li><a href="/{"kiosk" if tp.kind == "kiosk" else "screen"}/{html.escape(tp.id)}">'
            f"{html.escape(tp.name or tp.id)}</a> ({html.escape(tp.kind)}, zone {html.escape(tp.zone)})</li>"
            for tp in settings.touchpoints
            if tp.kind != "sign"
        )
        body = (
            "<!doctype html><html lang=en><meta charset=utf-8><title>Store edge agent</title>"
            '<link rel="stylesheet" href="/static/common.css"><body class="index">'
            f"<h1>Store {html.escape(settings.store.id)}</h1><ul>{rows}</ul>"
            '<p><a href="/associate">Associate tablet</a> · <a href="/dashboard">Store dashboard</a></p></body></html>'
        )
        return web.Response(text=body, content_type="text/html", headers=PAGE_HEADERS)

    async def screen(request: web.Request) -> web.Response:
        touchpoint = touchpoints.get(request.match_info["touchpoint"])
        if touchpoint is None:
            raise web.HTTPNotFound(text="no such touchpoint in this store")
        if touchpoint.kind == "kiosk":
            raise web.HTTPFound(f"/kiosk/{touchpoint.id}")  # one URL per touchpoint for the kiosk browser unit
        return page("screen.html")

    async def post_checkin(request: web.Request) -> web.Response:
        if checkin is None:
            return error(404, "disabled", "app check-in is switched off on this agent (sources.checkin)")
        body = await json_body(request, {"token"})
        try:
            accepted = checkin.accept(body["token"])
        except CheckinRejected as exc:
            return error(exc.status, exc.code, exc.reason)
        return web.json_response(
            {"status": "accepted", "touchpoint": accepted.touchpoint, "zone": accepted.zone}, status=202
        )

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response(health())

    app.router.add_get("/", index)
    app.router.add_get("/screen/{touchpoint}", screen)
    app.router.add_get("/ws/screen/{touchpoint}", hub.handle)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/assets/{sha256}", assets.serve)
    app.router.add_post("/api/checkin", post_checkin)

    async def get_metrics(_: web.Request) -> web.Response:
        return web.Response(body=metrics(), headers={"Content-Type": CONTENT_TYPE})

    app.router.add_get("/healthz", auth.guard("ops", healthz))  # component states and counts: for operators only
    app.router.add_get("/metrics", auth.guard("ops", get_metrics))
    auth.routes(app)
    for surface in surfaces:
        surface.routes(app, auth)
    return app
