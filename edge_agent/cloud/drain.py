"""The outbox drain: every stream goes up in order, in batches, and a row is deleted only after PUBACK.

Each stream (`events`, `ack`, `telemetry`) has its own task and topic. Up to `inflight_batches` batches are
in flight at once, so the link is never idle waiting for one acknowledgement; batches are acknowledged in
the order they were sent. An acknowledged batch is only marked in the outbox; its rows are deleted by seq
range once the stream has nothing left to send, a batch's worth at a time, so a backlog goes up at the
pace of the link rather than of the deletes. When the link drops (or an acknowledgement does not come
within `puback_timeout_s`) the drain starts again from the oldest row not acknowledged: what the broker may
already have got is sent again, and the cloud removes the duplicates by each event's uuid. Telemetry goes
with QoS 0 (it is replaced every interval anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter, deque

from ..config import MqttSettings
from ..mqtt import LinkError, MqttLink, retrieve
from ..ops.progress import Progress
from ..store.faults import StorageRefused
from ..store.outbox import Batch, Outbox
from .topics import Topics

log = logging.getLogger(__name__)

STREAM_QOS = {"events": 1, "ack": 1, "telemetry": 0}
IDLE_RECHECK_S = 5.0
STORAGE_RETRY_S = 1.0


def encode_batch(store: str, device: str, stream: str, batch: Batch) -> bytes:
    """One MQTT message: {"store", "device", "stream", "first_seq", "events": [event, ...]}.

    Each event is the JSON written to the outbox (with its uuid, kind and wall time), spliced in as stored.
    """
    head = json.dumps({"store": store, "device": device, "stream": stream, "first_seq": batch.first})
    return b"".join((head[:-1].encode(), b', "events": [', batch.events, b"]}"))


class OutboxDrain:
    def __init__(
        self,
        settings: MqttSettings,
        outbox: Outbox,
        link: MqttLink,
        topics: Topics,
        progress: Progress | None = None,
        stall_after_s: float = 30.0,
    ):
        self._settings = settings
        self._outbox = outbox
        self._link = link
        self._topics = topics
        self._progress = progress
        self.counts: Counter[str] = Counter()
        if progress is not None:  # a vital part: rows waiting on a live link and no batch going up stalls the agent
            progress.watch(
                "cloud.drain",
                max_silence_s=stall_after_s + settings.puback_timeout_s,  # a slow PUBACK restarts, it does not stall
                pending=lambda: self._outbox.depth() if self._link.connected.is_set() else 0,
            )

    def _beat(self) -> None:
        if self._progress is not None:
            self._progress.beat("cloud.drain")

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for stream in STREAM_QOS:
                tg.create_task(self._drain(stream), name=f"cloud.drain.{stream}")

    async def _drain(self, stream: str) -> None:
        wake = asyncio.Event()
        stop_listening = self._outbox.listen(lambda s: wake.set() if s == stream else None)
        try:
            while True:
                await self._link.connected.wait()
                try:
                    await self._send_until_idle(stream, wake)
                except (LinkError, TimeoutError) as exc:
                    self._beat()  # alive: it noticed and starts again
                    self.counts[f"{stream}:restarts"] += 1
                    log.info("drain of %s starts again from the oldest unsent row: %s", stream, exc)
                except StorageRefused:
                    # Acknowledged rows could not be deleted (a delete needs room in the WAL too): they stay,
                    # still marked, and are tried again. Counted and logged by the store.
                    self._beat()
                    self.counts[f"{stream}:restarts"] += 1
                    await asyncio.sleep(STORAGE_RETRY_S)
        finally:
            stop_listening()

    async def _send_until_idle(self, stream: str, wake: asyncio.Event) -> None:
        """Publish from the oldest row not acknowledged on; return only by raising (link trouble) or never."""
        s = self._settings
        topic, qos = self._topics.up(stream), STREAM_QOS[stream]
        store, device = self._topics.store, self._topics.device
        inflight: deque[tuple[asyncio.Future[None], Batch]] = deque()
        after = 0  # the last seq sent; the outbox skips what is acknowledged
        try:
            while True:
                while len(inflight) < s.inflight_batches:
                    batch = self._outbox.batch(stream, s.batch_max_events, after)
                    if batch is None:
                        break
                    future = self._link.publish(topic, encode_batch(store, device, stream, batch), qos=qos)
                    inflight.append((future, batch))
                    after = batch.last
                if not inflight:
                    if self._remove_acknowledged(stream):
                        await asyncio.sleep(0)  # a batch's worth at a time: new rows go first
                        continue
                    wake.clear()  # nothing was written since the read above: no await in between
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), IDLE_RECHECK_S)
                    continue
                await asyncio.wait_for(asyncio.shield(inflight[0][0]), s.puback_timeout_s)
                events = batches = 0
                while inflight and inflight[0][0].done():
                    future, batch = inflight.popleft()
                    future.result()  # raises if that one failed: it and what follows are sent again
                    # Batches are acknowledged in order, so the broker has every row up to this one's last.
                    self._outbox.acknowledge(stream, batch.last)
                    events, batches = events + batch.count, batches + 1
                self._beat()
                self.counts[f"{stream}:batches"] += batches
                self.counts[f"{stream}:events"] += events
        finally:
            for future, _ in inflight:
                future.add_done_callback(retrieve)

    def _remove_acknowledged(self, stream: str) -> int:
        if not self._outbox.acknowledged(stream):
            return 0  # no write tried: a storage episode is not over because of it
        with self._outbox.faults.writing("cloud.drain", "removing sent rows"):
            return self._outbox.remove_acknowledged(stream, self._settings.batch_max_events)
