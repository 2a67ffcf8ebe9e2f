"""The local HTTP surface: screen pages, their WebSocket, the check-in API and a health summary."""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from importlib import resources
from typing import Any

from aiohttp import web

from ..config import Settings
from ..ops.metrics import CONTENT_TYPE
from ..sources.checkin import CheckinRejected, CheckinSource
from .hub import ScreenHub

STATIC = resources.files(__package__).joinpath("static")

_PAGE_HEADERS = {
    # Offer text is data, never markup: no inline script and no foreign script can run on a screen.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: https:; connect-src 'self'; "
    "style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _error(status: int, code: str, reason: str) -> web.Response:
    return web.json_response({"error": code, "reason": reason}, status=status)


def build(
    settings: Settings,
    hub: ScreenHub,
    checkin: CheckinSource | None,
    health: Callable[[], dict[str, Any]],
    metrics: Callable[[], bytes],
) -> web.Application:
    app = web.Application(client_max_size=settings.http.max_request_bytes)
    touchpoints = {tp.id: tp for tp in settings.touchpoints}

    async def index(_: web.Request) -> web.Response:
        rows = "".join(
            f'<li><a href="/screen/{html.escape(tp.id)}">{html.escape(tp.name or tp.id)}</a>'
            f" ({html.escape(tp.kind)}, zone {html.escape(tp.zone)})</li>"
            for tp in settings.touchpoints
        )
        body = (
            "<!doctype html><html lang=en><meta charset=utf-8><title>Store edge agent</title>"
            f"<h1>Store {html.escape(settings.store.id)}</h1><ul>{rows}</ul></html>"
        )
        return web.Response(text=body, content_type="text/html", headers=_PAGE_HEADERS)

    async def screen(request: web.Request) -> web.Response:
        if request.match_info["touchpoint"] not in touchpoints:
            raise web.HTTPNotFound(text="no such touchpoint in this store")
        page = STATIC.joinpath("screen.html").read_text(encoding="utf-8")
        return web.Response(text=page, content_type="text/html", headers=_PAGE_HEADERS)

    async def static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        entry = STATIC.joinpath(name)
        if "/" in name or name.startswith(".") or not entry.is_file():
            raise web.HTTPNotFound()
        return web.Response(body=entry.read_bytes(), content_type=_content_type(name), headers=_PAGE_HEADERS)

    async def post_checkin(request: web.Request) -> web.Response:
        if checkin is None:
            return _error(404, "disabled", "app check-in is switched off on this agent (sources.checkin)")
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "malformed", 'body must be a JSON object {"token": "..."}')
        if not isinstance(body, dict) or set(body) != {"token"}:
            return _error(400, "malformed", "body must be a JSON object with exactly one key, 'token'")
        try:
            accepted = checkin.accept(body["token"])
        except CheckinRejected as exc:
            return _error(exc.status, exc.code, exc.reason)
        return web.json_response(
            {"status": "accepted", "touchpoint": accepted.touchpoint, "zone": accepted.zone}, status=202
        )

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response(health())

    app.router.add_get("/", index)
    app.router.add_get("/screen/{touchpoint}", screen)
    app.router.add_get("/ws/screen/{touchpoint}", hub.handle)
    app.router.add_get("/static/{name}", static)
    app.router.add_post("/api/checkin", post_checkin)

    async def get_metrics(_: web.Request) -> web.Response:
        return web.Response(body=metrics(), headers={"Content-Type": CONTENT_TYPE})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", get_metrics)
    return app


def _content_type(name: str) -> str:
    suffix = name.rsplit(".", 1)[-1]
    return {
        "js": "text/javascript",
        "css": "text/css",
        "html": "text/html",
        "svg": "image/svg+xml",
        "png": "image/png",
        "jpg": "image/jpeg",
    }.get(suffix, "application/octet-stream")
