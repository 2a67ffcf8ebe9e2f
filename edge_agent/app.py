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
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, Metric

from .bus import Bus
from .clock import Clock
from .cloud.sync import CloudSync
from .config import Settings
from .decide.attribution import Attribution
from .decide.catalog import OfferCatalog
from .decide.engine import OfferEngine
from .keys import DeviceKey, zone_beacon_key
from .ops import metrics
from .ops.notify import SystemdNotifier, watchdog_interval_s
from .ops.progress import Progress
from .ops.watchdog import Watchdog
from .presence import PresenceTracker
from .signage import server
from .signage.assets import AssetCache
from .signage.associate import AssociateView
from .signage.audience import Audience
from .signage.auth import Auth
from .signage.dashboard import Dashboard
from .signage.hub import ScreenHub
from .signage.item_plays import ItemPlays
from .signage.kiosk import Kiosk
from .signage.proof import ProofOfPlay
from .signage.schedule import Schedule
from .signage.signs import SignDriver
from .signage.till import Till
from .sources.ble.esphome_proxies import EsphomeProxies, proxy_receivers
from .sources.ble.nodes import RemoteScanners
from .sources.ble.report_intake import ReportIntake
from .sources.ble.report_listener import ReportListener
from .sources.ble.scanner import BleSource
from .sources.checkin.kiosk_id import KioskIdentifier
from .sources.checkin.source import CheckinSource
from .sources.peers.notices import HostNotices
from .sources.peers.source import StorePeers
from .sources.pos.source import PosSource
from .sources.pos.tills import load_till
from .sources.roster_age import RosterAge
from .store import open_store
from .store.checkpoint import WalCheckpointer
from .store.faults import StorageRefused

if TYPE_CHECKING:
    from .sources.ble.zone_advertiser import ZoneAdvertiser
    from .sources.vision.enrolment import EnrolmentDesk
    from .sources.vision.source import VisionSource

log = logging.getLogger(__name__)


class Agent:
    def __init__(self, settings: Settings, clock: Clock | None = None):
        self.settings = settings
        self.clock = clock or Clock()
        key_file = settings.store.device_key_file  # a secret: opened by the agent, not by check-config
        self.device_key = DeviceKey.load(key_file, "store.device_key_file") if key_file is not None else None
        self.bus = Bus()
        self.progress = Progress()
        self.notifier = SystemdNotifier()
        self.watchdog = Watchdog(self.notifier, self.progress, watchdog_interval_s())
        self.store = open_store(settings.database.path, self.clock.synced)
        self.catalog = OfferCatalog(self.store)
        self.roster_age = RosterAge(self.store, self.clock, settings.mqtt.max_roster_age_s if settings.mqtt else None)
        self.checkin = CheckinSource(settings, self.store, self.bus, self.clock) if settings.sources.checkin else None
        proxies = bool(proxy_receivers(settings))  # receivers behind an ESPHome Bluetooth proxy
        self.ble = (
            BleSource(settings, self.store, self.bus, self.clock, self.progress, self.roster_age)
            if settings.sources.ble or settings.ble.remote_scanners or settings.sources.ble_reports or proxies
            else None
        )
        beacon_key_file = settings.ble.zone_beacon.key_file
        beacon_key = zone_beacon_key(beacon_key_file) if beacon_key_file is not None else None
        self.reports = (
            ReportIntake(
                settings, self.ble.resolver.tokens, self.store, self.bus, self.clock, beacon_key, self.roster_age
            )
            if self.ble is not None and settings.sources.ble_reports
            else None
        )
        self.zone_beacon = (
            self._zone_advertiser(beacon_key) if settings.ble.zone_beacon.advertise and beacon_key is not None else None
        )
        listen = settings.http.report_listen
        self.report_listener = (
            ReportListener(self.reports, listen, settings.http.report_rate_per_minute, self.clock)
            if self.reports is not None and listen is not None
            else None
        )
        self.remote_scanners = (
            RemoteScanners(settings, self.ble, self.clock)
            if self.ble is not None and settings.ble.remote_scanners
            else None
        )
        self.esphome_proxies = (
            EsphomeProxies(settings, self.ble, self.clock) if self.ble is not None and proxies else None
        )
        self.store.enrolments.interrupted(self.clock.wall().iso())  # their frames were in the last run's memory
        self.enrolments: EnrolmentDesk | None = None  # with vision on, face enrolment at kiosks with a camera
        self.vision = self._vision() if settings.sources.vision else None
        self.peers = (
            StorePeers(settings, self.store, self.bus, self.clock, self.device_key)
            if settings.fleet.share_presence and self.device_key is not None
            else None
        )
        self.notices = (
            HostNotices(settings, self.store, self.bus, self.clock, self.device_key)
            if settings.mqtt is not None and settings.fleet.hosts and self.device_key is not None
            else None
        )
        self.presence = PresenceTracker(
            settings.presence,
            self.bus,
            self.clock,
            radio=settings.ble,
            progress=self.progress,
            stall_after_s=settings.ops.stall_after_s,
            zones=settings.zones,
        )
        self.engine = OfferEngine(settings, self.store, self.catalog, self.bus, self.clock, progress=self.progress)
        self.attribution = Attribution(self.store, self.engine.profiles, self.engine.caps, self.bus)
        self.pos: PosSource | None = None
        if settings.sources.pos and settings.pos is not None:
            profile = load_till(settings.pos.profile)
            self.pos = PosSource(settings.pos, profile, self.store, self.bus, self.clock)
        self.audience = Audience(settings, self.bus)
        self.proof = ProofOfPlay(self.store, self.bus, self.clock, self.audience)
        self.schedule = Schedule(settings, self.store, self.bus)
        self.plays = ItemPlays(self.schedule, self.store, self.audience, self.clock)
        self.assets = AssetCache(settings.surfaces.assets, self.store, self.clock, self.bus)
        self.hub = ScreenHub(
            settings,
            self.bus,
            self.proof,
            self.assets,
            self.clock,
            self.progress,
            self.store.screen_keys,
            self.plays,
            self.schedule,
        )
        self.auth = Auth(settings.surfaces.auth)
        identifier = KioskIdentifier(settings, self.store, self.bus, self.clock, self.checkin)
        self.kiosk = Kiosk(
            settings,
            self.store,
            self.engine,
            identifier,
            self.assets,
            self.bus,
            self.clock,
            self.proof,
            enrolments=self.enrolments,
        )
        self.signs = [SignDriver(sign, settings, self.bus, self.proof) for sign in settings.surfaces.signs]
        self.dashboard = Dashboard(
            settings, self.store, self.presence, self.hub, self.assets, self.clock, self.health, self.sign_status
        )
        self.associate = AssociateView(settings, self.store, self.presence, self.engine, self.clock)
        self.cloud = (
            CloudSync(
                settings,
                self.store,
                self.bus,
                self.clock,
                self.health,
                self.reconfigure,
                self.progress,
                self.device_key,
            )
            if settings.mqtt
            else None
        )
        if self.cloud is not None:
            self.cloud.desired.restore()
        self.restarts: Counter[str] = Counter()
        self.http_refused: Counter[str] = Counter()  # every 4xx of the HTTP surface, by code
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.url = ""

    async def start(self) -> None:
        """Serve the touchpoints and start every component; returns once the HTTP port is listening."""
        app = server.build(
            self.settings,
            self.hub,
            self.checkin,
            self.health,
            lambda: metrics.render(self.metrics),
            auth=self.auth,
            assets=self.assets,
            refused=self.http_refused,
            storage=self.store.faults,
            surfaces=[self.kiosk, self.associate, self.dashboard, Till(self.store, self.clock)],
        )
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=5.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.http.host, self.settings.http.port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
        if self.report_listener is not None:
            await self.report_listener.start()
        components: dict[str, Callable[[], Awaitable[None]]] = {
            "loop": self.progress.measure_loop,
            "presence": self.presence.run,
            "engine": self.engine.run,
            "signage": self.hub.run,
            "assets": self.assets.run,
            "attribution": self.attribution.run,
            "store.checkpoint": WalCheckpointer(self.settings.database.path, faults=self.store.faults).run,
        }
        if self.watchdog.enabled:
            components["watchdog"] = self.watchdog.run
        components.update({f"sign.{driver.id}": driver.run for driver in self.signs})
        if self.pos is not None:
            components["pos"] = self.pos.run
        if self.checkin is not None:
            components["checkin.prune"] = self._prune_nonces
        if self.cloud is not None:
            components["cloud"] = self.cloud.run
        if self.ble is not None:
            components["ble"] = self.ble.run
        if self.remote_scanners is not None:
            components["ble.remote"] = self.remote_scanners.run
        if self.esphome_proxies is not None:
            components["ble.esphome"] = self.esphome_proxies.run
        if self.zone_beacon is not None:
            components["ble.zone_beacon"] = self.zone_beacon.run
        if self.vision is not None:
            components["vision"] = self.vision.run
        if self.peers is not None:
            components["fleet.peers"] = self.peers.run
        if self.notices is not None:
            components["fleet.notices"] = self.notices.run
        self._tasks = [asyncio.create_task(self._supervise(n, f), name=n) for n, f in components.items()]
        log.info("serving store %s at %s", self.settings.store.id, self.url)
        self.notifier.ready(f"serving {len(self.catalog)} offers at {self.url}")

    async def stop(self) -> None:
        """Stop every component, close the port and the database; safe to call more than once."""
        self.notifier.stopping()
        tasks, self._tasks = self._tasks, []
        if self.cloud is not None and tasks:
            await self.cloud.stop()  # retained status `stopped` and a clean disconnect, while the loop still runs
        if self.peers is not None and tasks:
            await self.peers.stop()
        if self.notices is not None and tasks:
            await self.notices.stop()
        if self.remote_scanners is not None and tasks:
            await self.remote_scanners.stop()
        if self.esphome_proxies is not None and tasks:
            await self.esphome_proxies.stop()  # a DisconnectRequest to each proxy
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.report_listener is not None:
            await self.report_listener.stop()
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

    def reconfigure(self, live: Settings) -> None:
        """A fleet desired config (cloud/desired.py): the live keys take effect without a restart."""
        self.settings = live
        self.presence.reconfigure(live.presence, live.ble)
        if self.ble is not None:
            self.ble.reconfigure(live)
        self.engine.reconfigure(live)
        self.hub.reconfigure(live)
        self.schedule.reconfigure(live)
        self.progress.retune(("signage", "ble"), live.ops.stall_after_s)

    def _zone_advertiser(self, key: bytes) -> ZoneAdvertiser:
        from .sources.ble.zone_advertiser import ZoneAdvertiser  # dbus-fast loads only where BlueZ advertises

        return ZoneAdvertiser(self.settings, key, self.clock)

    def _vision(self) -> VisionSource | None:
        try:  # OpenCV and onnxruntime load only when vision is on
            from .sources.vision.source import VisionSource
        except ImportError as exc:
            log.error("vision source off: %s; install it with  pip install 'edge-agent[vision]'", exc)
            return None
        from .sources.vision.enrolment import EnrolmentDesk

        self.enrolments = EnrolmentDesk(self.settings, self.store, self.bus, self.clock, self.device_key)
        return VisionSource(
            self.settings, self.store, self.bus, self.clock, roster_age=self.roster_age, enrolments=self.enrolments
        )

    async def _prune_nonces(self) -> None:
        assert self.checkin is not None
        while True:
            with contextlib.suppress(StorageRefused), self.store.faults.writing("checkin.prune"):
                self.checkin.prune()  # with the disk full, next time
            await asyncio.sleep(60)

    def health(self) -> dict[str, Any]:
        return {
            "store": self.settings.store.id,
            "device": self.settings.store.device_id,
            "components": {t.get_name(): ("running" if not t.done() else "stopped") for t in self._tasks},
            "stalled": self.progress.stalled(),
            "loop_lag_s": round(self.progress.loop_lag_s, 4),
            "restarts": dict(self.restarts),
            "offers": len(self.catalog),
            "outbox_depth": self.store.outbox.depth(),
            "storage": {
                "failing": self.store.faults.failing,
                "episodes": self.store.faults.episodes,
                "write_failures": dict(self.store.faults.failures),
            },
            "cloud": "off" if self.cloud is None else "up" if self.cloud.link.connected.is_set() else "down",
            "config": None if self.cloud is None else self.cloud.desired.reported(),
            "bus_dropped": {f"{k[0]}:{k[1]}": v for k, v in self.bus.dropped.items()},
            "bus_handler_failures": {f"{k[0]}:{k[1]}": v for k, v in self.bus.failed.items()},
            "screens": {tp.id: self.hub.players(tp.id) for tp in self.settings.touchpoints},
            "videos_refused": self.hub.media.refusals(),
            "kiosk_sessions": self.kiosk.active(),
            "decide": {
                "policy": self.catalog.scorer.version,
                "rejected_models": self.catalog.rejected_models,
                "engine": dict(self.engine.counts),
                "attribution": dict(self.attribution.counts),
                "context_rejected": dict(self.engine.context.rejected),
            },
            "pos": None
            if self.pos is None
            else {"connected": self.pos.connected.is_set(), **self.pos.counts, "rejected": dict(self.pos.rejected)},
            "ble": self.ble.health() if self.ble is not None else None,
            **({"ble_reports": self._reports_health()} if self.reports is not None else {}),
            **({"zone_beacon": self.zone_beacon.health()} if self.zone_beacon is not None else {}),
            "roster": self.roster_age.health(),
            **({"vision": self.vision.health()} if self.vision is not None else {}),
            **({"peers": dict(self.peers.counts)} if self.peers is not None else {}),
            **({"host_notices": dict(self.notices.counts)} if self.notices is not None else {}),
            **({"remote_scanners": self.remote_scanners.health()} if self.remote_scanners is not None else {}),
            **({"esphome_proxies": self.esphome_proxies.health()} if self.esphome_proxies is not None else {}),
        }

    def metrics(self) -> Iterator[Metric]:
        """What every component counts (each its own `metrics()`), read at scrape time; a family two components
        share (`edge_ble_node_silent`: scanner nodes and ESPHome proxies) comes out once with both's samples."""
        return _merged(self._metrics())

    def _metrics(self) -> Iterator[Metric]:
        yield from self.bus.metrics()
        for part in (
            self.checkin,
            self.ble,
            self.remote_scanners,
            self.esphome_proxies,
            self.reports,
            self.report_listener,
            self.zone_beacon,
        ):
            if part is not None:
                yield from part.metrics()
        yield from self.engine.metrics()
        yield from self.hub.metrics()
        yield from self.proof.metrics()
        yield from self.plays.metrics()
        yield _counter("edge_http_refused", "HTTP requests refused (4xx), by code", "code", self.http_refused)
        yield from self.store.metrics()
        for other in (self.cloud, self.vision):
            if other is not None:
                yield from other.metrics()
        yield from self.catalog.metrics()
        yield from self.progress.metrics()
        yield _counter("edge_component_restarts", "Component crashes restarted", "component", self.restarts)

    def _reports_health(self) -> dict[str, Any]:
        assert self.reports is not None
        listener = self.report_listener.health() if self.report_listener is not None else {"url": None}
        return {**self.reports.health(), "deferred": self.presence.reports_deferred, "listener": listener}

    def sign_status(self) -> dict[str, Any]:
        return {driver.id: driver.status() for driver in self.signs}


def _merged(families: Iterator[Metric]) -> Iterator[Metric]:
    """Each family once, in the order first seen, with the samples of every component that yields it (a new
    family where two yield one: theirs are left as they were)."""
    seen: dict[str, Metric] = {}
    for family in families:
        first = seen.get(family.name)
        if first is None:
            seen[family.name] = family
            continue
        both = Metric(first.name, first.documentation, first.type, first.unit)
        both.samples = [*first.samples, *family.samples]
        seen[family.name] = both
    return iter(seen.values())


def _counter(name: str, documentation: str, label: str, counts: Counter[str]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=[label])
    for value, n in counts.items():
        family.add_metric([value], n)
    return family
