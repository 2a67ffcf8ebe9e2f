"""Kiosk and serial-sign costs against the bare libraries doing the same work.

- kiosk: one shopper visit (identify by loyalty number, then claim an offer) over HTTP, against a bare
  aiohttp server answering the same two JSON POSTs; the ratio is what auth, roster lookup, eligibility,
  the claim's transaction and the QR cost on top of aiohttp.
- sign: text frames to a simulated sign on a pty, through the agent's SignPort (profile framing, pyserial,
  wait for ACK), against bare pyserial writing the same bytes and reading the ACK.
- receipt tap: receipts python-escpos prints (text, barcodes, a QR code, cuts) read from a pty through the
  agent's receipt tap into receipts, against bare pyserial reading the same bytes; printed lines/s.
- pole display: ESC/POS customer-display frames through the agent's SignPort, against bare pyserial writing the
  same bytes; frames/s.
- video: a cached video served by ranges (256 KiB at random offsets, as a browser seeking and buffering asks
  for it) from the agent's `/assets/` route, against bare aiohttp serving the same file with FileResponse.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import sys
import tempfile
import threading
import time
import tty
from collections.abc import Callable
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
from edge_agent.signage.sign_profile import SignKind, SignProfile, load
from edge_agent.signage.signs import SignPort
from edge_agent.sources.pos.receipt_tap import ReceiptTap, ReceiptTapProfile
from edge_agent.sources.pos.tills import load_till
from edge_agent.store.assets import AssetRef
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


def _frames_per_s(profile: SignKind, path: str, n: int, bare: bool) -> float:
    """Frames/s to the device at `path`: through the agent's SignPort, or bare pyserial writing the same frames (and
    reading a framed sign's ACK)."""
    frames = [profile.text_frame([f"Offer {i}", f"EUR {i % 10}.99"]) for i in range(n)]
    framed = isinstance(profile, SignProfile)
    start = time.perf_counter()
    if bare:
        port = serial.Serial(path, 9600, timeout=1)
        for frame in frames:
            port.write(frame)
            port.flush()
            if framed:
                assert port.read(1) == b"\x06"
        port.close()
    else:
        sign_port, answer = SignPort(path, profile), "ack" if framed else "shown"
        for i in range(n):
            assert sign_port.send(profile.text_frame([f"Offer {i}", f"EUR {i % 10}.99"])) == answer
        sign_port.close()
    return n / (time.perf_counter() - start)


def _sign(n: int, bare: bool) -> float:
    """Frames/s to a simulated framed sign on a pty, which ACKs each frame."""
    profile = load("led-line-2x20")
    assert isinstance(profile, SignProfile)
    master, slave = os.openpty()
    sign = SimulatedSign(profile, master).start()
    try:
        return _frames_per_s(profile, os.ttyname(slave), n, bare)
    finally:
        sign.stop()
        os.close(master)
        os.close(slave)


def _escpos_receipts(n: int) -> tuple[bytes, int]:
    """`n` receipts as python-escpos prints them, and how many text lines they hold."""
    from escpos.printer import Dummy

    printer = Dummy()
    lines = 0
    # python-escpos says which barcode renderer it used on stdout, where the benchmark's JSON goes
    with contextlib.redirect_stdout(sys.stderr):
        for r in range(n):
            printer.text(f"CORNER BAKERY\nReceipt {r:06d}\n")
            for k in range(5):
                printer.text(f"40063813339{k:02d}  Croissant      2 x 1.20   2.40\n")
            printer.text("Loyalty 40012345\nTOTAL  12.00\n")
            printer.barcode("4006381333931", "EAN13")
            printer.cut()
            lines += 9
    return printer.output, lines


def _through_pty(data: bytes, read: Callable[[bytes], None]) -> float:
    """Seconds to read `data` written into a pty, handing each read to `read`."""
    master, slave = os.openpty()
    tty.setraw(slave)
    port = serial.Serial(os.ttyname(slave), 9600, timeout=0.2)

    def write() -> None:
        for k in range(0, len(data), 4096):
            os.write(master, data[k : k + 4096])

    writer = threading.Thread(target=write)
    start = time.perf_counter()
    writer.start()
    got = 0
    while got < len(data):
        chunk = port.read(4096)
        got += len(chunk)
        read(chunk)
    took = time.perf_counter() - start
    writer.join()
    port.close()
    os.close(master)
    os.close(slave)
    return took


def _receipt_tap(n: int) -> tuple[float, float, int]:
    """Printed lines/s through the agent's receipt tap and through bare pyserial (reading only)."""
    data, lines = _escpos_receipts(n)
    profile = load_till("escpos-receipt-tap")
    assert isinstance(profile, ReceiptTapProfile)
    tap = ReceiptTap(profile)
    receipts = 0

    def parse(chunk: bytes) -> None:
        nonlocal receipts
        receipts += len(tap.feed(chunk))

    agent = _through_pty(data, parse)
    bare = _through_pty(data, lambda _: None)
    assert receipts == n, receipts
    return lines / agent, lines / bare, receipts


def _pole_display(n: int, bare: bool) -> float:
    """Frames/s to a pole display on a pty (a thread drains it): the agent's SignPort or bare pyserial."""
    profile = load("pole-display-2x20")
    master, slave = os.openpty()
    tty.setraw(slave)
    stop = threading.Event()

    def drain() -> None:
        while not stop.is_set():
            try:
                os.read(master, 65536)
            except OSError:
                return

    threading.Thread(target=drain, daemon=True).start()
    try:
        return _frames_per_s(profile, os.ttyname(slave), n, bare)
    finally:
        stop.set()
        os.close(master)
        os.close(slave)


RANGE_BYTES = 256 * 1024


async def _ranges(url: str, size: int, n: int) -> float:
    """MB/s fetching `n` ranges of RANGE_BYTES at random offsets of a file of `size` bytes at `url`."""
    rng = random.Random(5)
    starts = [rng.randrange(0, size - RANGE_BYTES) for _ in range(n)]
    async with aiohttp.ClientSession() as http:
        begin = time.perf_counter()
        for start in starts:
            async with http.get(url, headers={"Range": f"bytes={start}-{start + RANGE_BYTES - 1}"}) as resp:
                assert resp.status == 206 and len(await resp.read()) == RANGE_BYTES
        took = time.perf_counter() - begin
    return n * RANGE_BYTES / took / 1e6


async def _video(workdir: Path, n: int, megabytes: int) -> tuple[float, float]:
    """The agent's cached-asset route and bare aiohttp, MB/s each, on the same file."""
    body = random.Random(7).randbytes(megabytes * 1024 * 1024)
    asset = AssetRef(
        url="https://cdn.example/loop.mp4", sha256=hashlib.sha256(body).hexdigest(), content_type="video/mp4",
        size=len(body), codec="h264", width=1920, height=1080, duration_s=30.0,
    )  # fmt: skip
    data = demo_config(workdir, 0, CheckinIssuer("bench-store").public_key_b64, KIOSK_TOKEN)
    data["sources"]["pos"] = False
    data["surfaces"]["assets"] = {"dir": str(workdir / "assets")}
    agent = Agent(from_dict(data))
    (workdir / "assets").mkdir(exist_ok=True)
    (workdir / "assets" / asset.sha256).write_bytes(body)
    agent.store.assets.replace_all([asset])
    agent.store.assets.mark_fetched(asset.url, datetime.now(UTC).isoformat())
    await agent.start()
    try:
        await asyncio.sleep(0.2)  # the cache checks its files at start
        served = await _ranges(f"{agent.url}/assets/{asset.sha256}", len(body), n)
    finally:
        await agent.stop()

    async def bare_file(_: web.Request) -> web.FileResponse:
        return web.FileResponse(workdir / "assets" / asset.sha256, headers={"Content-Type": "video/mp4"})

    app = web.Application()
    app.router.add_get("/loop.mp4", bare_file)
    async with serve(app) as url:
        bare = await _ranges(f"{url}/loop.mp4", len(body), n)
    return served, bare


async def run(quick: bool) -> dict[str, Any]:
    n = 300 if quick else 2000
    frames = 500 if quick else 5000
    with tempfile.TemporaryDirectory() as tmp:
        kiosk = percentiles(await _kiosk(n, Path(tmp)))
    bare = percentiles(await _bare_kiosk(n))
    agent_fps = await asyncio.to_thread(_sign, frames, False)
    bare_fps = await asyncio.to_thread(_sign, frames, True)
    with tempfile.TemporaryDirectory() as tmp:
        served, bare_mb = await _video(Path(tmp), 200 if quick else 2000, 16 if quick else 64)
    tap_lps, bare_lps, receipts = await asyncio.to_thread(_receipt_tap, 200 if quick else 2000)
    pole_fps = await asyncio.to_thread(_pole_display, frames, False)
    pole_bare_fps = await asyncio.to_thread(_pole_display, frames, True)
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
        "video_range_mb_per_s": round(served, 1),
        "bare_aiohttp_range_mb_per_s": round(bare_mb, 1),
        "video_range_ratio": round(served / bare_mb, 3),
        "receipt_tap_receipts": receipts,
        "receipt_tap_lines_per_s": round(tap_lps),
        "bare_pyserial_lines_per_s": round(bare_lps),
        "receipt_tap_ratio": round(tap_lps / bare_lps, 3),
        "pole_display_frames_per_s": round(pole_fps, 1),
        "bare_pyserial_pole_frames_per_s": round(pole_bare_fps, 1),
        "pole_display_ratio": round(pole_fps / pole_bare_fps, 3),
    }
