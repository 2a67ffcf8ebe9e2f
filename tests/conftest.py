"""Shared fixtures: a small store's settings, the cloud's check-in signer, and a running agent."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import settings as hypothesis_settings

from edge_agent.app import Agent
from edge_agent.config import Settings, from_dict
from edge_agent.store.offers import Offer
from edge_agent.store.roster import RosterEntry
from simulators.broker import Mosquitto
from simulators.checkin_app import CheckinIssuer
from simulators.cloud import CloudSim

# Property tests: the short default runs in the suite; HYPOTHESIS_PROFILE=full tries ten times as many inputs.
hypothesis_settings.register_profile("suite", deadline=None)
hypothesis_settings.register_profile("full", deadline=None, max_examples=1000)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))

STORE = "store-test"
OPS_TOKEN = "ops-token-for-tests-0123"
OPS = {"Authorization": f"Bearer {OPS_TOKEN}"}  # what a Prometheus scrape sends


@pytest.fixture
def issuer() -> CheckinIssuer:
    return CheckinIssuer(STORE)


def config_dict(tmp_path: Path, issuer: CheckinIssuer, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "store": {"id": STORE, "chain_id": "chain-test", "device_id": "edge-test"},
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


@pytest.fixture
def settings(tmp_path: Path, issuer: CheckinIssuer) -> Settings:
    return from_dict(config_dict(tmp_path, issuer))


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


@pytest.fixture
async def running(settings: Settings) -> AsyncIterator[Callable[..., Any]]:
    """Start agents on free ports; every agent started is stopped at the end of the test."""
    agents: list[Agent] = []

    async def start(s: Settings = settings, seeded: bool = True) -> Agent:
        agent = Agent(s)
        if seeded:
            seed(agent)
        await agent.start()
        agents.append(agent)
        return agent

    yield start
    for agent in agents:
        await agent.stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A private Mosquitto on a free port, persisting like a cloud broker; tests may kill and restart it."""
    mosquitto = Mosquitto(tmp_path / "mosquitto", durable=True).start()
    yield mosquitto
    mosquitto.stop()


@pytest.fixture
async def cloud(broker: Mosquitto) -> AsyncIterator[CloudSim]:
    """The cloud simulator on that broker, for this test's store."""
    sim = await CloudSim(broker.host, broker.port, STORE).start()
    yield sim
    await sim.close()


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


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[Any]:
    """One headless Chromium for a whole module of page tests (tests/browser.py)."""
    from .browser import chromium  # Playwright is loaded only by the modules that open pages

    async with chromium() as opened:
        yield opened
