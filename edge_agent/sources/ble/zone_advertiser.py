"""This host's zone beacon: an iBeacon advertised through BlueZ, whose minor rotates every 10-minute interval.

Why: iPhones cannot advertise the app's rotating token (iOS advertises only a local name and service UUIDs, and
only in the foreground), so the store advertises instead. Each host advertises an iBeacon for its zone — the
chain's app UUID, the store's number as major, `zone_beacons.minor(K, zone, j)` as minor — the app notices it
(region monitoring) and reports what it heard (docs/protocols/app-reports.md). A minor names a zone only around
its interval, so a report naming an old or invented one places nobody.

How: the advert is an `org.bluez.LEAdvertisement1` object on this process's system-bus connection (answered by
a plain message handler: `Properties.GetAll`/`Get`, `Release`), registered with
`org.bluez.LEAdvertisingManager1.RegisterAdvertisement` on `/org/bluez/<adapter>`. bluetoothd reads the
properties when it registers the advert (older versions never again), so at each new interval the advert is
unregistered and a new object, with the new minor, is registered at a fresh path.

Recovery: bluetoothd leaving the bus (restart), the adapter being removed (a USB dongle pulled) or bluetoothd
calling `Release` ends the registration; it is registered again as soon as BlueZ says the adapter is back
(`NameOwnerChanged` of org.bluez, `InterfacesAdded` of the adapter), or after a backoff. A failed registration
is retried with backoff. Each outage is logged once, in one line, and its recovery once; nothing else of the
agent waits on this. Without a system bus the advertiser says so once and keeps retrying slowly.
"""

from __future__ import annotations

import asyncio
import logging
import uuid as uuid_
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from dbus_fast import BusType, Message, MessageFlag, MessageType, Variant
from dbus_fast.aio import MessageBus
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ...clock import Clock
from ...config import Settings
from . import frames, zone_beacons
from .adapter_watch import ADAPTER, RULES
from .bluez_calls import add_match, raise_if_cancelled, wait_event
from .tokens import interval_of

log = logging.getLogger(__name__)

ADVERTISING_MANAGER = "org.bluez.LEAdvertisingManager1"
ADVERTISEMENT = "org.bluez.LEAdvertisement1"
PROPERTIES = "org.freedesktop.DBus.Properties"
OBJECT_ROOT = "/edge_agent/zone_beacon"  # our adverts' object paths: OBJECT_ROOT/advert<n>
# the adapter watch's rules but PropertiesChanged: a powered-off adapter keeps its adverts (the kernel brings
# them back at power on), and discovery stopping is the scanner's business
WATCH_RULES = tuple(rule for rule in RULES if "PropertiesChanged" not in rule)
KEY_BYTES = 32
CALL_TIMEOUT_S = 10.0  # a registration waits for bluetoothd to read the advert back and program the controller
TICK_S = 1.0  # how often the clock is checked for a new interval (and the bus connection for life)
RETRY_MIN_S = 1.0
RETRY_MAX_S = 60.0
NO_BUS_RETRY_S = 60.0  # without a system bus at all (a container, a test host): try again this rarely


@dataclass(frozen=True, slots=True)
class _Advert:
    """One registered (or registering) advert: its object, the interval it stands for, what BlueZ reads."""

    path: str
    interval: int
    minor: int
    properties: dict[str, Variant]


class _Refused(Exception):
    """BlueZ (or the bus) answered the call with a D-Bus error."""

    def __init__(self, reply: Message):
        text = reply.body[0] if reply.signature.startswith("s") and reply.body else ""
        super().__init__(f"{reply.error_name}: {text}".rstrip(": "))
        self.error_name = reply.error_name or ""


class ZoneAdvertiser:
    """Advertises this host's zone beacon for as long as `run()` runs; `health()` and `metrics()` say how."""

    def __init__(self, settings: Settings, key: bytes, clock: Clock):
        zb = settings.ble.zone_beacon
        zone = settings.beacon_zone()
        if zb.uuid is None or zb.major is None or zone is None:
            raise ValueError("a zone beacon needs ble.zone_beacon.uuid, ble.zone_beacon.major and a zone")
        if len(key) != KEY_BYTES:
            raise ValueError(f"the zone-beacon key is {KEY_BYTES} bytes, got {len(key)}")
        self.adapter = settings.ble.adapter
        self.zone = zone
        self.uuid = str(uuid_.UUID(zb.uuid))
        self.major = zb.major
        self.interval_ms = zb.interval_ms
        self.tx_power_dbm = zb.tx_power_dbm
        self.measured_power_dbm = zb.measured_power_dbm
        self._uuid_bytes = uuid_.UUID(zb.uuid).bytes
        self._key = key
        self._clock = clock
        self._manager_path = f"/org/bluez/{self.adapter}"
        self.advertising = False
        self.registrations = 0  # RegisterAdvertisement calls BlueZ accepted (one per interval while all is well)
        self.failures = 0  # registrations refused or failed, and registrations BlueZ dropped
        self.last_error: str | None = None
        self._registered_at: float | None = None  # clock.mono() of the current registration
        self._advert: _Advert | None = None  # the object served on the bus now
        self._serial = 0
        self._trouble: str | None = None  # the outage being retried (logged once), None while all is well
        self._lost = asyncio.Event()  # the registration ended (BlueZ gone, adapter removed, Release)
        self._lost_reason = ""
        self._back = asyncio.Event()  # BlueZ or the adapter (re)appeared

    def advert_data(self, interval: int) -> bytes:
        """The Apple manufacturer data value this host advertises during `interval`."""
        minor = zone_beacons.minor(self._key, self.zone, interval)
        return frames.ibeacon_data(self._uuid_bytes, self.major, minor, self.measured_power_dbm)

    # --- the task ---

    async def run(self) -> None:
        """Advertise forever: (re)connect to the system bus, register, rotate, recover. Never raises but for
        cancellation."""
        while True:
            raise_if_cancelled()
            bus = await self._connect()
            if bus is None:
                await asyncio.sleep(NO_BUS_RETRY_S)
                continue
            try:
                await self._advertise_on(bus)
            finally:
                self._off()
                bus.remove_message_handler(self._on_message)
                bus.disconnect()  # bluetoothd drops the adverts of a client that leaves the bus
            await asyncio.sleep(RETRY_MIN_S)

    async def _connect(self) -> MessageBus | None:
        try:
            async with asyncio.timeout(5.0):
                bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise_if_cancelled()
            self._failed(f"no system D-Bus ({type(exc).__name__}: {exc})", NO_BUS_RETRY_S)
            return None
        bus.add_message_handler(self._on_message)
        try:
            async with asyncio.timeout(5.0):
                for rule in WATCH_RULES:
                    reply = await add_match(bus, rule)
                    if reply is not None and reply.message_type == MessageType.ERROR:
                        raise _Refused(reply)
        except asyncio.CancelledError:
            bus.disconnect()
            raise
        except Exception as exc:
            raise_if_cancelled()
            bus.remove_message_handler(self._on_message)
            bus.disconnect()
            self._failed(f"cannot watch BlueZ on the system D-Bus ({type(exc).__name__}: {exc})", NO_BUS_RETRY_S)
            return None
        return bus

    async def _advertise_on(self, bus: MessageBus) -> None:
        """Register, hold until the next interval or a loss, again; returns when the bus connection is lost."""
        delay = RETRY_MIN_S
        while bus.connected:
            self._lost.clear()
            self._back.clear()
            try:
                advert = await self._register(bus)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                raise_if_cancelled()
                self._failed(_describe(exc), delay)
                await wait_event(self._back, delay)  # or at once when BlueZ says the adapter is back
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            delay = RETRY_MIN_S
            lost = await self._hold(bus, advert)
            if lost is None:  # a new interval: a new minor
                await self._unregister(bus, advert)
                continue
            self._on_lost(lost)
            await wait_event(self._back, RETRY_MIN_S)

    async def _register(self, bus: MessageBus) -> _Advert:
        interval = interval_of(self._clock.unix())
        minor = zone_beacons.minor(self._key, self.zone, interval)
        self._serial += 1
        advert = _Advert(f"{OBJECT_ROOT}/advert{self._serial}", interval, minor, self._properties(interval))
        self._advert = advert  # answered from now on: bluetoothd reads it before it replies
        registered = False
        try:
            async with asyncio.timeout(CALL_TIMEOUT_S):
                await self._manager(bus, "RegisterAdvertisement", "oa{sv}", [advert.path, {}])
            registered = True
        except TimeoutError:
            await self._unregister(bus, advert)  # in case bluetoothd completes it after all
            raise
        finally:
            if not registered and self._advert is advert:
                self._advert = None
        self.registrations += 1
        self.advertising = True
        self._registered_at = self._clock.mono()
        if self.registrations == 1:
            log.info("BLE zone beacon for zone %s advertising on %s (major %d)", self.zone, self.adapter, self.major)
        elif self._trouble is not None:
            log.info("BLE zone beacon for zone %s advertising again on %s", self.zone, self.adapter)
        else:
            log.debug("BLE zone beacon for zone %s: minor %d for interval %d", self.zone, minor, interval)
        self._trouble = None
        return advert

    async def _hold(self, bus: MessageBus, advert: _Advert) -> str | None:
        """Until the interval changes (None) or the registration ends (why)."""
        while True:
            if self._lost.is_set():
                return self._lost_reason
            if not bus.connected:
                return "the system D-Bus connection was lost"
            if interval_of(self._clock.unix()) != advert.interval:
                return None
            await wait_event(self._lost, TICK_S)

    async def _unregister(self, bus: MessageBus, advert: _Advert) -> None:
        """Take the advert off the air; BlueZ may have dropped it already (DoesNotExist), which is fine."""
        self._off()
        try:
            async with asyncio.timeout(CALL_TIMEOUT_S):
                await self._manager(bus, "UnregisterAdvertisement", "o", [advert.path])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise_if_cancelled()
            log.debug("BLE zone beacon: unregistering %s: %s", advert.path, _describe(exc))
        finally:
            if self._advert is advert:
                self._advert = None

    async def _manager(self, bus: MessageBus, member: str, signature: str, body: list[Any]) -> Message:
        return await _call(bus, "org.bluez", self._manager_path, ADVERTISING_MANAGER, member, signature, body)

    # --- state and its one log line ---

    def _off(self) -> None:
        self.advertising = False
        self._registered_at = None

    def _failed(self, why: str, retry_s: float) -> None:
        self.failures += 1
        self.last_error = why
        if self._trouble is None:
            log.warning(
                "BLE zone beacon for zone %s not advertising on %s (%s); retrying when BlueZ and the adapter are "
                "back or in %.0f s, the rest of the agent keeps running",
                self.zone,
                self.adapter,
                why,
                retry_s,
            )
            self._trouble = why
        else:
            log.debug("BLE zone beacon: still not advertising (%s); next try in %.0f s", why, retry_s)

    def _on_lost(self, why: str) -> None:
        self._off()
        self._advert = None
        self.failures += 1
        self.last_error = why
        self._trouble = why
        log.warning(
            "BLE zone beacon for zone %s stopped on %s: %s; registering again as soon as it is back",
            self.zone,
            self.adapter,
            why,
        )

    # --- the D-Bus side: our advert object and BlueZ's signals ---

    def _properties(self, interval: int) -> dict[str, Variant]:
        props = {
            "Type": Variant("s", "broadcast"),  # non-connectable: nothing to pair with, no GATT
            "ManufacturerData": Variant("a{qv}", {frames.APPLE: Variant("ay", self.advert_data(interval))}),
            "MinInterval": Variant("u", self.interval_ms),  # read by BlueZ ≥ 5.57 with the kernel's extended calls
            "MaxInterval": Variant("u", self.interval_ms),
        }
        if self.tx_power_dbm is not None:
            props["TxPower"] = Variant("n", self.tx_power_dbm)
        return props

    def _on_message(self, msg: Message) -> Message | bool | None:
        if msg.message_type == MessageType.SIGNAL:
            self._on_signal(msg)
            return None
        if msg.message_type != MessageType.METHOD_CALL or not (msg.path or "").startswith(OBJECT_ROOT + "/"):
            return None
        reply = self._answer(msg)
        if msg.flags & MessageFlag.NO_REPLY_EXPECTED:
            return True  # handled; bluetoothd sends Release without waiting for an answer
        return reply

    def _answer(self, msg: Message) -> Message:
        advert = self._advert
        if advert is None or msg.path != advert.path:
            return Message.new_error(msg, "org.freedesktop.DBus.Error.UnknownObject", f"no advert at {msg.path}")
        if msg.interface == PROPERTIES and msg.member == "GetAll" and msg.signature == "s":
            if msg.body[0] != ADVERTISEMENT:
                return Message.new_error(msg, "org.freedesktop.DBus.Error.InvalidArgs", f"no interface {msg.body[0]}")
            return Message.new_method_return(msg, "a{sv}", [advert.properties])
        if msg.interface == PROPERTIES and msg.member == "Get" and msg.signature == "ss":
            value = advert.properties.get(msg.body[1]) if msg.body[0] == ADVERTISEMENT else None
            if value is None:
                return Message.new_error(msg, "org.freedesktop.DBus.Error.InvalidArgs", f"no property {msg.body[1]}")
            return Message.new_method_return(msg, "v", [value])
        if msg.interface == PROPERTIES and msg.member == "Set" and msg.signature == "ssv":
            # bluetoothd tells the advert the TX power the controller chose (extended advertising)
            if msg.body[0] == ADVERTISEMENT and msg.body[1] == "TxPower":
                log.debug("BLE zone beacon: the adapter transmits at %s dBm", msg.body[2].value)
                return Message.new_method_return(msg)
            return Message.new_error(msg, "org.freedesktop.DBus.Error.PropertyReadOnly", f"{msg.body[1]} is read-only")
        if msg.interface in (ADVERTISEMENT, None) and msg.member == "Release" and msg.signature == "":
            self._lose("BlueZ released the advert")
            return Message.new_method_return(msg)
        return Message.new_error(msg, "org.freedesktop.DBus.Error.UnknownMethod", f"no {msg.member} on the advert")

    def _on_signal(self, msg: Message) -> None:
        body = msg.body
        if msg.member == "NameOwnerChanged" and len(body) == 3 and body[0] == "org.bluez":
            if body[2]:
                self._back.set()
            else:
                self._lose("bluetoothd left the bus")
            return
        if msg.member not in ("InterfacesAdded", "InterfacesRemoved") or len(body) != 2:
            return
        if body[0] != self._manager_path or not {ADAPTER, ADVERTISING_MANAGER} & set(body[1]):
            return
        if msg.member == "InterfacesRemoved":
            self._lose("the adapter was removed")
        else:
            self._back.set()

    def _lose(self, why: str) -> None:
        if not self._lost.is_set():
            self._lost_reason = why
            self._lost.set()

    # --- what it tells ---

    def minor(self) -> int:
        """The minor of the interval now (what is advertised, or would be)."""
        return zone_beacons.minor(self._key, self.zone, interval_of(self._clock.unix()))

    def health(self) -> dict[str, Any]:
        since = None if self._registered_at is None else round(self._clock.mono() - self._registered_at, 1)
        return {
            "advertising": self.advertising,
            "adapter": self.adapter,
            "zone": self.zone,
            "uuid": self.uuid,
            "major": self.major,
            "minor": self.minor(),
            "interval_ms": self.interval_ms,
            "tx_power_dbm": self.tx_power_dbm,
            "measured_power_dbm": self.measured_power_dbm,
            "registrations": self.registrations,
            "failures": self.failures,
            "since": since,
            "last_error": self.last_error,
        }

    def metrics(self) -> Iterator[Metric]:
        advertising = GaugeMetricFamily(
            "edge_ble_zone_beacon_advertising",
            "1 while this host's zone beacon is registered with BlueZ",
            labels=["zone"],
        )
        advertising.add_metric([self.zone], int(self.advertising))
        yield advertising
        registrations = CounterMetricFamily(
            "edge_ble_zone_beacon_registrations",
            "Zone beacon adverts BlueZ accepted (one per interval)",
            labels=["zone"],
        )
        registrations.add_metric([self.zone], self.registrations)
        yield registrations
        failures = CounterMetricFamily(
            "edge_ble_zone_beacon_failures", "Zone beacon registrations refused, failed or dropped", labels=["zone"]
        )
        failures.add_metric([self.zone], self.failures)
        yield failures


async def _call(
    bus: MessageBus, destination: str, path: str, interface: str, member: str, signature: str, body: list[Any]
) -> Message:
    """A method call's reply; a D-Bus error reply raises `_Refused`."""
    msg = Message(
        destination=destination, path=path, interface=interface, member=member, signature=signature, body=body
    )
    reply = await bus.call(msg)
    if reply.message_type == MessageType.ERROR:
        raise _Refused(reply)
    return reply


def _describe(exc: BaseException) -> str:
    if isinstance(exc, _Refused):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return "no answer from BlueZ"
    return f"{type(exc).__name__}: {exc}"
