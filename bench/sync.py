"""Outbox drain to a real Mosquitto: rate against raw paho QoS 1, events lost across an outage, time to resume.

`ratio` compares the drain (SQLite reads, batching, per-batch PUBACK futures) with raw paho publishing
exactly the same batch payloads at QoS 1 to the same broker in the same run, with the same in-flight
window. The drain deletes acknowledged rows once it has nothing left to send; `emptied_events_per_s` counts
until the last of them is gone. For context, `ratio_vs_one_message_per_event` compares it with raw paho
publishing each event as its own QoS 1 message, as a client without batching would. `lost` and `resume_s`
come from a second run: events are written while the broker is killed (`kill -9`) and restarted; a cloud
simulator collects them and dedups on uuid. `resume_s` is the time from the broker listening again to the
first batch it acknowledges, with the default backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.cloud.drain import OutboxDrain, encode_batch
from edge_agent.cloud.topics import Topics
from edge_agent.config import MqttSettings
from edge_agent.mqtt import MqttLink
from edge_agent.store import Store, open_store
from edge_agent.store.decisions import DecisionRecord
from simulators.broker import Mosquitto
from simulators.cloud import CloudSim

STORE, DEVICE = "bench-store", "edge-bench"


def _record(store: Store, n: int) -> None:
    store.decisions.record(
        DecisionRecord(
            f"bench-{n:08d}", "2026-11-24T10:00:00.000+00:00", True, "screen-1", "entrance", None, "croissant-3for2",
            ["croissant-3for2", "milk-organic", "coffee-loyalty"], {"croissant-3for2": 2.0, "milk-organic": 1.0,
            "coffee-loyalty": 0.5}, "priority-v1",
        )
    )  # fmt: skip


def _fill(store: Store, start: int, n: int) -> None:
    with store.db.atomic():
        for i in range(start, start + n):
            _record(store, i)


def _raw_paho(broker: Mosquitto, topic: str, payloads: list[bytes], inflight: int) -> float:
    """Seconds for bare paho (its own network thread) to get a PUBACK for every payload."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-raw")
    client.max_inflight_messages_set(inflight)
    client.max_queued_messages_set(0)
    done = threading.Event()
    acked = 0

    def on_publish(*_: Any) -> None:
        nonlocal acked
        acked += 1
        if acked == len(payloads):
            done.set()

    client.on_publish = on_publish
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        start = time.perf_counter()
        for payload in payloads:
            client.publish(topic, payload, qos=1)
        if not done.wait(120):
            raise TimeoutError("raw paho did not get every PUBACK")
        return time.perf_counter() - start
    finally:
        client.disconnect()
        client.loop_stop()


class _Drainer:
    """The agent's link and drain on a store, as the agent runs them."""

    def __init__(self, settings: MqttSettings, store: Store):
        self.topics = Topics(settings.topic_prefix, STORE, DEVICE)
        self.link = MqttLink(settings, "bench-agent", status_topic=self.topics.up("status"))
        self.drain = OutboxDrain(settings, store.outbox, self.link, self.topics)
        self.tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> _Drainer:
        self.tasks = [asyncio.create_task(self.link.run()), asyncio.create_task(self.drain.run())]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.link.close()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def sent(self) -> int:
        return self.drain.counts["events:events"]


def _emptied(store: Store) -> bool:
    """Whether the drain has deleted every row, acknowledged or not (the outbox's depth leaves the first out)."""
    return not store.db.execute("SELECT count(*) FROM outbox").fetchone()[0]


async def _until(predicate, timeout: float = 120.0, step: float = 0.002) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(step)


async def _rate(workdir: Path, n: int, rounds: int) -> dict[str, Any]:
    """Best of `rounds` for each side, taken in turns, so a busy moment on the machine hits both alike."""
    template = workdir / "rate-template.db"
    store = open_store(template)
    for start in range(0, n, 10_000):
        _fill(store, start, min(10_000, n - start))
    store.close()
    with Mosquitto(workdir / "mq-rate") as broker:
        settings = MqttSettings(host=broker.host, port=broker.port)
        topic = Topics(settings.topic_prefix, STORE, DEVICE).up("events")
        raw_s, drain_s, emptied_s, single_s = [], [], [], 0.0
        for r in range(rounds):
            shutil.copyfile(template, workdir / f"rate-{r}.db")
            store = open_store(workdir / f"rate-{r}.db")
            payloads, after = [], 0
            while batch := store.outbox.batch("events", settings.batch_max_events, after):
                payloads.append(encode_batch(STORE, DEVICE, "events", batch))
                after = batch.last
            raw_s.append(await asyncio.to_thread(_raw_paho, broker, topic, payloads, settings.inflight_batches))
            if r == 0:
                singles = [json.dumps(row.payload).encode() for row in store.outbox.peek("events", n // 10)]
                single_s = await asyncio.to_thread(_raw_paho, broker, topic, singles, settings.inflight_batches) * 10
            async with _Drainer(settings, store) as drainer:
                await _until(drainer.link.connected.is_set)
                start = time.perf_counter()
                await _until(lambda: drainer.sent() >= n)
                drain_s.append(time.perf_counter() - start)
                await _until(functools.partial(_emptied, store), step=0.01)
                emptied_s.append(time.perf_counter() - start)
            store.close()
    return {
        "events": n,
        "batch": settings.batch_max_events,
        "drain_events_per_s": round(n / min(drain_s)),
        "raw_paho_events_per_s": round(n / min(raw_s)),
        "ratio": round(min(raw_s) / min(drain_s), 3),
        "emptied_events_per_s": round(n / min(emptied_s)),
        "raw_paho_one_message_per_event_events_per_s": round(n / single_s),
        "ratio_vs_one_message_per_event": round(single_s / min(drain_s), 2),
    }


async def _outage(workdir: Path, n: int) -> dict[str, Any]:
    broker = Mosquitto(workdir / "mq-outage", durable=True).start()
    cloud = await CloudSim(broker.host, broker.port, STORE).start()
    store = open_store(workdir / "outage.db")
    settings = MqttSettings(host=broker.host, port=broker.port)  # default backoff: 1 s doubling to 60 s
    written = 0

    async def write(until: int) -> None:
        nonlocal written
        while written < until:
            _fill(store, written, 10)
            written += 10
            await asyncio.sleep(0.002)

    try:
        async with _Drainer(settings, store) as drainer:
            await _until(drainer.link.connected.is_set)
            writer = asyncio.create_task(write(n))
            await _until(lambda: drainer.sent() >= n // 4)
            broker.kill()
            await _until(lambda: not drainer.link.connected.is_set())
            await asyncio.sleep(1.0)  # the outage
            sent_before = drainer.sent()
            await asyncio.to_thread(broker.start)
            back = time.perf_counter()
            await _until(lambda: drainer.sent() > sent_before, timeout=120)
            resume_s = time.perf_counter() - back
            await writer
            await _until(lambda: len(cloud.of_kind("decision")) >= n, timeout=120)
        report = cloud.report((f"bench-{i:08d}" for i in range(n)), key="decision_id")
        return {
            "outage_events": n,
            "lost": len(report["lost"]),
            "duplicates_removed": report["duplicates_removed"],
            "resume_s": round(resume_s, 3),
        }
    finally:
        await cloud.close()
        store.close()
        broker.stop()


async def run(quick: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        rate = await _rate(Path(tmp), 100_000 if quick else 400_000, rounds=3)
        outage = await _outage(Path(tmp), 3_000 if quick else 20_000)
    return {**rate, **outage}
