"""Presence shared between two hosts through a real Mosquitto: how long from a sighting on host A to the
sighting on host B's bus, against bare paho carrying one message between two clients of the same broker.

Host A publishes what it saw every `share_interval_s` (batched), so its latency includes waiting for the
next batch: about half the interval on average. `p50_ms` and `p95_ms` are the shared-presence latencies;
`paho_p50_ms` is bare paho (QoS 0, its own network threads) for one message; `ratio` is
p50 / (paho_p50 + interval / 2), the overhead beyond what batching costs by design.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.bus import Bus
from edge_agent.clock import Clock
from edge_agent.config import Settings
from edge_agent.events import Channel, Customer, Sighting
from edge_agent.keys import DeviceKey
from edge_agent.sources.peers.source import StorePeers
from edge_agent.store import open_store
from edge_agent.store.roster import RosterEntry
from simulators.broker import Mosquitto

STORE = "bench-store"
INTERVAL_S = 0.1
KEYS = {"host-a": DeviceKey.generate(), "host-b": DeviceKey.generate()}  # each host signs what it shares


def _settings(tmp: Path, broker: Mosquitto, device: str) -> Settings:
    others = [{"device": d, "sign": k.public().as_json()["sign"]} for d, k in KEYS.items() if d != device]
    return Settings.model_validate(
        {
            "store": {"id": STORE, "chain_id": "bench-chain", "device_id": device},
            "zones": [{"id": "bakery"}],
            "database": {"path": str(tmp / f"{device}.db")},
            "mqtt": {"host": broker.host, "port": broker.port, "reconnect_min_s": 0.1},
            "fleet": {"share_presence": True, "share_interval_s": INTERVAL_S, "hosts": others},
        }
    )


def _bare_paho(broker: Mosquitto, n: int) -> list[float]:
    """Seconds from publish to on_message for one QoS 0 message, n times, between two paho clients."""
    got = threading.Event()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-sub")
    sub.on_message = lambda *_: got.set()
    sub.connect(broker.host, broker.port)
    sub.subscribe("bench/latency", qos=0)
    sub.loop_start()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-pub")
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    time.sleep(0.5)
    out = []
    try:
        for _ in range(n):
            got.clear()
            start = time.perf_counter()
            pub.publish("bench/latency", b'{"v":1}', qos=0)
            if not got.wait(10):
                raise TimeoutError("bare paho lost a message")
            out.append(time.perf_counter() - start)
    finally:
        for client in (pub, sub):
            client.disconnect()
            client.loop_stop()
    return out


async def _shared(tmp: Path, broker: Mosquitto, n: int) -> list[float]:
    hosts = []
    for device in ("host-a", "host-b"):
        settings = _settings(tmp, broker, device)
        store = open_store(settings.database.path)
        store.roster.upsert(
            [RosterEntry(customer_ref=f"c-{i}", consents={"checkin": True}) for i in range(n)],
            updated_at=datetime.now(UTC).isoformat(),
        )
        bus = Bus()
        hosts.append((StorePeers(settings, store, bus, Clock(), KEYS[device]), bus, store))
    (a, a_bus, _), (b, b_bus, _) = hosts
    arrived = b_bus.subscribe(Sighting, "bench", maxsize=10_000)
    tasks = [asyncio.create_task(a.run()), asyncio.create_task(b.run())]
    try:
        await asyncio.wait_for(asyncio.gather(a.link.connected.wait(), b.link.connected.wait()), 30)
        await asyncio.sleep(0.5)  # the subscriptions are in place
        out = []
        rng = random.Random(9)
        for i in range(n):
            await asyncio.sleep(rng.uniform(0, INTERVAL_S))  # sightings come at any point of A's cycle
            start = time.perf_counter()
            a_bus.publish(Sighting(Customer(f"c-{i}"), "bakery", Channel.CHECKIN, Clock().mono(), Clock().wall()))
            while True:
                s = await asyncio.wait_for(arrived.get(), 10)
                if s.subject == Customer(f"c-{i}"):
                    break
            out.append(time.perf_counter() - start)
        return out
    finally:
        for peers in (a, b):
            await peers.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for _, _, store in hosts:
            store.close()


async def run(quick: bool) -> dict[str, Any]:
    n = 40 if quick else 300
    with tempfile.TemporaryDirectory() as tmp, Mosquitto(Path(tmp) / "broker") as broker:
        paho = await asyncio.get_running_loop().run_in_executor(None, _bare_paho, broker, n)
        shared = await _shared(Path(tmp), broker, n)
    p50 = statistics.median(shared)
    paho_p50 = statistics.median(paho)
    return {
        "sightings": n,
        "share_interval_ms": INTERVAL_S * 1000,
        "p50_ms": round(p50 * 1000, 2),
        "p95_ms": round(statistics.quantiles(shared, n=20)[-1] * 1000, 2),
        "paho_p50_ms": round(paho_p50 * 1000, 3),
        "ratio": round(p50 / (paho_p50 + INTERVAL_S / 2), 2),
    }
