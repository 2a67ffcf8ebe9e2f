"""A screen shows its offer's picture with the uplink down: the agent fetched it from the bundle's URL,
verified its sha256 and serves it from local disk; a tampered download never reaches the glass."""

import asyncio
import hashlib
from datetime import UTC, datetime

from aiohttp import web
from playwright.async_api import expect

from edge_agent.app import Agent
from edge_agent.signage.http import STATIC
from edge_agent.store.assets import AssetRef
from edge_agent.store.bundles import OfferBundle, apply_offers
from tests.factories import offer
from tests.signage.test_video import Cdn
from tests.signage.videos import asset_of, make_video
from tests.surfaces import surfaces_settings

from .chromium import artifact, chromium

PICTURE = STATIC.joinpath("demo-croissant.svg").read_bytes()


async def _cdn() -> tuple[web.AppRunner, str]:
    """The retailer's image host: one good picture, one that was tampered with on the way."""

    async def croissant(_: web.Request) -> web.Response:
        return web.Response(body=PICTURE, content_type="image/svg+xml")

    async def apples(_: web.Request) -> web.Response:
        return web.Response(body=b"<svg>evil</svg>", content_type="image/svg+xml")

    app = web.Application()
    app.router.add_get("/img/croissant.svg", croissant)
    app.router.add_get("/img/apples.svg", apples)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


async def _wait_for(predicate, timeout=20.0):
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


async def test_screen_shows_a_verified_cached_picture_with_the_uplink_down(tmp_path, issuer):
    cdn, base = await _cdn()
    settings = surfaces_settings(tmp_path, issuer)
    agent = Agent(settings)
    now = datetime.now(UTC)
    good = AssetRef(
        url=f"{base}/img/croissant.svg",
        sha256=hashlib.sha256(PICTURE).hexdigest(),
        content_type="image/svg+xml",
        size=len(PICTURE),
    )
    tampered = AssetRef(
        url=f"{base}/img/apples.svg",
        sha256=hashlib.sha256(b"the real apples").hexdigest(),
        content_type="image/svg+xml",
        size=15,
    )
    bundle = OfferBundle(
        version=1,
        issued_at=now,
        offers=[offer("croissant", title="Croissant of the day", image=good.url, zones=("bakery",))],
        assets=[good, tampered],
    )
    store = agent.store
    apply_offers(store.db, store.bundle_versions, store.offers, bundle, now.isoformat())
    agent.catalog.reload()
    await agent.start()
    try:
        await _wait_for(lambda: agent.assets.status()["cached"] == 1 and agent.assets.counts["hash_mismatch"] >= 1)
        assert (tmp_path / "assets" / good.sha256).read_bytes() == PICTURE
        assert not (tmp_path / "assets" / tampered.sha256).exists()
        await cdn.cleanup()  # the uplink goes down

        async with chromium() as browser:
            page = await browser.new_page(viewport={"width": 1280, "height": 720})
            await page.goto(f"{agent.url}/screen/screen-b")
            await expect(page.locator("#offer-title")).to_have_text("Croissant of the day")
            image = page.locator("#offer-image")
            await expect(image).to_have_attribute("src", f"/assets/{good.sha256}")
            await expect(image).to_be_visible()
            assert await image.evaluate("img => img.naturalWidth") > 0
            await page.screenshot(path=artifact("screen-offline-cached-image.png"))
    finally:
        await cdn.cleanup()
        await agent.stop()


async def test_a_cached_file_that_rotted_on_disk_is_fetched_again(tmp_path, issuer):
    cdn, base = await _cdn()
    agent = Agent(surfaces_settings(tmp_path, issuer))
    good = AssetRef(
        url=f"{base}/img/croissant.svg",
        sha256=hashlib.sha256(PICTURE).hexdigest(),
        content_type="image/svg+xml",
        size=len(PICTURE),
    )
    agent.store.assets.replace_all([good])
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / good.sha256).write_bytes(b"bit rot")
    agent.store.assets.mark_fetched(good.url, "2026-01-01T00:00:00+00:00")
    await agent.start()
    try:
        await _wait_for(lambda: agent.assets.counts["rotted"] == 1 and agent.assets.counts["fetched"] == 1)
        assert (tmp_path / "assets" / good.sha256).read_bytes() == PICTURE
    finally:
        await cdn.cleanup()
        await agent.stop()


async def test_a_video_item_plays_from_the_cache_with_the_uplink_down(tmp_path, issuer):
    """An idle loop whose item is an MP4 (H.264 video, AAC sound) the bundle names: fetched, verified, then with
    the content host gone the screen plays it muted from the agent's cache: its clock runs and it was not
    stalled, and the item lasts the video's own length."""
    clip = make_video(tmp_path / "autumn.mp4", "h264", (640, 360), 4.0)
    cdn = Cdn({"autumn.mp4": clip.read_bytes()})
    base = await cdn.start()
    asset = asset_of(clip, f"{base}/v/autumn.mp4", "h264", (640, 360), 4.0)
    loop = {"id": "autumn", "items": [{"title": "Autumn at the bakery", "video": asset.url}]}
    agent = Agent(surfaces_settings(tmp_path, issuer, playlists=[loop]))
    now = datetime.now(UTC)
    store = agent.store
    bundle = OfferBundle(version=1, issued_at=now, offers=[], assets=[asset])
    apply_offers(store.db, store.bundle_versions, store.offers, bundle, now.isoformat())
    agent.catalog.reload()
    await agent.start()
    try:
        await _wait_for(lambda: agent.assets.cached(asset.url) is not None)
        await cdn.runner.cleanup()  # the uplink goes down
        assert agent.hub.idle_items("screen-b")[0]["duration_s"] == 4.0
        async with chromium() as browser:
            page = await browser.new_page(viewport={"width": 1280, "height": 720})
            await page.goto(f"{agent.url}/screen/screen-b")
            video = page.locator("#idle-video")
            await expect(video).to_be_visible()
            await expect(video).to_have_attribute("src", f"/assets/{asset.sha256}")
            first = await video.evaluate("v => v.currentTime")
            await page.wait_for_timeout(1500)
            state = await video.evaluate("v => ({t: v.currentTime, paused: v.paused, muted: v.muted, w: v.videoWidth})")
            assert state["t"] > first + 0.5, state  # it plays
            assert not state["paused"] and state["muted"] and state["w"] == 640
            assert await page.locator("#idle-image").is_hidden()
            await page.screenshot(path=artifact("screen-offline-video.png"))
    finally:
        await cdn.runner.cleanup()
        await agent.stop()
