"""The WebSocket hub: pushes each touchpoint's current content to every player connected for it.

Each player has its own small outbound queue and writer task, so one stuck browser can never hold up the
others; if it falls behind, its oldest frames go first (a screen only ever needs the latest content).
A player that connects (or reconnects) is sent the touchpoint's current content at once, and its idle
playlist for this time of day (again whenever the schedule turns to another playlist).

A player is a paired screen: its first message is `{"type": "hello", "key": K}` with the touchpoint's pairing
key (store/screens.py; staff open the screen's pairing link from the dashboard once, and the page keeps the
key). Until then it is sent nothing and may acknowledge nothing; a wrong or missing key closes the connection
(4401). A browser on this host itself is paired without a key while `surfaces.auth.local_screens_paired`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
from collections import Counter
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import WSCloseCode, WSMsgType, web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from .. import json_input
from ..bus import Bus
from ..clock import Clock
from ..config import Layout, Region, Settings
from ..events import Idle, ScreenReload, Show
from ..ops.progress import Progress
from ..store.faults import StorageRefused
from ..store.screens import ScreenKeys
from . import campaigns, playlists
from .assets import AssetCache
from .item_plays import ItemPlays, PlayRefused
from .media import ScreenMedia
from .proof import AckRejected, ProofOfPlay
from .schedule import Schedule

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 4096


class _Player:
    def __init__(self, ws: web.WebSocketResponse, maxsize: int = 16):
        self.ws = ws
        self.outbound: asyncio.Queue[str] = asyncio.Queue(maxsize=maxsize)
        self.dropped = 0

    def offer(self, frame: str) -> None:
        if self.outbound.full():
            self.outbound.get_nowait()
            self.dropped += 1
        self.outbound.put_nowait(frame)

    async def write_forever(self) -> None:
        while True:
            frame = await self.outbound.get()
            await self.ws.send_str(frame)


PAIRING_TIMEOUT_S = 10.0
NOT_PAIRED = 4401
FULL_SCREEN = Layout(id="full-screen", regions=[Region(id="main", kind="loop")])
STALL_GRACE_S = 60.0  # a WebSocket close code in the private range: the screen shows it needs pairing


class ScreenHub:
    def __init__(
        self,
        settings: Settings,
        bus: Bus,
        proof: ProofOfPlay,
        assets: AssetCache,
        clock: Clock,
        progress: Progress,
        keys: ScreenKeys,
        plays: ItemPlays,
        schedule: Schedule,
    ):
        self._settings = settings
        self._keys = keys
        for tp in settings.touchpoints:
            keys.key(tp.id)  # every touchpoint has its key from the first start on
        self._progress = progress
        self._proof = proof
        self._plays = plays
        self._schedule = schedule
        schedule.listeners.append(self.refresh_playlists)
        self._assets = assets
        self.media = ScreenMedia(settings, assets)
        self._clock = clock
        self._zone = ZoneInfo(settings.store.timezone)
        self._players: dict[str, set[_Player]] = {tp.id: set() for tp in settings.touchpoints}
        self._current: dict[str, dict[str, Any]] = {}
        self._showing: dict[str, dict[str, Any]] = {}
        self._playlists: dict[str, str] = {}
        self._heard: dict[str, float] = {}  # touchpoint → when its page last said anything (mono)
        self._playing: dict[str, dict[str, Any]] = {}  # touchpoint → the playlist item its page last started
        self._longest: dict[str, float] = {}  # touchpoint → its longest item in the loop it was last sent (s)
        self._shows = bus.subscribe(Show, "signage", maxsize=1000)
        bus.on(ScreenReload, "signage", self._reload)
        self._idles = bus.subscribe(Idle, "signage", maxsize=1000)
        self.counts: Counter[str] = Counter()
        progress.watch("signage", max_silence_s=settings.ops.stall_after_s, pending=self.backlog)

    def reconfigure(self, settings: Settings) -> None:
        """A fleet desired config: the idle list (`signage.idle`) is used from the next idle screen on."""
        self._settings = settings

    def backlog(self) -> int:
        return self._shows.queue.qsize() + self._idles.queue.qsize()

    def content(self, touchpoint: str) -> dict[str, Any]:
        """What a screen plays now: its loop, its layout (the touchpoint's, else its playlist's, else full screen)
        and the store's time zone (for a clock region)."""
        local = self._clock.wall().at.astimezone(self._zone)
        surfaces = self._schedule.settings.surfaces
        tp = next(t for t in self._settings.touchpoints if t.id == touchpoint)
        playlist = playlists.active(surfaces.playlists, touchpoint, local)
        name = tp.layout or (playlist.layout if playlist is not None else None)
        layout = next((lay for lay in surfaces.layouts if lay.id == name), FULL_SCREEN)
        idle = self.idle_items(touchpoint)
        self._longest[touchpoint] = max((float(i.get("duration_s") or 0) for i in idle), default=0.0)
        return {
            "idle": idle,
            "layout": layout.model_dump(mode="json"),
            "timezone": self._settings.store.timezone,
        }

    def idle_items(self, touchpoint: str) -> list[dict[str, Any]]:
        """The loop a screen plays now: its playlist's items it can play, ordered for the running campaigns' shares
        of voice (`campaigns.py`) when items belong to campaigns; the store's idle list when nothing is left."""
        local = self._clock.wall().at.astimezone(self._zone)
        surfaces = self._schedule.settings.surfaces
        items = playlists.items_for(surfaces.playlists, self._settings.signage, touchpoint, local)
        playable = self._playable(touchpoint, items)
        if not any(item.get("campaign") for item in playable):
            return playable
        scheduled = campaigns.loop(playable, campaigns.running(surfaces.campaigns, touchpoint, local))
        return scheduled or self._playable(
            touchpoint, playlists.items_for([], self._settings.signage, touchpoint, local)
        )

    def _playable(self, touchpoint: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [sent for item in items if (sent := self.media.item(touchpoint, item)) is not None]

    def showing(self, touchpoint: str) -> dict[str, Any]:
        """What a touchpoint shows now, for the dashboard: an offer's title, or the playlist item its page said it
        started (`playing`)."""
        shown = self._showing.get(touchpoint, {"kind": "idle"})
        playing = self._playing.get(touchpoint)
        if shown["kind"] == "idle" and playing is not None:
            return {"kind": "idle", "item": playing.get("item"), "since": playing.get("started_at")}
        return shown

    def stalled(self, touchpoint: str, now: float) -> bool:
        """A screen connected whose page has said nothing (no item started or ended, no offer acknowledged) for
        longer than the longest item of the loop it was last sent plus STALL_GRACE_S: it is frozen, and may be
        reloaded. The longest item is kept when the loop is sent, not worked out again at each dashboard poll."""
        if self.players(touchpoint) == 0 or touchpoint not in self._heard:
            return False
        return now - self._heard[touchpoint] > self._longest.get(touchpoint, 0.0) + STALL_GRACE_S

    def _reload(self, reload: ScreenReload) -> None:
        self.counts["reloads"] += 1
        for player in self._players.get(reload.touchpoint, ()):  # not kept as its content: sent once
            player.offer(json.dumps({"type": "reload"}))

    async def close_all(self) -> None:
        """Tell every player the agent is going away (they reconnect by themselves)."""
        players = [p for group in self._players.values() for p in group]
        for player in players:
            await player.ws.close(code=WSCloseCode.GOING_AWAY, message=b"agent stopping")

    def players(self, touchpoint: str) -> int:
        return len(self._players.get(touchpoint, ()))

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._forward(self._shows), name="signage.shows")
            tg.create_task(self._forward(self._idles), name="signage.idles")
            tg.create_task(self._schedule_forever(), name="signage.playlists")

    async def _schedule_forever(self, every_s: float = 20.0) -> None:
        """Every `every_s` (the schedule), and at once when a picture or video was cached or dropped."""
        while True:
            self.refresh_playlists()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._assets.changed.wait(), every_s)
            self._assets.changed.clear()

    def refresh_playlists(self) -> None:
        """Push a screen's playlist again when the schedule (or a cached picture) changes it."""
        for tp in self._settings.touchpoints:
            frame = json.dumps({"type": "playlist", **self.content(tp.id)})
            if self._playlists.get(tp.id, frame) != frame:
                for player in self._players[tp.id]:
                    player.offer(frame)
            self._playlists[tp.id] = frame

    async def _forward(self, subscription: Any) -> None:
        async for event in subscription:
            if isinstance(event, Show):
                # The screen learns only whether the offer is personal, never for whom.
                frame = {
                    "type": "show",
                    "show_id": event.show_id,
                    "offer": self.media.offer(event.touchpoint, event.offer),
                    "personal": event.customer_ref is not None,
                }
                self.counts["shown"] += 1
                self._showing[event.touchpoint] = {
                    "kind": "offer",
                    "title": event.offer.get("title", ""),
                    "personal": event.customer_ref is not None,
                }
            else:
                frame = {"type": "idle"}
                self._showing[event.touchpoint] = {"kind": "idle"}
            self._send(event.touchpoint, frame)
            self._progress.beat("signage")

    def _send(self, touchpoint: str, frame: dict[str, Any]) -> None:
        self._current[touchpoint] = frame
        text = json.dumps(frame)
        for player in self._players.get(touchpoint, ()):
            player.offer(text)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        touchpoint = request.match_info["touchpoint"]
        if touchpoint not in self._players:
            raise web.HTTPNotFound(text=f"no touchpoint {touchpoint!r} in this store")
        ws = web.WebSocketResponse(heartbeat=15, max_msg_size=MAX_MESSAGE_BYTES)
        await ws.prepare(request)
        if not await self._paired(ws, request, touchpoint):
            return ws
        player = _Player(ws)
        player.offer(json.dumps({"type": "hello", "touchpoint": touchpoint, **self.content(touchpoint)}))
        current = self._current.get(touchpoint)
        if current is not None:
            if current["type"] == "show":  # its picture may have been cached since it was decided
                current = {**current, "offer": self.media.offer(touchpoint, current["offer"])}
            player.offer(json.dumps(current))
        self._players[touchpoint].add(player)
        self.counts["connects"] += 1
        writer = asyncio.create_task(player.write_forever(), name=f"signage.writer.{touchpoint}")
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    player.offer(json.dumps(self._on_message(touchpoint, msg.data)))
                elif msg.type is WSMsgType.ERROR:  # over MAX_MESSAGE_BYTES, or not WebSocket: aiohttp closes it
                    self.counts["refused_frames"] += 1  # refused before it was parsed
                    log.warning("screen %s connection refused a message: %s", touchpoint, msg.data)
        finally:
            self._players[touchpoint].discard(player)
            self.counts["frames_dropped"] += player.dropped
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await writer
        return ws

    async def _paired(self, ws: web.WebSocketResponse, request: web.Request, touchpoint: str) -> bool:
        """The client's first message pairs it, or the connection closes; nothing is sent before."""
        try:
            first = await ws.receive(timeout=PAIRING_TIMEOUT_S)
            hello = json_input.loads(first.data) if first.type is WSMsgType.TEXT else None
        except (TimeoutError, json.JSONDecodeError):
            hello = None
        if isinstance(hello, dict) and hello.get("type") == "hello":
            local = self._settings.surfaces.auth.local_screens_paired and _loopback(request.remote)
            if local or self._keys.check(touchpoint, hello.get("key")):
                return True
        self.counts["refused_unpaired"] += 1
        log.warning("a client tried to open screen %s without its pairing key", touchpoint)
        await ws.close(code=NOT_PAIRED, message=b"not paired: open this screen's pairing link from the dashboard")
        return False

    def _on_message(self, touchpoint: str, data: str | bytes) -> dict[str, Any]:
        """The reply to one message from a screen: `acked`, or an `error` with the reason (counted)."""
        try:
            message = json_input.loads(data) if isinstance(data, str) else None  # acks are text frames
        except json.JSONDecodeError:
            message = None
        if isinstance(message, dict) and message.get("type") in ("ack", "played", "playing"):
            self._heard[touchpoint] = self._clock.mono()
        if isinstance(message, dict) and message.get("type") == "playing":
            started = message.get("started_at")
            self._playing[touchpoint] = {
                "item": str(message.get("item"))[:64],  # for the dashboard only: the page's word, cut short
                "started_at": started[:40] if isinstance(started, str) else None,
            }
            return {"type": "noted"}
        if isinstance(message, dict) and message.get("type") == "played":
            return self._on_played(touchpoint, message)
        if not isinstance(message, dict) or message.get("type") != "ack":
            self.counts["bad_messages"] += 1
            return {"type": "error", "reason": "expected a JSON object with type 'ack' or 'played'"}
        try:
            self._proof.acknowledge(touchpoint, message)
        except AckRejected as exc:
            self.counts["bad_acks"] += 1
            return {"type": "error", "show_id": message.get("show_id"), "reason": f"{exc.code}: {exc.reason}"}
        except StorageRefused as exc:
            # No show_id: the screen keeps the acknowledgement and sends it again after its next reconnect.
            self.counts["acks_refused_storage"] += 1
            return {"type": "error", "reason": f"{exc.code}: {exc.reason}"}
        return {"type": "acked", "show_id": message["show_id"]}

    def _on_played(self, touchpoint: str, message: dict[str, Any]) -> dict[str, Any]:
        """A playlist item's play: `play_recorded` once it is on disk (or was already), else an `error`."""
        play_id = message.get("play_id")
        try:
            self._plays.played(touchpoint, message)
        except PlayRefused as exc:
            # refused for good: the screen drops it (a report it would send again would be refused again)
            return {"type": "play_refused", "play_id": play_id, "reason": f"{exc.code}: {exc.reason}"}
        except StorageRefused as exc:
            self.counts["plays_refused_storage"] += 1  # the screen keeps it and sends it again
            return {"type": "error", "reason": f"{exc.code}: {exc.reason}"}
        return {"type": "play_recorded", "play_id": play_id}

    def metrics(self) -> Iterator[Metric]:
        yield CounterMetricFamily("edge_shows", "Show frames sent to touchpoints", value=self.counts["shown"])
        players = GaugeMetricFamily("edge_screen_players", "Players connected per touchpoint", labels=["touchpoint"])
        for tp in self._settings.touchpoints:
            players.add_metric([tp.id], self.players(tp.id))
        yield players
        refused = CounterMetricFamily(
            "edge_videos_refused", "Videos a screen was not sent, by reason", labels=["reason"]
        )
        for reason, n in self.media.counts.items():
            refused.add_metric([reason], n)
        yield refused


def _loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False
