"""Layouts in headless Chromium: a portrait screen with three regions — the item loop, the offer panel and a
ticker — each drawn where the layout puts it; an offer shows in its panel while the loop plays on; the same
layout on a landscape output turned a quarter; and a layout that cannot be drawn refused with every problem."""

import asyncio

import pytest
from playwright.async_api import expect

from edge_agent.app import Agent
from edge_agent.config import ConfigError
from edge_agent.events import Idle, Show
from tests.surfaces import surfaces_settings

from .chromium import artifact, chromium

PORTRAIT = {
    "id": "tall",
    "orientation": "portrait",
    "regions": [
        {"id": "main", "kind": "loop", "x": 0, "y": 0, "width": 100, "height": 55},
        {"id": "deal", "kind": "offer", "x": 0, "y": 55, "width": 100, "height": 37},
        {"id": "news", "kind": "ticker", "x": 0, "y": 92, "width": 100, "height": 8,
         "text": ["Fresh bread every morning", "Open until 22:00"]},
    ],
}  # fmt: skip
LOOP = {
    "id": "loop",
    "layout": "tall",
    "items": [{"id": "one", "title": "First", "duration_s": 1}, {"id": "two", "title": "Second", "duration_s": 1}],
}
OFFER = {"offer_id": "croissant", "title": "Croissant for you", "expires_at": "2099-01-01T00:00:00+00:00"}


async def _boxes(page) -> dict[str, dict[str, float]]:
    return await page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('.region')].map((r) => {
             const b = r.getBoundingClientRect();
             return [r.dataset.region, {x: b.x, y: b.y, width: b.width, height: b.height}];
           }))"""
    )


async def test_a_portrait_layout_draws_each_region_and_an_offer_leaves_the_loop_playing(tmp_path, issuer):
    agent = Agent(surfaces_settings(tmp_path, issuer, playlists=[LOOP], layouts=[PORTRAIT]))
    await agent.start()
    try:
        async with chromium() as browser:
            page = await browser.new_page(viewport={"width": 540, "height": 960})  # a portrait output
            await page.goto(f"{agent.url}/screen/screen-b")
            await expect(page.locator(".region")).to_have_count(3)
            boxes = await _boxes(page)
            # 55 %, 37 % and 8 % of 960 px, one under the other, each the whole width
            assert boxes["main"] == {"x": 0, "y": 0, "width": 540, "height": pytest.approx(528, abs=1)}
            assert boxes["deal"] == {
                "x": 0,
                "y": pytest.approx(528, abs=1),
                "width": 540,
                "height": pytest.approx(355, abs=1),
            }
            assert boxes["news"] == {
                "x": 0,
                "y": pytest.approx(883, abs=1),
                "width": 540,
                "height": pytest.approx(77, abs=1),
            }
            await expect(page.locator('[data-region="main"] #idle-title')).to_have_text("First")
            await expect(page.locator('[data-region="news"] .ticker-text')).to_contain_text("Fresh bread every morning")
            assert await page.locator("#offer").is_hidden()  # no offer yet: its panel is empty

            agent.bus.publish(Show("screen-b", "show-1", OFFER, None, 0.0))
            await expect(page.locator('[data-region="deal"] #offer-title')).to_have_text("Croissant for you")
            # the loop plays on beside the offer
            await expect(page.locator("#idle-title")).to_have_text("Second", timeout=5_000)
            await expect(page.locator("#idle-title")).to_have_text("First", timeout=5_000)
            assert await page.locator("#idle").is_visible()
            await page.screenshot(path=artifact("screen-layout-portrait.png"))
            for region in ("main", "deal", "news"):
                await page.locator(f'[data-region="{region}"]').screenshot(path=artifact(f"screen-layout-{region}.png"))
            agent.bus.publish(Idle("screen-b", 0.0))
            await expect(page.locator("#offer")).to_be_hidden()
            await asyncio.sleep(1.5)
            plays = agent.store.db.execute("SELECT count(*), sum(completed) FROM plays").fetchone()
            assert plays[0] >= 3 and plays[0] == plays[1]  # no play was cut by the offer
    finally:
        await agent.stop()


async def test_a_portrait_layout_on_a_landscape_output_is_turned_a_quarter(tmp_path, issuer):
    agent = Agent(surfaces_settings(tmp_path, issuer, playlists=[LOOP], layouts=[PORTRAIT]))
    await agent.start()
    try:
        async with chromium() as browser:
            page = await browser.new_page(viewport={"width": 960, "height": 540})
            await page.goto(f"{agent.url}/screen/screen-b")
            await expect(page.locator("#stage.rotated")).to_have_count(1)
            boxes = await _boxes(page)  # turned: the loop's region runs down the right-hand side of the glass
            main = boxes["main"]
            assert main == {"x": pytest.approx(432, abs=1), "y": 0, "width": pytest.approx(528, abs=1), "height": 540}
            await page.screenshot(path=artifact("screen-layout-portrait-turned.png"))
    finally:
        await agent.stop()


def test_a_layout_that_cannot_be_drawn_is_refused_with_every_problem(tmp_path, issuer):
    bad = {
        "id": "bad",
        "regions": [
            {"id": "a", "kind": "offer", "x": 0, "y": 0, "width": 60, "height": 100},
            {"id": "b", "kind": "ticker", "x": 50, "y": 0, "width": 60, "height": 10},
        ],
    }
    with pytest.raises(ConfigError) as refused:
        surfaces_settings(tmp_path, issuer, layouts=[bad], playlists=[{**LOOP, "layout": "missing"}])
    message = str(refused.value)
    for expected in (
        "exactly one region of kind loop (found 0)",
        "region b within the screen",
        "region b, a ticker, with lines of text",
        "regions a and b apart (they overlap)",
    ):
        assert expected in message, message
