"""The kiosk: a shopper who identified themselves sees their offers, claims one and sets their consent.

A kiosk session lives only in the agent's memory and in the page's (never in storage): it ends when the
shopper taps "done", after `surfaces.kiosk.session_s` without a touch, or when someone else identifies at
the same kiosk. The page learns offers and consent choices, never the customer_ref.
"""

from __future__ import annotations

import secrets
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import segno
from aiohttp import web

from ..bus import Bus
from ..clock import Clock
from ..config import Settings
from ..decide.engine import OfferEngine
from ..errors import Refused
from ..events import ConsentChanged
from ..sources.checkin.kiosk_id import IdentifyRefused, KioskIdentifier
from ..store import Store
from ..store.consents import CHANNELS, IDENTIFYING
from ..store.faults import StorageRefused
from .assets import AssetCache
from .auth import Auth, Handler
from .http import error, json_body, page, private_json
from .proof import AckRejected, ProofOfPlay

if TYPE_CHECKING:  # with vision on only: OpenCV and onnxruntime load then
    from ..sources.vision.enrolment import EnrolmentDesk

OFFERS_SHOWN = 6


@dataclass
class _Session:
    customer_ref: str
    touchpoint: str
    expires: float
    method: str  # how the shopper identified: only "qr" (the app's code) proves they hold the phone
    listed: dict[str, str] = field(default_factory=dict)  # offer_id → the decision that listed it last


class Kiosk:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        engine: OfferEngine,
        identifier: KioskIdentifier,
        assets: AssetCache,
        bus: Bus,
        clock: Clock,
        proof: ProofOfPlay,
        enrolments: EnrolmentDesk | None = None,
    ):
        self._settings = settings
        self._enrolments = enrolments
        self._proof = proof
        self._cfg = settings.surfaces.kiosk
        self._store = store
        self._engine = engine
        self._identifier = identifier
        self._assets = assets
        self._bus = bus
        self._clock = clock
        self._kiosks = {tp.id for tp in settings.touchpoints if tp.kind == "kiosk"}
        self._sessions: dict[str, _Session] = {}
        self.counts: Counter[str] = Counter()

    # -- sessions ---------------------------------------------------------------------------------------

    def _start(self, touchpoint: str, customer_ref: str, method: str) -> str:
        for sid in [s for s, sess in self._sessions.items() if sess.touchpoint == touchpoint]:
            self._drop(sid)  # one shopper per kiosk: the next one ends the last one's session
        sid = secrets.token_urlsafe(24)
        self._sessions[sid] = _Session(customer_ref, touchpoint, self._clock.mono() + self._cfg.session_s, method)
        self.counts["sessions"] += 1
        return sid

    def _session(self, request: web.Request) -> _Session:
        touchpoint = request.match_info["touchpoint"]
        sid = request.headers.get("X-Kiosk-Session", "")
        now = self._clock.mono()
        for stale in [s for s, sess in self._sessions.items() if sess.expires <= now]:
            self._drop(stale)
        session = self._sessions.get(sid)
        if session is None or session.touchpoint != touchpoint:
            raise _no_session()
        session.expires = now + self._cfg.session_s
        return session

    def _drop(self, sid: str) -> None:
        """A session ends: a face enrolment it began stops with it, so nobody else is enrolled in its name."""
        session = self._sessions.pop(sid, None)
        if session is not None and self._enrolments is not None:
            self._enrolments.cancel(session.customer_ref, session.touchpoint, "session_ended")

    def active(self) -> int:
        now = self._clock.mono()
        return sum(1 for s in self._sessions.values() if s.expires > now)

    # -- what the page shows ----------------------------------------------------------------------------

    def _view(self, session: _Session) -> dict[str, Any]:
        entry = self._store.roster.get(session.customer_ref)
        if entry is None:  # erased while at the kiosk
            raise _no_session()
        claimed = self._store.claims.open_codes(session.customer_ref)
        offers = []
        listing = self._engine.offers_for(session.customer_ref, session.touchpoint, OFFERS_SHOWN, record=True)
        session.listed = {offer["offer_id"]: offer["show_id"] for offer in listing}
        for offer in listing:
            shown = self._assets.localise(offer)
            shown["personal"] = offer["audience"] == "personalised"
            shown["claimed"] = offer["offer_id"] in claimed
            offers.append(shown)
        return {
            "consents": {ch: entry.consents_to(ch) for ch in CHANNELS},
            "face_enrolment": self._enrolment_view(session),
            "app_proven": session.method == "qr",  # a typed number may withdraw, never grant, BLE or face
            "offers": offers,
            "session_s": self._cfg.session_s,
        }

    def _enrolment_view(self, session: _Session) -> dict[str, Any]:
        """Whether this kiosk takes face enrolments, and how the shopper's latest one went (this session's live)."""
        desk = self._enrolments
        offered = desk is not None and session.touchpoint in desk.kiosks
        live = desk.status(session.customer_ref, session.touchpoint) if desk is not None else None
        if live is not None:
            return {"offered": offered, **live.view()}
        last = self._store.enrolments.last(session.customer_ref)
        state = last.outcome.value if last is not None and last.outcome is not None else None
        return {"offered": offered, "state": state, "reason": last.reason if last is not None else None}

    def _claim_view(self, code: str, offer_title: str, expires_at: str) -> dict[str, Any]:
        qr = segno.make(code, error="m").svg_data_uri(scale=8, border=2, dark="#111111")
        return {"code": code, "qr": qr, "title": offer_title, "expires_at": expires_at}

    # -- routes -----------------------------------------------------------------------------------------

    def routes(self, app: web.Application, auth: Auth) -> None:
        def kiosk(handler: Handler) -> Handler:
            async def checked(request: web.Request) -> web.StreamResponse:
                if request.match_info["touchpoint"] not in self._kiosks:
                    return error(404, "unknown_kiosk", "no kiosk with that id in this store")
                return await handler(request)

            return checked

        async def page_(request: web.Request) -> web.Response:
            return page("kiosk.html")

        async def identify(request: web.Request) -> web.Response:
            body = await json_body(request, {"method", "value"})
            touchpoint = request.match_info["touchpoint"]
            try:
                ref = self._identifier.identify(touchpoint, body["method"], body["value"])
            except IdentifyRefused as exc:
                return error(exc.status, exc.code, exc.reason)
            sid = self._start(touchpoint, ref, body["method"])
            return private_json({"session": sid, **self._view(self._sessions[sid])})

        async def view(request: web.Request) -> web.Response:
            return private_json(self._view(self._session(request)))

        async def claim(request: web.Request) -> web.Response:
            session = self._session(request)
            body = await json_body(request, {"offer_id"})
            offers = {o["offer_id"]: o for o in self._engine.offers_for(session.customer_ref, session.touchpoint, 50)}
            offer = offers.get(body["offer_id"]) if isinstance(body["offer_id"], str) else None
            if offer is None:
                return error(404, "not_offered", "that offer is not available to this shopper here now")
            wall = self._clock.wall()
            valid_to = datetime.fromisoformat(offer["expires_at"])
            expires = min(valid_to, wall.at + timedelta(seconds=self._cfg.claim_valid_s))
            record = self._store.claims.claim(
                session.customer_ref,
                offer["offer_id"],
                touchpoint=session.touchpoint,
                at=wall.iso(),
                expires_at=expires.isoformat(timespec="milliseconds"),
                decision_id=session.listed.get(offer["offer_id"]),  # a claim converts via the listing's decision
            )
            self.counts["claims"] += 1
            return private_json(self._claim_view(record.code, offer["title"], record.expires_at))

        async def ack(request: web.Request) -> web.Response:
            """The page displayed the listing: an impression per offer it listed in this session."""
            session = self._session(request)
            body = await json_body(request, {"show_ids", "displayed_at"})
            ids = body["show_ids"]
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or len(ids) > OFFERS_SHOWN:
                return error(400, "malformed", f"show_ids must be a list of at most {OFFERS_SHOWN} strings")
            listed = set(session.listed.values())
            recorded = 0
            for show_id in ids:
                if show_id not in listed:
                    self.counts["acks_refused"] += 1
                    continue
                try:
                    recorded += self._proof.acknowledge(
                        session.touchpoint, {"show_id": show_id, "displayed_at": body["displayed_at"]}
                    )
                except AckRejected as exc:
                    return error(400, exc.code, exc.reason)
                except StorageRefused as exc:
                    return error(503, exc.code, exc.reason)
            return private_json({"recorded": recorded})

        async def consent(request: web.Request) -> web.Response:
            session = self._session(request)
            body = await json_body(request, {"channel", "granted"})
            channel, granted = body["channel"], body["granted"]
            if channel not in CHANNELS or not isinstance(granted, bool):
                return error(400, "malformed", f"channel must be one of {', '.join(CHANNELS)}; granted true or false")
            if granted and channel in IDENTIFYING and session.method != "qr":
                self.counts[f"consent:{channel}:refused_without_app"] += 1
                return _needs_app(channel)
            wall = self._clock.wall()
            try:
                self._store.consents.set(
                    session.customer_ref, channel, granted, at=wall.iso(), touchpoint=session.touchpoint
                )
            except KeyError:  # erased while at the kiosk
                raise _no_session() from None
            self._bus.publish(ConsentChanged(session.customer_ref, channel, granted, wall))
            self.counts[f"consent:{channel}:{'granted' if granted else 'withdrawn'}"] += 1
            return private_json(self._view(session))

        async def face(request: web.Request) -> web.Response:
            session = self._session(request)
            body = await json_body(request, {"agree"})
            if body["agree"] is not True:
                return error(400, "malformed", "face enrolment needs the shopper's explicit agreement (agree: true)")
            if session.method != "qr":
                self.counts["face:refused_without_app"] += 1
                return _needs_app("face")
            if self._enrolments is None:
                return error(409, "not_offered", "face enrolment needs the vision source, which is off on this host")
            try:
                self._enrolments.start(session.customer_ref, session.touchpoint)
            except Refused as exc:
                return error(409, exc.code, exc.reason)
            self.counts["face:started"] += 1
            return private_json(self._view(session))

        async def face_cancel(request: web.Request) -> web.Response:
            session = self._session(request)
            if self._enrolments is not None:
                self._enrolments.cancel(session.customer_ref, session.touchpoint)
            return private_json(self._view(session))

        async def end(request: web.Request) -> web.Response:
            self._drop(request.headers.get("X-Kiosk-Session", ""))
            return private_json({"status": "ended"})

        g = auth.guard
        app.router.add_get("/kiosk/{touchpoint}", g("kiosk", kiosk(page_), page_route=True))
        app.router.add_post("/api/kiosk/{touchpoint}/identify", g("kiosk", kiosk(identify)))
        app.router.add_get("/api/kiosk/{touchpoint}/session", g("kiosk", kiosk(view)))
        app.router.add_post("/api/kiosk/{touchpoint}/claim", g("kiosk", kiosk(claim)))
        app.router.add_post("/api/kiosk/{touchpoint}/ack", g("kiosk", kiosk(ack)))
        app.router.add_post("/api/kiosk/{touchpoint}/consent", g("kiosk", kiosk(consent)))
        app.router.add_post("/api/kiosk/{touchpoint}/face", g("kiosk", kiosk(face)))
        app.router.add_post("/api/kiosk/{touchpoint}/face/cancel", g("kiosk", kiosk(face_cancel)))
        app.router.add_post("/api/kiosk/{touchpoint}/end", g("kiosk", kiosk(end)))


def _needs_app(channel: str) -> web.Response:
    """Anyone can type someone else's loyalty or phone number: what it opens may show offers and withdraw consent,
    never turn on a channel that recognises the shopper without them doing anything."""
    return error(
        403,
        "app_needed",
        f"turning on {channel} recognition needs the app's QR code (proof you hold the phone); "
        "a typed number can only withdraw it",
    )


def _no_session() -> web.HTTPUnauthorized:
    return web.HTTPUnauthorized(
        text='{"error": "no_session", "reason": "identify first; kiosk sessions end after inactivity"}',
        content_type="application/json",
    )
