"""The screen page in a real headless Chromium: it shows a check-in's offer, never runs offer text as
markup, acknowledges what it displayed, and reconnects by itself when the agent comes back."""

import asyncio
import socket
from datetime import UTC, datetime

import aiohttp
from playwright.async_api import expect

from edge_agent.app import Agent
from edge_agent.config import from_dict
from simulators.checkin_app import post_checkin
from tests.factories import config_dict, customer, offer, seed

from .chromium import artifact, chromium

HOSTILE_TITLE = '<img src=x onerror="window.__pwned = 1">Half price'
HOSTILE_TEXT = "<script>window.__pwned = 2</script>Fresh & local"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _wait_for(predicate, timeout=10.0):
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


async def test_screen_shows_the_checkin_offer_as_text_and_acknowledges_it(tmp_path, issuer):
    settings = from_dict(config_dict(tmp_path, issuer))
    agent = Agent(settings)
    seed(
        agent,
        offers=[
            offer(
                "hostile",
                title=HOSTILE_TITLE,
                body=HOSTILE_TEXT,
                audience="personalised",
                price_cents=349,
                currency="EUR",
                image="/static/demo-coffee.svg",
            )
        ],
        roster=[customer("alice")],
    )
    await agent.start()
    try:
        async with chromium() as browser:
            page = await browser.new_page(viewport={"width": 1280, "height": 720})
            await page.goto(f"{agent.url}/screen/screen-a")
            await page.wait_for_selector("#idle.visible")
            await page.screenshot(path=artifact("screen-idle.png"))
            async with aiohttp.ClientSession() as http:
                assert (await post_checkin(http, agent.url, issuer.token("alice", "kiosk-a")))[0] == 202
            await page.wait_for_selector("#offer.visible")
            assert await page.inner_text("#offer-title") == HOSTILE_TITLE
            assert (await page.inner_text("#offer-kicker")).lower() == "just for you"
            assert await page.inner_text("#offer-text") == HOSTILE_TEXT
            assert "3.49" in await page.inner_text("#offer-price")
            assert await page.locator("#offer-title img, #offer-text script").count() == 0
            assert await page.evaluate("window.__pwned") is None
            await _wait_for(lambda: agent.store.impressions.count() == 1)
            row = agent.store.db.execute("SELECT touchpoint, offer_id, customer_ref FROM impressions").fetchone()
            assert row == ("screen-a", "hostile", "alice")
            await page.screenshot(path=artifact("screen-offer.png"))
    finally:
        await agent.stop()


async def test_screen_strikes_through_the_old_price_and_shows_the_label(tmp_path, issuer):
    """A markdown (overstock) and an "ends today" label reach the glass: the old price struck through."""
    now = datetime.now(UTC)
    last_moment_today = now.replace(hour=23, minute=59, second=59, microsecond=0)
    agent = Agent(from_dict(config_dict(tmp_path, issuer)))
    rules = [{"kind": "overstock", "stock_above": 10, "percent_off": 20}, {"kind": "ends_today"}]
    seed(
        agent,
        offers=[
            offer("plain", priority=0.0, price_cents=500, currency="EUR"),
            offer(
                "cheese",
                priority=5.0,
                price_cents=1000,
                currency="EUR",
                stock=50,
                pricing=rules,
                valid_to=last_moment_today,
            ),
        ],
        roster=[],
    )
    await agent.start()
    try:
        async with chromium() as browser:
            page = await browser.new_page(viewport={"width": 1280, "height": 720})
            await page.goto(f"{agent.url}/screen/screen-a")
            await page.wait_for_selector("#offer.visible")
            assert "8.00" in await page.inner_text("#offer-price")
            assert "10.00" in await page.inner_text("#offer-was")
            assert await page.evaluate("getComputedStyle(document.getElementById('offer-was')).textDecorationLine") == (
                "line-through"
            )
            assert (await page.inner_text("#offer-label")).lower() == "ends today"
            await page.screenshot(path=artifact("screen-markdown.png"))
            # an offer at its full price shows no old price and no label
            agent.store.offers.replace_all([offer("plain", price_cents=500, currency="EUR")])
            agent.catalog.reload()
            agent.engine.rotate_anonymous()
            await expect(page.locator("#offer-price")).to_contain_text("5.00", timeout=10_000)
            assert await page.inner_text("#offer-was") == "" and await page.inner_text("#offer-label") == ""
            assert not await page.locator("#offer-was").is_visible()
    finally:
        await agent.stop()


async def test_screen_reconnects_and_shows_new_content_after_the_agent_restarts(tmp_path, issuer):
    port = _free_port()
    settings = from_dict(config_dict(tmp_path, issuer, http={"host": "127.0.0.1", "port": port}))
    first = Agent(settings)
    seed(first, offers=[offer("before", title="Before the restart")], roster=[])
    await first.start()
    async with chromium() as browser:
        page = await browser.new_page()
        await page.goto(f"{first.url}/screen/screen-b")
        await expect(page.locator("#offer-title")).to_have_text("Before the restart")
        await first.stop()
        await page.wait_for_selector("#status.offline")
        # while the agent is away the screen keeps its last content
        assert await page.inner_text("#offer-title") == "Before the restart"

        second = Agent(settings)
        seed(second, offers=[offer("after", title="After the restart")], roster=[])
        await second.start()
        try:
            await expect(page.locator("#offer-title")).to_have_text("After the restart", timeout=20_000)
            await page.wait_for_selector("#status:not(.offline)")
            await _wait_for(
                lambda: (
                    second.store.db.execute("SELECT count(*) FROM impressions WHERE offer_id = 'after'").fetchone()[0]
                    == 1
                )
            )
        finally:
            await second.stop()
