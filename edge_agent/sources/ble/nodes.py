"""Sightings from the store's other receivers that publish to the store's MQTT broker, into the BLE source's queue:
scanner nodes in our format (`node_format.py`), Theengs Gateways and OpenMQTTGateways (`theengs_format.py`) and
ESPresense nodes (`espresense_format.py`), each read as its firmware publishes it.

The connection is an `MqttLink` of its own (the `[mqtt]` section's broker, TLS and credentials; clean session:
adverts are only worth having live). Each message is parsed by its kind's reader and its adverts enqueued exactly
like the local adapter's; a refused message or advert is counted by reason and logged without its content — and
without its topic where the topic names a device (a gateway's address, an ESPresense id): the receiver's id
instead. A lost broker is retried with backoff while everything else keeps running.

A scanner node is expected to keep reporting: one that sends nothing good for `ble.stall_s` (powered off, off
the Wi-Fi, publishing to another broker or topic) is reported silent — one log line when it falls silent and one
when it is back, `/healthz` and a metric per node — while presence carries on with the receivers that do report.
The nodes are the receivers with a profile of these kinds, expected from the start, and any other that has
reported here once (a receiver of another host sharing presence never reports here, and is no node). An
ESPresense node's telemetry counts as heard (it reports devices only when some are near), and its retained
status `offline` (its last will) makes it silent at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from ...clock import Clock
from ...config import Settings
from ...errors import Refused
from ...mqtt import MqttLink
from . import espresense_format, theengs_format
from .node_format import RemoteAdvertError, parse, scanner_of, topic_filter
from .profiles import EspresenseProfile, TheengsGatewayProfile, load_receiver
from .scanner import Advert, BleSource

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
        kinds = {r.id: load_receiver(r.profile) for r in settings.ble.receivers if r.profile is not None}
        self._gateways = {p.publish_topic: rid for rid, p in kinds.items() if isinstance(p, TheengsGatewayProfile)}
        self._rooms = {(p.channel, p.room): rid for rid, p in kinds.items() if isinstance(p, EspresenseProfile)}
        self.last_heard: dict[str, float | None] = {
            rid: None for rid, p in kinds.items() if rid != self._local and p.kind != "esphome-proxy"
        }
        self.silent: set[str] = set()
        espresense = [p for p in kinds.values() if isinstance(p, EspresenseProfile)]
        self.link = MqttLink(
            mqtt,
            f"{mqtt.client_id or settings.store.device_id}-scanners",
            subscriptions=[
                topic_filter(settings.store.id, mqtt.topic_prefix),
                *(f"{topic}/+" for topic in self._gateways),
                *(f"{p.channel}/devices/+/{p.room}" for p in espresense),
                *(f"{p.channel}/rooms/{p.room}/{leaf}" for p in espresense for leaf in ("status", "telemetry")),
            ],
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
        """One message, by the kind of receiver its topic belongs to; never raises."""
        head, _, leaf = topic.rpartition("/")
        gateway = self._gateways.get(head)
        if gateway is not None:
            self._take(gateway, "theengs-gateway", theengs_format.parse, payload)
            return
        parts = topic.split("/")
        if len(parts) >= 4 and parts[-3] == "devices":
            room = self._rooms.get(("/".join(parts[:-3]), parts[-1]))
            if room is not None:
                self._take(room, "espresense", espresense_format.parse, payload)
                return
        if len(parts) >= 4 and parts[-3] == "rooms" and leaf in ("status", "telemetry"):
            room = self._rooms.get(("/".join(parts[:-3]), parts[-2]))
            if room is not None:
                self._room_state(room, leaf, payload)
                return
        self._node(topic, payload)

    def _take(self, receiver: str, kind: str, read: Callable[[bytes, str, float], Advert | None], data: bytes) -> None:
        """A message of a gateway or an ESPresense node: its advert, if it carries one the agent reads."""
        try:
            advert = read(data, receiver, self._clock.mono())
        except Refused as exc:
            self._refuse(exc.code, exc.reason, f"{kind} {receiver}")
            return
        self.counts["messages"] += 1
        if advert is None:
            self.counts["unread"] += 1  # a device the agent has nothing to do with, or no advert data
        else:
            self._source.enqueue(advert)
            self.counts["adverts"] += 1
        self._heard(receiver)

    def _room_state(self, receiver: str, leaf: str, payload: bytes) -> None:
        """An ESPresense node's telemetry (it is alive) or status (`offline` is its last will: silent now)."""
        if leaf == "telemetry" or payload.strip() == b"online":
            self._heard(receiver)
        elif payload.strip() == b"offline" and receiver not in self.silent:
            self.silent.add(receiver)
            log.warning("scanner node %s: its broker says it went offline; presence goes on without it", receiver)

    def _node(self, topic: str, payload: bytes) -> None:
        """A message of a scanner node in our format: parse, check the scanner is ours, enqueue."""
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
