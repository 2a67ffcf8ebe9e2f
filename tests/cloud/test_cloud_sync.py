"""Cloud sync against a real Mosquitto the tests start: every kind of message, bad input, outages."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
import uuid

import aiohttp
import paho.mqtt.client as mqtt
import tomli_w
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.events import ContextUpdate, ScreenReload, Show
from edge_agent.ops import metrics
from simulators.broker import free_port
from simulators.checkin_app import post_checkin
from simulators.cloud import CloudSim, offer_bundle, roster_bundle
from tests.factories import (
    DEVICE,
    STORE,
    AgentProcess,
    config_dict,
    customer,
    decision,
    mqtt_section,
    mqtt_settings,
    offer,
    port_open,
)


async def _online(agent, cloud):
    await cloud.wait_for(lambda: cloud.status.get(DEVICE) == "online" and agent.cloud.link.connected.is_set())


def _offer_ids(agent):
    return sorted(o.offer_id for o in agent.store.offers.all())


async def test_every_kind_of_message_is_delivered(tmp_path, issuer, broker, cloud, running):
    agent = await running(mqtt_settings(tmp_path, issuer, broker, cloud, telemetry_interval_s=0.5), seeded=False)
    await _online(agent, cloud)
    assert "edge_mqtt_connected 1.0" in metrics.render(agent.metrics).decode()
    shows = agent.bus.subscribe(Show, "test")
    contexts = agent.bus.subscribe(ContextUpdate, "test")
    reloads: list[ScreenReload] = []
    agent.bus.on(ScreenReload, "test", reloads.append)

    # Down: offers, roster, roster delta, context.
    await cloud.publish_offers(offer_bundle(1, [offer("welcome"), offer("coffee", priority=2.0)]))
    await cloud.publish_roster(roster_bundle(1, [customer("alice"), customer("bob")]))
    await cloud.wait_for(lambda: agent.store.bundle_versions.current("roster") == 1)
    delta = {"version": 2, "base_version": 1, "issued_at": "2026-11-24T10:00:00+00:00", "remove": ["bob"]}
    delta["upsert"] = [customer("dave", segments=("coffee",)).model_dump(mode="json")]
    await cloud.publish_delta(delta)
    await cloud.context({"temp_c": 4.5, "sky": "rain"}, [{"name": "Market day", "from": "08:00"}])
    results = await cloud.wait_for(lambda: len(cloud.of_kind("bundle_result")) == 3 and cloud.of_kind("bundle_result"))
    assert [(r["bundle"], r["version"], r["status"]) for r in results] == [
        ("offers", 1, "applied"),
        ("roster", 1, "applied"),
        ("roster_delta", 2, "applied"),
    ]
    assert len(agent.catalog) == 2 and _offer_ids(agent) == ["coffee", "welcome"]
    assert agent.store.roster.get("bob") is None and agent.store.roster.get("dave").segments == ("coffee",)
    context = await asyncio.wait_for(contexts.get(), 10)
    assert context.weather == {"temp_c": 4.5, "sky": "rain"} and context.local_events[0]["name"] == "Market day"

    # Commands, each answered on the ack stream with its id.
    ping = await cloud.command(DEVICE, "ping")
    reload = await cloud.command("*", "reload")
    show = await cloud.command(DEVICE, "show", touchpoint="screen-b", offer_id="coffee")
    await cloud.wait_for(lambda: all(cloud.ack_for(c) for c in (ping, reload, show)))
    assert cloud.ack_for(ping)["status"] == "ok" and cloud.ack_for(reload)["offers"] == 2
    shown = await asyncio.wait_for(shows.get(), 10)
    while shown.touchpoint != "screen-b":
        shown = await asyncio.wait_for(shows.get(), 10)
    assert shown.offer["offer_id"] == "coffee" and shown.show_id == cloud.ack_for(show)["show_id"]
    screen = await cloud.command(DEVICE, "reload_screen", touchpoint="screen-b")
    kiosk = await cloud.command(DEVICE, "reload_screen", touchpoint="kiosk-a")
    await cloud.wait_for(lambda: all(cloud.ack_for(c) for c in (screen, kiosk)))
    assert cloud.ack_for(screen)["status"] == "ok" and reloads == [ScreenReload("screen-b")]
    assert cloud.ack_for(kiosk)["code"] == "not_a_screen"  # a kiosk is no screen to reload
    # The decision behind that show goes up as an event, with a uuid.
    decision = await cloud.wait_for(
        lambda: next((e for e in cloud.of_kind("decision") if e["decision_id"] == shown.show_id), None)
    )
    assert decision["offer_id"] == "coffee" and len(decision["uuid"]) == 36

    # Erasure: the customer is gone from every table and the receipt carries the consent epoch.
    assert agent.store.db.execute("SELECT count(*) FROM customers WHERE customer_ref = 'alice'").fetchone()[0] == 1
    erase = await cloud.command(DEVICE, "erase", customer_ref="alice", consent_epoch=12)
    receipt = await cloud.wait_for(lambda: cloud.ack_for(erase))
    assert receipt["kind"] == "erasure_receipt" and receipt["customer_ref"] == "alice"
    assert receipt["consent_epoch"] == 12 and receipt["deleted"]["customers"] == 1
    assert agent.store.roster.get("alice") is None
    for table in receipt["deleted"]:
        assert agent.store.db.execute(f"SELECT count(*) FROM {table} WHERE customer_ref = 'alice'").fetchone()[0] == 0

    # Telemetry, with the outbox's depth and drop counts.
    snapshot = await cloud.wait_for(lambda: cloud.telemetry and cloud.telemetry[-1])
    assert {"depth", "max_rows", "dropped"} <= set(snapshot["outbox"]) and snapshot["link"]["connected"] == 1
    assert snapshot["agent"]["store"] == STORE

    # A clean stop says so.
    await agent.stop()
    await cloud.wait_for(lambda: cloud.status.get(DEVICE) == "stopped")


async def test_bad_downlink_input_is_rejected_and_the_last_good_state_stays(tmp_path, issuer, broker, cloud, running):
    agent = await running(mqtt_settings(tmp_path, issuer, broker, cloud), seeded=False)
    await _online(agent, cloud)
    await cloud.publish_offers(offer_bundle(2, [offer("good")]))
    await cloud.publish_roster(roster_bundle(5, [customer("alice")]))
    await cloud.wait_for(lambda: len(cloud.of_kind("bundle_result")) == 2)

    forger = CloudSim(broker.host, broker.port, STORE)  # signs with a key the store does not trust
    await cloud.publish("offers", forger.sign("offers", offer_bundle(3, [offer("evil")])), retain=True)
    await cloud.publish_offers(offer_bundle(1, [offer("old")]))  # validly signed, but older: a replay
    await cloud.publish_roster(roster_bundle(4, []))
    await cloud.publish_delta({"version": 9, "base_version": 7, "issued_at": "2026-11-24T10:00:00+00:00"})
    invalid = offer_bundle(6, [offer("x")])
    invalid["offers"][0]["price_cents"] = -5
    await cloud.publish_offers(invalid)
    garbage = [b"\x00\xffnot json", b'{"format": "SEA-BUNDLE-1"}', b"[]", json.dumps({"command_id": "c"}).encode()]
    topics = ["offers", "roster", "roster/delta", f"cmd/{DEVICE}", "cmd/*", "context"]
    for topic in topics:
        for payload in garbage:
            await cloud.publish(topic, payload)

    bundles = 5 + 3 * len(garbage)
    others = 3 * len(garbage)  # commands on two topics, context
    await cloud.wait_for(lambda: len(cloud.acks) >= 2 + bundles + others)
    rejected = [a for a in cloud.acks if a.get("status") == "rejected"]
    assert len(rejected) == bundles + others
    codes = [(a["bundle"], a["code"], a["version"]) for a in rejected if a["kind"] == "bundle_result"]
    assert codes[:5] == [
        ("offers", "bad_signature", None),
        ("offers", "stale", 1),
        ("roster", "stale", 4),
        ("roster_delta", "stale", 9),
        ("offers", "invalid", 6),
    ]
    assert "price_cents" in rejected[4]["reason"] and "not newer than 2" in rejected[1]["reason"]
    assert all(a["reason"] for a in rejected)
    commands = [a for a in rejected if a["kind"] == "command_result"]
    assert len(commands) == 2 * len(garbage) and {a["code"] for a in commands} == {"malformed"}
    assert all(a["command_id"] is None for a in commands)  # an unsigned message's claims are not repeated

    # Still running, on the last good state.
    ping = await cloud.command(DEVICE, "ping")
    assert (await cloud.wait_for(lambda: cloud.ack_for(ping)))["status"] == "ok"
    assert _offer_ids(agent) == ["good"] and [
        o.offer_id for o in agent.catalog.slate(agent.settings.touchpoints[0]).offers
    ] == ["good"]
    assert agent.store.bundle_versions.current("offers") == 2 and agent.store.roster.get("alice") is not None
    assert agent.cloud.downlink.counts["errors"] == 0 and sum(agent.restarts.values()) == 0


def _recorded(db) -> list[str]:
    return [r[0] for r in db.execute("SELECT decision_id FROM decisions ORDER BY rowid")]


def _first_copies(cloud) -> list[str]:
    return [e["decision_id"] for e in cloud.of_kind("decision")]


async def test_broker_killed_and_restarted_mid_stream_loses_nothing(tmp_path, issuer, broker, cloud, running):
    agent = await running(mqtt_settings(tmp_path, issuer, broker, cloud, batch_max_events=20, inflight_batches=4))
    await _online(agent, cloud)
    written = 0

    async def write(until: int) -> None:
        nonlocal written
        while written < until:
            agent.store.decisions.record(decision(f"dec-{written:05d}", "welcome", None))
            written += 1
            await asyncio.sleep(0.001)

    await write(300)
    writer = asyncio.create_task(write(1500))
    await cloud.wait_for(lambda: len(_first_copies(cloud)) >= 200)
    broker.kill()
    await cloud.wait_for(lambda: not agent.cloud.link.connected.is_set())
    mark = written
    await cloud.wait_for(lambda: written >= mark + 200)  # recorded while the broker is down
    assert agent.store.outbox.depth() >= 200
    broker.start()
    await writer
    expected = _recorded(agent.store.db)
    await cloud.wait_for(lambda: len(_first_copies(cloud)) >= len(expected), timeout=60)
    await cloud.wait_for(lambda: agent.store.outbox.depth() == 0)
    assert agent.cloud.link.counts["connects"] >= 2
    report = cloud.report(expected, key="decision_id")
    assert report["lost"] == [] and report["received"] == len(expected)
    assert _first_copies(cloud) == expected  # in the order recorded, each once after dedup by uuid
    assert len({e["uuid"] for e in cloud.of_kind("decision")}) == len(expected)


async def test_agent_killed_mid_stream_loses_nothing_it_recorded(tmp_path, issuer, broker, cloud):
    port = free_port()
    mqtt = mqtt_section(broker, cloud, batch_max_events=5)
    data = config_dict(tmp_path, issuer, http={"host": "127.0.0.1", "port": port}, mqtt=mqtt)
    config_path = tmp_path / "agent.toml"
    config_path.write_text(tomli_w.dumps(data), encoding="utf-8")
    agent = AgentProcess(config_path)
    agent.start()
    try:
        await cloud.wait_for(lambda: cloud.status.get(DEVICE) == "online")
        await cloud.publish_offers(offer_bundle(1, [offer("welcome"), offer("coffee", priority=1.0)]))
        await cloud.publish_roster(roster_bundle(1, [customer("alice"), customer("bob")]))
        await cloud.wait_for(lambda: len(cloud.of_kind("bundle_result")) == 2)

        async def check_in(n: int) -> int:
            accepted = 0
            async with aiohttp.ClientSession() as http:
                for i in range(n):
                    token = issuer.token(("alice", "bob")[i % 2], ("kiosk-a", "screen-b")[i % 2])
                    with contextlib.suppress(aiohttp.ClientError):
                        status, _ = await post_checkin(http, f"http://127.0.0.1:{port}", token)
                        accepted += status == 202
            return accepted

        assert await check_in(30) == 30
        agent.kill()  # mid-stream: decisions are still being written and sent
        await cloud.wait_for(lambda: cloud.status.get(DEVICE) == "offline")  # the last will
        agent.start()
        await cloud.wait_for(lambda: cloud.status.get(DEVICE) == "online")
        await cloud.wait_for(lambda: port_open(port))
        assert await check_in(20) == 20
        with contextlib.closing(sqlite3.connect(f"file:{tmp_path / 'agent.db'}?mode=ro", uri=True)) as db:
            expected = await cloud.wait_for(lambda: _all_sent(db, cloud))
        assert len(expected) >= 50  # at least one decision per accepted check-in
        assert sorted(_first_copies(cloud)) == sorted(expected)
        agent.stop()
        await cloud.wait_for(lambda: cloud.status.get(DEVICE) == "stopped")
    finally:
        agent.stop()


def _all_sent(db, cloud) -> list[str] | None:
    """The decisions the agent recorded, once its outbox is empty and the cloud has every one of them."""
    recorded = _recorded(db)
    empty = db.execute("SELECT count(*) FROM outbox WHERE stream = 'events'").fetchone()[0] == 0
    return recorded if empty and set(_first_copies(cloud)) >= set(recorded) else None


async def test_mqtt_5_with_a_persistent_session_queues_commands_while_the_agent_is_away(
    tmp_path, issuer, broker, cloud, running
):
    settings = mqtt_settings(tmp_path, issuer, broker, cloud, protocol="5")
    agent = await running(settings, seeded=False)
    await _online(agent, cloud)
    await cloud.publish_offers(offer_bundle(1, [offer("v5")]))
    await cloud.wait_for(lambda: cloud.of_kind("bundle_result"))
    await agent.stop()
    await cloud.wait_for(lambda: cloud.status.get(DEVICE) == "stopped")
    ping = await cloud.command(DEVICE, "ping")  # the agent is away: the broker keeps it in the session
    again = await running(settings, seeded=False)
    assert (await cloud.wait_for(lambda: cloud.ack_for(ping)))["status"] == "ok"
    assert [o.offer_id for o in again.store.offers.all()] == ["v5"]


async def test_a_cloud_simulator_whose_loop_stalls_loses_nothing_at_the_broker(broker, cloud):
    """What the agent handed over (PUBACKed) reaches the cloud simulator even when its loop stalls for a while:
    the benchmarks load one process with the simulators, and a stock Mosquitto drops all but 1 000 queued
    messages for a subscriber that falls behind."""
    agent = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="stand-in-agent")
    agent.connect(broker.host, broker.port)
    agent.loop_start()
    try:
        sent = []
        for i in range(2_500):  # the simulator's loop does not run meanwhile: this loop never awaits
            event = {"uuid": str(uuid.uuid4()), "kind": "decision", "decision_id": f"d-{i}"}
            body = {"store": STORE, "device": "edge-1", "stream": "events", "first_seq": i, "events": [event]}
            sent.append(agent.publish(f"retail/v1/{STORE}/edge-1/events", json.dumps(body), qos=1))
        for info in sent:
            info.wait_for_publish(30)
        time.sleep(1.0)  # still stalled, with everything at the broker
        await cloud.wait_for(lambda: len(cloud.of_kind("decision")) == len(sent), timeout=60)
    finally:
        agent.loop_stop()
        agent.disconnect()
