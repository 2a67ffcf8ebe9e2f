"""Kiosk and serial-sign costs against the bare libraries doing the same work.

- kiosk: one shopper visit (identify by loyalty number, then claim an offer) over HTTP, against a bare
  aiohttp server answering the same two JSON POSTs; the ratio is what auth, roster lookup, eligibility,
  the claim's transaction and the QR cost on top of aiohttp.
- sign: text frames to a simulated sign on a pty, through the agent's SignPort (profile framing, pyserial,
  wait for ACK), against bare pyserial writing the same bytes and reading the ACK.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import serial
from aiohttp import web

from bench.harness import percentiles, serve
from edge_agent.app import Agent
from edge_agent.config import from_dict
from edge_agent.demo.store import demo_config, demo_offers
from edge_agent.signage.sign_profile import load
from edge_agent.signage.signs import SignPort
from edge_agent.store.roster import RosterEntry
from simulators.checkin_app import CheckinIssuer
from simulators.serial_sign import SimulatedSign

KIOSK_TOKEN = "bench-kiosk-token-0123456789"
OFFER = "croissant-3for2"  # the demo's offer for everyone at the entrance, where its kiosk stands


async def _visits(url: str, n: int, identify: str, claim: str) -> list[float]:
    samples = []
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KIOSK_TOKEN}"}) as http:
        for i in range(n):
            start = time.perf_counter()
            async with http.post(f"{url}{identify}", json={"method": "loyalty", "value": f"{50000000 + i}"}) as r:
                session = (await r.json())["session"]
            async with http.post(f"{url}{claim}", json={"offer_id": OFFER}, headers={"X-Kiosk-Session": session}) as r:
                assert r.status == 200, await r.text()
            samples.append(time.perf_counter() - start)
    return samples


async def _kiosk(n: int, workdir: Path) -> list[float]:
    """The demo store without its till, with `n` members who identify at the entrance kiosk by loyalty number."""
    config = demo_config(workdir, 0, CheckinIssuer("bench-store").public_key_b64, KIOSK_TOKEN)
    config["sources"]["pos"] = False
    agent = Agent(from_dict(config))
    now = datetime.now(UTC)
    agent.store.offers.replace_all(demo_offers(now))
    members = [
        RosterEntry(customer_ref=f"m{i}", consents={"checkin": True}, loyalty_id=f"{50000000 + i}") for i in range(n)
    ]
    agent.store.roster.upsert(members, updated_at=now.isoformat())
    agent.catalog.reload()
    await agent.start()
    try:
        return await _visits(agent.url, n, "/api/kiosk/kiosk-entrance/identify", "/api/kiosk/kiosk-entrance/claim")
    finally:
        await agent.stop()


async def _bare_kiosk(n: int) -> list[float]:
    async def identify(request: web.Request) -> web.Response:
        await request.json()
        return web.json_response({"session": "s", "offers": []})

    async def claim(request: web.Request) -> web.Response:
        await request.json()
        return web.json_response({"code": "ABCD-EFGH"})

    app = web.Application()
    app.router.add_post("/identify", identify)
    app.router.add_post("/claim", claim)
    async with serve(app) as url:
        return await _visits(url, n, "/identify", "/claim")


def _sign(n: int, bare: bool) -> float:
    profile = load("led-line-2x20")
    master, slave = os.openpty()
    sign = SimulatedSign(profile, master).start()
    frames = [profile.text_frame([f"Offer {i}", f"EUR {i % 10}.99"]) for i in range(n)]
    try:
        start = time.perf_counter()
        if bare:
            port = serial.Serial(os.ttyname(slave), 9600, timeout=1)
            for frame in frames:
                port.write(frame)
                port.flush()
                assert port.read(1) == b"\x06"
            port.close()
        else:
            sign_port = SignPort(os.ttyname(slave), profile)
            for i in range(n):
                assert sign_port.send(profile.text_frame([f"Offer {i}", f"EUR {i % 10}.99"])) == "ack"
            sign_port.close()
        return n / (time.perf_counter() - start)
    finally:
        sign.stop()
        os.close(master)
        os.close(slave)


async def run(quick: bool) -> dict[str, Any]:
    n = 300 if quick else 2000
    frames = 500 if quick else 5000
    with tempfile.TemporaryDirectory() as tmp:
        kiosk = percentiles(await _kiosk(n, Path(tmp)))
    bare = percentiles(await _bare_kiosk(n))
    agent_fps = await asyncio.to_thread(_sign, frames, False)
    bare_fps = await asyncio.to_thread(_sign, frames, True)
    return {
        "kiosk_visits": n,
        "kiosk_visit_p50_ms": kiosk["p50_ms"],
        "kiosk_visit_p99_ms": kiosk["p99_ms"],
        "bare_visit_p50_ms": bare["p50_ms"],
        "kiosk_ratio_p50": round(kiosk["p50_ms"] / bare["p50_ms"], 2),
        "sign_frames": frames,
        "sign_frames_per_s": round(agent_fps, 1),
        "bare_pyserial_frames_per_s": round(bare_fps, 1),
        "sign_ratio": round(agent_fps / bare_fps, 3),
    }
