"""The whole offline path over real sockets: HTTP check-in → presence → decision → WebSocket → ack."""

import asyncio
import json

import aiohttp
import pytest

from edge_agent.app import Agent
from simulators.checkin_app import post_checkin
from simulators.screen import ScreenPlayer
from tests.factories import OPS, paired_screen


async def _connected(agent: Agent, touchpoint: str, ack: bool = True) -> tuple[ScreenPlayer, asyncio.Task]:
    player = ScreenPlayer(agent.url, touchpoint, ack=ack)
    task = asyncio.create_task(player.run())
    await player.next_frame("hello")
    return player, task


async def _alices_offer(player: ScreenPlayer) -> dict:
    """The next show of alice's personalised offer; anonymous content may come before it."""
    while (show := await player.next_frame("show"))["offer"]["offer_id"] != "coffee":
        pass
    return show


def _personal_state(agent: Agent) -> tuple[int, int, int]:
    """What a check-in would change: nonces used, decisions and outbox rows about a customer."""
    db = agent.store.db
    return (
        db["checkin_nonces"].count,
        db.execute("SELECT count(*) FROM decisions WHERE customer_ref IS NOT NULL").fetchone()[0],
        db.execute("SELECT count(*) FROM outbox WHERE customer_ref IS NOT NULL").fetchone()[0],
    )


def _impressed(agent: Agent) -> set[str]:
    return {row[0] for row in agent.store.db.execute("SELECT decision_id FROM impressions")}


async def _wait_for(predicate, timeout=5.0):
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def test_checkin_reaches_the_screen_and_its_ack_becomes_an_impression(running, issuer):
    agent = await running()
    player, task = await _connected(agent, "screen-a")
    async with aiohttp.ClientSession() as http:
        status, body = await post_checkin(http, agent.url, issuer.token("alice", "kiosk-a"))
    assert status == 202 and body == {"status": "accepted", "touchpoint": "kiosk-a", "zone": "entrance"}
    show = await _alices_offer(player)
    assert show["offer"]["title"] == "Coffee for members"
    await _wait_for(
        lambda: (
            agent.store.db.execute(
                "SELECT count(*) FROM impressions WHERE decision_id = ?", [show["show_id"]]
            ).fetchone()[0]
            == 1
        )
    )
    row = agent.store.db.execute(
        "SELECT touchpoint, offer_id, customer_ref FROM impressions WHERE decision_id = ?", [show["show_id"]]
    ).fetchone()
    assert row == ("screen-a", "coffee", "alice")
    up = [r.payload for r in agent.store.outbox.peek("events", 1000) if r.kind == "impression"]
    assert any(p["decision_id"] == show["show_id"] and p["customer_ref"] == "alice" for p in up)
    task.cancel()


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"not json", 400, "malformed"),
        (b"[]", 400, "malformed"),
        (b'{"token": "x", "extra": 1}', 400, "malformed"),
        (b'{"token": 5}', 400, "malformed"),
        (b'{"token": "SEA1.AAAA.AAAA"}', 401, "bad_signature"),
    ],
)
async def test_bad_requests_get_a_4xx_with_a_reason(running, body, status, code):
    agent = await running()
    before = _personal_state(agent)
    async with aiohttp.ClientSession() as http:
        resp = await http.post(f"{agent.url}/api/checkin", data=body, headers={"Content-Type": "application/json"})
        assert resp.status == status
        reply = await resp.json()
    assert reply["error"] == code and reply["reason"]
    assert _personal_state(agent) == before


async def test_refused_tokens_over_http_change_nothing(running, issuer):
    agent = await running()
    player, task = await _connected(agent, "screen-a", ack=False)
    shows_before = player.counts["show"]
    async with aiohttp.ClientSession() as http:
        token = issuer.token("alice", "kiosk-a")
        assert (await post_checkin(http, agent.url, token))[0] == 202
        await _alices_offer(player)
        decisions = agent.store.decisions.count()
        shows = player.counts["show"]
        for bad, expected in [
            (token, 409),  # replayed
            (issuer.token("alice", "kiosk-a", now=0), 401),  # expired
            (issuer.token("nobody", "kiosk-a"), 403),  # not opted in
        ]:
            assert (await post_checkin(http, agent.url, bad))[0] == expected
    await asyncio.sleep(0.3)
    assert agent.store.decisions.count() == decisions
    assert player.counts["show"] == shows > shows_before
    task.cancel()


async def test_oversized_requests_are_refused(running):
    agent = await running()
    async with aiohttp.ClientSession() as http:
        resp = await http.post(f"{agent.url}/api/checkin", json={"token": "x" * 200_000})
        assert resp.status == 413


async def test_screen_page_and_socket_exist_only_for_touchpoints_of_this_store(running):
    agent = await running()
    async with aiohttp.ClientSession() as http:
        page = await http.get(f"{agent.url}/screen/screen-a")
        assert page.status == 200
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]
        assert '<script src="/static/screen.js"' in await page.text()
        assert (await http.get(f"{agent.url}/screen/nowhere")).status == 404
        assert (await http.get(f"{agent.url}/static/../config.py")).status == 404
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await http.ws_connect(f"{agent.url.replace('http', 'ws')}/ws/screen/nowhere")


async def test_bad_acks_are_refused_and_the_screen_stays_connected(running):
    agent = await running()
    async with aiohttp.ClientSession() as http:
        ws = await paired_screen(http, agent, "screen-b")
        assert json.loads((await ws.receive()).data)["type"] == "hello"
        for message, fragment in [
            ("garbage", "expected a JSON object"),
            (json.dumps({"type": "ack", "show_id": "no-such-decision"}), "unknown_show"),
            (json.dumps({"type": "ack", "show_id": "x", "displayed_at": "yesterday"}), "bad_displayed_at"),
        ]:
            await ws.send_str(message)
            while (reply := json.loads((await ws.receive()).data))["type"] == "show":
                pass
            assert reply["type"] == "error" and fragment in reply["reason"]
        assert agent.store.impressions.count() == 0
        await ws.close()


async def test_an_ack_for_another_touchpoints_show_is_refused(running, issuer):
    agent = await running()
    player, task = await _connected(agent, "screen-a", ack=False)
    async with aiohttp.ClientSession() as http:
        await post_checkin(http, agent.url, issuer.token("alice", "kiosk-a"))
        show = await _alices_offer(player)
        ws = await paired_screen(http, agent, "screen-b")
        await ws.send_json({"type": "ack", "show_id": show["show_id"]})
        while (reply := await ws.receive_json())["type"] != "error":
            pass
        assert "wrong_touchpoint" in reply["reason"]
        await ws.close()
    assert agent.store.impressions.count() == 0
    task.cancel()


async def test_a_restart_keeps_impressions_the_outbox_and_accepts_late_acks(running, settings, issuer):
    agent = await running()
    _, t1 = await _connected(agent, "screen-a")
    silent, t2 = await _connected(agent, "kiosk-a", ack=False)
    async with aiohttp.ClientSession() as http:
        await post_checkin(http, agent.url, issuer.token("alice", "kiosk-a"))
    shown_on_kiosk = await _alices_offer(silent)
    await _wait_for(lambda: agent.store.impressions.count() >= 1)
    impressions = _impressed(agent)
    outbox = {r.uuid for r in agent.store.outbox.peek("events", 10_000)}
    t1.cancel()
    t2.cancel()
    await agent.stop()

    again = Agent(settings)
    await again.start()
    try:
        assert impressions <= _impressed(again)
        assert outbox <= {r.uuid for r in again.store.outbox.peek("events", 10_000)}
        async with aiohttp.ClientSession() as http:
            ws = await paired_screen(http, again, "kiosk-a")
            await ws.send_json({"type": "ack", "show_id": shown_on_kiosk["show_id"]})
            while (reply := await ws.receive_json())["type"] not in ("acked", "error"):
                pass
            assert reply == {"type": "acked", "show_id": shown_on_kiosk["show_id"]}
            await ws.close()
        assert shown_on_kiosk["show_id"] in _impressed(again)
    finally:
        await again.stop()


async def test_a_new_screen_is_sent_the_current_content_at_once(running, issuer):
    agent = await running()
    async with aiohttp.ClientSession() as http:
        await post_checkin(http, agent.url, issuer.token("alice", "screen-b"))
    await _wait_for(lambda: agent.hub.counts["shown"] >= 1)
    late, task = await _connected(agent, "screen-b", ack=False)
    show = await late.next_frame("show")
    assert show["offer"]["offer_id"] in {"coffee", "welcome"}
    task.cancel()


async def test_healthz_reports_components(running):
    agent = await running()
    async with aiohttp.ClientSession() as http:
        health = await (await http.get(f"{agent.url}/healthz", headers=OPS)).json()
    assert health["store"] == "store-test"
    expected = {"loop", "presence", "engine", "signage", "assets", "attribution", "store.checkpoint", "checkin.prune"}
    assert set(health["components"]) == expected
    assert health["stalled"] == []
    assert all(state == "running" for state in health["components"].values())
