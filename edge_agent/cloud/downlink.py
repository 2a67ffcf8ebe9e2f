"""What comes down from the cloud: signed bundles and rosters, commands, context.

Every message is checked before it touches anything: bundles are verified (signature first, then the
payload's schema) in an executor thread and applied atomically; anything refused leaves the last good
state in place, is counted, logged with its reason and acknowledged up as rejected on the `ack` stream.
A message is acknowledged to the broker only once it has been handled, so a crash in between means the
broker sends it again.

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
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .. import json_input
from ..bus import Bus
from ..clock import Clock
from ..config import Settings
from ..events import ContextUpdate, Erased, OffersChanged, ShowRequested
from ..keys import public_keys
from ..mqtt import Incoming, MqttLink
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
from .commands import COMMAND, Erase, Ping, Reload, ShowOffer
from .desired import DesiredConfig
from .envelope import BundleRejected, describe, open_envelope, parse_payload
from .topics import Down, Topics

log = logging.getLogger(__name__)

ACK_STREAM = "ack"
MAX_SMALL_MESSAGE = 64 * 1024  # commands and context
REMEMBERED_COMMANDS = 1000
STORAGE_RETRY_S = 2.0
MAX_WAITING = 1000  # messages held behind one a full disk refused; the broker keeps the rest


class ContextPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    weather: dict[str, Any] = Field(default_factory=dict)
    local_events: list[dict[str, Any]] = Field(default_factory=list, max_length=200)


_BUNDLES: dict[Down, tuple[str, type[BaseModel], Callable[..., list[str] | None]]] = {
    Down.OFFERS: ("offers", OfferBundle, apply_offers),
    Down.ROSTER: ("roster", RosterBundle, apply_roster),
    Down.ROSTER_DELTA: ("roster_delta", RosterDelta, apply_roster_delta),
}


def _verified(
    data: bytes, kind: str, keys: list[Ed25519PublicKey], max_bytes: int, model: type[BaseModel]
) -> BaseModel:
    """Signature, then schema: runs in a thread, so a large roster never stalls the loop."""
    return parse_payload(open_envelope(data, kind, keys, max_bytes), model)


class Downlink:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        bus: Bus,
        clock: Clock,
        link: MqttLink,
        desired: DesiredConfig,
    ):
        assert settings.mqtt is not None
        self._settings = settings
        self._max_bytes = settings.mqtt.max_bundle_bytes
        self._keys = public_keys(settings.mqtt.bundle_public_keys)
        self._store = store
        self._bus = bus
        self._clock = clock
        self._link = link
        self._desired = desired
        self._topics = Topics(settings.mqtt.topic_prefix, settings.store.id, settings.store.device_id)
        self._seen_commands: OrderedDict[str, None] = OrderedDict()
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
            command = COMMAND.validate_python(json_input.loads(_small(message.payload)))
        except (ValueError, UnicodeDecodeError, ValidationError):
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
            self._command(message.payload)
        elif kind is Down.CONFIG:
            self._desired.handle(message.payload)
        else:
            self._context(message.payload)

    # --- bundles -------------------------------------------------------------------------------------

    async def _bundle(self, topic: Down, data: bytes) -> None:
        kind, model, apply = _BUNDLES[topic]
        loop = asyncio.get_running_loop()
        try:
            bundle: Any = await loop.run_in_executor(None, _verified, data, kind, self._keys, self._max_bytes, model)
        except BundleRejected as exc:
            self._bundle_rejected(kind, exc.version, exc.code, exc.reason)
            return
        versions = self._store.bundle_versions
        in_force = versions.current("offers" if kind == "offers" else "roster")
        if topic is not Down.ROSTER_DELTA and bundle.version == in_force:
            if (kind, bundle.version) in self._unreported:  # applied, but a full disk refused the result
                self._report_applied(kind, bundle.version)
            self.counts[f"{kind}:unchanged"] += 1  # the retained copy again, after a reconnect
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

    def _command(self, data: bytes) -> None:
        command_id = None
        try:
            raw = json_input.loads(_small(data))
            if isinstance(raw, dict) and isinstance(raw.get("command_id"), str):
                command_id = raw["command_id"][:128]
            command = COMMAND.validate_python(raw)
        except (ValueError, UnicodeDecodeError, ValidationError) as exc:
            self._reject_command(
                command_id, describe(exc) if isinstance(exc, ValidationError) else f"not a command ({exc})"
            )
            return
        if command.command_id in self._seen_commands:
            self.counts["cmd:duplicate"] += 1
            self._ack("command_result", {"command_id": command.command_id, "status": "duplicate"})
            return
        if isinstance(command, ShowOffer) and (problem := self._show_problem(command)) is not None:
            self._reject_command(command.command_id, problem)
        else:
            self._carry_out(command)
            self.counts[f"cmd:{command.type}"] += 1
        self._seen_commands[command.command_id] = None  # only once carried out: a full disk's refusal is retried
        if len(self._seen_commands) > REMEMBERED_COMMANDS:
            self._seen_commands.popitem(last=False)

    def _carry_out(self, command: Erase | Reload | ShowOffer | Ping) -> None:
        if isinstance(command, Erase):
            self._erase(command)
        elif isinstance(command, Reload):
            self._bus.publish(OffersChanged(self._store.bundle_versions.current("offers")))
            result = {"command_id": command.command_id, "status": "ok", "offers": self._store.offers.count()}
            self._ack("command_result", result)
        elif isinstance(command, ShowOffer):
            self._show(command)
        elif isinstance(command, Ping):
            self._ack("command_result", {"command_id": command.command_id, "status": "ok", "pong": True})

    def _reject_command(self, command_id: str | None, reason: str) -> None:
        self.counts["cmd:rejected"] += 1
        log.warning("rejected a command (id %s): %s", command_id, reason)
        self._ack("command_result", {"command_id": command_id, "status": "rejected", "reason": reason})

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

    def _show(self, command: ShowOffer) -> None:
        """`decide/` logs the show as a decision and shows it before this returns; a refused write raises."""
        show_id = uuid.uuid4().hex
        self._bus.publish(ShowRequested(command.touchpoint, command.offer_id, command.command_id, show_id))
        self._ack("command_result", {"command_id": command.command_id, "status": "ok", "show_id": show_id})

    # --- context -------------------------------------------------------------------------------------

    def _context(self, data: bytes) -> None:
        try:
            context = ContextPayload.model_validate_json(_small(data))
        except (ValueError, ValidationError) as exc:
            reason = describe(exc) if isinstance(exc, ValidationError) else str(exc)
            self.counts["context:rejected"] += 1
            log.warning("rejected a context update: %s", reason)
            self._ack("context_result", {"status": "rejected", "reason": reason})
            return
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


def _small(data: bytes) -> bytes:
    """A command or context message, refused (ValueError) when larger than either should ever be."""
    if len(data) > MAX_SMALL_MESSAGE:
        raise ValueError(f"{len(data)} bytes, more than {MAX_SMALL_MESSAGE}")
    return data
