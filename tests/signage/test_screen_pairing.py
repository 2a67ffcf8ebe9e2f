"""Screens are paired: a client without its touchpoint's key (first WebSocket message) is sent nothing, may
acknowledge nothing, and is closed; staff get each screen's pairing link from the dashboard, the page keeps
the key. Here the agent does not take this host's own browsers as paired, as on a store LAN."""

from __future__ import annotations

import json

import aiohttp
import pytest
from aiohttp import WSMsgType

from edge_agent.signage.hub import NOT_PAIRED
from tests.factories import paired_screen
from tests.surfaces import seeded, started, surfaces_settings


def lan(settings):
    """As on a store LAN: this host's own browsers are not taken as paired either."""
    auth = settings.surfaces.auth.model_copy(update={"local_screens_paired": False})
    return settings.model_copy(update={"surfaces": settings.surfaces.model_copy(update={"auth": auth})})


@pytest.fixture
def lan_settings(tmp_path, issuer):
    return lan(surfaces_settings(tmp_path, issuer))


async def _closed_unpaired(ws: aiohttp.ClientWebSocketResponse) -> list[str]:
    """What the server sent before it closed the connection."""
    frames = []
    while True:
        msg = await ws.receive(timeout=15)
        if msg.type is WSMsgType.TEXT:
            frames.append(msg.data)
        elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
            return frames


async def test_an_unpaired_client_watches_nothing_and_acks_nothing(lan_settings):
    agent = seeded(lan_settings)
    async with started(agent), aiohttp.ClientSession() as http:
        url = f"{agent.url.replace('http', 'ws', 1)}/ws/screen/screen-a"
        attempts = [
            [{"type": "ack", "show_id": "x"}],  # straight to an acknowledgement
            [{"type": "hello"}],  # no key
            [{"type": "hello", "key": agent.store.screen_keys.key("screen-b")}],  # another screen's key
            [{"type": "hello", "key": "guess"}],
        ]
        for messages in attempts:
            async with http.ws_connect(url) as ws:
                for message in messages:
                    await ws.send_str(json.dumps(message))
                assert await _closed_unpaired(ws) == [] and ws.close_code == NOT_PAIRED
        assert agent.hub.counts["refused_unpaired"] == len(attempts) and agent.hub.players("screen-a") == 0
        assert agent.store.impressions.count() == 0

        async with await paired_screen(http, agent, "screen-a") as ws:  # the screen's own key
            assert json.loads((await ws.receive(timeout=10)).data)["type"] == "hello"
            assert agent.hub.players("screen-a") == 1


async def test_this_hosts_own_browser_needs_no_key_by_default(tmp_path, issuer):
    agent = seeded(surfaces_settings(tmp_path, issuer))
    async with started(agent), aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"{agent.url.replace('http', 'ws', 1)}/ws/screen/screen-a")
        await ws.send_json({"type": "hello", "key": None})
        assert json.loads((await ws.receive(timeout=10)).data)["type"] == "hello"
        await ws.close()
