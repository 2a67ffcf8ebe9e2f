"""Cloud sync as one agent component: the link, the downlink, the outbox drain and telemetry together."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..bus import Bus
from ..clock import Clock
from ..config import Settings
from ..keys import DeviceKey, public_keys
from ..mqtt import MqttLink
from ..ops.progress import Progress
from ..store import Store
from .desired import DesiredConfig
from .downlink import Downlink
from .drain import OutboxDrain
from .telemetry import Telemetry
from .topics import Topics


def topics_for(settings: Settings) -> Topics:
    assert settings.mqtt is not None
    return Topics(settings.mqtt.topic_prefix, settings.store.id, settings.store.device_id)


class CloudSync:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        bus: Bus,
        clock: Clock,
        health: Callable[[], dict[str, Any]],
        apply_config: Callable[[Settings], None],
        progress: Progress | None = None,
        device_key: DeviceKey | None = None,
    ):
        mqtt = settings.mqtt
        assert mqtt is not None
        self.topics = topics_for(settings)
        client_id = mqtt.client_id or f"edge-{settings.store.id}-{settings.store.device_id}"
        self.link = MqttLink(
            mqtt, client_id, subscriptions=self.topics.subscriptions(), status_topic=self.topics.up("status")
        )
        store.outbox.max_rows = mqtt.outbox_max_rows
        keys = public_keys(mqtt.bundle_public_keys)
        self.desired = DesiredConfig(settings, store, clock, self.link, self.topics, keys, apply_config)
        self.link.on_connected = self.desired.publish_reported
        self.downlink = Downlink(settings, store, bus, clock, self.link, self.desired, device_key)
        self.drain = OutboxDrain(mqtt, store.outbox, self.link, self.topics, progress, settings.ops.stall_after_s)
        self.telemetry = Telemetry(
            mqtt.telemetry_interval_s,
            store,
            clock,
            {
                "link": lambda: {"connected": int(self.link.connected.is_set()), **self.link.counts},
                "drain": lambda: dict(self.drain.counts),
                "downlink": lambda: dict(self.downlink.counts),
                "config": lambda: {"version": self.desired.version, **self.desired.counts},
                "agent": health,
            },
        )

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.link.run(), name="cloud.link")
            tg.create_task(self.downlink.run(), name="cloud.downlink")
            tg.create_task(self.drain.run(), name="cloud.drain")
            tg.create_task(self.telemetry.run(), name="cloud.telemetry")

    async def stop(self) -> None:
        """Say `stopped` and disconnect cleanly; the tasks are cancelled by the agent afterwards."""
        await self.link.close()

    def metrics(self) -> Iterator[Metric]:
        connected = int(self.link.connected.is_set())
        yield GaugeMetricFamily("edge_mqtt_connected", "1 while the link to the broker is up", value=connected)
        refused = CounterMetricFamily(
            "edge_downlink_refused", "Downlink messages refused, by kind and code", labels=["kind", "code"]
        )
        verdicts = [*self.downlink.counts.items(), *((f"config:{k}", n) for k, n in self.desired.counts.items())]
        for key, n in verdicts:
            kind, _, code = key.partition(":rejected:")  # e.g. "cmd:rejected:stale", "offers:rejected:bad_signature"
            if code:
                refused.add_metric([kind, code], n)
        yield refused
