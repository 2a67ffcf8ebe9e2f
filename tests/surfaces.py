"""Helpers for the surface tests: a store with staff tokens, members with loyalty ids and phone hashes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from edge_agent.app import Agent
from edge_agent.config import Settings, from_dict
from edge_agent.store.roster import RosterEntry, phone_hash
from simulators.checkin_app import CheckinIssuer

from .factories import config_dict, offer, seed

KIOSK_TOKEN = "kiosk-token-0123456789"
ASSOCIATE_TOKEN = "associate-token-0123456789"
DASHBOARD_TOKEN = "dashboard-token-0123456789"
TILL_TOKEN = "till-token-0123456789abc"
PHONE_SALT = "chain-salt"
ALICE_PHONE = "+44 7700 900123"
ALICE_LOYALTY = "40012345"


def surfaces_settings(tmp_path: Path, issuer: CheckinIssuer, **surfaces: Any) -> Settings:
    data = config_dict(tmp_path, issuer)
    data["zones"] = [{"id": "entrance", "name": "Entrance"}, {"id": "bakery", "name": "Bakery"}]
    if "timezone" in surfaces:
        data["store"]["timezone"] = surfaces.pop("timezone")
    data["surfaces"] = {
        "auth": {
            "kiosk_tokens": [KIOSK_TOKEN],
            "associate_tokens": [ASSOCIATE_TOKEN],
            "dashboard_tokens": [DASHBOARD_TOKEN],
            "till_tokens": [TILL_TOKEN],
        },
        "kiosk": {"phone_salt": PHONE_SALT},
        "assets": {"dir": str(tmp_path / "assets"), "retry_s": 0.5},
        **surfaces,
    }
    return from_dict(data)


def member(ref: str, *, loyalty: str | None = None, phone: str | None = None, **consents: bool) -> RosterEntry:
    granted = {"checkin": True, "personalisation": True, "assisted": False, "ble": False, "face": False, **consents}
    return RosterEntry(
        customer_ref=ref,
        consents=granted,
        segments=("coffee", "bakery") if ref == "alice" else (),
        loyalty_id=loyalty,
        phone_hash=phone_hash(PHONE_SALT, phone) if phone else None,
    )


OFFERS = [
    offer(
        "flat-white",
        title="Flat white, half price",
        body="Freshly roasted this week. Members only.",
        audience="personalised",
        segments=("coffee",),
        priority=1.0,
        price_cents=180,
        currency="EUR",
        image="/static/demo-coffee.svg",
    ),
    offer(
        "croissant",
        title="Butter croissant + any coffee",
        body="Baked in store every morning.",
        price_cents=299,
        currency="EUR",
        image="/static/demo-croissant.svg",
        priority=0.5,
    ),
    offer(
        "apples",
        title="Local apples, 1 kg",
        body="From the orchard down the road.",
        price_cents=249,
        currency="EUR",
        image="/static/demo-apples.svg",
    ),
]
ROSTER = [
    member("alice", loyalty=ALICE_LOYALTY, phone=ALICE_PHONE, assisted=True),
    member("bob", loyalty="40099999"),
]


def seeded(settings: Settings) -> Agent:
    agent = Agent(settings)
    seed(agent, offers=OFFERS, roster=ROSTER)
    return agent


@asynccontextmanager
async def started(agent: Agent) -> AsyncIterator[Agent]:
    """The agent serving for the block, stopped after it whether the block passed or not."""
    await agent.start()
    try:
        yield agent
    finally:
        await agent.stop()
