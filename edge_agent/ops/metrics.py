"""`/metrics` in the Prometheus text format, read from the components' own counters at scrape time.

Nothing is counted twice: each component keeps its counters where its work happens and says what they are in
its `metrics()`, beside its `health()`; the app chains them, and this only renders what the chain yields, so a
scrape costs nothing between scrapes and this module knows no component.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Chain(Collector):
    def __init__(self, metrics: Callable[[], Iterable[Metric]]):
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield from self._metrics()


def render(metrics: Callable[[], Iterable[Metric]]) -> bytes:
    """The text a scraper reads, from what `metrics()` yields now."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Chain(metrics))
    return generate_latest(registry)
