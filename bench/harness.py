"""What several benchmarks share: latency percentiles, a throw-away local server, timing a check-in to the
frame it puts on a screen, and where the real models are."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from edge_agent.sources.vision.models import ENV_VAR
from simulators.screen import ScreenPlayer


def models_folder() -> Path | None:
    """The installed models: `$EDGE_AGENT_MODELS`, else `../shared/models` beside the checkout; None if absent."""
    env = os.environ.get(ENV_VAR)
    folder = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "models"
    return folder if folder.is_dir() else None


def percentiles(samples_s: list[float]) -> dict[str, float]:
    """p50, p99 and max of samples in seconds, as milliseconds."""
    ms = sorted(s * 1000 for s in samples_s)
    q = statistics.quantiles(ms, n=100)
    return {"p50_ms": round(q[49], 3), "p99_ms": round(q[98], 3), "max_ms": round(ms[-1], 3)}


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Serve a bare aiohttp app on a free local port (the baseline the agent is compared with)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def checkin_to_frame(base_url: str, touchpoint: str, bodies: list[dict[str, Any]]) -> list[float]:
    """Seconds from sending each `POST /api/checkin` to the next show frame at the touchpoint's screen."""
    player = ScreenPlayer(base_url, touchpoint)
    arrived: asyncio.Queue[float] = asyncio.Queue()
    player.on_frame = lambda at, frame: arrived.put_nowait(at) if frame.get("type") == "show" else None
    task = asyncio.create_task(player.run())
    samples = []
    try:
        async with aiohttp.ClientSession() as http:
            while player.counts["hello"] == 0:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)
            while not arrived.empty():
                arrived.get_nowait()
            for body in bodies:
                start = time.monotonic()
                async with http.post(f"{base_url}/api/checkin", json=body) as resp:
                    if resp.status != 202:
                        raise RuntimeError(f"check-in refused: {resp.status} {await resp.text()}")
                samples.append(await asyncio.wait_for(arrived.get(), 5) - start)
    finally:
        task.cancel()
    return samples
