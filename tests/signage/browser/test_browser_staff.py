"""The associate tablet and the store dashboard in a real headless Chromium, behind their sign-in."""

import asyncio
import re

import aiohttp
import pytest
import pytest_asyncio
from playwright.async_api import expect

from edge_agent.signage.associate import tag
from simulators.checkin_app import post_checkin
from simulators.screen import ScreenPlayer
from tests.surfaces import ASSOCIATE_TOKEN, DASHBOARD_TOKEN, seeded, started, surfaces_settings

from .chromium import artifact
from .test_browser_kiosk import login

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module")
async def agent(tmp_path, issuer):
    async with started(seeded(surfaces_settings(tmp_path, issuer))) as running:
        yield running


async def checkin(agent, issuer, *who: tuple[str, str]) -> None:
    async with aiohttp.ClientSession() as http:
        for customer_ref, touchpoint in who:
            assert (await post_checkin(http, agent.url, issuer.token(customer_ref, touchpoint)))[0] == 202


async def test_associate_sees_only_shoppers_who_asked_for_help(browser, agent, issuer):
    await checkin(agent, issuer, ("alice", "screen-b"), ("bob", "screen-a"))  # only alice consents to assisted
    page = await login(browser, agent.url, "/associate", ASSOCIATE_TOKEN)
    cards = page.locator(".shopper")
    await expect(cards).to_have_count(1)
    await expect(cards.locator(".tag")).to_have_text(tag("alice"))
    await expect(cards.locator(".where")).to_have_text("Bakery")
    await expect(cards.locator(".suggestion-title")).to_have_text("Flat white, half price")
    await expect(cards.locator(".points")).to_contain_text("coffee, bakery")
    body = await page.inner_text("body")
    assert "alice" not in body and "bob" not in body
    await page.screenshot(path=artifact("associate.png"))

    # she withdraws assisted service (here through the store's consent ledger): she leaves the list at once
    agent.store.consents.set("alice", "assisted", False, at="2026-01-01T00:00:00+00:00", touchpoint="kiosk-a")
    await expect(cards).to_have_count(0, timeout=15_000)
    await expect(page.locator("#empty")).to_be_visible()
    await page.close()


async def test_dashboard_shows_live_counts_screens_sync_and_charts(browser, agent, issuer):
    player = ScreenPlayer(agent.url, "screen-a")
    task = asyncio.create_task(player.run())
    try:
        await checkin(agent, issuer, ("alice", "screen-b"), ("bob", "screen-a"))
        page = await login(browser, agent.url, "/dashboard", DASHBOARD_TOKEN)
        await expect(page.locator("#kpi-people")).to_have_text("2")
        await expect(page.locator("#kpi-shown")).not_to_have_text(re.compile(r"^[–0]$"))
        row_a = page.locator("tr[data-touchpoint=screen-a]")
        await expect(row_a.locator(".pill")).to_have_text("online")
        await expect(row_a.locator(".showing")).to_have_text(re.compile("Flat white"))
        await expect(page.locator("tr[data-touchpoint=screen-b] .pill")).to_have_text("offline")
        await expect(page.locator("#sync")).to_contain_text("waiting")
        await expect(page.locator("#sensors")).to_contain_text("engine")
        await expect(page.locator("#zone-legend")).to_contain_text("Bakery: 1")
        # charts are drawn on canvas: some pixels are not blank
        inked = "c => c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some((v, i) => i % 4 === 3 && v)"
        assert await page.locator("#chart-zones").evaluate(inked)
        assert await page.locator("#chart-hours").evaluate(inked)
        await page.wait_for_timeout(2500)  # a few live samples for the screenshot
        await page.screenshot(path=artifact("dashboard.png"), full_page=True)
        assert "alice" not in await page.inner_text("body")
        await page.close()
    finally:
        task.cancel()
