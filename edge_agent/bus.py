"""A small typed publish/subscribe bus on bounded asyncio queues.

Publishing never blocks: a subscriber that falls behind loses its oldest events (the freshest facts matter
most to a screen), and every loss is counted per event type and subscriber so telemetry can report it.

A fact that must take effect before its publisher goes on (an erasure is acknowledged to the cloud only once
every room has forgotten the customer) goes to handlers registered with `on`, called inside `publish`. A
handler's failure is counted and logged and stops no other room, unless it was registered with `raises`:
then the publisher sees it (a show the cloud commanded is acknowledged only once its decision is logged).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Generic, TypeVar

from prometheus_client.core import CounterMetricFamily, Metric

T = TypeVar("T")
log = logging.getLogger(__name__)


class Subscription(Generic[T]):
    def __init__(self, bus: Bus, event_type: type[T], name: str, maxsize: int):
        self._bus = bus
        self.event_type = event_type
        self.name = name
        self.queue: asyncio.Queue[T] = asyncio.Queue(maxsize=maxsize)

    async def get(self) -> T:
        return await self.queue.get()

    def __aiter__(self) -> AsyncIterator[T]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[T]:
        while True:
            yield await self.queue.get()

    def close(self) -> None:
        self._bus.unsubscribe(self)


class Bus:
    def __init__(self, default_maxsize: int = 1024):
        self._subs: dict[type, list[Subscription[Any]]] = defaultdict(list)
        self._handlers: dict[type, list[tuple[str, Callable[[Any], None], bool]]] = defaultdict(list)
        self._default_maxsize = default_maxsize
        self.published: Counter[str] = Counter()
        self.dropped: Counter[tuple[str, str]] = Counter()
        self.failed: Counter[tuple[str, str]] = Counter()

    def subscribe(self, event_type: type[T], name: str, maxsize: int | None = None) -> Subscription[T]:
        sub = Subscription(self, event_type, name, maxsize or self._default_maxsize)
        self._subs[event_type].append(sub)
        return sub

    def on(self, event_type: type[T], name: str, handler: Callable[[T], None], *, raises: bool = False) -> None:
        """Call `handler` with every such event before `publish` returns (it must not block); with `raises`, its
        failure is counted and raised out of `publish`, after the other handlers and subscribers have the event."""
        self._handlers[event_type].append((name, handler, raises))

    def unsubscribe(self, sub: Subscription[Any]) -> None:
        subs = self._subs.get(sub.event_type, [])
        if sub in subs:
            subs.remove(sub)

    def publish(self, event: object) -> None:
        kind = type(event)
        self.published[kind.__name__] += 1
        raised: Exception | None = None
        for name, handler, raises in self._handlers.get(kind, ()):
            try:
                handler(event)
            except Exception as exc:  # one room's failure never stops the others hearing it
                self.failed[(kind.__name__, name)] += 1
                if raises:
                    raised = raised or exc
                else:
                    log.exception("%s handler %s failed", kind.__name__, name)
        for sub in self._subs.get(kind, ()):
            queue = sub.queue
            if queue.full():
                queue.get_nowait()
                self.dropped[(kind.__name__, sub.name)] += 1
            queue.put_nowait(event)
        if raised is not None:
            raise raised

    def depths(self) -> dict[str, int]:
        return {f"{t.__name__}:{s.name}": s.queue.qsize() for t, subs in self._subs.items() for s in subs}

    def metrics(self) -> Iterator[Metric]:
        published = CounterMetricFamily("edge_bus_published", "Events published on the bus", labels=["event"])
        for event, n in self.published.items():
            published.add_metric([event], n)
        yield published
        dropped = CounterMetricFamily(
            "edge_bus_dropped", "Events a slow subscriber lost (oldest first)", labels=["event", "subscriber"]
        )
        for (event, sub), n in self.dropped.items():
            dropped.add_metric([event, sub], n)
        yield dropped
