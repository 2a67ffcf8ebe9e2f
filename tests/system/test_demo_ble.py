"""`edge-agent demo` runs with BLE where dbus-daemon exists, and just as well without it."""

import pytest

import simulators.bluez
from edge_agent.demo import run_demo


async def test_the_demo_runs_without_dbus(tmp_path, monkeypatch):
    monkeypatch.setattr(simulators.bluez, "dbus_available", lambda: False)
    summary = await run_demo(4.0, 0, tmp_path, players=False)
    assert summary["ble_sightings"] is None
    assert summary["errors"] == 0
    assert "ble = false" in (tmp_path / "edge-agent.toml").read_text()


async def test_the_demo_has_iphones_reporting_the_zone_beacons_they_hear(tmp_path):
    """Seed 0 puts an opted-in iPhone in the store in the first second: its app ranges the zone beacons and
    reports over the store Wi-Fi listener; this host advertises the entrance's beacon in the simulated BlueZ."""
    if not simulators.bluez.dbus_available():
        pytest.skip("dbus-daemon is not installed (tests/run installs it)")
    summary = await run_demo(8.0, 0, tmp_path, players=False, seed=0)
    assert summary["ble_reports"] >= 1 and summary["errors"] == 0
    config = (tmp_path / "edge-agent.toml").read_text()
    assert "ble_reports = true" in config and "advertise = true" in config
