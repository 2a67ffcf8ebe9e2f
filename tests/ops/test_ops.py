"""Appliance plumbing: systemd notification and watchdog (over a real datagram socket standing in for
systemd's NOTIFY_SOCKET), /metrics in the Prometheus text format, JSON logs without secrets."""

import asyncio
import contextlib
import io
import json
import logging
import socket

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge_agent.app import Agent
from edge_agent.config import from_dict
from edge_agent.events import Anonymous, Channel, Customer, Presence, PresenceKind, Show, Sighting
from edge_agent.ops import metrics
from edge_agent.ops.logs import JsonFormatter
from edge_agent.ops.progress import Progress
from edge_agent.store.outbox import DropClass
from tests.factories import OPS, config_dict, seed


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # WatchdogSec=0.2 s: ping every 0.1 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    yield sock
    sock.close()


async def _messages(sock: socket.socket, seconds: float) -> list[str]:
    loop = asyncio.get_running_loop()
    out: list[str] = []
    try:
        async with asyncio.timeout(seconds):
            while True:
                out.append((await loop.sock_recv(sock, 4096)).decode())
    except TimeoutError:
        return out


async def test_ready_then_watchdog_pings_stop_when_a_part_stalls(tmp_path, issuer, notify_socket):
    settings = from_dict(config_dict(tmp_path, issuer, ops={"stall_after_s": 0.5}))
    agent = Agent(settings)
    seed(agent)
    await agent.start()
    try:
        first = await _messages(notify_socket, 1.0)
        assert first[0].startswith("READY=1")
        assert first.count("WATCHDOG=1") >= 3
        # stall the screen hub: its task stops while shows keep arriving for it
        next(t for t in agent._tasks if t.get_name() == "signage").cancel()
        for n in range(3):
            agent.bus.publish(Show("screen-a", f"s{n}", {}, None, 0.0))
        async with asyncio.timeout(10):
            while agent.progress.stalled() != ["signage"]:
                await asyncio.sleep(0.05)
        await _messages(notify_socket, 0.3)  # a ping may already be in flight
        later = await _messages(notify_socket, 1.0)
        assert "WATCHDOG=1" not in later
        assert agent.watchdog.withheld >= 1
        async with aiohttp.ClientSession() as http:
            health = await (await http.get(f"{agent.url}/healthz", headers=OPS)).json()
        assert health["stalled"] == ["signage"]
    finally:
        await agent.stop()
    assert "STOPPING=1" in await _messages(notify_socket, 0.3)


def _stuff_presence(agent):
    wall = agent.clock.wall()
    for n in range(3):
        agent.bus.publish(Sighting(Anonymous(f"t{n}"), "entrance", Channel.VISION, agent.clock.mono(), wall))


def _stuff_engine(agent):
    wall = agent.clock.wall()
    for _ in range(3):
        subject = Customer("alice")
        agent.bus.publish(Presence(subject, "entrance", PresenceKind.ENTER, 0.0, agent.clock.mono(), wall))


async def _pings_stop_when(agent, notify_socket, task_name, stuff, part):
    """Stop one part's task while work keeps arriving for it: it alone is stalled and systemd is not pinged."""
    assert (await _messages(notify_socket, 1.0)).count("WATCHDOG=1") >= 3
    task = next(t for t in asyncio.all_tasks() if t.get_name() == task_name)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    stuff(agent)
    async with asyncio.timeout(15):
        while agent.progress.stalled() != [part]:
            await asyncio.sleep(0.05)
    await _messages(notify_socket, 0.3)  # a ping may already be in flight
    assert "WATCHDOG=1" not in await _messages(notify_socket, 1.0)


@pytest.mark.parametrize(
    ("task_name", "stuff", "part"),
    [("presence.sightings", _stuff_presence, "presence"), ("engine.presence", _stuff_engine, "engine")],
)
async def test_a_stalled_presence_tracker_or_engine_stops_the_pings(
    tmp_path, issuer, notify_socket, running, task_name, stuff, part
):
    agent = await running(from_dict(config_dict(tmp_path, issuer, ops={"stall_after_s": 0.5})))
    await _pings_stop_when(agent, notify_socket, task_name, stuff, part)


async def test_a_stalled_outbox_drain_stops_the_pings_only_while_the_link_is_up(
    tmp_path, issuer, notify_socket, running
):
    from simulators.broker import Mosquitto

    broker = Mosquitto(tmp_path / "mosquitto").start()
    try:
        data = config_dict(tmp_path, issuer, ops={"stall_after_s": 0.5})
        data["mqtt"] = {"host": broker.host, "port": broker.port, "puback_timeout_s": 0.5, "reconnect_min_s": 0.2}
        data["mqtt"]["bundle_public_keys"] = [issuer.public_key_b64]  # any Ed25519 key: no bundle comes
        agent = await running(from_dict(data))
        async with asyncio.timeout(15):
            await agent.cloud.link.connected.wait()

        def stuff(agent):
            with agent.store.db.atomic():
                agent.store.outbox.add(
                    stream="events", kind="test", payload={}, created_at="t", drop_class=DropClass.EVENT
                )

        await _pings_stop_when(agent, notify_socket, "cloud.drain.events", stuff, "cloud.drain")
        broker.stop()
        async with asyncio.timeout(15):  # link down: rows waiting are not the drain's fault
            while agent.progress.stalled():
                await asyncio.sleep(0.05)
    finally:
        broker.stop()


def test_a_notify_socket_nobody_reads_fails_pings_instead_of_blocking(tmp_path):
    from edge_agent.ops.notify import SystemdNotifier

    path = tmp_path / "deaf.sock"
    deaf = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    deaf.bind(str(path))
    notifier = SystemdNotifier(str(path))
    try:
        results = [notifier.watchdog() for _ in range(5000)]  # far beyond the socket's queue
        assert results[0] is True and results[-1] is False
    finally:
        notifier.close()
        deaf.close()


async def test_without_systemd_there_is_no_watchdog_task(running):
    agent = await running()
    assert not agent.watchdog.enabled
    assert "watchdog" not in {t.get_name() for t in agent._tasks}


def test_an_idle_part_is_healthy_and_a_busy_silent_one_is_stalled():
    now = [0.0]
    progress = Progress(clock=lambda: now[0])
    backlog = [0]
    progress.watch("drain", max_silence_s=5.0, pending=lambda: backlog[0])
    now[0] = 60.0
    assert progress.stalled() == []  # nothing to do: idle, not stalled
    backlog[0] = 3
    assert progress.stalled() == ["drain"]
    progress.beat("drain")
    assert progress.stalled() == []


async def test_metrics_parse_as_prometheus_text(running, issuer):
    agent = await running()
    async with aiohttp.ClientSession() as http:
        await http.post(f"{agent.url}/api/checkin", json={"token": issuer.token("alice", "kiosk-a")})
        await http.post(f"{agent.url}/api/checkin", json={"token": "SEA1.AAAA.AAAA"})
        resp = await http.get(f"{agent.url}/metrics", headers=OPS)
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    checkins = {s.labels["outcome"]: s.value for s in families["edge_checkins"].samples}
    assert checkins == {"accepted": 1.0, "bad_signature": 1.0}
    assert {"edge_decisions", "edge_impressions", "edge_outbox_depth", "edge_loop_lag_seconds"} <= set(families)
    players = {s.labels["touchpoint"] for s in families["edge_screen_players"].samples}
    assert players == {"screen-a", "kiosk-a", "screen-b"}

    agent.store.outbox.max_rows = agent.store.outbox.depth()  # full: the next telemetry row pushes one out
    with agent.store.db.atomic():
        for _ in range(2):
            agent.store.outbox.add(
                stream="telemetry", kind="telemetry", payload={}, created_at="t", drop_class=DropClass.TELEMETRY
            )
    families = {f.name: f for f in text_string_to_metric_families(metrics.render(agent.metrics).decode())}
    dropped = {(s.labels["class"], s.labels["kind"]): s.value for s in families["edge_outbox_dropped"].samples}
    assert dropped.get(("telemetry", "telemetry"), 0) >= 1


def test_json_logs_are_one_object_per_line_and_redact_secrets():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("edge_agent.test_json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("broker %s refused", "mqtt.local", extra={"mqtt_password": "hunter2", "attempt": 3})
    finally:
        logger.removeHandler(handler)
    entry = json.loads(stream.getvalue())
    assert entry["msg"] == "broker mqtt.local refused" and entry["level"] == "warning"
    assert entry["attempt"] == 3
    assert entry["mqtt_password"] == "[redacted]"
    assert "hunter2" not in stream.getvalue()
