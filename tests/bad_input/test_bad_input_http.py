"""Bad input over real HTTP: generated requests to every route of a running agent's router (so a new route is
covered without touching this file) are answered, never with a 5xx; every 4xx carries a code and a reason and
is counted once; the agent keeps serving."""

from __future__ import annotations

import json
import re
from urllib.parse import quote, urlencode

import aiohttp
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from edge_agent.ops import metrics
from edge_agent.signage.hub import MAX_MESSAGE_BYTES
from tests.factories import OPS, OPS_TOKEN, paired_screen
from tests.surfaces import (
    ALICE_LOYALTY,
    ASSOCIATE_TOKEN,
    DASHBOARD_TOKEN,
    KIOSK_TOKEN,
    PHONE_SALT,
    TILL_TOKEN,
    seeded,
    started,
    surfaces_settings,
)

from .strategies import examples, objects, payloads

BODY_KEYS = ["token", "method", "value", "offer_id", "show_ids", "displayed_at", "channel", "granted", "agree", "code"]
FORM_KEYS = ["role", "token", "next"]
FORM_VALUES = st.text(max_size=40) | st.sampled_from(["kiosk", "ops", KIOSK_TOKEN, OPS_TOKEN, "//x", "/a\r\nX: 1"])
PATH_VALUES = {
    "touchpoint": ["kiosk-a", "screen-a", "screen-b", "nowhere"],
    "name": ["screen.js", "common.css", "kiosk.html", ".hidden", "none.txt"],
    "sha256": ["0" * 64, "not-a-hash"],
}
CONTENT_TYPES = [
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "multipart/form-data; boundary=b",
    "text/plain; charset=utf-7",
]


@pytest.fixture
async def agent(tmp_path, issuer):
    kiosk = {"phone_salt": PHONE_SALT, "max_failures_per_minute": 1000}  # the kiosk must not lock the test out
    roles = {"kiosk": KIOSK_TOKEN, "associate": ASSOCIATE_TOKEN, "dashboard": DASHBOARD_TOKEN, "till": TILL_TOKEN}
    auth = {f"{role}_tokens": [token] for role, token in {**roles, "ops": OPS_TOKEN}.items()}
    async with started(seeded(surfaces_settings(tmp_path, issuer, kiosk=kiosk, auth=auth))) as running:
        yield running


def routes(agent) -> list[tuple[str, str]]:
    return sorted({(r.method, r.resource.canonical) for r in agent._runner.app.router.routes()})


async def kiosk_session(http: aiohttp.ClientSession, agent) -> str:
    """A live kiosk session, so the session routes see garbage from an identified shopper too."""
    resp = await http.post(
        f"{agent.url}/api/kiosk/kiosk-a/identify",
        json={"method": "loyalty", "value": ALICE_LOYALTY},
        headers={"Authorization": f"Bearer {KIOSK_TOKEN}"},
    )
    assert resp.status == 200, await resp.text()
    return (await resp.json())["session"]


def fill(canonical: str, data: st.DataObject) -> str:
    def value(match: re.Match) -> str:
        known = st.sampled_from(PATH_VALUES.get(match.group(1), ["x"]))
        return quote(data.draw(known | st.text(min_size=1, max_size=20)), safe="")

    return re.sub(r"\{(\w+)\}", value, canonical)


def body(data: st.DataObject) -> bytes:
    return data.draw(
        st.one_of(
            payloads,
            objects(BODY_KEYS).map(lambda o: json.dumps(o).encode()),
            st.dictionaries(st.sampled_from(FORM_KEYS) | st.text(max_size=5), FORM_VALUES).map(
                lambda f: urlencode(f).encode()
            ),
            st.just(b"x" * (64 * 1024 + 1)),  # over http.max_request_bytes
        ),
        label="body",
    )


HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=20)


def headers(data: st.DataObject, session: str) -> dict[str, str]:
    """Any header values an HTTP client can send (no line breaks: the client itself refuses those)."""
    tokens = st.sampled_from([KIOSK_TOKEN, ASSOCIATE_TOKEN, DASHBOARD_TOKEN, TILL_TOKEN, OPS_TOKEN]) | HEADER_TEXT
    drawn = data.draw(
        st.fixed_dictionaries(
            {},
            optional={
                "Authorization": tokens.map(lambda t: f"Bearer {t}") | HEADER_TEXT,
                "X-Kiosk-Session": st.sampled_from([session, "", "stale"]),
                "Content-Type": st.sampled_from(CONTENT_TYPES),
                "Cookie": st.sampled_from(["ea_kiosk=kiosk.99999999999.x", "ea_ops=ops.1.x", "ea_till=%%"]),
            },
        ),
        label="headers",
    )
    return drawn


@settings(max_examples=examples(150), suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
# found by this test: a multipart form without a boundary answered 500; so did JSON nested too deeply
@example(data=("POST", "/login", {"Content-Type": "multipart/form-data"}, b"--b"))
@example(data=("POST", "/api/kiosk/kiosk-a/identify", {"Authorization": f"Bearer {KIOSK_TOKEN}"}, b"[" * 5000))
async def test_garbage_on_every_route_is_a_counted_4xx_with_a_reason(agent, data):
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        session = await kiosk_session(http, agent)
        if isinstance(data, tuple):  # an explicit example
            (method, path, head, payload), query = data, {}
        else:
            route_method, canonical = data.draw(st.sampled_from(routes(agent)), label="route")
            method = data.draw(st.sampled_from([route_method, route_method, "GET", "POST", "PUT", "DELETE"]))
            path = fill(canonical, data)
            query = data.draw(st.dictionaries(st.sampled_from(["role", "next", "x"]), st.text(max_size=20)))
            head, payload = headers(data, session), body(data)
        before = sum(agent.http_refused.values())
        resp = await http.request(
            method, f"{agent.url}{path}", params=query, headers=head, data=payload, allow_redirects=False
        )
        answer = await resp.read()
        assert resp.status < 500, (resp.status, answer[:300])
        refused = sum(agent.http_refused.values()) - before
        if resp.status >= 400:
            assert refused == 1
            if method != "HEAD":
                problem = json.loads(answer)
                assert problem["error"] and problem["reason"], problem
        else:
            assert refused == 0


async def test_the_agent_still_serves_and_reports_refusals_after_garbage(agent):
    async with aiohttp.ClientSession() as http:
        for method, path in routes(agent):
            await http.request(method, f"{agent.url}{fill_plain(path)}", data=b"\xff{", allow_redirects=False)
        assert (await http.get(f"{agent.url}/healthz", headers=OPS)).status == 200
        assert (await http.get(f"{agent.url}/screen/screen-a")).status == 200
    assert sum(agent.http_refused.values()) > 0
    text = metrics.render(agent.metrics).decode()
    assert 'edge_http_refused_total{code="malformed"}' in text


async def test_an_oversized_chunked_body_is_a_counted_413_with_a_reason(agent):
    """No Content-Length to refuse it by up front: cut where it is read, and answered like any refusal."""

    async def chunks():
        for _ in range(20):
            yield b"x" * 8192

    async with aiohttp.ClientSession() as http:
        resp = await http.post(f"{agent.url}/api/checkin", data=chunks())
        assert resp.status == 413 and (await resp.json())["reason"]
    assert agent.http_refused == {"too_large": 1}


def fill_plain(canonical: str) -> str:
    """A route's path with a known value in each placeholder (a new placeholder needs one in PATH_VALUES)."""
    return re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)][0], canonical)


screen_messages = st.one_of(
    payloads.map(lambda b: b.decode("utf-8", "replace")),
    st.binary(max_size=100),
    objects(["type", "show_id", "displayed_at"]).map(lambda o: json.dumps({"type": "ack", **o})),
).filter(lambda m: len(m.encode() if isinstance(m, str) else m) <= MAX_MESSAGE_BYTES)


@settings(max_examples=examples(100), suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(screen_messages, min_size=1, max_size=5))
@example(["[" * 4000])  # found by this test: RecursionError out of the screen's message handler closed it
@example([b"\x00binary"])  # found by this test: a binary frame went unanswered and uncounted
async def test_any_screen_message_gets_an_error_reply_and_the_screen_stays_connected(agent, messages):
    """Anything a screen may send is answered with a reason and counted (test_security.py goes over the size)."""
    hub = agent.hub
    async with aiohttp.ClientSession() as http, await paired_screen(http, agent, "screen-a") as ws:
        assert (await ws.receive_json(timeout=10))["type"] == "hello"
        before = hub.counts["bad_messages"] + hub.counts["bad_acks"]
        for text in messages:
            await (ws.send_str(text) if isinstance(text, str) else ws.send_bytes(text))
            reply = await answer(ws)
            assert reply["type"] == "error" and reply["reason"]
        assert hub.counts["bad_messages"] + hub.counts["bad_acks"] == before + len(messages)
        await ws.send_str('{"type": "ack"}')  # still connected and answering
        assert (await answer(ws))["type"] == "error"


async def answer(ws: aiohttp.ClientWebSocketResponse) -> dict:
    """The agent's answer to the last message, past the frames it pushes meanwhile (shows, playlists)."""
    while True:
        frame = await ws.receive_json(timeout=10)
        if frame["type"] in ("error", "acked"):
            return frame
