"""Fleet desired config over a real Mosquitto: applied live, refused when stale or invalid, kept across restarts."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
import tomli_w
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.app import Agent
from edge_agent.cli import main
from edge_agent.cloud.desired import merge
from edge_agent.cloud.envelope import BundleRejected, seal
from edge_agent.config import from_dict
from edge_agent.events import Channel
from edge_agent.keys import public_key_b64
from simulators.cloud import to_json
from tests.factories import DEVICE, STORE, config_dict


@pytest.fixture(autouse=True)
def _root_log_level():
    level = logging.getLogger().level
    yield
    logging.getLogger().setLevel(level)


def fleet_settings(tmp_path, issuer, broker, cloud):
    mqtt = {
        "host": broker.host,
        "port": broker.port,
        "bundle_public_keys": [cloud.public_key_b64],
        "reconnect_min_s": 0.2,
        "reconnect_max_s": 1.0,
    }
    return from_dict(config_dict(tmp_path, issuer, mqtt=mqtt))


def config_results(cloud):
    return [{"version": e.get("version"), "status": e.get("status")} for e in cloud.of_kind("config_result")]


async def test_desired_config_applies_live_refuses_bad_and_survives_a_restart(tmp_path, issuer, broker, cloud, running):
    settings = fleet_settings(tmp_path, issuer, broker, cloud)
    agent = await running(settings)
    await cloud.wait_for(lambda: cloud.reported.get(DEVICE, {}).get("device") == DEVICE)
    assert cloud.reported[DEVICE]["version"] is None  # nothing desired yet: the file's settings are in force
    assert agent.presence.hold_for(Channel.BLE) == 5.0

    # Version 1: applied at once, no restart.
    desired = {
        "version": 1,
        "settings": {
            "presence": {"hold_down_s": 12.0},
            "signage": {"rotate_s": 20.0, "idle": [{"title": "Autumn at the bakery"}]},
            "decide": {"crowd_busy_from": 6},
            "ops": {"stall_after_s": 45.0},
        },
        "log_level": "warning",
    }
    await cloud.publish_config(desired)
    await cloud.wait_for(lambda: cloud.reported.get(DEVICE, {}).get("version") == 1)
    assert agent.presence.hold_for(Channel.BLE) == 12.0
    assert agent.presence.hold_for(Channel.CHECKIN) == 30.0  # not in the document: the file's value
    assert agent.settings.signage.rotate_s == 20.0
    assert [item["title"] for item in agent.hub.idle_items("screen-a")] == ["Autumn at the bakery"]
    assert logging.getLogger().level == logging.WARNING
    await cloud.wait_for(lambda: {"version": 1, "status": "applied"} in config_results(cloud))

    # Invalid: every problem named with key, value and expectation; the last good state stays.
    bad = {"version": 2, "settings": {"presence": {"hold_down_s": -1}, "store": {"id": "other"}}}
    await cloud.publish_config(bad)
    rejected = await cloud.wait_for(lambda: cloud.reported[DEVICE].get("rejected"))
    assert rejected["version"] == 2 and rejected["code"] == "invalid"
    assert "settings.store: no such live section" in rejected["reason"]
    bad["settings"].pop("store")
    await cloud.publish_config(bad)
    await cloud.wait_for(lambda: "hold_down_s" in (cloud.reported[DEVICE].get("rejected") or {}).get("reason", ""))
    reason = cloud.reported[DEVICE]["rejected"]["reason"]
    assert "settings.presence.hold_down_s: got -1, expected greater than 0" in reason, reason
    assert cloud.reported[DEVICE]["version"] == 1
    assert agent.presence.hold_for(Channel.BLE) == 12.0

    # A key that needs a restart is refused by name, with the ones that may change listed.
    await cloud.publish_config({"version": 3, "settings": {"ble": {"adapter": "hci1"}}})
    await cloud.wait_for(lambda: (cloud.reported[DEVICE].get("rejected") or {}).get("version") == 3)
    assert "settings.ble.adapter: not changeable at run time" in cloud.reported[DEVICE]["rejected"]["reason"]

    # Stale: a version not newer than the one in force, even with other content.
    await cloud.publish_config({"version": 1, "settings": {"presence": {"hold_down_s": 99.0}}})
    await cloud.wait_for(lambda: (cloud.reported[DEVICE].get("rejected") or {}).get("code") == "stale")
    assert agent.presence.hold_for(Channel.BLE) == 12.0

    # Forged: signed by a key the store does not trust.
    forged = seal(Ed25519PrivateKey.generate(), "config", STORE, to_json({"version": 9, "settings": {}}))
    await cloud.publish("config", forged, retain=True)
    await cloud.wait_for(lambda: (cloud.reported[DEVICE].get("rejected") or {}).get("code") == "bad_signature")
    assert cloud.reported[DEVICE]["version"] == 1
    await cloud.wait_for(lambda: len(config_results(cloud)) >= 6)
    results = config_results(cloud)
    assert [r["status"] for r in results].count("rejected") == 5

    # Restart with the broker's retained config cleared: version 1 comes back from SQLite, and is reported.
    await cloud.publish("config", b"", retain=True)
    await agent.stop()
    cloud.reported.pop(DEVICE)
    logging.getLogger().setLevel(logging.INFO)  # as a fresh process would start
    again = await running(settings, seeded=False)
    assert again.presence.hold_for(Channel.BLE) == 12.0
    assert again.settings.signage.rotate_s == 20.0
    assert logging.getLogger().level == logging.WARNING
    await cloud.wait_for(lambda: cloud.reported.get(DEVICE, {}).get("version") == 1)

    # Shadow style: a newer document without presence puts the file's value back.
    await cloud.publish_config({"version": 4, "settings": {"ble": {"enter_m": 2.0, "exit_m": 3.0}}})
    await cloud.wait_for(lambda: cloud.reported.get(DEVICE, {}).get("version") == 4)
    assert cloud.reported[DEVICE]["rejected"] is None
    assert again.presence.hold_for(Channel.BLE) == 5.0
    assert again.presence.radio.distance_m(-59.0, None) == pytest.approx(1.0)
    assert logging.getLogger().level == logging.INFO  # no log_level in the document: the level it started with


def test_merge_applies_the_file_cross_checks(settings):
    doc = to_json({"version": 5, "settings": {"ble": {"enter_m": 5.0, "exit_m": 4.0}}})
    with pytest.raises(BundleRejected) as err:
        merge(settings, doc)
    assert err.value.code == "invalid" and err.value.version == 5
    assert "settings.ble.exit_m: got 4.0, expected at least ble.enter_m (5.0)" in err.value.reason


@pytest.mark.parametrize(
    ("document", "needle"),
    [
        ({"settings": {}}, "version: got None, expected an integer in 1..9007199254740992"),
        ({"version": 2**64, "settings": {}}, "version: got 18446744073709551616"),
        ({"version": True, "settings": {}}, "version: got True"),
        ({"version": 1, "settings": {"signage": "fast"}}, "settings.signage: got 'fast', expected an object"),
        ({"version": 1, "settings": {}, "log_level": "loud"}, "log_level: got 'loud', expected one of debug"),
        ({"version": 1, "settings": {}, "mqtt": {}}, "mqtt: no such key"),
        ({"version": 1, "settings": {"signage": {"idle": [{"text": "x"}]}}}, "settings.signage.idle[0].title"),
    ],
)
def test_merge_refuses_bad_documents_by_name(settings, document, needle):
    with pytest.raises(BundleRejected) as err:
        merge(settings, to_json(document))
    assert needle in err.value.reason


def test_merge_keeps_everything_else_from_the_file(settings):
    desired = merge(settings, to_json({"version": 2, "settings": {"decide": {"crowd_quiet_below": 1}}}))
    assert desired.version == 2 and desired.settings.decide.crowd_quiet_below == 1
    assert desired.settings.model_copy(update={"decide": settings.decide}) == settings


async def test_an_operator_signs_and_publishes_a_desired_config_with_the_tools(
    tmp_path, issuer, broker, running, capsys
):
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, main, ["keys", "new", "--dir", str(tmp_path)])
    public = capsys.readouterr().out.strip()
    key = str(tmp_path / "bundle-signing.key")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": 1, "settings": {"presence": {"hold_down_s": 0}}}))
    assert await loop.run_in_executor(None, main, ["bundle", "sign", str(bad), "--key", key, "--store", STORE]) == 2
    assert "settings.presence.hold_down_s: got 0, expected greater than 0" in capsys.readouterr().err

    mqtt = {"host": broker.host, "port": broker.port, "bundle_public_keys": [public], "reconnect_max_s": 1.0}
    data = config_dict(tmp_path, issuer, mqtt=mqtt)
    (tmp_path / "store.toml").write_text(tomli_w.dumps(data))
    agent = await running(from_dict(data))
    good = tmp_path / "desired.json"
    good.write_text(json.dumps({"version": 3, "settings": {"presence": {"dwell_interval_s": 4.0}}}))
    assert await loop.run_in_executor(None, main, ["bundle", "sign", str(good), "--key", key, "--store", STORE]) == 0
    signed = str(tmp_path / "desired.signed.json")
    publish = ["bundle", "publish", signed, "--config", str(tmp_path / "store.toml")]
    assert await loop.run_in_executor(None, main, publish) == 0
    assert "retail/v1/store-test/config" in capsys.readouterr().out
    async with asyncio.timeout(30):
        while agent.cloud.desired.version != 3:
            await asyncio.sleep(0.05)
    assert agent.settings.presence.dwell_interval_s == 4.0


def test_a_stored_config_that_no_longer_fits_the_file_is_not_applied(tmp_path, issuer):
    key = Ed25519PrivateKey.generate()
    mqtt = {"host": "127.0.0.1", "port": 1, "bundle_public_keys": [public_key_b64(key.public_key())]}
    first = Agent(from_dict(config_dict(tmp_path, issuer, mqtt=mqtt)))
    first.cloud.desired.handle(
        seal(key, "config", STORE, to_json({"version": 1, "settings": {"ble": {"enter_m": 4.5}}}))
    )
    assert first.cloud.desired.version == 1 and first.settings.ble.enter_m == 4.5
    first.store.close()

    # The operator since narrowed ble.exit_m in the file: enter_m 4.5 would now be beyond it.
    again = Agent(from_dict(config_dict(tmp_path, issuer, mqtt=mqtt, ble={"exit_m": 4.0})))
    assert again.cloud.desired.version is None and again.settings.ble.enter_m == 3.6
    rejected = again.cloud.desired.reported()["rejected"]
    assert rejected["code"] == "unapplicable" and rejected["version"] == 1
    assert "settings.ble.exit_m: got 4.0, expected at least ble.enter_m (4.5)" in rejected["reason"]
    again.store.close()
