"""Start-up and rest: the agent process from spawn to a screen showing cached content with the uplink down, and
its CPU use in a configured store with nobody in it (issue #24, "Fit a Raspberry Pi").

The store is the demo store with BLE on (the simulated BlueZ on a private D-Bus), its till on a pty, synced from
the cloud simulator through a private Mosquitto: the offers and a screen playlist whose pictures the agent
downloads from a content host, verifies and caches. The config's own timers, not the soak's shortened ones.

Figures, each from its own agent process:
- `idle_cpu_percent`: the first run, synced, its screens connected, nobody in the store: the agent's CPU time
  (utime + stime from /proc/PID/stat, every thread) over `idle_s` of wall time, in % of one core. A minute
  even with --quick, as the issue defines it. `idle_wakeups_per_s`: its threads' voluntary context switches
  over the same window (each one a wake-up: what polls).
- `start_to_serving_s`: the same store started again (`python -m edge_agent run`) with the broker and the
  content host gone, from just before the process is spawned until a screen has what its browser fetches:
  the page, the WebSocket's hello with the loop, and the loop's first picture from the agent's cache (its
  sha256 checked). Each start a new process; the figure is their median, every run listed, with the CPU time
  the process had used by then (`start_cpu_s`: below the wall time when the machine is busy) and, after each,
  a bare interpreter importing only the agent's libraries (`libraries_import_s`: the floor under a start).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.agent_process import REPO, AgentProcess, cpu_seconds, wakeups
from bench.harness import serve
from bench.soak import IMPORTS, STORE, read_only, until, write_config
from edge_agent.config import Playlist, PlaylistItem
from edge_agent.demo.cloud import mqtt_section, provision
from edge_agent.demo.store import TOUCHPOINTS, demo_bundle, demo_config, demo_roster
from edge_agent.signage.http import STATIC
from edge_agent.store.assets import AssetRef
from edge_agent.store.bundles import OfferBundle
from edge_agent.store.screen_content import ScreenContent
from simulators.bluez import PrivateBus, SimulatedBlueZ
from simulators.broker import Mosquitto, free_port
from simulators.checkin_app import CheckinIssuer
from simulators.cloud import CloudSim, roster_bundle
from simulators.screen import ScreenPlayer
from simulators.till import SimulatedTill

PICTURES = ["demo-croissant.svg", "demo-coffee.svg", "demo-milk.svg", "demo-apples.svg"]
SCREENS = [t["id"] for t in TOUCHPOINTS if t["kind"] == "screen"]
LIBRARIES = [m for m in IMPORTS if not m.startswith("edge_agent")]
FETCHED = "SELECT count(*) FROM assets WHERE fetched_at IS NOT NULL"
SETTLE_S = 5.0  # after the sync, before the idle window: the downloads and first decisions are done


@dataclass(frozen=True)
class Plan:
    idle_s: float  # the idle window
    starts: int  # offline starts, each a new process


QUICK = Plan(idle_s=60.0, starts=3)
FULL = Plan(idle_s=300.0, starts=10)


def content_host() -> web.Application:
    """The retailer's content host: the pictures the bundle names."""
    app = web.Application()

    async def picture(request: web.Request) -> web.Response:
        return web.Response(body=STATIC.joinpath(request.match_info["name"]).read_bytes(), content_type="image/svg+xml")

    app.router.add_get("/img/{name}", picture)
    return app


def cached_bundle(base: str) -> OfferBundle:
    """The demo's offers with their pictures on the content host, and a playlist of those pictures for every
    screen: all of it what a store shows with the uplink down once the agent has cached it."""
    assets = [
        AssetRef(
            url=f"{base}/img/{name}",
            sha256=hashlib.sha256(body).hexdigest(),
            content_type="image/svg+xml",
            size=len(body),
        )
        for name, body in ((n, STATIC.joinpath(n).read_bytes()) for n in PICTURES)
    ]
    bundle = demo_bundle(datetime.now(UTC))
    offers = [o.model_copy(update={"image": f"{base}/img/{Path(o.image).name}"}) for o in bundle.offers]
    items = [PlaylistItem(title=Path(a.url).stem, image=a.url) for a in assets]
    screens = ScreenContent(playlists=[Playlist(id="all-day", items=items)])
    return bundle.model_copy(update={"offers": offers, "assets": assets, "screens": screens})


def count(db: Path, query: str) -> int:
    with contextlib.closing(read_only(db)) as conn:
        n: int = conn.execute(query).fetchone()[0]
    return n


async def idle_store(agent: AgentProcess, seconds: float) -> dict[str, Any]:
    """The agent's CPU and wake-ups over `seconds` with its screens connected and nobody in the store."""
    players = [ScreenPlayer(agent.url, tp) for tp in SCREENS]
    tasks = [asyncio.create_task(p.run()) for p in players]
    try:
        await until(lambda: all(p.counts["hello"] for p in players), 10)
        await asyncio.sleep(SETTLE_S)
        cpu, woke, started = cpu_seconds(agent.pid), wakeups(agent.pid), time.monotonic()
        await asyncio.sleep(seconds)
        cpu, woke = cpu_seconds(agent.pid) - cpu, wakeups(agent.pid) - woke
        wall = time.monotonic() - started
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "idle_cpu_percent": round(100 * cpu / wall, 3),
        "idle_cpu_s": round(cpu, 3),
        "idle_wakeups_per_s": round(woke / wall, 1),
        "idle_window_s": round(wall, 1),
        "idle_screen_frames": sum(sum(p.counts.values()) for p in players),
    }


async def screen_served(agent: AgentProcess, touchpoint: str, timeout: float = 30.0) -> dict[str, float]:
    """Spawn the agent and time (from just before the spawn) a screen's page, its hello and its first cached
    picture, as its browser fetches them after a power cut."""
    started = time.monotonic()
    agent.spawn()
    async with asyncio.timeout(timeout), aiohttp.ClientSession() as http:
        while True:
            if not agent.alive():
                raise RuntimeError(f"the agent exited:\n{agent.log_tail()}")
            with contextlib.suppress(aiohttp.ClientConnectionError):
                async with http.get(f"{agent.url}/screen/{touchpoint}") as resp:
                    resp.raise_for_status()
                    await resp.read()
                    break
            await asyncio.sleep(0.01)
        page = time.monotonic() - started
        async with http.ws_connect(f"{agent.url.replace('http', 'ws', 1)}/ws/screen/{touchpoint}") as ws:
            await ws.send_json({"type": "hello"})
            hello = await ws.receive_json()
        said = time.monotonic() - started
        image = hello["idle"][0]["image"]
        if not image.startswith("/assets/"):
            raise RuntimeError(f"the screen was sent {image!r}, not a cached picture")
        async with http.get(f"{agent.url}{image}") as resp:
            resp.raise_for_status()
            body = await resp.read()
        served = time.monotonic() - started
    if hashlib.sha256(body).hexdigest() != image.removeprefix("/assets/"):
        raise RuntimeError(f"{image} is not the picture it names")
    return {"page_s": page, "hello_s": said, "serving_s": served, "cpu_s": cpu_seconds(agent.pid)}


def bytecode(cache: Path) -> dict[str, str]:
    """The environment of a process that keeps its compiled bytecode in `cache`, as a store's install has it
    (pip compiles at install, and the unit runs with a read-only /opt): the first run writes it, the next read
    it. Without it every start compiles the agent's modules from source again (where the shell sets
    PYTHONDONTWRITEBYTECODE, as a development machine may)."""
    return {"PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": str(cache)}


def libraries_s(env: dict[str, str]) -> float:
    """Wall time of a fresh interpreter importing only the agent's libraries: the floor under any start."""
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", f"import {', '.join(LIBRARIES)}"], cwd=REPO, env=env, check=True)
    return time.monotonic() - started


async def offline_starts(agent: AgentProcess, n: int) -> dict[str, Any]:
    """`n` starts, each beside a bare import of the libraries (so both see the same load on the machine)."""
    runs, bare = [], []
    for _ in range(n):
        try:
            runs.append(await screen_served(agent, SCREENS[0]))
        finally:
            agent.stop()
        bare.append(await asyncio.to_thread(libraries_s, agent.env))
    serving = [r["serving_s"] for r in runs]
    return {
        "start_to_serving_s": round(statistics.median(serving), 3),
        "start_to_serving_runs_s": [round(s, 3) for s in serving],
        "libraries_import_s": [round(s, 3) for s in bare],
        "start_page_s": [round(r["page_s"], 3) for r in runs],
        "start_hello_s": [round(r["hello_s"], 3) for r in runs],
        "start_cpu_s": [round(r["cpu_s"], 3) for r in runs],
    }


async def run(quick: bool) -> dict[str, Any]:
    plan = QUICK if quick else FULL
    with tempfile.TemporaryDirectory(prefix="startup-") as tmp:
        workdir = Path(tmp)
        issuer, token, port = CheckinIssuer(STORE), secrets.token_urlsafe(18), free_port()
        async with contextlib.AsyncExitStack() as stack:
            bus = stack.enter_context(PrivateBus())
            bluez = SimulatedBlueZ(bus.address)
            await bluez.start()
            stack.push_async_callback(bluez.stop)
            stack.callback(SimulatedTill(workdir / "ttyTILL").close)
            broker = Mosquitto(workdir / "mosquitto").start()
            stack.callback(broker.stop)
            cloud = await CloudSim(broker.host, broker.port, STORE).start()
            config = demo_config(workdir, port, issuer.public_key_b64, token, ble=True)
            config["mqtt"] = {k: v for k, v in mqtt_section(cloud).items() if not k.endswith("_s")}  # its own timers
            provision(config, workdir, cloud)
            agent = AgentProcess(
                write_config(workdir, config),
                f"http://127.0.0.1:{port}",
                token,
                log=workdir / "agent.log",
                env={"DBUS_SYSTEM_BUS_ADDRESS": bus.address, **bytecode(workdir / "pycache")},
            )
            try:
                async with serve(content_host()) as base:
                    await agent.start()
                    bundle = cached_bundle(base)
                    await cloud.publish_offers(bundle)
                    await cloud.publish_roster(roster_bundle(1, demo_roster()))
                    db = Path(config["database"]["path"])
                    await until(lambda: count(db, "SELECT count(*) FROM bundle_versions") == 2, 30)
                    # A bundle's pictures are fetched at the next start, or within surfaces.assets.retry_s.
                    agent.stop()
                    await agent.start()
                    await until(lambda: count(db, FETCHED) == len(bundle.assets), 30)
                    result = await idle_store(agent, plan.idle_s)
            finally:
                agent.stop()
                await cloud.close()
            broker.stop()  # the uplink is gone: no broker, no content host
            result.update(await offline_starts(agent, plan.starts))
    return {"budget_start_to_serving_s": 1.5, "budget_idle_cpu_percent": 1.0, **result}
