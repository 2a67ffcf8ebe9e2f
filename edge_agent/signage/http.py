"""What every page and API of the local HTTP surface shares: security headers, errors, static files."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from aiohttp import web

STATIC = resources.files(__package__).joinpath("static")

PAGE_HEADERS = {
    # Offer text is data, never markup: no inline script and no foreign script can run on any page.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: https:; connect-src 'self'; "
    "style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
PRIVATE = {**PAGE_HEADERS, "Cache-Control": "no-store"}  # anything about a shopper is never cached

_TYPES = {
    "js": "text/javascript",
    "css": "text/css",
    "html": "text/html",
    "json": "application/json",
    "svg": "image/svg+xml",
    "png": "image/png",
    "jpg": "image/jpeg",
}


def error(status: int, code: str, reason: str) -> web.Response:
    return web.json_response({"error": code, "reason": reason}, status=status, headers=PRIVATE)


def private_json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, headers=PRIVATE)


def page(name: str) -> web.Response:
    return web.Response(
        text=STATIC.joinpath(name).read_text(encoding="utf-8"), content_type="text/html", headers=PAGE_HEADERS
    )


async def json_body(request: web.Request, keys: set[str], optional: set[str] = frozenset()) -> dict[str, Any]:
    """The request's JSON object with exactly these keys (plus optional ones), or a 400 naming what was wrong."""
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "malformed", "reason": "body must be a JSON object"}),
            content_type="application/json",
        ) from None
    if not isinstance(body, dict) or not keys <= set(body) <= keys | optional:
        wanted = ", ".join(sorted(keys)) + (f" (optional: {', '.join(sorted(optional))})" if optional else "")
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "malformed", "reason": f"body must be a JSON object with keys {wanted}"}),
            content_type="application/json",
        )
    return body


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    entry = STATIC.joinpath(name)
    if "/" in name or name.startswith(".") or not entry.is_file():
        raise web.HTTPNotFound()
    content_type = _TYPES.get(name.rsplit(".", 1)[-1], "application/octet-stream")
    return web.Response(body=entry.read_bytes(), content_type=content_type, headers=PAGE_HEADERS)
