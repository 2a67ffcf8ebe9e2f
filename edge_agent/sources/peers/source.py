"""Presence shared between the touchpoint hosts of one store, through the store's own MQTT broker.

Each host publishes what its own sources saw (message.py: consented customers by customer_ref,
anonymous counts), signed with its device key (signed.py), and turns the other hosts' messages into
Sightings on its bus, so the same presence tracker places everyone, whichever host saw them. A message is
taken only from a host of `[[fleet.hosts]]` whose signature holds. A shared customer is taken only if this host's roster
has them with consent for the channel that saw them; anything refused is counted by reason and logged
without its content. The connection is an `MqttLink` of its own (clean session, nothing queued while
away: presence is only worth having live).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from ...bus import Bus
from ...clock import Clock
from ...config import Settings
from ...events import Customer, Sighting
from ...keys import DeviceKey, public_key_from_b64
from ...mqtt import LinkError, MqttLink
from ...store import Store
from . import signed
from .message import MAX_BYTES, PeerMessageError, device_of, encode, parse, sightings

log = logging.getLogger(__name__)


class StorePeers:
    def __init__(self, settings: Settings, store: Store, bus: Bus, clock: Clock, key: DeviceKey):
        mqtt = settings.mqtt
        assert mqtt is not None
        self._key = key
        self._store_id = settings.store.id
        self._hosts = {h.device: public_key_from_b64(h.sign) for h in settings.fleet.hosts}
        base = f"{mqtt.topic_prefix}/{settings.store.id}/presence"
        self._device = settings.store.device_id
        self._topic = f"{base}/{self._device}"
        self._interval = settings.fleet.share_interval_s
        self._zones = {z.id for z in settings.zones}
        self._store = store
        self._bus = bus
        self._clock = clock
        self.link = MqttLink(
            mqtt, f"{mqtt.client_id or self._device}-peers", subscriptions=[f"{base}/+"], persistent=False
        )
        self._local = bus.subscribe(Sighting, "peers", maxsize=10_000)
        self.counts: Counter[str] = Counter()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.link.run(), name="peers.link")
            tg.create_task(self._share(), name="peers.share")
            tg.create_task(self.link.deliver(self.handle), name="peers.receive")

    async def stop(self) -> None:
        await self.link.close()

    async def _share(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            seen = []
            while not self._local.queue.empty():
                seen.append(self._local.queue.get_nowait())
            payload = encode(self._device, seen, self._clock.mono())
            if payload is None or not self.link.connected.is_set():
                continue  # presence is live: what was seen while the broker was away is not worth sending late
            message = signed.seal(self._key, "presence", self._store_id, self._device, payload)
            try:
                await self.link.publish(self._topic, message, qos=0)
                self.counts["published"] += 1
            except LinkError as exc:
                self.counts["publish_failed"] += 1
                log.info("shared presence not sent: %s", exc)

    def handle(self, topic: str, payload: bytes) -> None:
        """One peer's message: parse, keep only consented customers, publish as Sightings; never raises."""
        device = device_of(topic)
        if device == self._device:
            return  # our own, back from the broker
        try:
            sender, inner = signed.open_signed(
                payload,
                kind="presence",
                store=self._store_id,
                topic_device=device,
                hosts=self._hosts,
                max_bytes=MAX_BYTES + 1024,
                refuse=PeerMessageError,
            )
            batch = parse(inner, sender, self._zones)
        except PeerMessageError as exc:
            self._refuse(exc.code, exc.reason, topic)
            return
        for reason in batch.refused:
            self._refuse("bad_entry", reason, topic)
        for sighting in sightings(batch, self._clock.mono(), self._clock.wall()):
            if isinstance(sighting.subject, Customer):
                entry = self._store.roster.get(sighting.subject.customer_ref)
                if entry is None or not entry.consents_to(sighting.channel):
                    self._refuse("not_consented", f"a customer without {sighting.channel} consent here", topic)
                    continue
            self._bus.publish(sighting)
            self.counts["sightings"] += 1
        self.counts["messages"] += 1

    def _refuse(self, code: str, reason: str, topic: str) -> None:
        self.counts[f"refused:{code}"] += 1
        log.warning("shared presence on %s refused (%s): %s", topic, code, reason)
