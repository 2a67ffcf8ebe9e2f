"""Security of the local agent: only screens and their inputs are open, every request and WebSocket message
is size-limited, /healthz and /metrics need an ops token, secrets stay out of logs, secret files must be
private."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess

import aiohttp
import pytest
from aiohttp import WSCloseCode, WSMsgType

from edge_agent.cli import main
from edge_agent.cloud.tools import ToolError, load_key, new_key_pair
from edge_agent.config import MqttSettings
from edge_agent.mqtt import LinkConfigError, MqttLink
from edge_agent.ops.logs import JsonFormatter, TextFormatter
from edge_agent.signage.hub import MAX_MESSAGE_BYTES
from tests.factories import OPS, OPS_TOKEN, paired_screen
from tests.surfaces import DASHBOARD_TOKEN, KIOSK_TOKEN, seeded, started, surfaces_settings

# What answers without a token: the screens' pages, their WebSocket and files, sign-in and the app's check-in.
OPEN = {
    ("GET", "/"),  # the list of screens (touchpoint ids and names; nothing about a shopper)
    ("GET", "/screen/{touchpoint}"),
    ("GET", "/ws/screen/{touchpoint}"),
    ("GET", "/static/{name}"),
    ("GET", "/assets/{sha256}"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("POST", "/api/checkin"),
}
FILL = {"touchpoint": "kiosk-a", "name": "kiosk.js", "sha256": "0" * 64}


@pytest.fixture
async def agent(tmp_path, issuer):
    settings = surfaces_settings(tmp_path, issuer)
    auth = settings.surfaces.auth.model_copy(update={"ops_tokens": [OPS_TOKEN]})
    settings = settings.model_copy(update={"surfaces": settings.surfaces.model_copy(update={"auth": auth})})
    async with started(seeded(settings)) as running:
        yield running


def _routes(agent) -> list[tuple[str, str, str]]:
    """(method, route pattern, a concrete path) for every route the agent registered."""
    out = []
    for route in agent._runner.app.router.routes():
        if route.method == "HEAD":
            continue
        pattern = route.resource.canonical
        out.append((route.method, pattern, re.sub(r"\{(\w+)\}", lambda m: FILL[m.group(1)], pattern)))
    return out


async def test_every_route_but_the_screens_refuses_a_caller_without_a_token(agent):
    routes = _routes(agent)
    assert {(m, p) for m, p, _ in routes} >= OPEN | {("GET", "/healthz"), ("GET", "/metrics")}
    protected = [(m, p, path) for m, p, path in routes if (m, p) not in OPEN]
    assert len(protected) >= 10  # kiosk, associate, dashboard, till and ops routes
    async with aiohttp.ClientSession() as http:
        for method, pattern, path in protected:
            resp = await http.request(method, f"{agent.url}{path}", json={}, allow_redirects=False)
            body = await resp.read()
            if resp.status == 303:
                assert resp.headers["Location"].startswith("/login?role="), (method, pattern)
            else:
                assert resp.status in (401, 403), (method, pattern, resp.status)
                assert set(json.loads(body)) == {"error", "reason"}, (method, pattern)  # nothing else in the answer


async def test_healthz_and_metrics_take_an_ops_token_for_a_scraper(agent):
    async with aiohttp.ClientSession() as http:
        for path in ("/healthz", "/metrics"):
            assert (await http.get(f"{agent.url}{path}")).status == 401
            other = {"Authorization": f"Bearer {DASHBOARD_TOKEN}"}  # another role's token opens nothing here
            assert (await http.get(f"{agent.url}{path}", headers=other)).status == 401
            assert (await http.get(f"{agent.url}{path}", headers=OPS)).status == 200
        text = await (await http.get(f"{agent.url}/metrics", headers=OPS)).text()
    assert "edge_decisions" in text


async def test_without_ops_tokens_healthz_and_metrics_are_switched_off(running, settings):
    auth = settings.surfaces.auth.model_copy(update={"ops_tokens": []})
    agent = await running(settings.model_copy(update={"surfaces": settings.surfaces.model_copy(update={"auth": auth})}))
    async with aiohttp.ClientSession(headers=OPS) as http:
        for path in ("/healthz", "/metrics"):
            resp = await http.get(f"{agent.url}{path}")
            assert resp.status == 403 and (await resp.json())["error"] == "disabled"


async def test_every_route_refuses_a_body_over_the_limit(agent):
    limit = agent.settings.http.max_request_bytes
    routes = _routes(agent)
    assert {"/api/checkin", "/login", "/api/till/redeem"} <= {p for m, p, _ in routes if m == "POST"}
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KIOSK_TOKEN}"}) as http:
        for method, pattern, path in routes:
            for content_type in ("application/json", "application/x-www-form-urlencoded"):
                resp = await http.request(
                    method, f"{agent.url}{path}", data=b"x" * (limit + 1), headers={"Content-Type": content_type}
                )
                assert resp.status == 413, (method, pattern, content_type, resp.status)

        # a chunked body (no Content-Length) is cut where it is read
        async def chunks():
            for _ in range(limit // 1024 + 2):
                yield b"x" * 1024

        resp = await http.post(f"{agent.url}/api/checkin", data=chunks(), headers={"Content-Type": "application/json"})
        assert resp.status == 413
        resp = await http.post(f"{agent.url}/api/checkin", json={"token": "SEA1.AAAA.AAAA"})
        assert resp.status != 413  # a body under the limit is read as usual


async def test_a_screen_websocket_message_over_the_limit_closes_the_socket(agent):
    async with aiohttp.ClientSession() as http, await paired_screen(http, agent, "screen-a") as ws:
        hello = await ws.receive_json(timeout=20)
        assert hello["type"] == "hello"
        await ws.send_str(json.dumps({"type": "ack", "pad": "x" * MAX_MESSAGE_BYTES}))
        while True:
            msg = await ws.receive(timeout=20)
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                break
        assert ws.close_code == WSCloseCode.MESSAGE_TOO_BIG
    assert agent.hub.counts["bad_messages"] == 0  # refused before it was parsed
    assert agent.hub.counts["refused_frames"] == 1  # and counted


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter("%(levelname)s %(message)s")])
def test_secrets_in_log_text_are_redacted(formatter):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger("edge_agent.test_redact")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("camera rtsp://admin:cam-pass-1@10.0.0.9/live down")
        logger.warning("retrying with headers %s", {"Authorization": "Bearer tok-abc-123"})
        try:
            raise ValueError("bad config: mqtt password=hunter2 api_key: k-999")
        except ValueError:
            logger.exception("loading failed")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    for secret in ("cam-pass-1", "tok-abc-123", "hunter2", "k-999"):
        assert secret not in out
    assert "rtsp://admin:[redacted]@10.0.0.9/live" in out and "loading failed" in out


def test_a_password_file_others_may_read_is_refused(tmp_path):
    secret = tmp_path / "mqtt-password"
    secret.write_text("s3cret\n")
    secret.chmod(0o644)
    settings = MqttSettings(host="127.0.0.1", username="store-a", password_file=secret)
    with pytest.raises(LinkConfigError, match=rf"mqtt\.password_file: {re.escape(str(secret))} has mode 0644"):
        MqttLink(settings, "client")
    secret.chmod(0o600)
    MqttLink(settings, "client")  # the owner alone may read it: accepted


def test_a_tls_key_others_may_read_is_refused(tmp_path):
    key = tmp_path / "client.key"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(key)], check=True, capture_output=True)
    key.chmod(0o640)
    settings = MqttSettings(host="127.0.0.1", tls_cert_file=tmp_path / "client.crt", tls_key_file=key)
    with pytest.raises(LinkConfigError, match=rf"mqtt\.tls_key_file: {re.escape(str(key))} has mode 0640"):
        MqttLink(settings, "client")


def test_a_signing_key_others_may_read_is_refused(tmp_path, capsys):
    key_path, _ = new_key_pair(tmp_path, "signing")
    load_key(key_path)
    key_path.chmod(0o604)
    with pytest.raises(ToolError, match=r"has mode 0604: group or others may open it"):
        load_key(key_path)
    bundle = tmp_path / "offers.json"
    bundle.write_text(json.dumps({"version": 1, "offers": []}))
    assert main(["bundle", "sign", str(bundle), "--key", str(key_path), "--store", "store-test"]) == 2
    assert f"{key_path} has mode 0604" in capsys.readouterr().err
