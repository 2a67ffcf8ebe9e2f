"""Plain builders the tests share (no fixtures: those are in conftest.py): a small store's settings, offers,
roster entries and decisions, the seeding of an agent, and a coroutine run as a task for a block."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edge_agent.app import Agent
from edge_agent.config import Settings, from_dict
from edge_agent.keys import DeviceKey
from edge_agent.sources.peers import signed
from edge_agent.store.decisions import DecisionRecord
from edge_agent.store.offers import Offer
from edge_agent.store.roster import RosterEntry
from simulators.checkin_app import CheckinIssuer

STORE = "store-test"
DEVICE = "edge-test"
OPS_TOKEN = "ops-token-for-tests-0123"
OPS = {"Authorization": f"Bearer {OPS_TOKEN}"}  # what a Prometheus scrape sends
DEVICE_KEY = DeviceKey(bytes(range(100, 132)))  # the test host's device key: the cloud simulator seals to it


HOST_KEYS = {"host-a": DeviceKey(bytes(range(32))), "host-b": DeviceKey(bytes(range(1, 33))), DEVICE: DEVICE_KEY}


def device_key_file(folder: Path, device: str = DEVICE) -> str:
    """That test host's device key, written into the test's folder once."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "device.key"
    if not path.exists():
        HOST_KEYS[device].write(path)
    return str(path)


def fleet(device: str, **fleet_settings: Any) -> dict[str, Any]:
    """The [fleet] of test host `device`: the store's other test hosts, each with its device key's `sign` key."""
    others = [{"device": d, "sign": k.public().as_json()["sign"]} for d, k in HOST_KEYS.items() if d != device]
    return {"hosts": others, **fleet_settings}


def signed_by(device: str, payload: bytes, kind: str = "presence") -> bytes:
    """A host's message as that test host signs it (sources/peers/signed.py)."""
    return signed.seal(HOST_KEYS[device], kind, STORE, device, payload)


def config_dict(tmp_path: Path, issuer: CheckinIssuer, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "store": {"id": STORE, "chain_id": "chain-test", "device_id": DEVICE},
        "zones": [{"id": "entrance"}, {"id": "bakery"}],
        "touchpoints": [
            {"id": "screen-a", "kind": "screen", "zone": "entrance"},
            {"id": "kiosk-a", "kind": "kiosk", "zone": "entrance"},
            {"id": "screen-b", "kind": "screen", "zone": "bakery"},
        ],
        "database": {"path": str(tmp_path / "agent.db")},
        "http": {"host": "127.0.0.1", "port": 0},
        "checkin": {"public_keys": [issuer.public_key_b64]},
        "presence": {"hold_down_s": 5.0, "checkin_hold_s": 30.0, "dwell_interval_s": 10.0},
        "signage": {"rotate_s": 3600.0},
        "surfaces": {"auth": {"ops_tokens": [OPS_TOKEN]}},
    }
    data.update(overrides)
    return data


def mqtt_section(broker, cloud, **mqtt: Any) -> dict[str, Any]:
    """The [mqtt] section for a test broker and the cloud simulator on it, reconnecting quickly."""
    return {
        "host": broker.host,
        "port": broker.port,
        "bundle_public_keys": [cloud.public_key_b64],
        "reconnect_min_s": 0.2,
        "reconnect_max_s": 1.0,
        **mqtt,
    }


def mqtt_settings(tmp_path: Path, issuer: CheckinIssuer, broker, cloud, **mqtt: Any) -> Settings:
    """A store synced by the cloud simulator, with the device key the simulator seals the roster's secrets to."""
    data = config_dict(tmp_path, issuer, mqtt=mqtt_section(broker, cloud, **mqtt))
    data["store"]["device_key_file"] = device_key_file(tmp_path)
    return from_dict(data)


def offer(offer_id: str, **fields: Any) -> Offer:
    now = datetime.now(UTC)
    base: dict[str, Any] = {
        "offer_id": offer_id,
        "title": f"Offer {offer_id}",
        "valid_from": now - timedelta(days=1),
        "valid_to": now + timedelta(days=1),
    }
    base.update(fields)
    return Offer(**base)


def customer(ref: str, *, personalisation: bool = True, checkin: bool = True, segments=()) -> RosterEntry:
    return RosterEntry(
        customer_ref=ref, consents={"checkin": checkin, "personalisation": personalisation}, segments=segments
    )


def decision(decision_id: str = "d1", offer_id: str = "o1", customer_ref: str | None = "alice") -> DecisionRecord:
    """A decision to show `offer_id` on screen-a (anonymous when `customer_ref` is None)."""
    return DecisionRecord(
        decision_id,
        "2026-11-24T10:00:00.000+00:00",
        True,
        "screen-a",
        "entrance",
        customer_ref,
        offer_id,
        [offer_id],
        {offer_id: 1.0},
        "test",
    )


DEFAULT_OFFERS = [
    offer("welcome", title="Welcome to the store", priority=0.0),
    offer("coffee", title="Coffee for members", audience="personalised", segments=("coffee",), priority=1.0),
]
DEFAULT_ROSTER = [
    customer("alice", segments=("coffee",)),
    customer("bob", personalisation=False),
    customer("carol", checkin=False),
]


def seed(agent: Agent, offers: list[Offer] = DEFAULT_OFFERS, roster: list[RosterEntry] = DEFAULT_ROSTER) -> None:
    agent.store.offers.replace_all(offers)
    agent.store.roster.upsert(roster, updated_at=datetime.now(UTC).isoformat())
    agent.catalog.reload()


@contextlib.asynccontextmanager
async def running_task(work: Coroutine[Any, Any, Any], *close: Callable[[], Any]) -> AsyncIterator[asyncio.Task]:
    """`work` runs as a task for the block; then it is cancelled (it must end by that, not by an error of its own)
    and each of `close` is called, whether the block passed or not."""
    task = asyncio.create_task(work)
    try:
        yield task
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for done in close:
            done()


async def paired_screen(http: aiohttp.ClientSession, agent: Agent, touchpoint: str) -> aiohttp.ClientWebSocketResponse:
    """A screen's WebSocket, paired with the touchpoint's key as its first message (as a paired page does)."""
    ws = await http.ws_connect(f"{agent.url.replace('http', 'ws', 1)}/ws/screen/{touchpoint}")
    await ws.send_json({"type": "hello", "key": agent.store.screen_keys.key(touchpoint)})
    return ws


async def wait_for(condition: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> None:
    """Until `condition()` holds, checked every 50 ms; AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


class AgentProcess:
    """`edge-agent run` in its own process, from this worktree, so it can be killed with SIGKILL."""

    def __init__(self, config_path):
        self.config_path = config_path
        self.process = None

    def start(self):
        root = Path(__file__).resolve().parents[1]
        env = {**os.environ, "PYTHONPATH": str(root)}
        log = (self.config_path.parent / "agent.log").open("ab")
        command = [sys.executable, "-m", "edge_agent", "run", "--config", str(self.config_path)]
        self.process = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=log)
        log.close()

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(15)


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
