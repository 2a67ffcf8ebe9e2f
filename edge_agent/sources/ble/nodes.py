"""Sightings from the store's other scanner nodes, over the store's MQTT broker, into the BLE source's queue.

The connection is an `MqttLink` of its own (the `[mqtt]` section's broker, TLS and credentials; clean session:
adverts are only worth having live). Each message is parsed (`remote_adverts`) and its adverts enqueued exactly
like the local adapter's; a refused message or advert is counted by reason and logged without its content.
A lost broker is retried with backoff while everything else keeps running.

A scanner node is expected to keep reporting: one that sends nothing good for `ble.stall_s` (powered off, off
the Wi-Fi, publishing to another broker or topic) is reported silent — one log line when it falls silent and one
when it is back, `/healthz` and a metric per node — while presence carries on with the receivers that do report.
The nodes are the receivers with a scanner-node `profile`, expected from the start, and any other that has
reported here once (a receiver of another host sharing presence never reports here, and is no node).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from ...clock import Clock
from ...config import Settings
from ...mqtt import MqttLink
from .node_format import RemoteAdvertError, parse, scanner_of, topic_filter
from .scanner import BleSource

log = logging.getLogger(__name__)


class RemoteScanners:
    def __init__(self, settings: Settings, source: BleSource, clock: Clock):
        mqtt = settings.mqtt
        assert mqtt is not None
        self._known = {r.id for r in settings.ble.receivers}
        self._local = settings.ble.receiver_id or settings.store.device_id
        self._silent_s = settings.ble.stall_s
        self._source = source
        self._clock = clock
        self._reached: float | None = None  # since when the broker is reached without a break, as last checked
        self.last_heard: dict[str, float | None] = {
            r.id: None for r in settings.ble.receivers if r.profile is not None and r.id != self._local
        }
        self.silent: set[str] = set()
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
            tg.create_task(self._watch(), name="scanners.watch")

    async def stop(self) -> None:
        await self.link.close()

    def health(self) -> dict[str, object]:
        """For /healthz: whether the broker is reached, what came from the nodes and what was refused, and when
        each node was last heard."""
        now = self._clock.mono()
        nodes = {
            node: {"last_heard_s_ago": None if at is None else round(now - at, 1), "silent": node in self.silent}
            for node, at in self.last_heard.items()
        }
        return {
            "connected": self.connected,
            **self.counts,
            "dropped_inbox_full": self.link.counts["inbox_full"],
            "nodes": nodes,
        }

    def check_silence(self) -> None:
        """Flag, once each, the nodes not heard for `stall_s` while the broker was reached (with the broker away,
        the broker is the news: the link logs it)."""
        now = self._clock.mono()
        if not self.connected:
            self._reached = None
            return
        if self._reached is None:
            self._reached = now
        for node, at in self.last_heard.items():
            quiet_s = now - (self._reached if at is None else max(at, self._reached))
            if node not in self.silent and quiet_s >= self._silent_s:
                self.silent.add(node)
                log.warning(
                    "scanner node %s: nothing heard for %.0f s (powered off, off the network, or publishing to "
                    "another broker or topic?); presence goes on with the other receivers",
                    node,
                    quiet_s,
                )

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(min(5.0, self._silent_s / 4))
            self.check_silence()

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
        if batch.scanner != self._local:
            self._heard(batch.scanner)

    def _heard(self, node: str) -> None:
        """A good message from a node: it is alive (and that is logged if it had been silent)."""
        now = self._clock.mono()
        if node in self.silent:
            self.silent.discard(node)
            since = self.last_heard.get(node)
            log.info("scanner node %s heard again%s", node, "" if since is None else f" after {now - since:.0f} s")
        self.last_heard[node] = now

    def _refuse(self, code: str, reason: str, topic: str) -> None:
        self.counts[f"refused:{code}"] += 1
        log.warning("remote scanner message on %s refused (%s): %s", topic, code, reason)

    def metrics(self) -> Iterator[Metric]:
        silent = GaugeMetricFamily(
            "edge_ble_node_silent", "1 while a scanner node has sent nothing for ble.stall_s", labels=["scanner"]
        )
        for node in self.last_heard:
            silent.add_metric([node], int(node in self.silent))
        yield silent
