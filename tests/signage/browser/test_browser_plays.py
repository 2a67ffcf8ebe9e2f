"""Proof of play for every playlist item, from a real screen page in headless Chromium: every play recorded once,
an offer interrupting the loop and the loop resuming at the item it cut, and plays made while the agent was
away recorded when it is back — none lost."""

import asyncio
import socket
from datetime import UTC, datetime

from edge_agent.app import Agent
from edge_agent.events import Idle, Show
from tests.surfaces import surfaces_settings

from .chromium import artifact, chromium

LOOP = {
    "id": "loop",
    "touchpoints": ["screen-b"],
    "items": [
        {"id": "coffee", "title": "Coffee", "campaign": "brand-a", "duration_s": 1},
        {"id": "bread", "title": "Bread", "campaign": "brand-b", "duration_s": 1},
        {"id": "hello", "title": "Welcome", "duration_s": 1},
    ],
}

CAMPAIGNS = [{"id": "brand-a"}, {"id": "brand-b"}]  # no shares: the loop keeps its order


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _wait_for(predicate, timeout=20.0):
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


def _plays(agent):
    return agent.store.db.execute(
        "SELECT item_id, campaign, completed, started_at, ended_at FROM plays ORDER BY started_at"
    ).fetchall()


async def test_every_item_play_is_recorded_and_an_offer_interrupts_the_loop_which_resumes_where_it_was(
    tmp_path, issuer
):
    agent = Agent(surfaces_settings(tmp_path, issuer, playlists=[LOOP], campaigns=CAMPAIGNS))
    await agent.start()
    try:
        async with chromium() as browser:
            page = await browser.new_page(viewport={"width": 1280, "height": 720})
            await page.goto(f"{agent.url}/screen/screen-b")
            await _wait_for(lambda: len(_plays(agent)) >= 4)
            plays = _plays(agent)
            assert [p[0] for p in plays[:4]] == ["coffee", "bread", "hello", "coffee"]  # in order, every one
            assert all(p[2] == 1 for p in plays) and {p[1] for p in plays} >= {"brand-a", "brand-b", None}
            assert agent.hub.showing("screen-b")["kind"] == "idle" and agent.hub.showing("screen-b")["item"]

            # a personal offer interrupts whatever item is on the glass...
            await page.wait_for_function("document.getElementById('idle-title').textContent === 'Bread'")
            offer = {"offer_id": "croissant", "title": "Croissant for you", "expires_at": "2099-01-01T00:00:00+00:00"}
            agent.bus.publish(Show("screen-b", "show-1", offer, "alice", 0.0))
            await page.wait_for_function("document.getElementById('offer-title').textContent === 'Croissant for you'")
            await _wait_for(lambda: any(p[0] == "bread" and p[2] == 0 for p in _plays(agent)))
            await page.screenshot(path=artifact("screen-offer-interrupts-loop.png"))
            # ...and when it is over the loop resumes with the item it cut, from its start
            agent.bus.publish(Idle("screen-b", 0.0))
            await page.wait_for_function("document.getElementById('idle-title').textContent === 'Bread'")
            cut = next(i for i, p in enumerate(_plays(agent)) if p[0] == "bread" and p[2] == 0)
            await _wait_for(lambda: len(_plays(agent)) > cut + 1)
            assert _plays(agent)[cut + 1][0] == "bread" and _plays(agent)[cut + 1][2] == 1
            queued = agent.store.db.execute("SELECT count(*) FROM outbox WHERE kind = 'play'").fetchone()[0]
            assert queued == len(_plays(agent))  # each play went into the outbox with its record
    finally:
        await agent.stop()


async def test_plays_made_while_the_agent_was_away_are_recorded_when_it_is_back(tmp_path, issuer):
    port = _free_port()
    settings = surfaces_settings(tmp_path, issuer, playlists=[LOOP], campaigns=CAMPAIGNS)
    settings = settings.model_copy(update={"http": settings.http.model_copy(update={"port": port})})
    first = Agent(settings)
    await first.start()
    async with chromium() as browser:
        page = await browser.new_page()
        await page.goto(f"{first.url}/screen/screen-b")
        await _wait_for(lambda: len(_plays(first)) >= 2)
        await first.stop()
        away = datetime.now(UTC).isoformat()
        await page.wait_for_selector("#status.offline")
        await asyncio.sleep(4.0)  # the loop goes on: four plays or so, kept by the page
        pending = await page.evaluate("JSON.parse(localStorage.getItem('edge-agent.pending-plays.screen-b')).length")
        assert pending >= 3

        second = Agent(settings)
        await second.start()
        try:
            await page.wait_for_selector("#status:not(.offline)", timeout=20_000)
            await _wait_for(
                lambda: sum(1 for p in _plays(second) if p[3] >= away) >= pending
            )  # every play made while it was away
            await _wait_for(
                lambda: (
                    second.store.db.execute("SELECT count(*) FROM outbox WHERE kind = 'play'").fetchone()[0]
                    == len(_plays(second))
                )
            )
        finally:
            await second.stop()
