"""The store dashboard: anonymous counts per zone, screens and what they show, sync, sensors, today's results.

Numbers only: the dashboard never names or tags a shopper. The page polls `/api/dashboard` and draws
its charts itself (no third-party script, so it runs under the same strict CSP as every page).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from ..clock import Clock
from ..config import Settings
from ..presence import PresenceTracker
from ..store import Store
from .assets import AssetCache
from .auth import Auth
from .http import page, private_json
from .hub import ScreenHub

_UPLINK = {"off": "not configured", "up": "connected", "down": "disconnected (the outbox keeps everything)"}


class Dashboard:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        presence: PresenceTracker,
        hub: ScreenHub,
        assets: AssetCache,
        clock: Clock,
        health: Callable[[], dict[str, Any]],
        signs: Callable[[], dict[str, Any]],
    ):
        self._settings = settings
        self._store = store
        self._presence = presence
        self._hub = hub
        self._assets = assets
        self._clock = clock
        self._health = health
        self._signs = signs
        self._zone = ZoneInfo(settings.store.timezone)

    def snapshot(self) -> dict[str, Any]:
        wall = self._clock.wall()
        local = wall.at.astimezone(self._zone)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
        since = midnight.isoformat(timespec="milliseconds")
        counts = self._presence.counts()
        health = self._health()
        return {
            "store": self._settings.store.id,
            "at": wall.iso(),
            "clock_synced": wall.ntp_synced,
            "zones": [
                {"id": z.id, "name": z.name or z.id, **counts.get(z.id, {"identified": 0, "anonymous": 0})}
                for z in self._settings.zones
            ],
            "touchpoints": [
                {
                    "id": tp.id,
                    "name": tp.name or tp.id,
                    "kind": tp.kind,
                    "zone": tp.zone,
                    "online": self._hub.players(tp.id) > 0,
                    "players": self._hub.players(tp.id),
                    "showing": self._hub.showing(tp.id),
                    "stalled": self._hub.stalled(tp.id, self._clock.mono()),
                    "last_play": self._store.plays.last(tp.id),
                    # staff only: open it once on the screen to pair it (the page keeps the key)
                    "pairing_link": f"/screen/{tp.id}?key={self._store.screen_keys.key(tp.id)}"
                    if tp.kind == "screen"
                    else None,
                }
                for tp in self._settings.touchpoints
            ],
            "sync": {
                "outbox_depth": health.get("outbox_depth", 0),
                "outbox_oldest": self._store.outbox.oldest(),
                "bundles": dict(self._store.db.execute("SELECT kind, version FROM bundle_versions").fetchall()),
                "uplink": _UPLINK.get(health.get("cloud", "off"), "unknown"),
            },
            "sensors": {
                "sources": self._settings.sources.model_dump(),
                "components": health.get("components", {}),
                "restarts": health.get("restarts", {}),
                "bus_dropped": health.get("bus_dropped", {}),
                "signs": self._signs(),
                "assets": self._assets.status(),
            },
            "today": {
                "decisions": self._scalar("SELECT count(*) FROM decisions WHERE at >= ?", since),
                "offers_shown": self._scalar("SELECT count(*) FROM impressions WHERE at >= ?", since),
                "people_reached": self._people_reached(since),
                "personal_shown": self._scalar(
                    "SELECT count(*) FROM impressions WHERE at >= ? AND customer_ref IS NOT NULL", since
                ),
                **self._store.claims.counts_since(since),
                "conversions": self._conversions(since),
            },
            "hourly": self._hourly(since, midnight),
            "plays": self._plays(since),
        }

    def _plays(self, since: str) -> list[dict[str, Any]]:
        """Today's proof of play per campaign and screen: plays, completed, seconds on screen, people reached."""
        totals: dict[tuple[str | None, str], dict[str, Any]] = {}
        for row in self._store.plays.hourly(since):
            key = (row["campaign"], row["touchpoint"])
            total = totals.setdefault(
                key,
                {
                    "campaign": key[0],
                    "touchpoint": key[1],
                    "plays": 0,
                    "completed": 0,
                    "seconds": 0.0,
                    "people_reached": None,
                },
            )
            total["plays"] += row["plays"]
            total["completed"] += row["completed"]
            total["seconds"] = round(total["seconds"] + row["seconds"], 1)
            if row["people_reached"] is not None:
                total["people_reached"] = (total["people_reached"] or 0) + row["people_reached"]
        return list(totals.values())

    def _scalar(self, sql: str, *args: Any) -> Any:
        return self._store.db.execute(sql, list(args)).fetchone()[0]

    def _people_reached(self, since: str) -> int | None:
        """The people in front of the screens when offers and playlist items were on them, where cameras watch
        (None: no camera counted anyone in front of a screen today)."""
        shown = self._scalar("SELECT sum(people) FROM impressions WHERE at >= ?", since)
        played = self._scalar("SELECT sum(people) FROM plays WHERE started_at >= ?", since)
        return None if shown is None and played is None else (shown or 0) + (played or 0)

    def _conversions(self, since: str) -> int:
        """Attributed purchases (the POS room's `conversions` table, when there is one) plus claims redeemed."""
        redeemed = self._store.claims.counts_since(since)["redeemed"]
        try:
            attributed: int = self._scalar("SELECT count(*) FROM conversions WHERE at >= ?", since)
            return redeemed + attributed
        except sqlite3.OperationalError:  # no such table (yet) on this agent
            return redeemed

    def _hourly(self, since: str, midnight: datetime) -> list[dict[str, Any]]:
        rows = dict(
            self._store.db.execute(
                "SELECT substr(at, 1, 13), count(*) FROM impressions WHERE at >= ? GROUP BY 1", [since]
            ).fetchall()
        )
        out = []
        for h in range(24):
            start = midnight + timedelta(hours=h)
            key = start.strftime("%Y-%m-%dT%H")
            out.append({"hour": start.astimezone(self._zone).strftime("%H"), "offers_shown": rows.get(key, 0)})
        return out

    def routes(self, app: web.Application, auth: Auth) -> None:
        async def page_(_: web.Request) -> web.Response:
            return page("dashboard.html")

        async def api(_: web.Request) -> web.Response:
            return private_json(self.snapshot())

        app.router.add_get("/dashboard", auth.guard("dashboard", page_, page_route=True))
        app.router.add_get("/api/dashboard", auth.guard("dashboard", api))
