"""The drain against a link whose PUBACKs the test gives: rows go only after their batch's PUBACK, rows
written meanwhile stay, and a failed batch is sent again from the oldest row not acknowledged."""

from __future__ import annotations

import asyncio
import json

from edge_agent.cloud.drain import OutboxDrain
from edge_agent.cloud.topics import Topics
from edge_agent.config import MqttSettings
from edge_agent.mqtt import LinkDown
from edge_agent.store import open_store
from edge_agent.store.outbox import DropClass


class HeldLink:
    """Publishes nowhere: each message waits for the test to acknowledge it or fail it."""

    def __init__(self) -> None:
        self.connected = asyncio.Event()
        self.connected.set()
        self.sent: list[tuple[list[int], asyncio.Future[None]]] = []

    def publish(self, topic: str, payload: bytes, *, qos: int = 1) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sent.append(([e["i"] for e in json.loads(payload)["events"]], future))
        return future


async def _until(predicate) -> None:
    async with asyncio.timeout(5):
        while not predicate():
            await asyncio.sleep(0.001)


def _add(store, *numbers: int) -> None:
    for i in numbers:
        store.outbox.add(stream="events", kind="test", payload={"i": i}, created_at="t", drop_class=DropClass.EVENT)


def _left(store) -> list[int]:
    return [json.loads(r[0])["i"] for r in store.db.execute("SELECT payload FROM outbox ORDER BY seq")]


async def test_rows_are_deleted_only_after_their_puback_and_a_failure_resends_from_the_oldest_unacknowledged(
    tmp_path,
):
    store = open_store(tmp_path / "a.db")
    link = HeldLink()
    settings = MqttSettings(host="broker", batch_max_events=2, inflight_batches=2)
    drain = OutboxDrain(settings, store.outbox, link, Topics(settings.topic_prefix, "s", "d"))  # type: ignore[arg-type]
    _add(store, 0, 1, 2, 3)
    task = asyncio.create_task(drain.run())
    try:
        await _until(lambda: len(link.sent) == 2)
        assert [numbers for numbers, _ in link.sent] == [[0, 1], [2, 3]]
        _add(store, 4)  # written while both batches are in flight
        link.sent[0][1].set_result(None)
        await _until(lambda: len(link.sent) == 3)  # the window has room again
        assert link.sent[2][0] == [4]
        assert _left(store) == [0, 1, 2, 3, 4]  # acknowledged, not yet deleted: the drain is busy
        assert store.outbox.depth() == 3

        link.sent[1][1].set_exception(LinkDown("dropped"))
        await _until(lambda: len(link.sent) == 5)
        assert [numbers for numbers, _ in link.sent[3:]] == [[2, 3], [4]]  # from the oldest unacknowledged
        assert _left(store) == [0, 1, 2, 3, 4]

        link.sent[3][1].set_result(None)
        await _until(lambda: store.outbox.depth() == 1)
        assert _left(store) == [0, 1, 2, 3, 4]  # a batch is still in flight
        link.sent[4][1].set_result(None)
        await _until(lambda: _left(store) == [])  # nothing left to send: now the acknowledged rows go
        assert drain.counts["events:restarts"] == 1 and drain.counts["events:events"] == 5
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        store.close()
