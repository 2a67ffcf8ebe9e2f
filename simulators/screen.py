"""A headless signage player: connects like a screen's browser does, and acknowledges every show.

Used by the demo (so proof of play happens without a browser), by integration tests and by benchmarks,
which read `received` to time the path from a check-in to the frame at the screen.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp


class ScreenPlayer:
    def __init__(self, base_url: str, touchpoint: str, *, ack: bool = True, key: str | None = None):
        """`key`: the touchpoint's pairing key (a player on the agent's own host needs none)."""
        self.url = f"{base_url.replace('http', 'ws', 1)}/ws/screen/{touchpoint}"
        self.touchpoint = touchpoint
        self.key = key
        self.ack = ack
        self.counts: Counter[str] = Counter()
        self.frames: asyncio.Queue[tuple[float, dict[str, Any]]] = asyncio.Queue()
        self.on_frame: Callable[[float, dict[str, Any]], None] | None = None

    async def run(self) -> None:
        """Stay connected, reconnecting after a short pause whenever the agent goes away."""
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    async with session.ws_connect(self.url, heartbeat=15) as ws:
                        await ws.send_json({"type": "hello", "key": self.key})  # pairs this player first
                        self.counts["connects"] += 1
                        await self._serve(ws)
                except (aiohttp.ClientError, ConnectionError):
                    self.counts["connect_failures"] += 1
                await asyncio.sleep(0.5)

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            received = time.monotonic()
            frame = json.loads(msg.data)
            self.counts[frame.get("type", "?")] += 1
            if self.on_frame is not None:
                self.on_frame(received, frame)
            self.frames.put_nowait((received, frame))
            if frame.get("type") == "show" and self.ack:
                displayed_at = datetime.now(UTC).isoformat(timespec="milliseconds")
                await ws.send_json({"type": "ack", "show_id": frame["show_id"], "displayed_at": displayed_at})

    async def next_frame(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        """The next frame of that type (others are skipped); for tests."""
        async with asyncio.timeout(timeout):
            while True:
                _, frame = await self.frames.get()
                if frame.get("type") == kind:
                    return frame
