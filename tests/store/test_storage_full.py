"""A full database: writes are refused with a reason and counted, nothing recorded is lost, nothing crashes,
and writing resumes by itself once there is room. The database is capped with `PRAGMA max_page_count` on the
agent's own connection (SQLite then fails exactly as on a full disk, SQLITE_FULL); tests/system/test_faults.py fills
a real filesystem."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from edge_agent.events import Show
from edge_agent.ops import metrics
from edge_agent.signage import server
from edge_agent.store.faults import StorageFaults, StorageRefused, is_storage_error
from simulators.checkin_app import post_checkin
from tests.factories import OPS


def test_only_a_full_or_failing_disk_counts_as_a_storage_error():
    assert is_storage_error(sqlite3.OperationalError("database or disk is full"))
    assert is_storage_error(sqlite3.OperationalError("disk I/O error"))
    assert not is_storage_error(sqlite3.OperationalError("database is locked"))
    assert not is_storage_error(sqlite3.OperationalError("no such table: offers"))
    assert not is_storage_error(sqlite3.IntegrityError("database or disk is full"))

    faults = StorageFaults()
    with pytest.raises(StorageRefused) as refused, faults.writing("checkin", "the check-in"):
        raise sqlite3.OperationalError("database or disk is full")
    assert refused.value.code == "storage_full" and refused.value.reason.startswith("the check-in could not be stored")
    with pytest.raises(sqlite3.OperationalError, match="locked"), faults.writing("checkin"):
        raise sqlite3.OperationalError("database is locked")
    assert faults.failing and faults.failures == {"checkin": 1} and faults.episodes == 1
    with faults.writing("checkin"):
        pass
    assert not faults.failing


async def test_a_full_database_refuses_check_ins_with_503_and_the_agent_recovers(running, issuer):
    agent = await running()
    shows = agent.bus.subscribe(Show, "test")
    db = agent.store.db
    recorded_before = db.execute("SELECT count(*) FROM decisions").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")
    async with aiohttp.ClientSession() as http:
        for i in range(500):  # rows fit in free space on existing pages for a while; then a new page is needed
            status, body = await post_checkin(http, agent.url, issuer.token("alice", ("kiosk-a", "screen-b")[i % 2]))
            if status != 202:
                break
        assert (status, body["error"]) == (503, "storage_full") and "disk is full" in body["reason"]
        await asyncio.sleep(0.2)  # decisions for the check-ins accepted before it, if any, are refused too
        health = agent.health()
        assert health["storage"]["failing"] and health["storage"]["write_failures"]["checkin"] >= 1
        assert all(state == "running" for state in health["components"].values()) and not health["restarts"]
        scraped = metrics.render(agent.metrics).decode()
        assert 'edge_checkins_total{outcome="storage_full"}' in scraped and "edge_storage_failing 1.0" in scraped
        async with http.get(f"{agent.url}/healthz", headers=OPS) as resp:
            assert resp.status == 200  # reads still work

        db.execute("PRAGMA max_page_count = 1073741823")  # room again
        while not shows.queue.empty():
            shows.queue.get_nowait()
        status, body = await post_checkin(http, agent.url, issuer.token("alice", "screen-b"))
        assert status == 202, body
        show = await asyncio.wait_for(shows.get(), 10)
    assert agent.store.decisions.get(show.show_id) is not None  # decided, recorded and shown again
    assert db.execute("SELECT count(*) FROM decisions").fetchone()[0] > recorded_before
    assert not agent.health()["storage"]["failing"] and not agent.restarts


class _FullDiskSurface:
    """A surface whose write meets a full disk, and one whose write meets a bug."""

    def routes(self, app: web.Application, auth) -> None:
        async def full(_: web.Request) -> web.Response:
            raise sqlite3.OperationalError("database or disk is full")

        async def bug(_: web.Request) -> web.Response:
            raise sqlite3.OperationalError("no such table: nowhere")

        app.router.add_post("/full", full)
        app.router.add_post("/bug", bug)


async def test_any_surface_that_meets_a_full_disk_answers_503_with_the_reason(running):
    agent = await running()
    app = server.build(
        agent.settings,
        agent.hub,
        None,
        agent.health,
        lambda: b"",
        auth=agent.auth,
        assets=agent.assets,
        refused=Counter(),
        surfaces=[_FullDiskSurface()],
        storage=agent.store.faults,
    )
    async with TestClient(TestServer(app)) as client:
        resp = await client.post("/full")
        assert resp.status == 503 and (await resp.json())["error"] == "storage_full"
        assert (await client.post("/bug")).status == 500  # not a full disk: not disguised as one
    assert agent.store.faults.failures == {"http": 1} and agent.store.faults.failing
