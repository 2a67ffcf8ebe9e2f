"""The MQTT link never blocks the event loop, gives up on silent brokers and backs off with jitter."""

import asyncio
import contextlib
import random
import socket
import time

import pytest

from edge_agent.config import MqttSettings
from edge_agent.mqtt import MqttLink, backoff_delay

from .test_cloud_tls import ThrowawayCA


def test_backoff_doubles_with_jitter_up_to_the_ceiling():
    rng = random.Random(1)
    for attempt in range(12):
        ceiling = min(60.0, 1.0 * 2**attempt)
        delays = [backoff_delay(attempt, 1.0, 60.0, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 4  # spread out, so a thousand stores do not return at once


@pytest.fixture
def silent_server():
    """Accepts TCP connections and never says a word: a hung broker, or a TLS peer that never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield server.getsockname()[1]
    server.close()


@pytest.mark.parametrize("tls", [False, True], ids=["connack-never-comes", "tls-handshake-hangs"])
async def test_a_silent_broker_neither_blocks_the_loop_nor_the_link(silent_server, tls, tmp_path):
    settings = MqttSettings(
        host="127.0.0.1",
        port=silent_server,
        connect_timeout_s=1.0,
        reconnect_min_s=0.1,
        reconnect_max_s=0.2,
        tls_ca_file=ThrowawayCA(tmp_path).path if tls else None,
    )
    link = MqttLink(settings, "silent-test", persistent=False)
    task = asyncio.create_task(link.run())
    longest_gap, last = 0.0, time.monotonic()
    try:
        async with asyncio.timeout(30):
            while link.counts["connect_failures"] < 2:
                await asyncio.sleep(0.01)
                now = time.monotonic()
                longest_gap, last = max(longest_gap, now - last), now
    finally:
        await link.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert link.counts["connects"] == 0
    assert longest_gap < 0.5  # each attempt waited a whole second, but never on the loop
