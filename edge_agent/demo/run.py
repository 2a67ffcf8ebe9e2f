"""Running the demo: the agent, its simulated shoppers, till and players, and the summary at the end."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import tomli_w

from ..app import Agent
from ..config import Settings, from_dict
from ..store.bundles import OfferBundle, apply_offers
from ..store.roster import RosterEntry
from .cloud import mqtt_section, provision, start_cloud, sync_from_cloud
from .floor import ble_floor, ble_roster
from .store import TOUCHPOINTS, demo_bundle, demo_config, demo_roster


async def run_demo(
    seconds: float | None,
    port: int,
    workdir: Path | None,
    players: bool,
    broker: str | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """`broker`: "HOST:PORT" of a broker to use, "off" for no cloud, None to start a `mosquitto` if there is one;
    `seed`: the same BLE shoppers every time."""
    from simulators.bluez import dbus_available
    from simulators.checkin_app import CheckinIssuer
    from simulators.till import ESCPOS_PROFILE, SimulatedTill

    workdir = workdir or Path(tempfile.mkdtemp(prefix="edge-agent-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    issuer = CheckinIssuer("demo-store")
    staff_token = secrets.token_urlsafe(18)
    async with contextlib.AsyncExitStack() as stack:
        radio = await stack.enter_async_context(ble_floor(seconds, seed)) if dbus_available() else None
        config = demo_config(workdir, port, issuer.public_key_b64, staff_token, ble=radio is not None)
        cloud = await start_cloud(stack, workdir, broker)
        if cloud is not None:
            config["mqtt"] = mqtt_section(cloud)
            provision(config, workdir, cloud)
        (workdir / "edge-agent.toml").write_text(tomli_w.dumps(config), encoding="utf-8")
        (workdir / "till-profile.toml").write_text(tomli_w.dumps(ESCPOS_PROFILE), encoding="utf-8")
        till = SimulatedTill(workdir / "ttyTILL", escpos=True)  # the till's receipts, read by a receipt tap
        stack.callback(till.close)
        agent = await _start(from_dict(config), port)
        roster = demo_roster()
        ble_people = ble_roster(radio[2], time.time()) if radio is not None else []
        bundle = demo_bundle(datetime.now(UTC))
        if cloud is None or not await sync_from_cloud(agent, cloud, bundle, roster + ble_people):
            now = datetime.now(UTC).isoformat()
            apply_offers(agent.store.db, agent.store.bundle_versions, agent.store.offers, bundle, now)
            agent.store.roster.upsert(roster + ble_people, updated_at=now)
            agent.catalog.reload()
        agent.engine.rotate_anonymous()
        print(f"demo store running, data in {workdir}", flush=True)
        return await _run(agent, issuer, roster, bundle, till, seconds, players, cloud, staff_token, radio, ble_people)


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
    from simulators.shoppers import feed_bluez, feed_reports
    from simulators.till import Buyers

    for tp in agent.settings.touchpoints:
        print(f"  {tp.name:<16} {agent.url}/{'kiosk' if tp.kind == 'kiosk' else 'screen'}/{tp.id}", flush=True)
    print(f"  {'Associate':<16} {agent.url}/associate\n  {'Dashboard':<16} {agent.url}/dashboard", flush=True)
    print(f"  staff sign-in token: {staff_token}   (kiosk: loyalty number 40000003)", flush=True)
    shoppers = Shoppers(agent.url, issuer, [c.customer_ref for c in roster], [t["id"] for t in TOUCHPOINTS])
    buyers = Buyers(till, partial(decided_after, agent.store.db), {o.offer_id: o.sku for o in bundle.offers if o.sku})
    sims: list[Coroutine[Any, Any, object]] = [shoppers.run(), buyers.run()]
    if radio is not None:
        reporting = sum(1 for s in radio[2] if not s.advertises)
        print(
            f"  BLE: {len(ble_people)} opted-in phones among {len(radio[2])} on the floor;"
            f" {reporting} (iPhones, Androids without a foreground service) report the zone beacons they hear",
            flush=True,
        )
        sims.append(feed_bluez(radio[0], radio[1], "rx-entrance", seconds or 8 * 3600))
        if agent.report_listener is not None:
            print(f"  {'App reports':<16} {agent.report_listener.url}/api/ble/report (the store Wi-Fi)", flush=True)
            sims.append(feed_reports(agent.report_listener.url, radio[1], seconds or 8 * 3600))
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
                    while (
                        agent.store.outbox.depths().get("events")
                        and agent.cloud is not None
                        and agent.cloud.link.connected.is_set()
                    ):
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


def decided_after(db: Any, rowid: int) -> list[tuple[int, str, str, str]]:
    """Decisions for identified customers since the last look: what the simulated shoppers react to. `db` is
    the agent's database (sqlite-utils) or a connection of its own to the same file."""
    rows: list[tuple[int, str, str, str]] = db.execute(
        "SELECT rowid, customer_ref, intended_offer_id, offer_id FROM decisions"
        " WHERE rowid > ? AND customer_ref IS NOT NULL AND intended_offer_id IS NOT NULL ORDER BY rowid",
        [rowid],
    ).fetchall()
    return rows


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
        "ble_reports": sum(n for k, n in agent.reports.counts.items() if k.startswith("taken"))
        if agent.reports is not None
        else None,
    }
