"""`edge-agent demo` runs with BLE where dbus-daemon exists, and just as well without it."""

import simulators.bluez
from edge_agent.demo import run_demo


async def test_the_demo_runs_without_dbus(tmp_path, monkeypatch):
    monkeypatch.setattr(simulators.bluez, "dbus_available", lambda: False)
    summary = await run_demo(4.0, 0, tmp_path, players=False)
    assert summary["ble_sightings"] is None
    assert summary["errors"] == 0
    assert "ble = false" in (tmp_path / "edge-agent.toml").read_text()
