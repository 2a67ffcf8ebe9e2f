from pathlib import Path

import pytest

from edge_agent import config
from edge_agent.cli import main

EXAMPLE = Path(__file__).resolve().parents[1] / "systemd" / "edge-agent.toml"


def test_example_config_is_valid_and_typed():
    s = config.load(EXAMPLE)
    assert s.store.id == "store-0042"
    assert [z.id for z in s.zones] == ["entrance", "bakery"]
    assert s.zone_of("screen-bakery") == "bakery"
    assert [t.id for t in s.touchpoints_in("entrance")] == ["screen-entrance", "kiosk-entrance"]
    assert s.database.path == EXAMPLE.parent / "edge-agent.db"  # relative to the config file
    assert s.presence.hold_down_s == 20.0
    assert s.mqtt is None


def _problems(text: str) -> dict[str, config.ConfigProblem]:
    with pytest.raises(config.ConfigError) as info:
        config.parse(text)
    return {p.key: p for p in info.value.problems}


def _example(replace: str = "", by: str = "", append: str = "") -> str:
    text = EXAMPLE.read_text()
    if replace:
        assert replace in text
        text = text.replace(replace, by, 1)
    return text + append


def test_unknown_key_is_named_with_the_known_ones():
    problems = _problems(_example("hold_down_s = 20 ", "hold_dwn_s = 20 "))
    p = problems["presence.hold_dwn_s"]
    assert p.value == 20
    assert "no such key" in p.expected and "hold_down_s" in p.expected


def test_wrong_type_names_key_value_and_expectation():
    p = _problems(_example("port = 8080", 'port = "8080"'))["http.port"]
    assert p.value == "8080"
    assert "integer" in p.expected


def test_touchpoint_in_a_zone_that_does_not_exist():
    p = _problems(_example('zone = "bakery"', 'zone = "backroom"'))["touchpoints[2].zone"]
    assert p.value == "backroom"
    assert "entrance, bakery" in p.expected


def test_kind_must_be_screen_kiosk_or_sign():
    p = _problems(_example('kind = "kiosk"', 'kind = "tablet"'))["touchpoints[1].kind"]
    assert p.value == "tablet" and "'screen', 'kiosk' or 'sign'" in p.expected


def test_missing_key_and_bad_public_key_are_both_reported():
    problems = _problems(
        _example()
        .replace('device_id = "edge-01"', "")
        .replace("A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=", "bm90IGEga2V5")
    )
    assert "store.device_id" in problems and problems["store.device_id"].expected.startswith("this key")
    assert "32-byte" in problems["checkin.public_keys"].expected


def test_duplicate_zone_ids_are_refused():
    p = _problems(_example('id = "bakery"', 'id = "entrance"'))["zones[1].id"]
    assert p.value == "entrance"


def test_checkin_on_without_keys_is_refused():
    p = _problems(_example('public_keys = ["A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="]', "public_keys = []"))
    assert "sources.checkin" in p["checkin.public_keys"].expected


def test_syntax_error_is_reported_with_position():
    p = _problems("[store\nid = 1")["(syntax)"]
    assert "line 1" in p.value


def test_check_config_cli_exit_codes(tmp_path, capsys):
    assert main(["check-config", str(EXAMPLE)]) == 0
    assert "ok" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text(_example('zone = "bakery"', 'zone = "backroom"'))
    assert main(["check-config", str(bad)]) != 0
    err = capsys.readouterr().err
    assert "touchpoints[2].zone" in err and "'backroom'" in err and "entrance, bakery" in err
    assert main(["check-config", str(tmp_path / "missing.toml")]) != 0
    assert "readable file" in capsys.readouterr().err


def test_decide_and_pos_sections_are_checked(tmp_path):
    s = config.load(EXAMPLE)
    assert s.store.timezone == "Europe/Berlin" and s.pos is None
    problems = _problems(_example('timezone = "Europe/Berlin"', 'timezone = "Mars/Olympus"'))
    assert "IANA time zone" in problems["store.timezone"].expected
    problems = _problems(_example("pos = false", "pos = true"))
    assert "[pos]" in problems["pos"].expected
    problems = _problems(_example("crowd_busy_from = 10", "crowd_busy_from = 2"))
    assert "decide.crowd_quiet_below" in problems["decide.crowd_busy_from"].expected
    text = _example("pos = false", "pos = true", append='\n[pos]\nport = "/dev/ttyUSB0"\nprofile = "till.toml"\n')
    path = tmp_path / "agent.toml"
    path.write_text(text)
    loaded = config.load(path)
    assert loaded.pos.profile == tmp_path / "till.toml" and loaded.pos.till_id == "till-1"


def test_check_config_refuses_a_broken_till_profile(tmp_path, capsys):
    (tmp_path / "till.toml").write_text('name = "t"\n[records]\nseparator = "|"\n')
    path = tmp_path / "agent.toml"
    path.write_text(
        _example("pos = false", "pos = true", append='\n[pos]\nport = "/dev/ttyUSB0"\nprofile = "till.toml"\n')
    )
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "pos.profile" in err and "records.begin" in err


def test_ble_section_of_the_example():
    s = config.load(EXAMPLE)
    assert s.ble.company_id == 0xFFFF
    assert [(r.id, r.zone) for r in s.ble.receivers] == [("edge-01", "entrance"), ("esp32-bakery", "bakery")]
    assert s.ble.reference_by_model["iphone"] == -56.0


def test_ble_receivers_must_sit_in_known_zones_with_sane_thresholds():
    problems = _problems(_example('id = "esp32-bakery"\nzone = "bakery"', 'id = "esp32-bakery"\nzone = "cellar"'))
    assert "entrance, bakery" in problems["ble.receivers[1].zone"].expected
    problems = _problems(_example("exit_m = 4.6 ", "exit_m = 2.0 "))
    assert problems["ble.exit_m"].value == 2.0 and "enter_m" in problems["ble.exit_m"].expected
    problems = _problems(_example("exit_m = 4.0\n", "exit_m = 1.0\n"))
    assert "enter_m (3.0)" in problems["ble.receivers[1].exit_m"].expected


def test_receiver_positions_are_given_whole_and_on_every_receiver_or_none():
    assert [(r.x_m, r.y_m, r.height_m) for r in config.load(EXAMPLE).ble.receivers] == [
        (4.0, 10.0, 2.0),
        (16.0, 4.0, 2.0),
    ]
    problems = _problems(_example("y_m = 4.0\n", ""))
    assert problems["ble.receivers[1]"].value == {"x_m": 16.0, "y_m": None}
    assert "every receiver or on none" in problems["ble.receivers[1]"].expected
    problems = _problems(_example("x_m = 16.0\ny_m = 4.0\n", ""))
    assert "ble.receivers[1]" in problems and "ble.receivers[0]" not in problems
    without = _example("x_m = 16.0\ny_m = 4.0\n", "").replace("x_m = 4.0 ", "# x_m").replace("y_m = 10.0 ", "# y_m")
    assert all(r.x_m is None for r in config.parse(without).ble.receivers)


def test_scanning_needs_a_receiver_for_this_host_and_remote_scanners_need_a_broker():
    text = _example("ble = false", "ble = true").replace('id = "edge-01"\nzone', 'id = "x"\nzone')
    with pytest.raises(config.ConfigError) as info:
        config.parse(text)
    problems = {p.key: p for p in info.value.problems}
    assert "'edge-01'" in problems["ble.receivers"].expected
    problems = _problems(_example("remote_scanners = false", "remote_scanners = true"))
    assert "[mqtt]" in problems["ble.remote_scanners"].expected
