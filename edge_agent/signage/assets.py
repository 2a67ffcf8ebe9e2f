"""Images named by the offer bundle, fetched once, verified by sha256 and served from local disk.

Screens then show their pictures with the uplink down. A file is only ever served under its own hash, so
a tampered or truncated download can never reach the glass: it is refused, counted and tried again later.
Files are checked again at start (an SD card can rot), and written atomically (temporary file + rename).
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

from ..clock import Clock
from ..config import AssetSettings
from ..errors import Refused
from ..store import Store
from ..store.assets import AssetRef

log = logging.getLogger(__name__)


class AssetCache:
    def __init__(self, settings: AssetSettings, store: Store, clock: Clock):
        self._cfg = settings
        self._store = store
        self._clock = clock
        self._dir = Path(settings.dir)
        self._local: dict[str, AssetRef] = {}
        self._by_hash: dict[str, AssetRef] = {}
        self._wake = asyncio.Event()
        self.counts: Counter[str] = Counter()
        self._refresh()

    def path(self, sha256: str) -> Path:
        return self._dir / sha256

    def localise(self, display: dict[str, Any]) -> dict[str, Any]:
        """The display dict with its image pointing at the local copy, when there is a verified one."""
        cached = self._local.get(display.get("image") or "")
        return {**display, "image": f"/assets/{cached.sha256}"} if cached else display

    def status(self) -> dict[str, int]:
        return {"named": len(self._store.assets.all()), "cached": len(self._local), **self.counts}

    def wake(self) -> None:
        """Fetch now (call after a bundle with new assets was applied)."""
        self._wake.set()

    def _refresh(self) -> None:
        self._local = self._store.assets.local()
        self._by_hash = {a.sha256: a for a in self._local.values()}

    async def run(self) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        await self.verify_on_disk()
        timeout = aiohttp.ClientTimeout(total=self._cfg.fetch_timeout_s)
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
        limit = min(asset.size, self._cfg.max_bytes)
        if asset.size > self._cfg.max_bytes:
            raise AssetRefused("too_large", f"{asset.size} bytes is over surfaces.assets.max_bytes")
        try:
            async with http.get(asset.url) as resp:
                if resp.status != 200:
                    raise AssetRefused("http_status", f"HTTP {resp.status}")
                body = await resp.content.read(limit + 1)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AssetRefused("network", f"{type(exc).__name__}: {exc}") from None
        if len(body) != asset.size:
            raise AssetRefused("wrong_size", f"got {len(body)} bytes, the bundle says {asset.size}")
        digest = hashlib.sha256(body).hexdigest()
        if digest != asset.sha256:
            raise AssetRefused("hash_mismatch", f"sha256 {digest} is not the bundle's {asset.sha256}")
        await asyncio.to_thread(_write_atomically, self.path(asset.sha256), body)

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


def _write_atomically(path: Path, body: bytes) -> None:
    tmp = path.with_suffix(".part")
    with tmp.open("wb") as f:
        f.write(body)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
