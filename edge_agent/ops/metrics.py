"""`/metrics` in the Prometheus text format, read from the components' own counters at scrape time.

Nothing is counted twice: each component keeps its counters where its work happens, and this collector only
reads them, so a scrape costs nothing between scrapes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from ..app import Agent

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class AgentCollector(Collector):
    def __init__(self, agent: Agent):
        self._agent = agent

    def collect(self) -> Iterator[Metric]:
        a = self._agent
        published = CounterMetricFamily("edge_bus_published", "Events published on the bus", labels=["event"])
        for event, n in a.bus.published.items():
            published.add_metric([event], n)
        yield published
        dropped = CounterMetricFamily(
            "edge_bus_dropped", "Events a slow subscriber lost (oldest first)", labels=["event", "subscriber"]
        )
        for (event, sub), n in a.bus.dropped.items():
            dropped.add_metric([event, sub], n)
        yield dropped
        if a.checkin is not None:
            checkins = CounterMetricFamily("edge_checkins", "App check-ins by outcome", labels=["outcome"])
            checkins.add_metric(["accepted"], a.checkin.accepted)
            for code, n in a.checkin.rejected.items():
                checkins.add_metric([code], n)
            yield checkins
        if a.ble is not None:
            adverts = CounterMetricFamily("edge_ble_adverts", "BLE adverts by what they were", labels=["kind"])
            for kind, n in a.ble.resolver.counts.items():
                adverts.add_metric([kind], n)
            yield adverts
            yield CounterMetricFamily("edge_ble_dropped", "BLE adverts lost to a full queue", value=a.ble.dropped)
            yield GaugeMetricFamily("edge_ble_scanning", "1 while the local adapter scans", value=int(a.ble.scanning))
            beacons = a.ble.resolver.beacons
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
        if a.remote_scanners is not None:
            silent = GaugeMetricFamily(
                "edge_ble_node_silent", "1 while a scanner node has sent nothing for ble.stall_s", labels=["scanner"]
            )
            for node in a.remote_scanners.last_heard:
                silent.add_metric([node], int(node in a.remote_scanners.silent))
            yield silent
        yield CounterMetricFamily("edge_decisions", "Offer decisions made", value=a.engine.counts["decisions"])
        yield CounterMetricFamily("edge_decision_errors", "Decisions that failed", value=a.engine.counts["errors"])
        yield CounterMetricFamily("edge_shows", "Show frames sent to touchpoints", value=a.hub.counts["shown"])
        yield CounterMetricFamily("edge_impressions", "Impressions recorded (proof of play)", value=a.proof.recorded)
        acks = CounterMetricFamily("edge_acks_refused", "Screen acknowledgements refused", labels=["reason"])
        for reason, n in a.proof.rejected.items():
            acks.add_metric([reason], n)
        yield acks
        http = CounterMetricFamily("edge_http_refused", "HTTP requests refused (4xx), by code", labels=["code"])
        for code, n in a.http_refused.items():
            http.add_metric([code], n)
        yield http
        players = GaugeMetricFamily("edge_screen_players", "Players connected per touchpoint", labels=["touchpoint"])
        for tp in a.settings.touchpoints:
            players.add_metric([tp.id], a.hub.players(tp.id))
        yield players
        yield GaugeMetricFamily("edge_outbox_depth", "Messages waiting to go up", value=a.store.outbox.depth())
        faults = a.store.faults
        refused = CounterMetricFamily(
            "edge_storage_write_failures", "Writes refused: the database's disk full or failing", labels=["component"]
        )
        for component, n in faults.failures.items():
            refused.add_metric([component], n)
        yield refused
        yield GaugeMetricFamily("edge_storage_failing", "1 while writes fail for lack of disk", int(faults.failing))
        drops = CounterMetricFamily(
            "edge_outbox_dropped", "Messages the outbox bound dropped, by drop class and kind", labels=["class", "kind"]
        )
        for drop_class, kinds in a.store.outbox.drops().items():
            for kind, n in kinds.items():
                drops.add_metric([drop_class, kind], n)
        yield drops
        if a.cloud is not None:
            connected = int(a.cloud.link.connected.is_set())
            yield GaugeMetricFamily("edge_mqtt_connected", "1 while the link to the broker is up", value=connected)
        if a.vision is not None:
            yield SummaryMetricFamily(
                "edge_vision_inference_seconds",
                "Time per inferred camera frame",
                count_value=a.vision.counts["frames_inferred"],
                sum_value=a.vision.inference_seconds,
            )
        yield GaugeMetricFamily("edge_offers", "Offers in the catalogue", value=len(a.catalog))
        yield GaugeMetricFamily("edge_loop_lag_seconds", "Event loop lag", value=a.progress.loop_lag_s)
        silence = GaugeMetricFamily(
            "edge_component_silence_seconds", "Seconds since each vital part last made progress", labels=["part"]
        )
        for part, seconds in a.progress.silence().items():
            silence.add_metric([part], seconds)
        yield silence
        restarts = CounterMetricFamily("edge_component_restarts", "Component crashes restarted", labels=["component"])
        for name, n in a.restarts.items():
            restarts.add_metric([name], n)
        yield restarts


def render(agent: Agent) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(agent))
    return generate_latest(registry)
