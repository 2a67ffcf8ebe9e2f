"""Serial LED / shelf-edge signs and pole displays: what the engine decides for a sign touchpoint, framed by its
profile and written over pyserial. A framed sign's ACK is its proof of play; a NAK or silence is retried, then
counted. A pole display answers nothing: a frame written whole is its proof (a weaker one).

The port is blocking, so every write-and-wait runs in a worker thread; the event loop only hands over the
latest content (a sign that fell behind skips straight to what it should show now).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from typing import Any

import serial

from ..bus import Bus
from ..config import SerialSign, Settings
from ..events import Idle, Show
from .proof import AckRejected, ProofOfPlay
from .sign_profile import PoleDisplayProfile, SignKind, load

log = logging.getLogger(__name__)


class SignPort:
    """The blocking side: one open port, one frame at a time, waiting for the sign's answer."""

    def __init__(self, url: str, profile: SignKind):
        self._url = url
        self._profile = profile
        self._port: serial.SerialBase | None = None

    def send(self, frame: bytes) -> str:
        """Write the frame until ACKed; returns 'ack', 'nak' or 'timeout' (after the profile's retries). A pole
        display answers nothing: written whole and flushed, it is 'shown'."""
        if isinstance(self._profile, PoleDisplayProfile):
            port = self._open()
            port.write(frame)
            port.flush()
            return "shown"
        f = self._profile.frame
        outcome = "timeout"
        for _ in range(f.retries + 1):
            port = self._open()
            # the stubs type serial_for_url as SerialBase; every port class it returns has reset_input_buffer
            port.reset_input_buffer()  # type: ignore[attr-defined]
            port.write(frame)
            port.flush()
            answer = port.read(1)
            if answer == bytes([f.ack]):
                return "ack"
            outcome = "nak" if answer == bytes([f.nak]) else "timeout"
        return outcome

    def _open(self) -> serial.SerialBase:
        if self._port is None:
            s = self._profile.serial
            p = self._profile
            timeout = p.write_timeout_s if isinstance(p, PoleDisplayProfile) else p.frame.timeout_s
            self._port = serial.serial_for_url(
                self._url,
                baudrate=s.baudrate,
                bytesize=s.bytesize,
                parity=s.parity,
                stopbits=s.stopbits,
                timeout=timeout,
                write_timeout=timeout,
            )
        return self._port

    def close(self) -> None:
        if self._port is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                self._port.close()
            self._port = None


class SignDriver:
    def __init__(self, sign: SerialSign, settings: Settings, bus: Bus, proof: ProofOfPlay):
        self.id = sign.id
        self.touchpoint = sign.touchpoint
        self.profile = load(sign.profile)
        self._port = SignPort(sign.port, self.profile)
        self._proof = proof
        self._idle_title = settings.signage.idle[0].title if settings.signage.idle else ""
        self._shows = bus.subscribe(Show, f"sign.{sign.id}", maxsize=100)
        self._idles = bus.subscribe(Idle, f"sign.{sign.id}", maxsize=100)
        self._latest: Show | Idle | None = None
        self._wake = asyncio.Event()
        self.state = "starting"
        self.showing: list[str] = []
        self.counts: Counter[str] = Counter()

    def status(self) -> dict[str, Any]:
        return {"state": self.state, "showing": self.showing, **self.counts}

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._collect(self._shows), name=f"sign.{self.id}.shows")
                tg.create_task(self._collect(self._idles), name=f"sign.{self.id}.idles")
                tg.create_task(self._write_forever(), name=f"sign.{self.id}.writer")
        finally:
            await asyncio.to_thread(self._port.close)

    async def _collect(self, subscription: Any) -> None:
        async for event in subscription:
            if event.touchpoint == self.touchpoint:
                self._latest = event
                self._wake.set()

    async def _write_forever(self) -> None:
        backoff = 0.5
        self._latest = self._latest or Idle(touchpoint=self.touchpoint, mono=0.0)
        self._wake.set()
        while True:
            await self._wake.wait()
            self._wake.clear()
            event = self._latest
            lines = self.lines_for(event)
            try:
                outcome = await asyncio.to_thread(self._port.send, self.profile.text_frame(lines))
            except (serial.SerialException, OSError) as exc:
                self.state = "offline"
                self.counts["port_errors"] += 1
                log.warning("sign %s: port %s", self.id, exc)
                await asyncio.to_thread(self._port.close)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                if self._latest is event:
                    self._wake.set()  # try the same content again
                continue
            backoff = 0.5
            self.counts[outcome] += 1
            if outcome not in ("ack", "shown"):
                self.state = "not answering" if outcome == "timeout" else "refusing frames"
                continue
            self.state = "online"
            self.showing = self.profile.fit(lines)
            if isinstance(event, Show):
                try:
                    self._proof.acknowledge(self.touchpoint, {"type": "ack", "show_id": event.show_id})
                except AckRejected as exc:
                    self.counts["proof_rejected"] += 1
                    log.warning("sign %s: %s", self.id, exc)

    def lines_for(self, event: Show | Idle | None) -> list[str]:
        if not isinstance(event, Show):
            return [self._idle_title]
        offer = event.offer
        second = offer.get("text") or ""
        if offer.get("price_cents") is not None:
            second = f"{offer['currency']} {offer['price_cents'] / 100:.2f}"
        return [offer.get("title", ""), second]
