"""Pairing a screen in a real headless Chromium: staff open the dashboard's pairing link on the screen once, the
page keeps the key and takes it off its address; a browser without it shows it is not paired."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from tests.signage.test_screen_pairing import lan
from tests.surfaces import DASHBOARD_TOKEN, seeded, started, surfaces_settings

from .chromium import artifact
from .test_browser_kiosk import login

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_staff_pair_a_screen_with_the_dashboards_link_and_it_stays_paired(browser, tmp_path, issuer):
    agent = seeded(lan(surfaces_settings(tmp_path, issuer)))
    async with started(agent):
        staff = await login(browser, agent.url, "/dashboard", DASHBOARD_TOKEN)
        link = staff.locator("tr[data-touchpoint=screen-a] a.pairing")
        await expect(link).to_have_attribute("href", f"/screen/screen-a?key={agent.store.screen_keys.key('screen-a')}")
        assert await staff.locator("tr[data-touchpoint=kiosk-a] a.pairing").count() == 0
        pairing_link = await link.get_attribute("href")
        await staff.close()

        stranger = await browser.new_page()  # a browser on the LAN that was never given the link
        await stranger.goto(f"{agent.url}/screen/screen-a")
        await expect(stranger.locator("#status.unpaired")).to_be_visible(timeout=20_000)
        await stranger.screenshot(path=artifact("screen-unpaired.png"))
        await stranger.close()

        screen = await browser.new_page()
        await screen.goto(f"{agent.url}{pairing_link}")
        await expect(screen.locator("#status")).not_to_have_class(re.compile("offline"), timeout=20_000)
        assert screen.url == f"{agent.url}/screen/screen-a"  # the key is off the address at once
        await screen.reload()  # the page keeps the key: still paired without the link
        await expect(screen.locator("#status")).not_to_have_class(re.compile("offline"), timeout=20_000)
        assert agent.hub.players("screen-a") == 1
        await screen.close()
