"""What comes down from the cloud: signed bundles and rosters, commands, context.

Every message is checked before it touches anything: each is a signed envelope bound to this store
(envelope.py), verified before its payload is parsed (bundles in an executor thread), and bundles apply
atomically. A command must name this device (or `*` on the store-wide topic), is carried out once (its id is
kept across restarts) and, while the clock is synced, only within `COMMAND_MAX_AGE_S` of being issued; context
only moves to a newer version. Refused messages leave the last good state in place; they are counted by
reason, logged with their reason (never their content) and acknowledged up as rejected on the `ack` stream.
A message is acknowledged to the broker only once it has been handled, so a crash in between means the broker
sends it again.

A full or failing disk is not a verdict on the message: a bundle or an erasure the database cannot take is kept,
unacknowledged, and tried again every `STORAGE_RETRY_S` until it goes through; the messages after it wait behind
it, so a roster delta never overtakes the bundle it builds on. An erasure clears every room's memory at once,
and its rows and receipt follow once the disk has room.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import uuid
from collections import Counter, deque
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from .. import json_input
from ..bus import Bus
from ..clock import Clock
from ..config import ConfigError, Settings, with_screens
from ..events import AppReportRelayed, ContextUpdate, Erased, OffersChanged, ScreenReload, ShowRequested
from ..keys import DeviceKey, public_keys
from ..mqtt import SESSION_EXPIRY_S, Incoming, MqttLink
from ..store import Store
from ..store.bundles import (
    OfferBundle,
    RosterBundle,
    RosterDelta,
    StaleBundle,
    apply_offers,
    apply_roster,
    apply_roster_delta,
)
from ..store.erasure import erase_customer
from ..store.faults import StorageRefused, is_storage_error
from ..store.outbox import DropClass
from . import sealed
from .commands import COMMAND, Command, Erase, Ping, Reload, ReloadScreen, ShowOffer
from .desired import DesiredConfig
from .envelope import BundleRejected, describe, open_envelope, parse_payload
from .topics import Down, Topics

log = logging.getLogger(__name__)

ACK_STREAM = "ack"
MAX_SMALL = 64 * 1024  # commands and context, envelope included
COMMAND_MAX_AGE_S = SESSION_EXPIRY_S + 86_400  # the broker queues commands this long for a host that is away
CONTEXT_MAX_AGE_S = 86_400  # weather and local events of yesterday are not context
MAX_SKEW_S = 300  # a message issued this far in the future is refused (when this host's clock is synced)


class Refusal(Exception):
    """A downlink message that must not be carried out: `code` for counters and acks, `reason` for people."""

    def __init__(self, code: str, reason: str, command_id: str | None = None):
        super().__init__(reason)
        self.code, self.reason, self.command_id = code, reason, command_id


STORAGE_RETRY_S = 2.0
MAX_WAITING = 1000  # messages held behind one a full disk refused; the broker keeps the rest


class ContextPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Annotated[int, Field(ge=1)]  # newer replaces older; the retained copy seen again changes nothing
    issued_at: AwareDatetime
    weather: dict[str, Any] = Field(default_factory=dict)
    local_events: list[dict[str, Any]] = Field(default_factory=list, max_length=200)


_BUNDLES: dict[Down, tuple[str, type[BaseModel], Callable[..., list[str] | None]]] = {
    Down.OFFERS: ("offers", OfferBundle, apply_offers),
    Down.ROSTER: ("roster", RosterBundle, apply_roster),
    Down.ROSTER_DELTA: ("roster_delta", RosterDelta, apply_roster_delta),
}


def _verified(
    data: bytes,
    kind: str,
    store: str,
    keys: list[Ed25519PublicKey],
    max_bytes: int,
    model: type[BaseModel],
    device: tuple[str, DeviceKey | None],
) -> BaseModel:
    """Signature, then schema, then this host's copy of a roster's secrets opened: runs in a thread, so a large
    roster never stalls the loop."""
    bundle = parse_payload(open_envelope(data, kind, store, keys, max_bytes), model)
    if not isinstance(bundle, RosterBundle | RosterDelta) or not _opens(bundle, device):
        return bundle
    device_id, key = device
    assert key is not None
    opened = sealed.open_secrets(
        bundle.sealed[device_id], key.seal_key, store=store, kind=kind, version=bundle.version, device=device_id
    )
    if isinstance(bundle, RosterBundle):
        return bundle.model_copy(update={"customers": sealed.with_secrets(bundle.customers, opened)})
    return bundle.model_copy(update={"upsert": sealed.with_secrets(bundle.upsert, opened)})


def _opens(bundle: RosterBundle | RosterDelta, device: tuple[str, DeviceKey | None]) -> bool:
    """Whether this host has a copy of the roster's secrets and the key to open it."""
    device_id, key = device
    return key is not None and device_id in bundle.sealed


class Downlink:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        bus: Bus,
        clock: Clock,
        link: MqttLink,
        desired: DesiredConfig,
        device_key: DeviceKey | None = None,
    ):
        assert settings.mqtt is not None
        self._settings = settings
        self._device = (settings.store.device_id, device_key)
        self._max_bytes = settings.mqtt.max_bundle_bytes
        self._keys = public_keys(settings.mqtt.bundle_public_keys)
        self._store = store
        self._bus = bus
        self._clock = clock
        self._link = link
        self._desired = desired
        self._topics = Topics(settings.mqtt.topic_prefix, settings.store.id, settings.store.device_id)
        self._context_version = 0
        self._waiting: deque[Incoming] = deque()  # in arrival order; the first one was refused by a full disk
        self._cleared: set[str] = set()  # erasures whose memory is cleared and whose rows wait for room
        self._unreported: set[tuple[str, int]] = set()  # bundles applied whose result a full disk refused
        self.counts: Counter[str] = Counter()

    async def run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(STORAGE_RETRY_S if self._waiting else None):
                    message = await self._link.inbox.get()
            except TimeoutError:
                await self._handle_waiting()
                continue
            if len(self._waiting) >= MAX_WAITING:
                self.counts["storage_waiting_dropped"] += 1  # unacknowledged: the broker sends it again
                continue
            self._waiting.append(message)
            if len(self._waiting) > 1 and (erase := self._erasure_in(message)) is not None:
                self._clear_memory(erase)  # waiting behind a refused message, but its memory goes now
            await self._handle_waiting()

    def _erasure_in(self, message: Incoming) -> Erase | None:
        if self._topics.classify(message.topic) is not Down.CMD:
            return None
        try:
            command = self._open_command(message.payload, message.topic)
        except Refusal:
            return None  # refused with its reason when its turn comes
        return command if isinstance(command, Erase) else None

    async def _handle_waiting(self) -> None:
        """Handle the waiting messages in order, up to one the disk refuses again."""
        while self._waiting:
            message = self._waiting[0]
            try:
                await self.handle(message)
            except StorageRefused:
                self.counts["storage_refused"] += 1  # counted and logged by the store
                return
            except Exception as exc:
                if is_storage_error(exc):
                    self._store.faults.failed("cloud.downlink", exc)
                    self.counts["storage_refused"] += 1
                    return
                self.counts["errors"] += 1
                log.exception("handling a message on %s failed; the last good state stays", message.topic)
            self._waiting.popleft()
            self._link.ack(message)

    async def handle(self, message: Incoming) -> None:
        kind = self._topics.classify(message.topic)
        if kind is None:
            self.counts["unknown_topic"] += 1
            return
        if not message.payload:
            self.counts[f"{kind.value}:cleared"] += 1  # a retained message being removed, nothing to apply
            return
        if kind in _BUNDLES:
            await self._bundle(kind, message.payload)
        elif kind is Down.CMD:
            self._command(message.payload, message.topic)
        elif kind is Down.CONFIG:
            self._desired.handle(message.payload)
        elif kind is Down.BLE_REPORT:
            self._app_report(message.payload)
        else:
            self._context(message.payload)

    # --- bundles -------------------------------------------------------------------------------------

    async def _bundle(self, topic: Down, data: bytes) -> None:
        kind, model, apply = _BUNDLES[topic]
        loop = asyncio.get_running_loop()
        try:
            bundle: Any = await loop.run_in_executor(
                None, _verified, data, kind, self._settings.store.id, self._keys, self._max_bytes, model, self._device
            )
        except BundleRejected as exc:
            self._bundle_rejected(kind, exc.version, exc.code, exc.reason)
            return
        if isinstance(bundle, RosterBundle | RosterDelta) and bundle.sealed and not _opens(bundle, self._device):
            self.counts[f"{kind}:secrets_not_for_this_host"] += 1
            log.warning(
                "%s version %d has no secrets this host can open (sealed for %s; this host %s, device key %s): "
                "BLE and faces identify nobody from it",
                kind,
                bundle.version,
                ", ".join(sorted(bundle.sealed)),
                self._device[0],
                "configured" if self._device[1] is not None else "not configured (store.device_key_file)",
            )
        versions = self._store.bundle_versions
        in_force = versions.current("offers" if kind == "offers" else "roster")
        if topic is not Down.ROSTER_DELTA and bundle.version == in_force:
            if (kind, bundle.version) in self._unreported:  # applied, but a full disk refused the result
                self._report_applied(kind, bundle.version)
            self.counts[f"{kind}:unchanged"] += 1  # the retained copy again, after a reconnect
            return
        if isinstance(bundle, OfferBundle) and (problem := self._screens_problem(bundle)) is not None:
            self._bundle_rejected(kind, bundle.version, "bad_screens", problem)
            return
        now = self._clock.wall().iso()
        store = self._store
        target = store.offers if kind == "offers" else store.roster
        try:
            gone = apply(store.db, versions, target, bundle, now)
        except StaleBundle as exc:
            self._bundle_rejected(kind, bundle.version, "stale", str(exc))
            return
        except sqlite3.IntegrityError as exc:
            self._bundle_rejected(kind, bundle.version, "unapplicable", f"the database refused it ({exc})")
            return
        if kind == "offers":
            self._bus.publish(OffersChanged(bundle.version))
        self._forget(gone or [])
        self.counts[f"{kind}:applied"] += 1
        log.info("applied %s bundle version %d", kind, bundle.version)
        self._unreported.add((kind, bundle.version))
        self._report_applied(kind, bundle.version)

    def _screens_problem(self, bundle: OfferBundle) -> str | None:
        """Why the bundle's screen content cannot run in this store (a touchpoint, layout or campaign it does not
        have, an item id twice), or None."""
        if bundle.screens is None:
            return None
        screens = bundle.screens
        try:
            with_screens(self._settings, screens.playlists, screens.campaigns, screens.layouts, "screens")
        except ConfigError as exc:
            return str(exc)
        return None

    def _report_applied(self, kind: str, version: int) -> None:
        self._ack("bundle_result", {"bundle": kind, "version": version, "status": "applied"})
        self._unreported.discard((kind, version))

    def _bundle_rejected(self, kind: str, version: int | None, code: str, reason: str) -> None:
        self.counts[f"{kind}:rejected:{code}"] += 1
        log.warning("rejected %s bundle (version %s): %s: %s", kind, version, code, reason)
        self._ack(
            "bundle_result",
            {"bundle": kind, "version": version, "status": "rejected", "code": code, "reason": reason},
        )

    # --- commands ------------------------------------------------------------------------------------

    def _open_command(self, data: bytes, topic: str) -> Command:
        """The verified command on `topic`: signed for this store, for this device (or `*` on the store-wide
        topic), neither too old nor from the future; Refusal saying why otherwise."""
        try:
            raw = json_input.loads(open_envelope(data, "command", self._settings.store.id, self._keys, MAX_SMALL))
        except BundleRejected as exc:
            raise Refusal(exc.code, exc.reason) from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise Refusal("invalid", f"the signed payload is not JSON ({exc})") from None
        command_id = (
            raw["command_id"][:128] if isinstance(raw, dict) and isinstance(raw.get("command_id"), str) else None
        )
        try:
            command = COMMAND.validate_python(raw)
        except ValidationError as exc:
            raise Refusal("invalid", describe(exc), command_id) from None
        wanted = "*" if topic.endswith("/cmd/*") else self._settings.store.device_id
        if command.device != wanted:
            raise Refusal("wrong_device", f"for device {command.device!r}, sent on the topic of {wanted!r}", command_id)
        self._check_age(command.issued_at, COMMAND_MAX_AGE_S, command_id)
        return command

    def _check_age(self, issued_at: datetime, max_age_s: float, command_id: str | None = None) -> None:
        wall = self._clock.wall()
        if not wall.ntp_synced:
            return  # without a synced clock, age means nothing: replays are caught by id or version alone
        age = (wall.at - issued_at).total_seconds()
        if age > max_age_s or age < -MAX_SKEW_S:
            raise Refusal("stale", f"issued {age:.0f} s ago, outside -{MAX_SKEW_S}..{max_age_s:.0f} s", command_id)

    def _command(self, data: bytes, topic: str) -> None:
        try:
            command = self._open_command(data, topic)
        except Refusal as exc:
            self._reject_command(exc.command_id, exc.code, exc.reason)
            return
        if self._store.command_ids.seen(command.command_id):
            self.counts["cmd:duplicate"] += 1
            self._ack("command_result", {"command_id": command.command_id, "status": "duplicate"})
            return
        if isinstance(command, ShowOffer) and (problem := self._show_problem(command)) is not None:
            self._reject_command(command.command_id, "unshowable", problem)
        elif isinstance(command, ReloadScreen) and not self._is_screen(command.touchpoint):
            self._reject_command(command.command_id, "not_a_screen", f"no screen {command.touchpoint!r} here")
        else:
            self._carry_out(command)
            self.counts[f"cmd:{command.type}"] += 1
        # only once carried out: a full disk's refusal is retried; kept as long as the command could be accepted
        expires = command.issued_at.timestamp() + COMMAND_MAX_AGE_S
        self._store.command_ids.claim(command.command_id, max(expires, self._clock.unix() + COMMAND_MAX_AGE_S))
        self._store.command_ids.prune(self._clock.unix())

    def _carry_out(self, command: Command) -> None:
        if isinstance(command, Erase):
            self._erase(command)
        elif isinstance(command, Reload):
            self._bus.publish(OffersChanged(self._store.bundle_versions.current("offers")))
            result = {"command_id": command.command_id, "status": "ok", "offers": self._store.offers.count()}
            self._ack("command_result", result)
        elif isinstance(command, ShowOffer):
            self._show(command)
        elif isinstance(command, ReloadScreen):
            self._bus.publish(ScreenReload(command.touchpoint))
            self._ack("command_result", {"command_id": command.command_id, "status": "ok"})
        elif isinstance(command, Ping):
            self._ack("command_result", {"command_id": command.command_id, "status": "ok", "pong": True})

    def _reject_command(self, command_id: str | None, code: str, reason: str) -> None:
        self.counts[f"cmd:rejected:{code}"] += 1
        log.warning("rejected a command (id %s): %s: %s", command_id, code, reason)
        self._ack("command_result", {"command_id": command_id, "status": "rejected", "code": code, "reason": reason})

    def _erase(self, command: Erase) -> None:
        """Every room's memory, then rows and receipt in one transaction, all before the drain can run: the receipt
        goes up only once nothing of the customer is left in memory or on disk. Memory goes at once, even when a
        full disk makes the rows and receipt wait for a retry."""
        self._clear_memory(command)
        deleted = erase_customer(
            self._store.db,
            self._store.outbox,
            command.customer_ref,
            receipt={"command_id": command.command_id, "status": "done", "consent_epoch": command.consent_epoch},
            now=self._clock.wall().iso(),
        )
        self._cleared.discard(command.command_id)
        log.info("erased a customer on command %s: %d rows", command.command_id, sum(deleted.values()))

    def _clear_memory(self, command: Erase) -> None:
        if command.command_id not in self._cleared:
            self._forget([command.customer_ref])
            self._cleared.add(command.command_id)

    def _forget(self, refs: list[str]) -> None:
        """Erased or dropped from the roster: the bus's handlers clear every room's memory before this returns."""
        wall = self._clock.wall()
        for ref in refs:
            self._bus.publish(Erased(ref, wall))

    def _show_problem(self, command: ShowOffer) -> str | None:
        """Why this store cannot show that offer there (counted and acknowledged as rejected), or None."""
        if self._settings.zone_of(command.touchpoint) is None:
            return f"no touchpoint {command.touchpoint!r} here"
        if self._store.offers.get(command.offer_id) is None:
            return f"no offer {command.offer_id!r} in the catalogue"
        return None

    def _is_screen(self, touchpoint: str) -> bool:
        return any(tp.id == touchpoint and tp.kind == "screen" for tp in self._settings.touchpoints)

    def _show(self, command: ShowOffer) -> None:
        """`decide/` logs the show as a decision and shows it before this returns; a refused write raises."""
        show_id = uuid.uuid4().hex
        self._bus.publish(ShowRequested(command.touchpoint, command.offer_id, command.command_id, show_id))
        self._ack("command_result", {"command_id": command.command_id, "status": "ok", "show_id": show_id})

    # --- app reports ---------------------------------------------------------------------------------

    def _app_report(self, data: bytes) -> None:
        """A phone's report of the store's beacons, relayed by the cloud: its envelope is opened here (a refused one
        is acknowledged up, as every downlink refusal), the report itself (the customer's own tag) is verified by
        the BLE report intake, like one sent over Wi-Fi, and counted there."""
        try:
            payload = open_envelope(data, "ble_report", self._settings.store.id, self._keys, MAX_SMALL)
        except BundleRejected as exc:
            self.counts[f"ble_report:rejected:{exc.code}"] += 1
            log.warning("rejected a relayed app report: %s: %s", exc.code, exc.reason)
            self._ack("ble_report_result", {"status": "rejected", "code": exc.code, "reason": exc.reason})
            return
        self.counts["ble_report:relayed"] += 1
        self._bus.publish(AppReportRelayed(payload))

    # --- context -------------------------------------------------------------------------------------

    def _context(self, data: bytes) -> None:
        try:
            payload = open_envelope(data, "context", self._settings.store.id, self._keys, MAX_SMALL)
            context = parse_payload(payload, ContextPayload)
            if context.version < self._context_version:
                raise Refusal("stale", f"version {context.version} is older than {self._context_version}, in force")
            self._check_age(context.issued_at, CONTEXT_MAX_AGE_S)
        except (BundleRejected, Refusal) as exc:
            self.counts[f"context:rejected:{exc.code}"] += 1
            log.warning("rejected a context update: %s: %s", exc.code, exc.reason)
            self._ack("context_result", {"status": "rejected", "code": exc.code, "reason": exc.reason})
            return
        if context.version == self._context_version:
            self.counts["context:unchanged"] += 1  # the retained copy again, after a reconnect
            return
        self._context_version = context.version
        self.counts["context:applied"] += 1
        self._bus.publish(
            ContextUpdate(weather=context.weather, local_events=tuple(context.local_events), wall=self._clock.wall())
        )

    def _ack(self, kind: str, payload: dict[str, Any]) -> None:
        wall = self._clock.wall()
        with self._store.db.atomic():
            self._store.outbox.add(
                stream=ACK_STREAM, kind=kind, payload=payload, created_at=wall.iso(), drop_class=DropClass.EVENT
            )
