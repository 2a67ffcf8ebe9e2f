"""`edge-agent demo`: a whole store on this machine, with no broker and no hardware.

It writes a demo config and database into a fresh folder, applies an offer bundle (with a 25 % holdout) and
seeds opted-in customers, starts the agent, and runs simulated shoppers who check in with the app, buy at a
simulated till on a pty (more often what they were shown), and headless players on every touchpoint (open
the printed URLs in a browser to watch the screens too). `edge-agent report --config DIR/edge-agent.toml`
then shows what each offer sold, arm against arm.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import tomli_w

from .app import Agent
from .config import Settings, from_dict
from .store.bundles import OfferBundle, apply_offers
from .store.offers import Offer
from .store.policy import Holdout
from .store.roster import RosterEntry

ZONES = [
    {"id": "entrance", "name": "Entrance"},
    {"id": "bakery", "name": "Bakery"},
    {"id": "dairy", "name": "Dairy"},
]
TOUCHPOINTS = [
    {"id": "screen-entrance", "kind": "screen", "zone": "entrance", "name": "Entrance screen"},
    {"id": "screen-bakery", "kind": "screen", "zone": "bakery", "name": "Bakery screen"},
    {"id": "kiosk-entrance", "kind": "kiosk", "zone": "entrance", "name": "Entrance kiosk"},
]


def demo_config(workdir: Path, port: int, checkin_public_key: str) -> dict[str, Any]:
    """The demo store; its till is a pty behind `workdir/ttyTILL`, speaking `workdir/till-profile.toml`."""
    return {
        "store": {"id": "demo-store", "chain_id": "demo-chain", "device_id": "edge-demo"},
        "zones": ZONES,
        "touchpoints": TOUCHPOINTS,
        "database": {"path": str(workdir / "edge-agent.db")},
        "http": {"host": "127.0.0.1", "port": port},
        "checkin": {"public_keys": [checkin_public_key]},
        "sources": {"checkin": True, "pos": True},
        "pos": {"port": str(workdir / "ttyTILL"), "profile": str(workdir / "till-profile.toml"), "reconnect_s": 1.0},
        "presence": {"hold_down_s": 20.0, "checkin_hold_s": 45.0, "dwell_interval_s": 10.0},
        "signage": {
            "rotate_s": 15.0,
            "idle": [
                {
                    "title": "Welcome to the demo store",
                    "text": "Check in with the app for offers made for you",
                },
                {
                    "title": "Fresh every morning",
                    "text": "Bread baked in store from 7 am",
                    "image": "/static/demo-croissant.svg",
                },
            ],
        },
    }


def demo_offers(now: datetime) -> list[Offer]:
    week = {"valid_from": now - timedelta(days=1), "valid_to": now + timedelta(days=7)}
    return [
        Offer(
            offer_id="croissant-3for2",
            sku="croissant",
            title="Croissants: 3 for 2",
            body="Butter croissants, baked this morning.",
            price_cents=249,
            currency="EUR",
            image="/static/demo-croissant.svg",
            zones=("bakery", "entrance"),
            priority=2.0,
            **week,
        ),
        Offer(
            offer_id="coffee-loyalty",
            sku="coffee",
            title="Your coffee, half price",
            body="For members: any hot drink today.",
            price_cents=150,
            currency="EUR",
            image="/static/demo-coffee.svg",
            audience="personalised",
            segments=("coffee-lover",),
            priority=1.5,
            **week,
        ),
        Offer(
            offer_id="milk-organic",
            sku="milk-1l",
            title="Organic milk 1 l",
            body="From farms within 50 km.",
            price_cents=119,
            currency="EUR",
            image="/static/demo-milk.svg",
            zones=("dairy", "entrance"),
            priority=1.0,
            stock=40,
            **week,
        ),
        Offer(
            offer_id="apples-family",
            sku="apples-2kg",
            title="Family bag of apples",
            body="2 kg of crisp apples for the week.",
            price_cents=299,
            currency="EUR",
            image="/static/demo-apples.svg",
            audience="personalised",
            segments=("family", "healthy"),
            priority=1.0,
            **week,
        ),
        Offer(
            offer_id="bread-evening",
            sku="bread",
            title="Evening bread deal",
            body="Any loaf after 6 pm.",
            price_cents=199,
            currency="EUR",
            image="/static/demo-croissant.svg",
            zones=("bakery",),
            audience="personalised",
            segments=("bread",),
            priority=0.5,
            **week,
        ),
    ]


def demo_roster() -> list[RosterEntry]:
    segments = [("coffee-lover",), ("family", "healthy"), ("bread",), ("coffee-lover", "family"), ()]
    return [
        RosterEntry(
            customer_ref=f"cust-{i:03d}",
            consents={"checkin": True, "personalisation": i % 4 != 3},
            segments=segments[i % len(segments)],
        )
        for i in range(1, 13)
    ]


async def run_demo(seconds: float | None, port: int, workdir: Path | None, players: bool) -> dict[str, Any]:
    from simulators.checkin_app import CheckinIssuer, Shoppers
    from simulators.screen import ScreenPlayer
    from simulators.till import PROFILE, Buyers, SimulatedTill

    workdir = workdir or Path(tempfile.mkdtemp(prefix="edge-agent-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    issuer = CheckinIssuer("demo-store")
    config = demo_config(workdir, port, issuer.public_key_b64)
    (workdir / "edge-agent.toml").write_text(tomli_w.dumps(config), encoding="utf-8")
    (workdir / "till-profile.toml").write_text(tomli_w.dumps(PROFILE), encoding="utf-8")
    till = SimulatedTill(workdir / "ttyTILL")
    agent = await _start(from_dict(config), port)
    now = datetime.now(UTC)
    offers = demo_offers(now)
    bundle = OfferBundle(version=1, issued_at=now, offers=offers, holdout=Holdout(fraction=0.25, seed="demo"))
    apply_offers(agent.store.db, agent.store.bundle_versions, agent.store.offers, bundle, now.isoformat())
    roster = demo_roster()
    agent.store.roster.upsert(roster, updated_at=now.isoformat())
    agent.catalog.reload()
    agent.engine.rotate_anonymous()

    print(f"demo store running, data in {workdir}", flush=True)
    for tp in agent.settings.touchpoints:
        print(f"  {tp.name:<16} {agent.url}/screen/{tp.id}", flush=True)
    shoppers = Shoppers(agent.url, issuer, [c.customer_ref for c in roster], [t["id"] for t in TOUCHPOINTS])
    buyers = Buyers(till, partial(_decided_after, agent), {o.offer_id: o.sku for o in offers if o.sku})
    sims = [shoppers.run(), buyers.run()]
    if players:
        sims += [ScreenPlayer(agent.url, t["id"]).run() for t in TOUCHPOINTS]
    tasks = [asyncio.create_task(s) for s in sims]
    try:
        await _wait(seconds)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        summary = _summary(agent, shoppers.outcomes)
        await agent.stop()
        till.close()
    return summary


def _decided_after(agent: Agent, rowid: int) -> list[tuple[int, str, str, str]]:
    """Decisions for identified customers since the last look: what the simulated shoppers react to."""
    return agent.store.db.execute(
        "SELECT rowid, customer_ref, intended_offer_id, offer_id FROM decisions"
        " WHERE rowid > ? AND customer_ref IS NOT NULL AND intended_offer_id IS NOT NULL ORDER BY rowid",
        [rowid],
    ).fetchall()


async def _start(settings: Settings, port: int) -> Agent:
    try:
        agent = Agent(settings)
        await agent.start()
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE or port == 0:
            raise
        print(f"port {port} is busy; using a free port instead", file=sys.stderr)
        await agent.stop()
        settings = settings.model_copy(update={"http": settings.http.model_copy(update={"port": 0})})
        agent = Agent(settings)
        await agent.start()
    return agent


async def _wait(seconds: float | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


def _summary(agent: Agent, outcomes: Any) -> dict[str, Any]:
    refused = sum(v for k, v in outcomes.items() if k.startswith("refused:"))
    errors = (
        outcomes["errors"]
        + refused
        + agent.engine.counts["errors"]
        + agent.hub.counts["bad_acks"]
        + agent.hub.counts["bad_messages"]
        + sum(agent.restarts.values())
        + agent.attribution.counts["errors"]
        + (sum(agent.pos.rejected.values()) if agent.pos else 0)
    )
    return {
        "checkins": outcomes["accepted"],
        "decisions": agent.store.decisions.count(),
        "shown": agent.hub.counts["shown"],
        "impressions": agent.store.impressions.count(),
        "purchases": agent.store.purchases.transactions(),
        "conversions": agent.store.conversions.count(),
        "outbox_depth": agent.store.outbox.depth(),
        "refused": refused,
        "errors": errors,
    }
