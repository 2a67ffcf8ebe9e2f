"""BLE: adverts heard by this host's adapter (bleak) or by scanner nodes → Sightings of consenting customers.

The bleak callback does one thing: copy RSSI and advert data (never the address) into a bounded queue, O(1).
A task on the loop drains the queue: recognise the frame, resolve the token among consenting customers'
tokens, publish a Sighting. An unknown token is dropped with no trace but a counter. A missing adapter or a
restarted BlueZ is logged in one clear line and retried with backoff; the rest of the agent keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ...bus import Bus
from ...clock import Clock
from ...config import Settings
from ...events import Channel, ConsentChanged, Customer, Erased, Sighting
from ...ops.progress import Progress
from ...radio.beacon_offsets import BeaconLevels
from ...store import Store
from ...store.faults import StorageRefused
from ..roster_age import RosterAge
from . import frames
from .bluez_calls import raise_if_cancelled, wait_event
from .tokens import TokenResolver, days_around, interval_of

if TYPE_CHECKING:
    from .adapter_watch import AdapterWatch

log = logging.getLogger(__name__)

DRAIN_BATCH = 512  # adverts handled before yielding to the loop
REFRESH_S = 2.0  # how often the roster fingerprint and the token interval are checked


@dataclass(frozen=True, slots=True)
class Advert:
    """One received advert as the agent keeps it: no address, nothing that names the phone."""

    receiver: str
    mono: float
    rssi: float
    manufacturer_data: Mapping[int, bytes] = field(default_factory=dict)
    service_data: Mapping[str, bytes] = field(default_factory=dict)
    tx_power: int | None = None


class AdvertResolver:
    """Advert → Sighting, synchronous and without I/O: the hot path the benchmark measures."""

    def __init__(self, settings: Settings, clock: Clock, roster_age: RosterAge | None = None):
        self._roster_age = roster_age
        self._company_id = settings.ble.company_id
        self._zone_of = {r.id: r.zone for r in settings.ble.receivers}
        self._clock = clock
        self._store_beacons = frozenset(settings.ble.beacons)
        self._by_model = settings.ble.reference_by_model
        self._reference: dict[str, float] = {}
        self.tokens = TokenResolver()
        self.counts: Counter[str] = Counter()
        self.beacons = BeaconLevels(settings.ble, settings.ble.receiver_id or settings.store.device_id)

    def handle(self, advert: Advert) -> Sighting | None:
        frame = frames.token_in(advert.manufacturer_data, self._company_id)
        if frame is not None:
            customer_ref = self.tokens.resolve(frame.token)
            if customer_ref is None:
                self.counts["unknown_token"] += 1
                return None
            if self._roster_age is not None and self._roster_age.stale():
                self.counts["refused_stale_roster"] += 1
                self._roster_age.refuse()
                return None
            zone = self._zone_of.get(advert.receiver)
            if zone is None:
                self.counts["unknown_receiver"] += 1
                return None
            self.counts["resolved"] += 1
            ref_dbm = self._reference.get(customer_ref)
            if ref_dbm is None and frame.measured_power is not None:
                ref_dbm = float(frame.measured_power)  # what the app says it reads at 1 m (iBeacon shape)
            elif ref_dbm is None and advert.tx_power is not None:
                ref_dbm = float(advert.tx_power - frames.FIRST_METRE_DB)  # the phone's TX power level at 0 m
            return Sighting(
                Customer(customer_ref),
                zone,
                Channel.BLE,
                mono=advert.mono,
                wall=self._clock.wall(),
                rssi=advert.rssi,
                receiver=advert.receiver,
                ref_dbm=ref_dbm,
            )
        beacon = frames.ibeacon_in(advert.manufacturer_data) or frames.eddystone_in(advert.service_data)
        if beacon is None or beacon.beacon_id not in self._store_beacons:  # a phone may beacon too: not ours
            self.counts["other"] += 1
            return None
        self.counts["beacon"] += 1
        self.beacons.record(beacon.beacon_id, advert.receiver, advert.rssi, beacon.measured_power, advert.mono)
        return None

    def forget(self, customer_ref: str) -> None:
        self.tokens.forget(customer_ref)
        self._reference.pop(customer_ref, None)

    def rebuild(self, keys: Mapping[str, Mapping[str, bytes]], models: Mapping[str, str], unix: float) -> None:
        """New token table and per-customer calibration, from consenting customers' keys and phone models."""
        self.tokens.rebuild(keys, unix)
        self._reference = {
            ref: self._by_model[model] for ref, model in models.items() if ref in keys and model in self._by_model
        }


class BleSource:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        bus: Bus,
        clock: Clock,
        progress: Progress | None = None,
        roster_age: RosterAge | None = None,
    ):
        self._cfg = settings.ble
        self._scan = settings.sources.ble
        self.receiver_id = settings.ble.receiver_id or settings.store.device_id
        self._store = store
        self._bus = bus
        self._clock = clock
        self.resolver = AdvertResolver(settings, clock, roster_age)
        self._queue: deque[Advert] = deque(maxlen=settings.ble.queue_size)
        self._wake = asyncio.Event()
        self._fingerprint: tuple[Any, ...] | None = None
        self._forgotten: set[str] = set()  # since the table being rebuilt was read: not to come back with it
        bus.on(Erased, "ble", lambda e: self.forget(e.customer_ref))
        bus.on(ConsentChanged, "ble", self._on_consent)
        self.dropped = 0
        self.last_advert = float("-inf")
        self.scanning = False
        self.scan_failures = 0
        self.adapter_losses = 0  # BlueZ said the adapter went away while scanning
        self._progress = progress
        if progress is not None:  # a vital part: adverts waiting and none handled for too long stalls the agent
            progress.watch("ble", max_silence_s=settings.ops.stall_after_s, pending=lambda: len(self._queue))

    def reconfigure(self, live: Settings) -> None:
        """A fleet desired config: the beacons' offsets are worked out with its path-loss exponent from now on."""
        self.resolver.beacons.reconfigure(live.ble)

    def forget(self, customer_ref: str) -> None:
        """Erased or BLE withdrawn: their tokens stop resolving at once, not at the next roster poll."""
        self.resolver.forget(customer_ref)
        self._forgotten.add(customer_ref)

    def _on_consent(self, change: ConsentChanged) -> None:
        if change.channel == Channel.BLE and not change.granted:
            self.forget(change.customer_ref)

    # --- the O(1) hand-over from bleak and from remote scanners ---

    def enqueue(self, advert: Advert) -> None:
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append(advert)
        if not self._wake.is_set():
            self._wake.set()

    def _on_detect(self, _device: Any, data: Any) -> None:
        """bleak's detection callback: only what the agent needs, never the device or its address."""
        now = self._clock.mono()
        self.last_advert = now
        self.enqueue(Advert(self.receiver_id, now, data.rssi, data.manufacturer_data, data.service_data, data.tx_power))

    # --- the tasks ---

    async def run(self) -> None:
        await self.refresh(force=True)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._drain_forever(), name="ble.drain")
            tg.create_task(self._refresh_forever(), name="ble.refresh")
            if self._scan:
                tg.create_task(self._scan_forever(), name="ble.scan")

    def drain(self) -> int:
        """Handle up to one batch of queued adverts; returns how many."""
        handled = 0
        queue, handle, publish = self._queue, self.resolver.handle, self._bus.publish
        while queue and handled < DRAIN_BATCH:
            sighting = handle(queue.popleft())
            if sighting is not None:
                publish(sighting)
            handled += 1
        return handled

    async def _drain_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.drain():
                if self._progress is not None:
                    self._progress.beat("ble")
                await asyncio.sleep(0)

    async def refresh(self, *, force: bool = False) -> bool:
        """Rebuild token → customer when the roster changed or a new 10-minute interval began.

        The database is read here, on the loop; the AES work runs in a worker thread, so thousands of
        customers never hold up the adverts and screens meanwhile."""
        now = self._clock.unix()
        fingerprint = self._store.roster.fingerprint()
        tokens = self.resolver.tokens
        new_interval = tokens.interval != interval_of(now)
        if not force and not new_interval and fingerprint == self._fingerprint:
            return False
        if new_interval:
            yesterday = days_around(now, before=1, after=0)[0]
            with contextlib.suppress(StorageRefused), self._store.faults.writing("ble.prune"):
                self._store.roster.prune_day_keys(yesterday)  # with the disk full, at the next interval
        keys = self._store.roster.ble_day_keys(TokenResolver.days_needed(now))
        models = self._store.roster.ble_phone_models()
        read = self._store.roster.fingerprint()
        self._forgotten.clear()
        await asyncio.get_running_loop().run_in_executor(None, self.resolver.rebuild, keys, models, now)
        for ref in self._forgotten:  # forgotten while the table was built from what was read before
            self.resolver.forget(ref)
        self._fingerprint = read  # a change made meanwhile has another fingerprint: rebuilt next time
        log.debug("BLE tokens rebuilt: %d customers", len(keys))
        return True

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            await self.refresh()

    async def _scan_forever(self) -> None:
        from bleak import BleakScanner

        from .adapter_watch import AdapterWatch

        # bleak's debug lines print every device's address and advert: they must never reach a log
        bleak_log = logging.getLogger("bleak")
        bleak_log.setLevel(max(bleak_log.getEffectiveLevel(), logging.INFO))
        delay = 1.0
        last_stall: float | None = None
        while True:
            raise_if_cancelled()
            scanner = BleakScanner(
                detection_callback=self._on_detect,
                scanning_mode="active",
                bluez={"adapter": self._cfg.adapter, "filters": {"DuplicateData": True}},
            )
            async with AdapterWatch(self._cfg.adapter) as watch:
                try:
                    await scanner.start()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    raise_if_cancelled()
                    self.scan_failures += 1
                    log.warning(
                        "BLE adapter %s unavailable (%s: %s); retrying when it is back or in %.0f s, "
                        "other sources keep running",
                        self._cfg.adapter,
                        type(exc).__name__,
                        exc,
                        delay,
                    )
                    await wait_event(watch.back, delay)  # or at once when BlueZ says it is back
                    delay = min(delay * 2, 30.0)
                    continue
                self.scanning, delay = True, 1.0
                started = self._clock.mono()
                quiet = last_stall is not None and self.last_advert <= last_stall
                (log.debug if quiet else log.info)(
                    "BLE scanning on %s as receiver %s", self._cfg.adapter, self.receiver_id
                )
                try:
                    lost = await self._until_lost(started, watch)
                finally:
                    self.scanning = False
                    await _stop_quietly(scanner)
            if lost:
                self.adapter_losses += 1
                log.warning("BLE adapter %s: %s; restarting the scan", self._cfg.adapter, watch.reason)
                continue
            quiet = last_stall is not None and self.last_advert <= last_stall
            last_stall = self._clock.mono()
            (log.debug if quiet else log.warning)(  # an empty store at night says so once, not every minute
                "BLE: no advert on %s for %.0f s (BlueZ restarted?); restarting the scan",
                self._cfg.adapter,
                self._cfg.stall_s,
            )

    async def _until_lost(self, started: float, watch: AdapterWatch) -> bool:
        """Wait until BlueZ says the adapter went away (True) or no advert came for `stall_s` (False)."""
        while self._clock.mono() - max(self.last_advert, started) < self._cfg.stall_s:
            if await wait_event(watch.gone, min(1.0, self._cfg.stall_s / 4)):
                return True
        return False

    def health(self) -> dict[str, Any]:
        return {
            "scanning": self.scanning,
            "receiver": self.receiver_id,
            "customers_resolvable": self.resolver.tokens.customers,
            "queue": len(self._queue),
            "dropped": self.dropped,
            "scan_failures": self.scan_failures,
            "adapter_losses": self.adapter_losses,
            "adverts": dict(self.resolver.counts),
            **self.resolver.beacons.health(self._clock.mono()),
        }

    def metrics(self) -> Iterator[Metric]:
        adverts = CounterMetricFamily("edge_ble_adverts", "BLE adverts by what they were", labels=["kind"])
        for kind, n in self.resolver.counts.items():
            adverts.add_metric([kind], n)
        yield adverts
        yield CounterMetricFamily("edge_ble_dropped", "BLE adverts lost to a full queue", value=self.dropped)
        yield GaugeMetricFamily("edge_ble_scanning", "1 while the local adapter scans", value=int(self.scanning))
        beacons = self.resolver.beacons
        heard = GaugeMetricFamily(
            "edge_ble_beacon_mean_dbm", "Mean RSSI of a store beacon at a receiver", labels=["beacon", "receiver"]
        )
        for beacon, by_receiver in beacons.heard.items():
            for receiver, h in by_receiver.items():
                heard.add_metric([beacon, receiver], h.mean)
        yield heard
        suggested = GaugeMetricFamily(
            "edge_ble_offset_suggested_db", "Receiver offset the placed beacons suggest", labels=["receiver"]
        )
        for receiver, offset in beacons.offsets().items():
            suggested.add_metric([receiver], offset)
        yield suggested


async def _stop_quietly(scanner: Any) -> None:
    try:
        await asyncio.wait_for(scanner.stop(), 5.0)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # BlueZ may already be gone; nothing to undo then
        log.debug("BLE scanner stop: %s: %s", type(exc).__name__, exc)
