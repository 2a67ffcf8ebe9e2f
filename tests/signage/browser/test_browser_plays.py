"""Proof of play for every playlist item, from a real screen page in headless Chromium: every play recorded once,
an offer interrupting the loop and the loop resuming at the item it cut, and plays made while the agent was
away recorded when it is back — none lost."""

import asyncio
import contextlib
import itertools
import sqlite3
from datetime import UTC, datetime

import tomli_w
from playwright.async_api import expect

from edge_agent.app import Agent
from edge_agent.events import Idle, Show
from simulators.broker import free_port
from tests.factories import AgentProcess, config_dict, mqtt_section, port_open, wait_for
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

PENDING = "() => JSON.parse(localStorage.getItem('edge-agent.pending-plays.screen-b') || '[]').length"
CAMPAIGNS = [{"id": "brand-a"}, {"id": "brand-b"}]  # no shares: the loop keeps its order


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
            await wait_for(lambda: len(_plays(agent)) >= 4)
            plays = _plays(agent)
            assert [p[0] for p in plays[:4]] == ["coffee", "bread", "hello", "coffee"]  # in order, every one
            assert all(p[2] == 1 for p in plays) and {p[1] for p in plays} >= {"brand-a", "brand-b", None}
            assert agent.hub.showing("screen-b")["kind"] == "idle" and agent.hub.showing("screen-b")["item"]

            # a personal offer interrupts whatever item is on the glass...
            offer = {"offer_id": "croissant", "title": "Croissant for you", "expires_at": "2099-01-01T00:00:00+00:00"}
            agent.bus.publish(Show("screen-b", "show-1", offer, "alice", 0.0))
            await expect(page.locator("#offer-title")).to_have_text("Croissant for you")
            await wait_for(lambda: any(p[2] == 0 for p in _plays(agent)), what="the play the offer cut short")
            cut, item = next((i, p[0]) for i, p in enumerate(_plays(agent)) if p[2] == 0)
            await page.screenshot(path=artifact("screen-offer-interrupts-loop.png"))
            # ...and when it is over the loop resumes with the item it cut, from its start
            agent.bus.publish(Idle("screen-b", 0.0))
            await wait_for(lambda: len(_plays(agent)) > cut + 1, what="the loop going on")
            assert _plays(agent)[cut + 1][0] == item and _plays(agent)[cut + 1][2] == 1
            queued = agent.store.db.execute("SELECT count(*) FROM outbox WHERE kind = 'play'").fetchone()[0]
            assert queued == len(_plays(agent))  # each play went into the outbox with its record
    finally:
        await agent.stop()


async def test_plays_made_while_the_agent_was_away_are_recorded_when_it_is_back(tmp_path, issuer):
    port = free_port()
    settings = surfaces_settings(tmp_path, issuer, playlists=[LOOP], campaigns=CAMPAIGNS)
    settings = settings.model_copy(update={"http": settings.http.model_copy(update={"port": port})})
    first = Agent(settings)
    await first.start()
    async with chromium() as browser:
        page = await browser.new_page()
        await page.goto(f"{first.url}/screen/screen-b")
        await wait_for(lambda: len(_plays(first)) >= 2)
        await first.stop()
        away = datetime.now(UTC).isoformat()
        await page.wait_for_selector("#status.offline")
        await asyncio.sleep(4.0)  # the loop goes on: four plays or so, kept by the page
        pending = await page.evaluate(PENDING)
        assert pending >= 3

        second = Agent(settings)
        await second.start()
        try:
            await page.wait_for_selector("#status:not(.offline)", timeout=20_000)
            await wait_for(
                lambda: sum(1 for p in _plays(second) if p[3] >= away) >= pending
            )  # every play made while it was away
            await wait_for(
                lambda: (
                    second.store.db.execute("SELECT count(*) FROM outbox WHERE kind = 'play'").fetchone()[0]
                    == len(_plays(second))
                )
            )
        finally:
            await second.stop()


async def test_no_play_is_lost_across_an_agent_sigkill_and_a_broker_outage(tmp_path, issuer, broker, cloud):
    """`edge-agent run` in its own process, with the store broker and the cloud: SIGKILLed while the screen plays
    and the broker gone with it; the page plays on and keeps its plays; both back, every play is recorded — the
    plays form an unbroken chain in time, each starting as the one before ended — and reaches the cloud once."""
    port = free_port()
    data = config_dict(tmp_path, issuer, http={"host": "127.0.0.1", "port": port}, mqtt=mqtt_section(broker, cloud))
    data["surfaces"] = {"playlists": [LOOP], "campaigns": CAMPAIGNS}
    config_path = tmp_path / "agent.toml"
    config_path.write_text(tomli_w.dumps(data), encoding="utf-8")
    agent = AgentProcess(config_path)
    agent.start()
    try:
        await wait_for(lambda: port_open(port), what="the agent's port")
        async with chromium() as browser:
            page = await browser.new_page()
            await page.goto(f"http://127.0.0.1:{port}/screen/screen-b")
            await wait_for(lambda: len(_recorded(tmp_path)) >= 3, what="plays recorded")
            agent.kill()
            broker.stop()
            await page.wait_for_selector("#status.offline")
            await asyncio.sleep(3.0)  # the loop goes on, its plays kept by the page
            broker.start()
            agent.start()
            await wait_for(lambda: port_open(port), what="the agent back")
            await page.wait_for_selector("#status:not(.offline)", timeout=20_000)
            async with asyncio.timeout(20):  # every play the page kept, recorded
                while await page.evaluate(PENDING):
                    await asyncio.sleep(0.1)
            plays = _recorded(tmp_path)
        for before, after in itertools.pairwise(plays):
            gap = datetime.fromisoformat(after[2]) - datetime.fromisoformat(before[3])
            assert abs(gap.total_seconds()) < 0.5, (before, after)  # no play missing between them
        assert len(plays) >= 6
        ids = {p[0] for p in plays}
        await cloud.wait_for(lambda: {e["play_id"] for e in cloud.of_kind("play")} >= ids)
    finally:
        agent.stop()


def _recorded(folder) -> list[tuple[str, str, str, str]]:
    """(play_id, item, started_at, ended_at) of the plays on disk, in order, read from another process."""
    path = folder / "agent.db"
    if not path.exists():
        return []
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        try:
            return db.execute("SELECT play_id, item_id, started_at, ended_at FROM plays ORDER BY started_at").fetchall()
        except sqlite3.OperationalError:  # not migrated yet
            return []
