"""Builds the agent's components from the settings, supervises their tasks and shuts down cleanly.

The wiring follows DESIGN.md's data flow: sources publish Sightings, the presence tracker turns them into
Presence, the engine into Shows, the signage hub puts them on the glass and records proof of play. A
component that crashes is logged and restarted with backoff; the others keep running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .bus import Bus
from .clock import Clock
from .config import Settings
from .decide.catalog import OfferCatalog
from .decide.engine import OfferEngine
from .presence import PresenceTracker
from .signage import server
from .signage.hub import ScreenHub
from .signage.proof import ProofOfPlay
from .sources.checkin import CheckinSource
from .store import open_store

if TYPE_CHECKING:
    from .sources.vision.source import VisionSource

log = logging.getLogger(__name__)


class Agent:
    def __init__(self, settings: Settings, clock: Clock | None = None):
        self.settings = settings
        self.clock = clock or Clock()
        self.bus = Bus()
        self.store = open_store(settings.database.path)
        self.catalog = OfferCatalog(self.store)
        self.checkin = CheckinSource(settings, self.store, self.bus, self.clock) if settings.sources.checkin else None
        self.vision = self._vision() if settings.sources.vision else None
        self.presence = PresenceTracker(settings.presence, self.bus, self.clock)
        self.engine = OfferEngine(settings, self.store, self.catalog, self.bus, self.clock)
        self.proof = ProofOfPlay(self.store, self.bus, self.clock)
        self.hub = ScreenHub(settings, self.bus, self.proof)
        self.restarts: Counter[str] = Counter()
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.url = ""

    async def start(self) -> None:
        """Serve the touchpoints and start every component; returns once the HTTP port is listening."""
        app = server.build(self.settings, self.hub, self.checkin, self.health)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=5.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.http.host, self.settings.http.port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
        components: dict[str, Callable[[], Awaitable[None]]] = {
            "presence": self.presence.run,
            "engine": self.engine.run,
            "signage": self.hub.run,
        }
        if self.checkin is not None:
            components["checkin.prune"] = self._prune_nonces
        if self.vision is not None:
            components["vision"] = self.vision.run
        self._tasks = [asyncio.create_task(self._supervise(n, f), name=n) for n, f in components.items()]
        log.info("serving store %s at %s", self.settings.store.id, self.url)

    async def stop(self) -> None:
        """Stop every component, close the port and the database; safe to call more than once."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await self.hub.close_all()
            await runner.cleanup()
        self.store.close()

    async def run(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    async def _supervise(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        delay = 0.5
        while True:
            try:
                await run()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                self.restarts[name] += 1
                log.exception("component %s failed; restarting in %.1f s", name, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    def _vision(self) -> VisionSource | None:
        try:  # OpenCV and onnxruntime load only when vision is on
            from .sources.vision.source import VisionSource
        except ImportError as exc:
            log.error("vision source off: %s; install it with  pip install 'edge-agent[vision]'", exc)
            return None
        return VisionSource(self.settings, self.store, self.bus, self.clock)

    async def _prune_nonces(self) -> None:
        assert self.checkin is not None
        while True:
            self.checkin.prune()
            await asyncio.sleep(60)

    def health(self) -> dict[str, Any]:
        return {
            "store": self.settings.store.id,
            "device": self.settings.store.device_id,
            "components": {t.get_name(): ("running" if not t.done() else "stopped") for t in self._tasks},
            "restarts": dict(self.restarts),
            "offers": len(self.catalog),
            "outbox_depth": self.store.outbox.depth(),
            "bus_dropped": {f"{k[0]}:{k[1]}": v for k, v in self.bus.dropped.items()},
            "screens": {tp.id: self.hub.players(tp.id) for tp in self.settings.touchpoints},
            **({"vision": self.vision.health()} if self.vision is not None else {}),
        }
