"""Device profiles: every shipped profile is valid and matches its published schema; a bad profile of any
kind is refused naming the file, the key and the reason; `check-config` checks every profile a config names
and the agent uses what they say (beacon ids, scanner-node offsets)."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib

import pytest
import tomli_w

from edge_agent import devices, profiles
from edge_agent.bus import Bus
from edge_agent.clock import Clock
from edge_agent.config import from_dict
from edge_agent.signage.sign_profile import SIGN_MODELS, SignKinds
from edge_agent.sources.ble import node_format as remote_adverts
from edge_agent.sources.ble.frames import EDDYSTONE_UUID
from edge_agent.sources.ble.profiles import RECEIVER_MODELS, BeaconProfile, ReceiverKinds, ScannerProfile
from edge_agent.sources.ble.scanner import Advert, BleSource
from edge_agent.sources.pos.tills import TILL_MODELS, TillKinds
from edge_agent.store import open_store
from tests.factories import STORE, config_dict

SHIPPED = sorted(profiles.firmware_dir().glob("*/*.toml"))
KIND_OF_FOLDER = {folder: kind for kind, (folder, _) in devices.KINDS.items()}


def test_every_kind_ships_an_example_and_every_shipped_profile_is_valid():
    loaded = [devices.load(KIND_OF_FOLDER[path.parent.name], path) for path in SHIPPED]
    receivers = {type(p) for p in loaded if type(p) in RECEIVER_MODELS.values()}
    assert receivers == set(RECEIVER_MODELS.values())  # every receiver kind, in firmware_configs/scanners/
    tills = {type(p) for p in loaded if type(p) in TILL_MODELS.values()}
    assert tills == set(TILL_MODELS.values())  # every till kind, in firmware_configs/pos/
    signs = {type(p) for p in loaded if type(p) in SIGN_MODELS.values()}
    assert signs == set(SIGN_MODELS.values())  # a framed sign and a pole display, in firmware_configs/signs/
    union = {**dict.fromkeys(receivers, ReceiverKinds), **dict.fromkeys(tills, TillKinds)}
    union |= dict.fromkeys(signs, SignKinds)
    kinds = {union.get(type(p), type(p)) for p in loaded}
    assert kinds == {model for _, model in devices.KINDS.values()}


@pytest.mark.parametrize("kind", sorted(devices.KINDS))
def test_the_published_schema_matches_the_model(kind):
    folder, model = devices.KINDS[kind]
    published = json.loads((profiles.firmware_dir() / folder / "profile.schema.json").read_text())
    assert published == model.model_json_schema()


def _shipped(folder: str) -> dict:
    """`folder`, or `folder:name` for one of several kinds in a folder: a shipped profile's data."""
    folder, _, name = folder.partition(":")
    path = min((profiles.firmware_dir() / folder).glob(f"{name or '*'}.toml"))
    return tomllib.loads(path.read_text())


@pytest.mark.parametrize(
    ("folder", "change", "key", "reason"),
    [
        ("beacons", {"ibeacon": {"major": 70000}}, "ibeacon.major", "less than or equal to 65535"),
        ("beacons", {"ibeacon": None, "eddystone": None}, "(top level)", "an [ibeacon] or an [eddystone] frame"),
        ("beacons", {"radio": {"interval_ms": 5}}, "radio.interval_ms", "greater than or equal to 20"),
        ("beacons", {"eddystone": {"namespace": "xyz", "instance": "000000000001"}}, "eddystone.namespace", "pattern"),
        ("scanners", {"report": {"max_adverts": 9999}}, "report.max_adverts", "less than or equal to 500"),
        ("scanners", {"broker": {"host": "h", "store": "s", "password": "hunter2"}}, "broker.password", "no such key"),
        ("scanners", {"scan": {"window_ms": 200, "interval_ms": 100}}, "scan", "at most scan.interval_ms"),
        ("scanners", {"broker": None}, "broker", "missing"),
        ("scanners:theengs-gateway-deli", {"gateway": {"publish_advdata": False}}, "gateway.publish_advdata", "True"),
        ("scanners:theengs-gateway-deli", {"publish_topic": "home/#"}, "publish_topic", "pattern"),
        ("scanners:espresense-coffee", {"room": "coffee/bar"}, "room", "pattern"),
        ("scanners:esphome-proxy-dairy", {"port": 0}, "port", "greater than or equal to 1"),
        ("scanners:esphome-proxy-dairy", {"api_key": "c2VjcmV0"}, "api_key", "no such key"),
        ("cameras", {"capture": {"rotate": 45}}, "capture.rotate", "0, 90, 180 or 270"),
        ("cameras", {"lens": {"horizontal_fov_deg": 5}}, "lens.horizontal_fov_deg", "greater than or equal to 20"),
        ("signs", {"serial": {"baudrate": 12345}}, "serial.baudrate", "1200"),
        (
            "pos:generic-pipe",
            {"records": {"begin": {"tag": "T", "fields": ["colour"]}}},
            "records",
            "unknown ['colour']",
        ),
        (
            "pos:escpos-receipt-tap",
            {"patterns": {"transaction": "Receipt (\\d+)", "item": "(?P<sku>x)"}},
            "patterns.transaction",
            "the named groups ['txn_id']",
        ),
        ("pos:escpos-receipt-tap", {"codepage": "ebcdic"}, "codepage", "'cp437'"),
        ("beacons", {"kind": "camera"}, "kind", "expected 'beacon'"),
    ],
)
def test_a_bad_profile_is_refused_with_file_key_and_reason(tmp_path, folder, change, key, reason):
    data = _shipped(folder)
    for name, value in change.items():
        if value is None:
            data.pop(name, None)
        elif isinstance(value, dict) and isinstance(data.get(name), dict):
            data[name] = {**data[name], **value}
        else:
            data[name] = value
    bad = tmp_path / "bad.toml"
    bad.write_text(tomli_w.dumps(data))
    with pytest.raises(profiles.ProfileError) as err:
        devices.load(KIND_OF_FOLDER[folder.partition(":")[0]], bad)
    message = str(err.value)
    assert message.startswith(f"{bad}: ") and f"{key}:" in message and reason in message, message


@pytest.mark.parametrize("kind", sorted(devices.KINDS))
def test_another_kind_and_broken_toml_are_refused(tmp_path, kind):
    odd = tmp_path / "odd.toml"
    odd.write_text('kind = "toaster"\nname = "x"\n')
    with pytest.raises(profiles.ProfileError, match=rf"odd\.toml: kind: got 'toaster', expected (one of )?'?{kind}"):
        devices.load(kind, odd)
    odd.write_text("kind = \n")
    with pytest.raises(profiles.ProfileError, match=r"odd\.toml: not valid TOML"):
        devices.load(kind, odd)
    with pytest.raises(profiles.ProfileError, match=r"nowhere\.toml: cannot read the profile"):
        devices.load(kind, tmp_path / "nowhere.toml")


def _store(tmp_path, issuer, *, beacon="entrance-ibeacon", node="esp32-bakery", camera="usb-uvc-720p", **ble):
    data = config_dict(tmp_path, issuer, store={"id": "store-042", "chain_id": "chain-test", "device_id": "edge-1"})
    data["ble"] = {
        "beacon_profiles": [beacon],
        "receivers": [{"id": "edge-1", "zone": "entrance"}, {"id": "esp32-bakery", "zone": "bakery", "profile": node}],
        **ble,
    }
    data["vision"] = {"cameras": [{"id": "cam-a", "source": 0, "zone": "entrance", "profile": camera, "max_fps": 10}]}
    return data


def _check(tmp_path, data) -> subprocess.CompletedProcess:
    config = tmp_path / "edge-agent.toml"
    config.write_text(tomli_w.dumps(data))
    return subprocess.run(
        [sys.executable, "-m", "edge_agent", "check-config", str(config)], capture_output=True, text=True, timeout=60
    )


def test_check_config_accepts_a_store_whose_profiles_are_good(tmp_path, issuer):
    done = _check(tmp_path, _store(tmp_path, issuer))
    assert done.returncode == 0, done.stderr
    assert "ok (store store-042" in done.stdout


def test_check_config_refuses_a_bad_profile_naming_config_key_file_and_profile_key(tmp_path, issuer):
    data = _shipped("cameras")
    data["capture"]["fps"] = -1
    (tmp_path / "bad-cam.toml").write_text(tomli_w.dumps(data))
    done = _check(tmp_path, _store(tmp_path, issuer, camera=str(tmp_path / "bad-cam.toml"), beacon="no-such-beacon"))
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert any(
        "vision.cameras[0].profile" in line and "bad-cam.toml" in line and "capture.fps: got -1" in line
        for line in lines
    ), done.stderr
    assert any(
        "ble.beacon_profiles[0]" in line and "no-such-beacon.toml" in line and "cannot read" in line for line in lines
    )


def test_a_profile_path_is_taken_from_the_config_files_folder(tmp_path, issuer):
    (tmp_path / "profiles").mkdir()
    data = _shipped("cameras")
    data["capture"]["fps"] = 5
    (tmp_path / "profiles" / "slow-cam.toml").write_text(tomli_w.dumps(data))
    done = _check(tmp_path, _store(tmp_path, issuer, camera="profiles/slow-cam.toml"))
    assert done.returncode == 2  # found and read: the config asks for 10 fps of a 5 fps camera
    assert "vision.cameras[0].max_fps: got 10" in done.stderr
    assert f"capture.fps (5.0) in {tmp_path}/profiles/slow-cam.toml" in done.stderr


def test_check_config_refuses_a_scanner_node_the_agent_would_not_hear(tmp_path, issuer):
    data = config_dict(tmp_path, issuer)  # store-test, not the node's store-042
    data["ble"] = {"receivers": [{"id": "esp32-bakery", "zone": "bakery", "profile": "esp32-bakery"}]}
    done = _check(tmp_path, data)
    assert done.returncode == 2
    assert f"ble.receivers[0].profile: broker.store: got 'store-042', expected '{STORE}'" in done.stderr
    data["ble"]["receivers"][0]["id"] = "esp32-dairy"
    assert "scanner_id: got 'esp32-bakery', expected 'esp32-dairy'" in _check(tmp_path, data).stderr


def test_check_config_refuses_a_camera_asked_for_more_frames_than_it_makes(tmp_path, issuer):
    data = _store(tmp_path, issuer)
    data["vision"]["cameras"][0]["max_fps"] = 60
    done = _check(tmp_path, data)
    assert done.returncode == 2 and "vision.cameras[0].max_fps: got 60" in done.stderr and "(30" in done.stderr


async def test_the_agent_uses_what_the_profiles_say(tmp_path, issuer):
    settings = devices.with_profiles(from_dict(_store(tmp_path, issuer)))
    node = {rx.id: rx for rx in settings.ble.receivers}["esp32-bakery"]
    assert node.offset_db == 2.5  # from the profile, as the receiver entry did not set its own

    # both frames of the profile's beacon, heard by the scanner, are read as the store's own beacon
    beacon = profiles.load("entrance-ibeacon", BeaconProfile, "beacons")
    power = (beacon.radio.measured_power_dbm & 0xFF).to_bytes(1, "big")
    ibeacon = bytes.fromhex("0215" + beacon.ibeacon.uuid.replace("-", "")) + (42).to_bytes(2, "big")
    ibeacon += (1).to_bytes(2, "big") + power
    eddystone = bytes([0x00, 0xEE]) + bytes.fromhex(beacon.eddystone.namespace + beacon.eddystone.instance)
    store = open_store(settings.database.path)
    src = BleSource(settings, store, Bus(), Clock())
    assert src.resolver.handle(Advert("esp32-bakery", 1.0, -70.0, {0x004C: ibeacon})) is None
    assert src.resolver.handle(Advert("esp32-bakery", 1.0, -72.0, {}, {EDDYSTONE_UUID: eddystone})) is None
    assert src.resolver.counts["beacon"] == 2
    assert set(src.health()["beacons"]) == set(beacon.ids())
    heard = src.health()["beacons"][beacon.ids()[0]]["esp32-bakery"]
    assert heard["measured_power"] == beacon.radio.measured_power_dbm
    store.close()

    # the node publishes where the agent subscribes, under the id its receiver entry has
    profile = profiles.load("esp32-bakery", ScannerProfile, "scanners")
    assert remote_adverts.scanner_of(profile.topic()) == "esp32-bakery"
    assert profile.topic() == remote_adverts.topic_filter("store-042").replace("+", "esp32-bakery")
