"""Who may open the kiosk, associate, dashboard and till surfaces and the ops endpoints (/healthz, /metrics):
a token from config, once, then a cookie (or the token on every request as `Authorization: Bearer`).

The session cookie is `role.expiry.mac`, the mac an HMAC keyed by that role's configured tokens: it
survives an agent restart (a kiosk need not log in again) and dies when the operator changes the tokens.
A device in use gets a fresh cookie once half its session has passed, so a kiosk stays signed in.
A role without tokens is switched off: its pages and APIs answer 403, so nothing is open by default.
Screens stay read-only and need no login: they only ever learn what is on their own glass.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from aiohttp import web

from ..config import AuthSettings
from .http import PAGE_HEADERS, error, form_body, page

ROLES = ("kiosk", "associate", "dashboard", "till", "ops")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Auth:
    def __init__(self, settings: AuthSettings):
        self._session_s = settings.session_s
        self._tokens = {role: list(getattr(settings, f"{role}_tokens")) for role in ROLES}
        self._keys = {
            role: hashlib.sha256("\n".join(tokens).encode()).digest() for role, tokens in self._tokens.items()
        }
        self.refused: Counter[str] = Counter()

    def enabled(self, role: str) -> bool:
        return bool(self._tokens[role])

    def check_token(self, role: str, token: str) -> bool:
        # compare against every token so the time taken says nothing about which one nearly matched
        matches = [hmac.compare_digest(token.encode(), t.encode()) for t in self._tokens[role]]
        return any(matches)

    def session(self, role: str, now: float | None = None) -> str:
        expires = int((now or time.time()) + self._session_s)
        return f"{role}.{expires}.{self._mac(role, expires)}"

    def _mac(self, role: str, expires: int) -> str:
        return hmac.new(self._keys[role], f"{role}.{expires}".encode(), hashlib.sha256).hexdigest()

    def authorised(self, request: web.Request, role: str) -> bool:
        return self._expiry(request, role) is not None

    def _expiry(self, request: web.Request, role: str) -> float | None:
        """When the caller's authorisation ends (infinity for a bearer token); None if it is not authorised."""
        if not self.enabled(role):
            return None
        bearer = request.headers.get("Authorization", "")
        if bearer.startswith("Bearer ") and self.check_token(role, bearer[7:]):
            return float("inf")
        parts = request.cookies.get(f"ea_{role}", "").split(".")
        if len(parts) != 3 or parts[0] != role or not parts[1].isdigit():
            return None
        expires = int(parts[1])
        if expires <= time.time() or not hmac.compare_digest(parts[2], self._mac(role, expires)):
            return None
        return expires

    def _set_cookie(self, response: web.StreamResponse, role: str) -> None:
        response.set_cookie(
            f"ea_{role}", self.session(role), max_age=int(self._session_s), httponly=True, samesite="Strict", path="/"
        )

    def guard(self, role: str, handler: Handler, *, page_route: bool = False) -> Handler:
        """Wrap a handler: pages send the browser to the login form, APIs answer 401 / 403."""

        async def guarded(request: web.Request) -> web.StreamResponse:
            if not self.enabled(role):
                self.refused["disabled"] += 1
                return error(403, "disabled", f"no surfaces.auth.{role}_tokens are configured on this agent")
            expires = self._expiry(request, role)
            if expires is None:
                self.refused[role] += 1
                if page_route:
                    raise web.HTTPSeeOther(f"/login?role={role}&next={quote(request.path_qs, safe='')}")
                return error(401, "unauthorised", f"log in as {role} first (or send 'Authorization: Bearer TOKEN')")
            response = await handler(request)
            if expires - time.time() < self._session_s / 2 and not response.prepared:
                self._set_cookie(response, role)  # a device in use stays signed in: the session slides
            return response

        return guarded

    def routes(self, app: web.Application) -> None:
        async def login_form(_: web.Request) -> web.Response:
            return page("login.html")

        async def login(request: web.Request) -> web.StreamResponse:
            form = await form_body(request)
            role, token, target = form.get("role", ""), form.get("token", ""), form.get("next", "/")
            if not target.startswith("/") or target.startswith("//") or "\\" in target:
                target = "/"
            if role not in ROLES or not self.enabled(role) or not self.check_token(role, token):
                self.refused["bad_login"] += 1
                raise web.HTTPSeeOther(f"/login?role={quote(role)}&next={quote(target, safe='')}&failed=1")
            response = web.HTTPSeeOther(target, headers=PAGE_HEADERS)
            response.set_cookie(
                f"ea_{role}",
                self.session(role),
                max_age=int(self._session_s),
                httponly=True,
                samesite="Strict",
                path="/",
            )
            raise response

        app.router.add_get("/login", login_form)
        app.router.add_post("/login", login)
