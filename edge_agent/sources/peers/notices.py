"""What one host must tell the store's other hosts at once, signed: a consent withdrawal a shopper made at its
kiosk, and a check-in token it took (so the same token is refused at every host, with the cloud away too).

Topic `{mqtt.topic_prefix}/{store}/hosts/{device}` on the store's own broker, QoS 1, not retained; each host
keeps a persistent session, so one that was away gets what it missed when it is back. Never bridged.

    message = a host's signed message (signed.py), KIND "notices", whose payload P is
    P       = UTF-8 JSON {"v": 1, "at": ISO-8601, "withdrawals": [{"ref", "channel", "epoch"}],
                          "tokens": [{"jti", "expires_unix"}]}

A receiver takes a message only from a host listed in `[[fleet.hosts]]` (device id and its `sign` public
key, as `edge-agent keys new --device` printed it) whose signature holds and that is not older than
`MAX_AGE_S`. A withdrawal is persisted at once (consent moves only towards less: the channel goes off, its
day keys or face enrolment with it, the epoch becomes at least the one sent) and announced on the bus, so
BLE, faces and presence forget the shopper here too; the cloud learns of it from the kiosk host's outbox.
A token id is recorded as used. Anything refused is counted by reason and logged without its content.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from ...bus import Bus
from ...clock import Clock
from ...config import Settings
from ...errors import Refused
from ...events import ConsentChanged, TokenUsed
from ...keys import DeviceKey, public_key_from_b64
from ...mqtt import LinkError, MqttLink
from ...store import Store
from ...store.roster import CustomerRef
from . import signed

log = logging.getLogger(__name__)

VERSION = 1
MAX_BYTES = 64 * 1024
MAX_AGE_S = 8 * 86_400  # the store broker keeps a host's queued notices about this long


class NoticeRefused(Refused):
    """A host notice that must not be taken."""


class _Withdrawal(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ref: CustomerRef
    channel: str = Field(pattern=r"^[a-z]{1,32}$")
    epoch: int = Field(ge=0)


class _Token(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    jti: str = Field(min_length=1, max_length=128)
    expires_unix: float


class Notices(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: int
    at: AwareDatetime
    withdrawals: list[_Withdrawal] = Field(default_factory=list, max_length=500)
    tokens: list[_Token] = Field(default_factory=list, max_length=500)


def seal(key: DeviceKey, store: str, device: str, notices: Notices) -> bytes:
    return signed.seal(key, "notices", store, device, notices.model_dump_json().encode("utf-8"))


def open_notices(data: bytes, store: str, topic_device: str, hosts: dict[str, Ed25519PublicKey]) -> tuple[str, Notices]:
    """The sender and its verified notices; NoticeRefused naming what was wrong otherwise."""
    device, payload = signed.open_signed(
        data,
        kind="notices",
        store=store,
        topic_device=topic_device,
        hosts=hosts,
        max_bytes=MAX_BYTES,
        refuse=NoticeRefused,
    )
    try:
        notices = Notices.model_validate_json(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise NoticeRefused("invalid", f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None
    if notices.v != VERSION:
        raise NoticeRefused("version", f"v must be {VERSION}, got {notices.v}")
    return device, notices


class HostNotices:
    """This host's notices out, the other hosts' in."""

    def __init__(self, settings: Settings, store: Store, bus: Bus, clock: Clock, key: DeviceKey):
        mqtt = settings.mqtt
        assert mqtt is not None
        self._store_id, self._device = settings.store.id, settings.store.device_id
        self._base = f"{mqtt.topic_prefix}/{self._store_id}/hosts"
        self._hosts = {h.device: public_key_from_b64(h.sign) for h in settings.fleet.hosts}
        self._key, self._store, self._bus, self._clock = key, store, bus, clock
        self.link = MqttLink(mqtt, f"{mqtt.client_id or self._device}-hosts", subscriptions=[f"{self._base}/+"])
        self._outgoing: asyncio.Queue[ConsentChanged | TokenUsed] = asyncio.Queue(maxsize=10_000)
        bus.on(ConsentChanged, "notices", self._note)
        bus.on(TokenUsed, "notices", self._note)
        self.counts: Counter[str] = Counter()

    def _note(self, event: ConsentChanged | TokenUsed) -> None:
        if isinstance(event, ConsentChanged) and (event.granted or event.from_host is not None):
            return  # only withdrawals taken here are news to the other hosts
        if self._outgoing.full():
            self.counts["dropped"] += 1  # each host still learns it from the cloud
            return
        self._outgoing.put_nowait(event)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.link.run(), name="notices.link")
            tg.create_task(self._tell(), name="notices.tell")
            tg.create_task(self.link.deliver(self.handle), name="notices.receive")

    async def stop(self) -> None:
        await self.link.close()

    async def _tell(self) -> None:
        """Each withdrawal taken here and each token used here, as soon as they happen (batched per wake-up)."""
        while True:
            changes = [await self._outgoing.get()]
            while not self._outgoing.empty():
                changes.append(self._outgoing.get_nowait())
            withdrawals, tokens = [], []
            for change in changes:
                if isinstance(change, TokenUsed):
                    tokens.append(_Token(jti=change.token_id, expires_unix=change.expires_unix))
                else:
                    entry = self._store.roster.get(change.customer_ref)
                    epoch = entry.consent_epoch if entry is not None else 0
                    withdrawals.append(_Withdrawal(ref=change.customer_ref, channel=change.channel, epoch=epoch))
            if withdrawals or tokens:
                notices = Notices(v=VERSION, at=self._clock.wall().at, withdrawals=withdrawals, tokens=tokens)
                await self._publish(seal(self._key, self._store_id, self._device, notices))

    async def _publish(self, message: bytes) -> None:
        try:  # QoS 1 and a persistent session: the broker holds it for the hosts that are away
            await self.link.publish(f"{self._base}/{self._device}", message, qos=1)
            self.counts["sent"] += 1
        except LinkError as exc:
            self.counts["send_failed"] += 1
            log.warning("could not tell the store's other hosts (%s); each still learns from the cloud", exc)

    def handle(self, topic: str, payload: bytes) -> None:
        """One host's notices: verified, then applied here; never raises."""
        device = topic.rsplit("/", 1)[-1]
        if device == self._device:
            return  # our own, back from the broker
        try:
            sender, notices = open_notices(payload, self._store_id, device, self._hosts)
            age = (self._clock.wall().at - notices.at).total_seconds()
            if age > MAX_AGE_S:
                raise NoticeRefused("stale", f"sent {age:.0f} s ago, more than {MAX_AGE_S} s")
        except NoticeRefused as exc:
            self.counts[f"refused:{exc.code}"] += 1
            log.warning("a host notice on %s refused (%s): %s", topic, exc.code, exc.reason)
            return
        wall = self._clock.wall()
        for w in notices.withdrawals:
            if self._store.consents.withdraw(w.ref, w.channel, epoch=w.epoch, at=wall.iso()):
                self._bus.publish(ConsentChanged(w.ref, w.channel, False, wall, from_host=sender))
                self.counts["withdrawals"] += 1
        for t in notices.tokens:
            self._store.nonces.claim(t.jti, t.expires_unix)
            self.counts["tokens"] += 1
        self.counts["messages"] += 1
