"""Sightings from the store's other scanner nodes, over the store's MQTT broker, into the BLE source's queue.

The connection is an `MqttLink` of its own (the `[mqtt]` section's broker, TLS and credentials; clean session:
adverts are only worth having live). Each message is parsed (`remote_adverts`) and its adverts enqueued exactly
like the local adapter's; a refused message or advert is counted by reason and logged without its content.
A lost broker is retried with backoff while everything else keeps running.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from ..clock import Clock
from ..cloud.link import MqttLink
from ..config import Settings
from .ble import BleSource
from .remote_adverts import RemoteAdvertError, parse, scanner_of, topic_filter

log = logging.getLogger(__name__)


class RemoteScanners:
    def __init__(self, settings: Settings, source: BleSource, clock: Clock):
        mqtt = settings.mqtt
        assert mqtt is not None
        self._known = {r.id for r in settings.ble.receivers}
        self._source = source
        self._clock = clock
        self.link = MqttLink(
            mqtt,
            f"{mqtt.client_id or settings.store.device_id}-scanners",
            subscriptions=[topic_filter(settings.store.id, mqtt.topic_prefix)],
            persistent=False,
        )
        self.counts: Counter[str] = Counter()

    @property
    def connected(self) -> bool:
        return self.link.connected.is_set()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.link.run(), name="scanners.link")
            tg.create_task(self.link.deliver(self.handle), name="scanners.receive")

    async def stop(self) -> None:
        await self.link.close()

    def health(self) -> dict[str, object]:
        """For /healthz: whether the broker is reached, and what came from the nodes and what was refused."""
        return {"connected": self.connected, **self.counts, "dropped_inbox_full": self.link.counts["inbox_full"]}

    def handle(self, topic: str, payload: bytes) -> None:
        """One message: parse, check the scanner is ours, enqueue; never raises."""
        try:
            batch = parse(payload, scanner_of(topic), self._clock.mono())
        except RemoteAdvertError as exc:
            self._refuse(exc.code, exc.reason, topic)
            return
        if batch.scanner not in self._known:
            self._refuse("unknown_scanner", f"scanner {batch.scanner!r} is not in ble.receivers", topic)
            return
        for reason in batch.refused:
            self._refuse("bad_advert", reason, topic)
        for advert in batch.adverts:
            self._source.enqueue(advert)
        self.counts["adverts"] += len(batch.adverts)
        self.counts["messages"] += 1

    def _refuse(self, code: str, reason: str, topic: str) -> None:
        self.counts[f"refused:{code}"] += 1
        log.warning("remote scanner message on %s refused (%s): %s", topic, code, reason)
