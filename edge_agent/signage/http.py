"""What every page and API of the local HTTP surface shares: security headers, errors, static files."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable
from collections.abc import Set as AbstractSet
from importlib import resources
from typing import Any

from aiohttp import web

from .. import json_input

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


REFUSAL = web.ResponseKey("refusal", str)  # where an error response keeps its code, for the refusal counter


def error(status: int, code: str, reason: str) -> web.Response:
    response = web.json_response({"error": code, "reason": reason}, status=status, headers=PRIVATE)
    response[REFUSAL] = code
    return response


def _bad_request(reason: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(
        text=json.dumps({"error": "malformed", "reason": reason}), content_type="application/json"
    )


def _as_error(exc: web.HTTPClientError) -> web.Response:
    """A 4xx raised by a handler or by aiohttp itself (no such route, wrong method, body too large) as the
    surface's one error shape: a JSON body with a code and a reason."""
    try:
        body = json.loads(exc.text or "")
        code, reason = str(body["error"]), str(body["reason"])
    except (ValueError, TypeError, KeyError):
        code = "too_large" if exc.status == 413 else exc.reason.lower().replace(" ", "_")  # as refuse_large says
        reason = (exc.text or exc.reason).removeprefix(f"{exc.status}: ")
    response = error(exc.status, code, reason)
    for name in ("Allow", "WWW-Authenticate"):
        if name in exc.headers:
            response.headers[name] = exc.headers[name]
    return response


def refusals(counts: Counter[str]) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Middleware: every 4xx of every route answers with a code and a reason, and is counted by that code."""

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPClientError as exc:
            response = _as_error(exc)
        if 400 <= response.status < 500:
            counts[response.get(REFUSAL) or f"http_{response.status}"] += 1
        return response

    return middleware


def private_json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, headers=PRIVATE)


def page(name: str) -> web.Response:
    return web.Response(
        text=STATIC.joinpath(name).read_text(encoding="utf-8"), content_type="text/html", headers=PAGE_HEADERS
    )


async def json_body(
    request: web.Request, keys: AbstractSet[str], optional: AbstractSet[str] = frozenset()
) -> dict[str, Any]:
    """The request's JSON object with exactly these keys (plus optional ones), or a 400 naming what was wrong."""
    try:
        body = await request.json(loads=json_input.loads)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _bad_request("body must be a JSON object") from None
    if not isinstance(body, dict) or not keys <= set(body) <= keys | optional:
        wanted = ", ".join(sorted(keys)) + (f" (optional: {', '.join(sorted(optional))})" if optional else "")
        raise _bad_request(f"body must be a JSON object with keys {wanted}")
    return body


async def form_body(request: web.Request) -> dict[str, str]:
    """The request's form fields (urlencoded or multipart) as text, or a 400 naming what was wrong."""
    try:
        form = await request.post()
    except (ValueError, UnicodeDecodeError) as exc:  # a multipart type without a boundary, a broken part, ...
        raise _bad_request(f"body must be a form ({exc})") from None
    return {key: value for key, value in form.items() if isinstance(value, str)}


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    entry = STATIC.joinpath(name)
    if "/" in name or name.startswith(".") or not entry.is_file():
        raise web.HTTPNotFound()
    content_type = _TYPES.get(name.rsplit(".", 1)[-1], "application/octet-stream")
    return web.Response(body=entry.read_bytes(), content_type=content_type, headers=PAGE_HEADERS)
