"""Check-in → screen latency: from sending `POST /api/checkin` to the WebSocket frame at the screen.

The same client measures a bare aiohttp server that answers the POST by pushing a frame over a WebSocket,
so `ratio` is what verification, presence, the decision and its SQLite writes cost on top of the library.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from bench.harness import checkin_to_frame, percentiles, serve
from edge_agent.app import Agent
from edge_agent.config import from_dict
from edge_agent.demo import demo_offers
from edge_agent.store.roster import RosterEntry
from simulators.checkin_app import CheckinIssuer


async def _agent_latency(n: int, workdir: Path) -> list[float]:
    issuer = CheckinIssuer("bench-store", lifetime_s=600)
    settings = from_dict(
        {
            "store": {"id": "bench-store", "chain_id": "bench", "device_id": "edge-bench"},
            "zones": [{"id": "entrance"}],
            "touchpoints": [{"id": "screen-1", "kind": "screen", "zone": "entrance"}],
            "database": {"path": str(workdir / "bench.db")},
            "http": {"port": 0},
            "checkin": {"public_keys": [issuer.public_key_b64]},
            "presence": {"checkin_hold_s": 3600.0},
            "signage": {"rotate_s": 3600.0},
        }
    )
    agent = Agent(settings)
    agent.store.offers.replace_all(demo_offers(datetime.now(UTC)))
    roster = [
        RosterEntry(customer_ref=f"c{i}", consents={"checkin": True, "personalisation": True}, segments=("family",))
        for i in range(n)
    ]
    agent.store.roster.upsert(roster, updated_at=datetime.now(UTC).isoformat())
    agent.catalog.reload()
    await agent.start()
    try:
        bodies = [{"token": issuer.token(f"c{i}", "screen-1")} for i in range(n)]
        return await checkin_to_frame(agent.url, "screen-1", bodies)
    finally:
        await agent.stop()


async def _bare_latency(n: int) -> list[float]:
    sockets: set[web.WebSocketResponse] = set()

    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"type": "hello"})
        sockets.add(ws)
        async for _ in ws:
            pass
        sockets.discard(ws)
        return ws

    async def post(request: web.Request) -> web.Response:
        body = await request.json()
        for ws in sockets:
            await ws.send_json({"type": "show", "show_id": body["token"], "offer": {}})
        return web.json_response({"status": "accepted"}, status=202)

    app = web.Application()
    app.router.add_get("/ws/screen/{tp}", ws_handler)
    app.router.add_post("/api/checkin", post)
    async with serve(app) as url:
        return await checkin_to_frame(url, "screen-1", [{"token": str(i)} for i in range(n)])


async def run(quick: bool) -> dict[str, Any]:
    n = 1000 if quick else 5000
    with tempfile.TemporaryDirectory() as tmp:
        agent = percentiles(await _agent_latency(n, Path(tmp)))
    bare = percentiles(await _bare_latency(n))
    return {
        "checkins": n,
        **agent,
        "bare_p50_ms": bare["p50_ms"],
        "bare_p99_ms": bare["p99_ms"],
        "ratio_p50": round(agent["p50_ms"] / bare["p50_ms"], 2),
    }
