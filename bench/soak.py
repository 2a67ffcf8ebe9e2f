"""Soak: a store day compressed into minutes, against the agent running as its own process.

The demo store (edge_agent/demo) with every part real: the agent is `python -m edge_agent run` in its own
process; a private Mosquitto and the cloud simulator send the signed offers and roster and collect what the
store sends up (dedup on uuid); bleak in the agent hears a day's phones through a simulated BlueZ on a
private D-Bus; shoppers check in over HTTP; the till prints receipts on a pty; headless players on every
touchpoint acknowledge what they show. The day is compressed by crowding it: a whole day's shoppers arrive
within the run, and the agent's timers (anonymous rotation, presence hold, telemetry) are shortened to match.

Figures (`rss_mb`, `rss_growth_mb`, `fds_growth` are of the agent process, from /proc every second; growth is
the last-quarter mean minus the first-quarter mean after warm-up, so caches filling once do not count):
- `tasks_died`: supervised-component restarts and stopped components (from `/healthz`) plus crash lines in
  the agent's log, plus 1 if the agent exited other than cleanly on SIGTERM.
- `events_lost`: facts in the agent's database (decisions, impressions, conversions, claims) that never
  reached the cloud simulator, plus events the outbox dropped or still held after the drain.
- `rss_growth_mb_1m_adverts`: RSS growth over the day when it carried at least 1 M adverts (else null;
  `adverts` says how many the agent's scanner took).
- `rss_mb_vision`: a second agent process with vision on (real models, the camera simulator's video on loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import random
import secrets
import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import tomli_w

from bench.agent_process import AgentProcess, ProcSampler, import_costs
from edge_agent.demo.cloud import mqtt_section, provision
from edge_agent.demo.floor import ble_roster
from edge_agent.demo.run import decided_after
from edge_agent.demo.store import TOUCHPOINTS, demo_bundle, demo_config, demo_roster
from simulators.bluez import PrivateBus, SimulatedBlueZ
from simulators.broker import Mosquitto, free_port
from simulators.checkin_app import CheckinIssuer, Shoppers
from simulators.cloud import CloudSim, roster_bundle
from simulators.screen import ScreenPlayer
from simulators.shoppers import SCENARIOS, Radio, feed_bluez, make_shoppers
from simulators.till import PROFILE, Buyers, SimulatedTill

STORE = "demo-store"
CRASH_LINE = "failed; restarting"  # what app.Agent._supervise logs when a component dies
FACTS = {  # kind sent up -> (table, key column)
    "decision": ("decisions", "decision_id"),
    "impression": ("impressions", "impression_id"),
    "conversion": ("conversions", "conversion_id"),
    "claim": ("claims", "code"),
}
# The agent's libraries, then the agent: each one's cost on top of those before it.
IMPORTS = [
    "numpy",
    "pydantic",
    "aiohttp",
    "aiohttp.web",
    "sqlite_utils",
    "cryptography.hazmat.primitives.asymmetric.ed25519",
    "paho.mqtt.client",
    "prometheus_client",
    "edge_agent.config",
    "edge_agent.app",
]
VISION_IMPORTS = ["edge_agent.app", "cv2", "onnxruntime"]


@dataclass(frozen=True)
class Day:
    seconds: float  # wall time the day is compressed into
    shoppers: int  # phones on the floor over the day (60 % opted in to BLE)
    checkin_gap_s: float  # mean gap between app check-ins
    warmup_s: float  # samples left out of the growth figures
    vision_s: float  # how long the vision agent runs


QUICK = Day(seconds=30, shoppers=150, checkin_gap_s=0.3, warmup_s=8, vision_s=15)
FULL = Day(seconds=840, shoppers=3750, checkin_gap_s=0.25, warmup_s=60, vision_s=60)


def soak_config(workdir: Path, port: int, issuer: CheckinIssuer, token: str, cloud: CloudSim):
    """The demo store synced by `cloud`, its timers shortened so a day's churn fits in the run."""
    config = demo_config(workdir, port, issuer.public_key_b64, token, ble=True)
    config["presence"] = {"hold_down_s": 5.0, "checkin_hold_s": 10.0, "dwell_interval_s": 5.0}
    config["signage"]["rotate_s"] = 2.0
    config["mqtt"] = mqtt_section(cloud, telemetry_interval_s=2.0, reconnect_max_s=2.0)
    provision(config, workdir, cloud)
    return config


def write_config(workdir: Path, config: dict[str, Any]) -> Path:
    path = workdir / "edge-agent.toml"
    path.write_text(tomli_w.dumps(config), encoding="utf-8")
    (workdir / "till-profile.toml").write_text(tomli_w.dumps(PROFILE), encoding="utf-8")
    return path


async def until(predicate: Callable[[], Any], timeout: float, step: float = 0.2) -> None:
    """Wait until `predicate` (a plain or an async function) holds."""
    async with asyncio.timeout(timeout):
        while not (await result if inspect.isawaitable(result := predicate()) else result):
            await asyncio.sleep(step)


def read_only(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)


def events_lost(db: Path, cloud: CloudSim) -> dict[str, Any]:
    """What the database holds against what the cloud received (after dedup), per kind of fact."""
    with contextlib.closing(read_only(db)) as conn:
        recorded = {
            kind: {r[0] for r in conn.execute(f"SELECT {key} FROM {table}")} for kind, (table, key) in FACTS.items()
        }
        left = conn.execute("SELECT count(*) FROM outbox WHERE stream = 'events'").fetchone()[0]
        dropped = conn.execute("SELECT coalesce(sum(dropped), 0) FROM outbox_drops WHERE drop_class <= 1").fetchone()[0]
    missing = {}
    for kind, keys in recorded.items():
        received = {e.get(FACTS[kind][1]) for e in cloud.of_kind(kind)}
        missing[kind] = len(keys - received)
    return {
        "events": sum(len(v) for v in recorded.values()),
        "recorded": {k: len(v) for k, v in recorded.items()},
        "missing": missing,
        "outbox_left": left,
        "outbox_dropped": dropped,
        "events_lost": sum(missing.values()) + left + dropped,
        "duplicates_removed": sum(cloud.duplicates.values()),
    }


def tasks_died(health: dict[str, Any], agent: AgentProcess) -> dict[str, int]:
    return {
        "restarts": sum(health["restarts"].values()),
        "stopped": sum(state != "running" for state in health["components"].values()),
        "crash_lines": agent.log_count(CRASH_LINE),
    }


async def store_day(workdir: Path, day: Day, command: list[str] | None = None) -> dict[str, Any]:
    issuer = CheckinIssuer(STORE)
    token = secrets.token_urlsafe(18)
    port = free_port()
    plan = SCENARIOS["demo"]
    rng = random.Random(5)
    people = make_shoppers(plan, rng, day.shoppers, day.seconds / 60, chain_id="demo-chain", prefix="ble")
    radio = Radio(plan, people, rng, start_unix=time.time())
    async with contextlib.AsyncExitStack() as stack:
        broker = stack.enter_context(Mosquitto(workdir / "mosquitto"))
        cloud = await CloudSim(broker.host, broker.port, STORE).start()
        stack.push_async_callback(cloud.close)
        bus = stack.enter_context(PrivateBus())
        bluez = SimulatedBlueZ(bus.address)
        await bluez.start()
        stack.push_async_callback(bluez.stop)
        till = SimulatedTill(workdir / "ttyTILL")
        stack.callback(till.close)
        config = soak_config(workdir, port, issuer, token, cloud)
        agent = AgentProcess(
            write_config(workdir, config),
            f"http://127.0.0.1:{port}",
            token,
            log=workdir / "agent.log",
            env={"DBUS_SYSTEM_BUS_ADDRESS": bus.address},
            command=command,
        )
        await agent.start()
        stack.callback(agent.stop)
        sampler = ProcSampler(agent.pid).start()
        stack.push_async_callback(sampler.stop)

        roster = demo_roster()
        bundle = demo_bundle(datetime.now(UTC))
        await cloud.publish_offers(bundle.model_dump(mode="json"))
        await cloud.publish_roster(roster_bundle(1, roster + ble_roster(people, time.time())))

        async def synced() -> bool:
            health = await agent.health()
            return health["offers"] > 0 and health["ble"]["customers_resolvable"] > 0

        await until(synced, 30)
        db = stack.enter_context(contextlib.closing(read_only(Path(config["database"]["path"]))))
        shoppers = Shoppers(
            agent.url,
            issuer,
            [c.customer_ref for c in roster],
            [t["id"] for t in TOUCHPOINTS],
            mean_gap_s=day.checkin_gap_s,
        )
        buyers = Buyers(till, partial(decided_after, db), {o.offer_id: o.sku for o in bundle.offers if o.sku})
        players = [ScreenPlayer(agent.url, t["id"]) for t in TOUCHPOINTS]
        sims = [shoppers.run(), buyers.run(0.5), feed_bluez(bluez, radio, "rx-entrance", day.seconds)]
        tasks = [asyncio.create_task(s) for s in [*sims, *(p.run() for p in players)]]
        started = time.monotonic()
        try:
            await asyncio.sleep(day.seconds)
        finally:
            for task in tasks:
                task.cancel()
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
            await bluez.stop()  # before the agent stops listening, so nothing is left queued on the bus
        day_s = time.monotonic() - started
        memory = sampler.summary(warmup_s=day.warmup_s)

        async def drained() -> bool:
            return (await agent.health())["outbox_depth"] == 0

        with contextlib.suppress(TimeoutError):
            await until(drained, 60)
        health = await agent.health()
        await asyncio.sleep(1.0)  # the last PUBACKed batch is in the cloud simulator's inbox
        died = tasks_died(health, agent)
        exit_code = agent.stop()
        await sampler.stop()
        lost = events_lost(Path(config["database"]["path"]), cloud)
        adverts = sum(health["ble"]["adverts"].values()) if health.get("ble") else 0

    return {
        **memory,
        "tasks_died": died["restarts"] + died["stopped"] + died["crash_lines"] + int(exit_code != 0),
        "tasks_died_detail": {**died, "exit_code": exit_code},
        "events_lost": lost["events_lost"],
        "outbox_depth_end": health["outbox_depth"],
        "events": lost["events"],
        "events_detail": lost,
        "decisions": lost["recorded"]["decision"],
        "checkins": shoppers.outcomes["accepted"],
        "checkins_refused": sum(v for k, v in shoppers.outcomes.items() if k != "accepted"),
        "receipts": buyers.receipts,
        "frames": sum(sum(p.counts.values()) for p in players),
        "adverts": adverts,
        "adverts_sent": bluez.counts["adverts"],
        "ble_dropped": health["ble"]["dropped"],
        "rss_growth_mb_1m_adverts": memory["rss_growth_mb"] if adverts >= 1_000_000 else None,
        "telemetry_received": len(cloud.telemetry),
        "simulators_failed": [repr(o) for o in outcomes if isinstance(o, Exception)],
        "day_s": round(day_s, 1),
        "shoppers_on_floor": day.shoppers,
    }


async def _vision(workdir: Path, seconds: float) -> dict[str, Any]:
    """Peak and final RSS of an agent with vision on: the real models, the simulated camera's video on loop."""
    from simulators.camera import render, scene

    models = os.environ.get("EDGE_AGENT_MODELS")
    if not models or not Path(models).is_dir():
        return {"rss_mb_vision": None, "vision_skipped": "set EDGE_AGENT_MODELS to the models folder"}
    video = workdir / "camera.avi"
    await asyncio.to_thread(render, video, scene(8.0), seconds=8.0)
    issuer, token, port = CheckinIssuer(STORE), secrets.token_urlsafe(18), free_port()
    config = demo_config(workdir, port, issuer.public_key_b64, token)
    config["sources"] = {"checkin": True, "vision": True}
    config.pop("pos")
    config["vision"] = {
        "models_dir": models,
        "cameras": [{"id": "cam-entrance", "source": str(video), "zone": "entrance", "loop": True}],
    }
    agent = AgentProcess(write_config(workdir, config), f"http://127.0.0.1:{port}", token, log=workdir / "agent.log")
    await agent.start()
    sampler = ProcSampler(agent.pid).start()
    try:
        await asyncio.sleep(seconds)
        health = await agent.health()
    finally:
        await sampler.stop()
        agent.stop()
    camera = health.get("vision", {}).get("cameras", {}).get("cam-entrance", {})
    memory = sampler.summary(warmup_s=seconds / 4)
    return {
        "rss_mb_vision": memory["rss_mb"],
        "rss_growth_mb_vision": memory["rss_growth_mb"],
        "vision_frames": camera.get("frames_read"),
    }


async def run(quick: bool) -> dict[str, Any]:
    day = QUICK if quick else FULL
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        (Path(tmp) / "day").mkdir()
        (Path(tmp) / "vision").mkdir()
        result = await store_day(Path(tmp) / "day", day)
        result.update(await _vision(Path(tmp) / "vision", day.vision_s))
    result["import_rss_mb"] = await asyncio.to_thread(import_costs, IMPORTS)
    result["import_rss_mb_vision"] = await asyncio.to_thread(import_costs, VISION_IMPORTS)
    return {"budget_rss_mb": 60, "budget_rss_mb_vision": 150, **result}
