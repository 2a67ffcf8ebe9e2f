"""Images and videos named by the offer bundle, fetched once, verified by sha256 and served from local disk.

Screens then show their pictures and play their videos with the uplink down. A file is only ever served under
its own hash, so a tampered or truncated download can never reach the glass: it is refused, counted and tried
again later; a video must also be the codec, frame size and length the bundle said (`video.py`). Files are
checked again at start (an SD card can rot). A download streams into `<sha256>.part`, kept across cuts and
restarts and resumed with an HTTP range request, and becomes the cached file by rename once it is whole and
verified. Files are served with range support, so a browser can seek in a video.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from ..bus import Bus
from ..clock import Clock
from ..config import AssetSettings
from ..errors import Refused
from ..events import OffersChanged
from ..store import Store
from ..store.assets import AssetRef
from . import video

log = logging.getLogger(__name__)

CHUNK_BYTES = 256 * 1024


class AssetCache:
    def __init__(self, settings: AssetSettings, store: Store, clock: Clock, bus: Bus | None = None):
        self._cfg = settings
        self._store = store
        self._clock = clock
        self._dir = Path(settings.dir)
        self._named: dict[str, AssetRef] = {}  # url → asset the bundle names
        self._local: dict[str, AssetRef] = {}  # url → asset verified on disk
        self._by_hash: dict[str, AssetRef] = {}
        self._wake = asyncio.Event()
        self.changed = asyncio.Event()  # set when the files on disk change: screens' items may change with them
        self.counts: Counter[str] = Counter()
        self._refresh()
        if bus is not None:  # a new bundle's pictures and videos are fetched at once, not at the next retry
            bus.on(OffersChanged, "assets", lambda _: self.wake())

    def path(self, sha256: str) -> Path:
        return self._dir / sha256

    def named(self, url: str) -> AssetRef | None:
        """The asset the bundle names at `url`, cached or not."""
        return self._named.get(url)

    def cached(self, url: str) -> AssetRef | None:
        """The asset named by `url`, when it is verified on disk."""
        return self._local.get(url)

    def localise(self, display: dict[str, Any]) -> dict[str, Any]:
        """The display dict with its image pointing at the local copy, when there is a verified one."""
        cached = self._local.get(display.get("image") or "")
        return {**display, "image": f"/assets/{cached.sha256}"} if cached else display

    def status(self) -> dict[str, int]:
        return {"named": len(self._store.assets.all()), "cached": len(self._local), **self.counts}

    def wake(self) -> None:
        """Fetch now: a bundle with new assets was applied."""
        self._wake.set()

    def _refresh(self) -> None:
        self._named = {asset.url: asset for asset, _ in self._store.assets.all()}
        local = self._store.assets.local()
        if local != self._local:
            self.changed.set()
        self._local = local
        self._by_hash = {a.sha256: a for a in self._local.values()}

    async def run(self) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        await self.verify_on_disk()
        # no limit on the whole download (a video is large), only on a stall: a cut download resumes later
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self._cfg.fetch_timeout_s, sock_read=self._cfg.fetch_timeout_s
        )
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while True:
                await self.sync(http)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._cfg.retry_s)

    async def verify_on_disk(self) -> None:
        """Forget any cached file that is missing or no longer matches its hash."""
        for asset, fetched in self._store.assets.all():
            if fetched and await asyncio.to_thread(_file_sha256, self.path(asset.sha256)) != asset.sha256:
                self.counts["rotted"] += 1
                self.path(asset.sha256).unlink(missing_ok=True)
                self._store.assets.mark_fetched(asset.url, None)
        self._refresh()

    async def sync(self, http: aiohttp.ClientSession) -> int:
        """Fetch every asset not yet on disk; returns how many are still missing."""
        missing = 0
        for asset, fetched in self._store.assets.all():
            if fetched:
                continue
            if (
                self.path(asset.sha256).exists()
                and await asyncio.to_thread(_file_sha256, self.path(asset.sha256)) == asset.sha256
            ):
                self._store.assets.mark_fetched(asset.url, self._clock.wall().iso())  # same image, another url
                continue
            try:
                await self._fetch(http, asset)
            except AssetRefused as exc:
                missing += 1
                self.counts[exc.code] += 1
                log.warning("asset %s refused: %s", asset.url.split("?", 1)[0], exc)  # a signed query is a secret
                continue
            self.counts["fetched"] += 1
            self._store.assets.mark_fetched(asset.url, self._clock.wall().iso())
        self._refresh()
        return missing

    async def _fetch(self, http: aiohttp.ClientSession, asset: AssetRef) -> None:
        if asset.size > self._cfg.max_bytes:
            raise AssetRefused("too_large", f"{asset.size} bytes is over surfaces.assets.max_bytes")
        part = self.path(asset.sha256).with_suffix(".part")
        have = part.stat().st_size if part.exists() else 0
        if have > asset.size:
            part.unlink()
            have = 0
        if have < asset.size:
            await self._download(http, asset, part, have)
        digest = await asyncio.to_thread(_file_sha256, part)
        if digest != asset.sha256:
            part.unlink(missing_ok=True)
            raise AssetRefused("hash_mismatch", f"sha256 {digest} is not the bundle's {asset.sha256}")
        if asset.is_video:
            problem = video.mismatch(asset, await asyncio.to_thread(video.probe, part))
            if problem is not None:
                part.unlink(missing_ok=True)
                raise AssetRefused("video_mismatch", problem)
        await asyncio.to_thread(_commit, part, self.path(asset.sha256))

    async def _download(self, http: aiohttp.ClientSession, asset: AssetRef, part: Path, have: int) -> None:
        """Stream the asset into `part` from byte `have` on (a range request); what arrived stays there, whole or
        not, for the next try."""
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            async with http.get(asset.url, headers=headers) as resp:
                if have and resp.status == 206 and resp.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
                    self.counts["resumed"] += 1
                elif resp.status == 200:
                    have = 0  # the server sends it all again
                else:
                    raise AssetRefused("http_status", f"HTTP {resp.status}")
                with part.open("ab" if have else "wb") as out:
                    async for chunk in resp.content.iter_chunked(CHUNK_BYTES):
                        if have + len(chunk) > asset.size:
                            raise AssetRefused("wrong_size", f"more than the {asset.size} bytes the bundle says")
                        await asyncio.to_thread(out.write, chunk)
                        have += len(chunk)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AssetRefused("network", f"{type(exc).__name__} after {have} of {asset.size} bytes") from None
        except AssetRefused as exc:
            if exc.code == "wrong_size":
                part.unlink(missing_ok=True)
            raise
        if have != asset.size:
            raise AssetRefused("network", f"the download ended after {have} of {asset.size} bytes")

    async def serve(self, request: web.Request) -> web.StreamResponse:
        asset = self._by_hash.get(request.match_info["sha256"])
        if asset is None:
            raise web.HTTPNotFound(text="no such asset cached here")
        return web.FileResponse(
            self.path(asset.sha256),
            headers={
                "Content-Type": asset.content_type,
                "Cache-Control": "public, max-age=31536000, immutable",
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
            },
        )


class AssetRefused(Refused):
    """A download refused (hash, size, status, network)."""


def _file_sha256(path: Path) -> str | None:
    try:
        with path.open("rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:
        return None


def _commit(part: Path, path: Path) -> None:
    """The whole, verified download becomes the cached file: on the card first, then by rename."""
    with part.open("rb+") as f:
        os.fsync(f.fileno())
    os.replace(part, path)
