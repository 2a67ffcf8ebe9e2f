"""`edge-agent demo`: a whole store on this machine, with no hardware.

It writes a demo config and database into a fresh folder, starts the agent, and runs simulated shoppers
who check in with the app and buy at a simulated till on a pty (more often what they were shown), and
headless players on every touchpoint (open the printed URLs in a browser to watch the screens too). The
offer bundle holds a 25 % holdout, so `edge-agent report --config DIR/edge-agent.toml` afterwards shows
what each offer sold, arm against arm. With an MQTT broker (a `mosquitto` on PATH the demo starts itself,
or `--broker`) the cloud simulator signs and sends the offers and the roster and collects what the store
sends up; without one the demo says so and applies the same bundle and roster locally.
Where `dbus-daemon` is installed, shoppers with the app's rotating BLE token also walk the floor, heard by
the real bleak scanner through a simulated BlueZ on a private D-Bus; without it the demo runs without BLE.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import secrets
import signal
import sys
import tempfile
import time
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
from .store.roster import RosterEntry, phone_hash

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


DEMO_PHONE_SALT = "demo-chain-phone-salt"


def demo_config(
    workdir: Path, port: int, checkin_public_key: str, staff_token: str = "", ble: bool = False
) -> dict[str, Any]:
    """The demo store; with a staff token the kiosk, associate tablet and dashboard open with it; with
    `ble`, this host's adapter (the simulated BlueZ) hears the entrance. Its till is a pty behind
    `workdir/ttyTILL`, speaking `workdir/till-profile.toml`."""
    return {
        "sources": {"checkin": True, "ble": ble, "pos": True},
        "ble": {"receivers": [{"id": "edge-demo", "zone": "entrance"}], "stall_s": 30.0},
        "surfaces": {
            "auth": {f"{role}_tokens": [staff_token] for role in ("kiosk", "associate", "dashboard", "till", "ops")}
            if staff_token
            else {},
            "kiosk": {"phone_salt": DEMO_PHONE_SALT},
        },
        "store": {"id": "demo-store", "chain_id": "demo-chain", "device_id": "edge-demo"},
        "zones": ZONES,
        "touchpoints": TOUCHPOINTS,
        "database": {"path": str(workdir / "edge-agent.db")},
        "http": {"host": "127.0.0.1", "port": port},
        "checkin": {"public_keys": [checkin_public_key]},
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
            consents={"checkin": True, "personalisation": i % 4 != 3, "assisted": i % 3 == 0},
            segments=segments[i % len(segments)],
            loyalty_id=f"{40000000 + i}",  # at the kiosk: loyalty number 40000001 … 40000012
            phone_hash=phone_hash(DEMO_PHONE_SALT, f"+1555010{i:04d}"),  # or phone +1 555 010 0001 …
        )
        for i in range(1, 13)
    ]


def ble_roster(shoppers: list[Any], unix: float) -> list[RosterEntry]:
    """The BLE shoppers who opted in: consent to BLE and personalisation, day keys, phone model."""
    segments = [("coffee-lover",), ("family", "healthy"), ("bread",)]
    return [
        s.phone.roster_entry(
            unix, {"ble": True, "personalisation": True}, segments=segments[i % 3], phone_model=s.model.name
        )
        for i, s in enumerate(shoppers)
        if s.opted_in
    ]


async def run_demo(
    seconds: float | None, port: int, workdir: Path | None, players: bool, broker: str | None = None
) -> dict[str, Any]:
    """`broker`: "HOST:PORT" of a broker to use, "off" for no cloud, None to start a `mosquitto` if there is one."""
    from simulators.bluez import dbus_available
    from simulators.checkin_app import CheckinIssuer
    from simulators.till import PROFILE, SimulatedTill

    workdir = workdir or Path(tempfile.mkdtemp(prefix="edge-agent-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    issuer = CheckinIssuer("demo-store")
    staff_token = secrets.token_urlsafe(18)
    async with contextlib.AsyncExitStack() as stack:
        radio = await stack.enter_async_context(_ble_floor(seconds)) if dbus_available() else None
        config = demo_config(workdir, port, issuer.public_key_b64, staff_token, ble=radio is not None)
        cloud = await _cloud(stack, workdir, broker)
        if cloud is not None:
            config["mqtt"] = {
                "host": cloud.host,
                "port": cloud.port,
                "bundle_public_keys": [cloud.public_key_b64],
                "telemetry_interval_s": 10.0,
                "reconnect_max_s": 5.0,
            }
        (workdir / "edge-agent.toml").write_text(tomli_w.dumps(config), encoding="utf-8")
        (workdir / "till-profile.toml").write_text(tomli_w.dumps(PROFILE), encoding="utf-8")
        till = SimulatedTill(workdir / "ttyTILL")
        stack.callback(till.close)
        agent = await _start(from_dict(config), port)
        roster = demo_roster()
        ble_people = ble_roster(radio[2], time.time()) if radio is not None else []
        bundle = demo_bundle(datetime.now(UTC))
        if cloud is None or not await _sync_from_cloud(agent, cloud, bundle, roster + ble_people):
            now = datetime.now(UTC).isoformat()
            apply_offers(agent.store.db, agent.store.bundle_versions, agent.store.offers, bundle, now)
            agent.store.roster.upsert(roster + ble_people, updated_at=now)
            agent.catalog.reload()
        agent.engine.rotate_anonymous()
        print(f"demo store running, data in {workdir}", flush=True)
        return await _run(agent, issuer, roster, bundle, till, seconds, players, cloud, staff_token, radio, ble_people)


def demo_bundle(now: datetime) -> OfferBundle:
    """The demo's offers with a 25 % global holdout, so the report can show uplift."""
    return OfferBundle(version=1, issued_at=now, offers=demo_offers(now), holdout=Holdout(fraction=0.25, seed="demo"))


@contextlib.asynccontextmanager
async def _ble_floor(seconds: float | None) -> Any:
    """A private D-Bus, a simulated BlueZ on it that bleak will find, and BLE shoppers on the demo floor."""
    import random

    from simulators.bluez import PrivateBus, SimulatedBlueZ
    from simulators.shoppers import SCENARIOS, Radio, make_shoppers

    span_min = (seconds or 8 * 3600) / 60
    plan = SCENARIOS["demo"]
    rng = random.Random()
    people = make_shoppers(plan, rng, max(6, int(span_min)), span_min, chain_id="demo-chain", prefix="ble")
    previous = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
    with PrivateBus() as bus:
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = bus.address
        bluez = SimulatedBlueZ(bus.address)
        await bluez.start()
        try:
            yield (bluez, Radio(plan, people, rng, start_unix=time.time()), people)
        finally:
            await bluez.stop()
            if previous is None:
                os.environ.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
            else:
                os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = previous


async def _cloud(stack: contextlib.AsyncExitStack, workdir: Path, broker: str | None) -> Any:
    """The cloud simulator on a broker, or None (and the reason, said plainly) when the demo runs offline."""
    from simulators.broker import Mosquitto, find_mosquitto
    from simulators.cloud import CloudSim

    if broker == "off":
        print("cloud: off (--broker off); offers and roster are seeded locally", flush=True)
        return None
    if broker is None:
        if find_mosquitto() is None:
            print(
                "cloud: running OFFLINE: no MQTT broker (install mosquitto, or pass --broker HOST:PORT); "
                "offers and roster are seeded locally",
                flush=True,
            )
            return None
        mosquitto = await asyncio.to_thread(Mosquitto(workdir / "mosquitto").start)
        stack.callback(mosquitto.stop)
        host, port = mosquitto.host, mosquitto.port
        where = f"a mosquitto the demo started on {host}:{port}"
    else:
        host, _, port_text = broker.rpartition(":")
        host, port = host or "127.0.0.1", int(port_text or 1883)
        where = f"the broker at {host}:{port}"
    cloud = CloudSim(host, port, "demo-store")
    try:
        await cloud.start(timeout=5.0)
    except (TimeoutError, OSError) as exc:
        await cloud.close()
        why = str(exc) or "no answer within 5 s"
        print(f"cloud: running OFFLINE: cannot reach {where} ({why}); offers and roster are seeded locally", flush=True)
        return None
    stack.push_async_callback(cloud.close)
    print(f"cloud: the cloud simulator signs and sends offers and roster through {where}", flush=True)
    return cloud


async def _sync_from_cloud(agent: Agent, cloud: Any, bundle: OfferBundle, roster: list[RosterEntry]) -> bool:
    """Offers and roster as signed bundles through the broker; False if they did not arrive in time."""
    from simulators.cloud import roster_bundle

    await cloud.publish_offers(bundle.model_dump(mode="json"))
    await cloud.publish_roster(roster_bundle(1, roster))
    try:
        async with asyncio.timeout(15):
            while not (agent.store.bundle_versions.current("offers") and agent.store.bundle_versions.current("roster")):
                await asyncio.sleep(0.05)
    except TimeoutError:
        print("cloud: the bundles did not arrive within 15 s; seeding locally instead", flush=True)
        return False
    return True


async def _run(
    agent: Agent,
    issuer: Any,
    roster: list[RosterEntry],
    bundle: OfferBundle,
    till: Any,
    seconds: float | None,
    players: bool,
    cloud: Any,
    staff_token: str,
    radio: Any,
    ble_people: list[RosterEntry],
) -> dict[str, Any]:
    from simulators.checkin_app import Shoppers
    from simulators.screen import ScreenPlayer
    from simulators.shoppers import feed_bluez
    from simulators.till import Buyers

    for tp in agent.settings.touchpoints:
        print(f"  {tp.name:<16} {agent.url}/{'kiosk' if tp.kind == 'kiosk' else 'screen'}/{tp.id}", flush=True)
    print(f"  {'Associate':<16} {agent.url}/associate\n  {'Dashboard':<16} {agent.url}/dashboard", flush=True)
    print(f"  staff sign-in token: {staff_token}   (kiosk: loyalty number 40000003)", flush=True)
    shoppers = Shoppers(agent.url, issuer, [c.customer_ref for c in roster], [t["id"] for t in TOUCHPOINTS])
    buyers = Buyers(till, partial(_decided_after, agent), {o.offer_id: o.sku for o in bundle.offers if o.sku})
    sims = [shoppers.run(), buyers.run()]
    if radio is not None:
        print(f"  BLE: {len(ble_people)} opted-in phones among {len(radio[2])} on the floor", flush=True)
        sims.append(feed_bluez(radio[0], radio[1], "rx-entrance", seconds or 8 * 3600))
    if players:
        sims += [ScreenPlayer(agent.url, t["id"]).run() for t in TOUCHPOINTS]
    tasks = [asyncio.create_task(s) for s in sims]
    try:
        await _wait(seconds)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if cloud is not None:
            with contextlib.suppress(TimeoutError):  # let the outbox drain what the shoppers just caused
                async with asyncio.timeout(5):
                    while agent.store.outbox.depths().get("events") and agent.cloud.link.connected.is_set():
                        await asyncio.sleep(0.1)
        summary = _summary(agent, shoppers.outcomes)
        if cloud is not None:
            summary["cloud"] = {
                "events_received": len(cloud.of_kind("decision")) + len(cloud.of_kind("impression")),
                "duplicates_removed": sum(cloud.duplicates.values()),
                "acks": len(cloud.acks),
            }
        else:
            summary["cloud"] = "offline"
        await agent.stop()
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
        "ble_sightings": agent.ble.resolver.counts["resolved"] if agent.ble is not None else None,
    }
