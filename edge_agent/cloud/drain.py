"""The outbox drain: every stream goes up in order, in batches, and a row is deleted only after PUBACK.

Each stream (`events`, `ack`, `telemetry`) has its own task and topic. Up to `inflight_batches` batches are
in flight at once, so the link is never idle waiting for one acknowledgement; batches are acknowledged in
the order they were sent and their rows deleted in that order. When the link drops (or an
acknowledgement does not come within `puback_timeout_s`) the drain starts again from the oldest row still
in the outbox: what the broker may already have got is sent again, and the cloud removes the duplicates by
each event's uuid. Telemetry goes with QoS 0 (it is replaced every interval anyway).
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
from ..store.outbox import Outbox
from .topics import Topics

log = logging.getLogger(__name__)

STREAM_QOS = {"events": 1, "ack": 1, "telemetry": 0}
IDLE_RECHECK_S = 5.0
STORAGE_RETRY_S = 1.0


def encode_batch(store: str, device: str, stream: str, rows: list[tuple[int, str]]) -> bytes:
    """One MQTT message: {"store", "device", "stream", "first_seq", "events": [event, ...]}.

    Each event is the JSON written to the outbox (with its uuid, kind and wall time), spliced in as stored.
    """
    head = json.dumps({"store": store, "device": device, "stream": stream, "first_seq": rows[0][0]})
    return f'{head[:-1]}, "events": [{",".join(text for _, text in rows)}]}}'.encode()


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
                    # Sent rows could not be deleted (a delete needs room in the WAL too): they stay, are sent
                    # again and removed by the cloud as duplicates. Counted and logged by the store.
                    self._beat()
                    self.counts[f"{stream}:restarts"] += 1
                    await asyncio.sleep(STORAGE_RETRY_S)
        finally:
            stop_listening()

    async def _send_until_idle(self, stream: str, wake: asyncio.Event) -> None:
        """Publish from the oldest row on; return only by raising (link trouble) or never."""
        s = self._settings
        topic, qos = self._topics.up(stream), STREAM_QOS[stream]
        store, device = self._topics.store, self._topics.device
        inflight: deque[tuple[asyncio.Future[None], tuple[int, int]]] = deque()  # (future, (rows, last seq))
        after = 0
        acked: int | None = None  # last seq of the stream the broker has acknowledged, not yet deleted
        try:
            while True:
                while len(inflight) < s.inflight_batches:
                    rows = self._outbox.peek_encoded(stream, s.batch_max_events, after)
                    if not rows:
                        break
                    future = self._link.publish(topic, encode_batch(store, device, stream, rows), qos=qos)
                    inflight.append((future, (len(rows), rows[-1][0])))
                    after = rows[-1][0]
                if acked is not None:
                    # Delete what the broker has, once the new batches are on their way (the broker works on
                    # them meanwhile). Batches are acknowledged in order, so that is every row up to `acked`.
                    await asyncio.sleep(0)
                    self._remove_through(stream, acked)
                    acked = None
                if not inflight:
                    wake.clear()  # nothing was written since the peek above: no await in between
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), IDLE_RECHECK_S)
                    continue
                await asyncio.wait_for(asyncio.shield(inflight[0][0]), s.puback_timeout_s)
                events = batches = 0
                while inflight and inflight[0][0].done():
                    future, (count, last) = inflight.popleft()
                    future.result()  # raises if that one failed: it and what follows are sent again
                    events, batches, acked = events + count, batches + 1, last
                self._beat()
                self.counts[f"{stream}:batches"] += batches
                self.counts[f"{stream}:events"] += events
        finally:
            for future, _ in inflight:
                future.add_done_callback(retrieve)
            if acked is not None:
                self._remove_through(stream, acked)

    def _remove_through(self, stream: str, seq: int) -> None:
        with self._outbox.faults.writing("cloud.drain", "removing sent rows"):
            self._outbox.remove_through(stream, seq)
