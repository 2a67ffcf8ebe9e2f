from dataclasses import dataclass

import pytest

from edge_agent.bus import Bus


@dataclass(frozen=True)
class Ping:
    n: int


@dataclass(frozen=True)
class Pong:
    n: int


async def test_events_reach_subscribers_of_their_type_only():
    bus = Bus()
    pings = bus.subscribe(Ping, "a")
    pongs = bus.subscribe(Pong, "b")
    bus.publish(Ping(1))
    bus.publish(Pong(2))
    assert await pings.get() == Ping(1)
    assert await pongs.get() == Pong(2)
    assert pings.queue.empty() and pongs.queue.empty()
    assert bus.published == {"Ping": 1, "Pong": 1}


async def test_a_full_queue_drops_the_oldest_and_counts_it():
    bus = Bus()
    slow = bus.subscribe(Ping, "slow", maxsize=3)
    fast = bus.subscribe(Ping, "fast", maxsize=100)
    for n in range(10):
        bus.publish(Ping(n))
    assert [slow.queue.get_nowait().n for _ in range(3)] == [7, 8, 9]
    assert fast.queue.qsize() == 10
    assert bus.dropped == {("Ping", "slow"): 7}


async def test_unsubscribed_queues_receive_nothing():
    bus = Bus()
    sub = bus.subscribe(Ping, "gone")
    sub.close()
    bus.publish(Ping(1))
    assert sub.queue.empty()
    assert bus.depths() == {}


def test_handlers_run_before_publish_returns_and_one_failing_never_stops_the_others():
    from edge_agent.bus import Bus

    bus, seen = Bus(), []
    sub = bus.subscribe(int, "queue")

    def broken(_event: int) -> None:
        raise RuntimeError("boom")

    bus.on(int, "broken", broken)
    bus.on(int, "list", seen.append)
    bus.publish(7)
    assert seen == [7] and sub.queue.get_nowait() == 7
    assert bus.failed == {("int", "broken"): 1}


def test_a_handler_registered_with_raises_fails_its_publisher_after_everyone_has_the_event():
    from edge_agent.bus import Bus

    bus, seen = Bus(), []
    sub = bus.subscribe(int, "queue")

    def refused(_event: int) -> None:
        raise OSError("disk full")

    bus.on(int, "refused", refused, raises=True)
    bus.on(int, "list", seen.append)
    with pytest.raises(OSError, match="disk full"):
        bus.publish(7)
    assert seen == [7] and sub.queue.get_nowait() == 7
    assert bus.failed == {("int", "refused"): 1}
