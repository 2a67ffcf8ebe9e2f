"""Video items: the bundle's word on each video, a resumable download that survives a cut connection and a
restart, the file checked against what the bundle said, served by ranges, and sent only to the screens whose
player can decode it."""

import asyncio
import hashlib
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import ValidationError

from edge_agent import devices
from edge_agent.bus import Bus
from edge_agent.clock import Clock
from edge_agent.config import AssetSettings, ConfigError, from_dict
from edge_agent.events import OffersChanged
from edge_agent.signage import screen_profile
from edge_agent.signage.assets import AssetCache
from edge_agent.signage.media import ScreenMedia
from edge_agent.signage.video import unplayable
from edge_agent.store import open_store
from edge_agent.store.assets import AssetRef
from edge_agent.store.bundles import OfferBundle, apply_offers

from .videos import asset_of, make_video

SIZE = (320, 240)


class Cdn:
    """The retailer's content host: serves files by ranges, and can drop the connection partway through a
    response, as a flaky uplink does. Keeps every Range header it was sent."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.ranges: list[str | None] = []
        self.cut_after: int | None = None  # bytes of the body sent before the connection is dropped

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = self.files[request.match_info["name"]]
        self.ranges.append(request.headers.get("Range"))
        start = 0
        if request.http_range.start is not None:
            start = request.http_range.start
        response = web.StreamResponse(status=206 if start else 200)
        response.content_length = len(body) - start
        if start:
            response.headers["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
        await response.prepare(request)
        if self.cut_after is not None:
            await response.write(body[start : start + self.cut_after])
            await asyncio.sleep(0.05)
            assert request.transport is not None
            request.transport.close()  # the uplink drops: the client sees a short body
            return response
        await response.write(body[start:])
        return response

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/v/{name}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        return f"http://{host}:{port}"


def _cache(tmp_path: Path, store=None) -> AssetCache:
    settings = AssetSettings(dir=tmp_path / "assets", fetch_timeout_s=5)
    (tmp_path / "assets").mkdir(exist_ok=True)
    return AssetCache(settings, store or open_store(tmp_path / "edge.db"), Clock())


async def _sync(cache: AssetCache) -> int:
    async with aiohttp.ClientSession() as http:
        return await cache.sync(http)


async def test_a_new_bundles_files_are_fetched_as_soon_as_it_is_applied(tmp_path):
    video = make_video(tmp_path / "clip.mp4", seconds=1.0, size=SIZE)
    cdn = Cdn({"clip.mp4": video.read_bytes()})
    base = await cdn.start()
    store, bus = open_store(tmp_path / "edge.db"), Bus()
    settings = AssetSettings(dir=tmp_path / "assets", fetch_timeout_s=5, retry_s=3600)  # no retry within the test
    cache = AssetCache(settings, store, Clock(), bus)
    task = asyncio.create_task(cache.run())
    try:
        await asyncio.sleep(0.2)  # the first sync ran and found nothing to fetch
        now = datetime.now(UTC)
        bundle = OfferBundle(
            version=1, issued_at=now, offers=[], assets=[asset_of(video, f"{base}/v/clip.mp4", "h264", SIZE, 1.0)]
        )
        apply_offers(store.db, store.bundle_versions, store.offers, bundle, now.isoformat())
        bus.publish(OffersChanged(1))  # as the downlink does once a bundle is applied
        async with asyncio.timeout(20):
            while cache.status()["cached"] != 1:
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await cdn.runner.cleanup()
        store.close()


def test_a_video_names_what_it_is_and_an_image_does_not():
    with pytest.raises(ValidationError, match="missing: width, height, duration_s"):
        AssetRef(url="https://cdn/x.mp4", sha256="a" * 64, content_type="video/mp4", size=1, codec="h264")
    with pytest.raises(ValidationError, match="codec: only a video"):
        AssetRef(url="https://cdn/x.png", sha256="a" * 64, content_type="image/png", size=1, codec="h264")
    with pytest.raises(ValidationError, match="content_type"):
        AssetRef(url="https://cdn/x.mov", sha256="a" * 64, content_type="video/quicktime", size=1)


def test_a_screen_plays_only_what_its_player_decodes():
    pi4 = screen_profile.load("pi4-chromium")

    def video(codec: str, width: int, height: int) -> AssetRef:
        return AssetRef(
            url="https://cdn/v", sha256="a" * 64, content_type="video/mp4", size=1, codec=codec,
            width=width, height=height, duration_s=10,
        )  # fmt: skip

    assert unplayable(video("h264", 1920, 1080), pi4) is None
    assert unplayable(video("h264", 1080, 1920), pi4) is None  # portrait content: the frame on end
    assert (
        unplayable(video("hevc", 1920, 1080), pi4)
        == "codec hevc is not one Raspberry Pi 4, Chromium plays (h264, vp8, vp9)"
    )
    assert (
        unplayable(video("vp9", 3840, 2160), pi4)
        == "3840x2160 is larger than Raspberry Pi 4, Chromium plays (1920x1080)"
    )


async def test_a_download_cut_halfway_resumes_from_where_it_stopped_even_after_a_restart(tmp_path):
    clip = make_video(tmp_path / "loop.mp4", "h264", SIZE, 3.0)
    body = clip.read_bytes()
    cdn = Cdn({"loop.mp4": body})
    base = await cdn.start()
    try:
        store = open_store(tmp_path / "edge.db")
        asset = asset_of(clip, f"{base}/v/loop.mp4", "h264", SIZE, 3.0)
        store.assets.replace_all([asset])
        cache = _cache(tmp_path, store)
        cdn.cut_after = len(body) // 2
        assert await _sync(cache) == 1  # cut: still missing
        part = tmp_path / "assets" / f"{asset.sha256}.part"
        assert part.read_bytes() == body[: len(body) // 2] and cache.counts["network"] == 1
        assert cache.cached(asset.url) is None

        cdn.cut_after = None
        again = _cache(tmp_path, store)  # the agent restarted: the partial file is still there
        assert await _sync(again) == 0
        assert cdn.ranges == [None, f"bytes={len(body) // 2}-"]  # only the missing half was asked for
        assert again.counts["resumed"] == 1 and again.counts["fetched"] == 1
        assert (tmp_path / "assets" / asset.sha256).read_bytes() == body and not part.exists()
        assert again.cached(asset.url) == asset
    finally:
        await cdn.runner.cleanup()


async def test_a_video_that_is_not_what_the_bundle_said_is_refused(tmp_path):
    clip = make_video(tmp_path / "loop.webm", "vp8", SIZE, 2.0)
    cdn = Cdn({"loop.webm": clip.read_bytes()})
    base = await cdn.start()
    try:
        store = open_store(tmp_path / "edge.db")
        said = asset_of(clip, f"{base}/v/loop.webm", "vp9", SIZE, 2.0)  # the bundle says VP9; the file is VP8
        store.assets.replace_all([said])
        cache = _cache(tmp_path, store)
        assert await _sync(cache) == 1
        assert cache.counts["video_mismatch"] == 1 and cache.cached(said.url) is None
        assert not any((tmp_path / "assets").iterdir())  # nothing of it is kept
    finally:
        await cdn.runner.cleanup()


async def test_a_cached_video_is_served_by_ranges(tmp_path):
    clip = make_video(tmp_path / "loop.mp4", "h264", SIZE, 2.0)
    body = clip.read_bytes()
    store = open_store(tmp_path / "edge.db")
    asset = asset_of(clip, "https://cdn.example/v/loop.mp4", "h264", SIZE, 2.0)
    store.assets.replace_all([asset])
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / asset.sha256).write_bytes(body)
    store.assets.mark_fetched(asset.url, "2026-12-05T10:00:00+00:00")
    cache = _cache(tmp_path, store)
    app = web.Application()
    app.router.add_get("/assets/{sha256}", cache.serve)
    async with TestClient(TestServer(app)) as client:
        resp = await client.get(f"/assets/{asset.sha256}", headers={"Range": "bytes=1000-1999"})
        assert resp.status == 206 and resp.headers["Content-Type"] == "video/mp4"
        assert resp.headers["Content-Range"] == f"bytes 1000-1999/{len(body)}"
        assert await resp.read() == body[1000:2000]
        whole = await client.get(f"/assets/{asset.sha256}")
        assert whole.status == 200 and await whole.read() == body and whole.headers["Accept-Ranges"] == "bytes"


def test_each_screen_is_sent_only_the_videos_its_player_plays(tmp_path):
    store = open_store(tmp_path / "edge.db")
    small = _named(store, "https://cdn.example/small.mp4", "h264", (1280, 720), 12.0, fetched=True)
    large = _named(store, "https://cdn.example/large.webm", "vp9", (3840, 2160), 30.0, fetched=True)
    later = _named(store, "https://cdn.example/later.mp4", "h264", (1280, 720), 5.0, fetched=False)
    settings = from_dict(
        {
            "store": {"id": "s1", "chain_id": "c", "device_id": "d"},
            "sources": {"checkin": False, "ble": False},
            "zones": [{"id": "entrance"}],
            "touchpoints": [
                {"id": "door", "kind": "screen", "zone": "entrance"},
                {"id": "wall", "kind": "screen", "zone": "entrance", "profile": str(_big_screen(tmp_path))},
                {"id": "desk", "kind": "kiosk", "zone": "entrance"},
            ],
        }
    )
    media = ScreenMedia(settings, _cache(tmp_path, store))
    item = {"title": "Autumn", "video": small.url, "duration_s": None}
    assert media.item("door", item) == {**item, "video": f"/assets/{small.sha256}", "duration_s": 12.0}
    assert media.item("door", {**item, "duration_s": 5}) == {
        **item,
        "video": f"/assets/{small.sha256}",
        "duration_s": 5,
    }
    assert media.item("door", {**item, "video": large.url}) is None  # left out of the loop, not a black screen
    assert media.item("wall", {**item, "video": large.url})["video"] == f"/assets/{large.sha256}"
    assert media.item("door", {**item, "video": later.url}) is None  # until it is downloaded
    assert media.item("door", {"title": "Welcome", "duration_s": None})["duration_s"] == 8.0
    offer = {"title": "Croissant", "image": "", "video": large.url}
    assert media.offer("door", offer) == {**offer, "video": ""}  # the offer stays, without its video
    assert media.offer("desk", {**offer, "video": small.url})["video"] == ""
    refused = {(r["touchpoint"], r["video"]): r["reason"] for r in media.refusals()}
    assert refused == {
        ("door", large.url): "3840x2160 is larger than Raspberry Pi 4, Chromium plays (1920x1080)",
        ("door", later.url): "not downloaded yet",
        ("desk", small.url): "only a screen plays videos",
    }
    assert media.counts == {"unplayable": 1, "not_cached": 1, "not_a_screen": 1}


def _named(store, url: str, codec: str, size: tuple[int, int], seconds: float, *, fetched: bool) -> AssetRef:
    asset = AssetRef(
        url=url, sha256=hashlib.sha256(url.encode()).hexdigest(), content_type="video/mp4", size=10,
        codec=codec, width=size[0], height=size[1], duration_s=seconds,
    )  # fmt: skip
    store.assets.replace_all([*(a for a, _ in store.assets.all()), asset])
    if fetched:
        store.assets.mark_fetched(url, "2026-12-05T10:00:00+00:00")
    return asset


def _big_screen(tmp_path: Path) -> Path:
    path = tmp_path / "pc-4k.toml"
    path.write_text(
        'kind = "screen"\nname = "PC, 4K"\n[decode]\ncodecs = ["h264", "vp9"]\nmax_width = 3840\nmax_height = 2160\n'
    )
    return path


def test_a_screens_player_profile_is_checked_with_the_config():
    base = {
        "store": {"id": "s1", "chain_id": "c", "device_id": "d"},
        "sources": {"checkin": False, "ble": False},
        "zones": [{"id": "entrance"}],
    }
    with pytest.raises(
        ConfigError, match=r"touchpoints\[0\].profile: got 'pi5-chromium', expected a profile on a screen only"
    ):
        from_dict(
            {**base, "touchpoints": [{"id": "k", "kind": "kiosk", "zone": "entrance", "profile": "pi5-chromium"}]}
        )
    odd = from_dict({**base, "touchpoints": [{"id": "s", "kind": "screen", "zone": "entrance", "profile": "crt-tv"}]})
    assert [p.split(": ", 1)[0] for p in devices.referenced(odd)] == ["touchpoints[0].profile"]
    assert "crt-tv.toml: cannot read the profile" in devices.referenced(odd)[0]
    good = from_dict({**base, "touchpoints": [{"id": "s", "kind": "screen", "zone": "entrance"}]})
    assert devices.referenced(good) == []  # the default player, pi4-chromium, ships with the agent
