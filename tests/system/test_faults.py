"""Faults under load, the short form of `python -m bench faults`: a real agent process with a real Mosquitto,
shoppers, screens, a till on a pty, BLE phones through a simulated BlueZ and (with the models installed) a
camera, through SIGKILLs at random moments, a broker kill, a full disk, the adapter and the camera going away.
Every event the agent recorded must reach the cloud, once after dedup by uuid; each kind of fault must be
recovered from. bench/faults.py has the run and says how each figure is taken."""

from __future__ import annotations

import pytest

from bench.faults import Plan, run_faults
from simulators.broker import find_mosquitto

pytestmark = pytest.mark.skipif(find_mosquitto() is None, reason="needs mosquitto (Debian package mosquitto)")

PLAN = Plan(kills=5, broker_kills=1, disk_full_episodes=1, adapter_losses=1, camera_losses=1, max_gap_s=2.0, seed=3)


async def test_every_recorded_event_reaches_the_cloud_once_through_kills_outages_and_a_full_disk(tmp_path):
    result = await run_faults(PLAN, workdir=tmp_path)
    keys = ("lost_sample", "notes", "disk", "checkins_while_full", "storage_metrics", "events_by_kind")
    detail = {k: result[k] for k in keys}
    full_disk = result["disk"] == "tmpfs filled to ENOSPC"  # needs root to mount; see tests/store/test_storage_full.py

    assert result["kills"] >= PLAN.kills and result["broker_kills"] == 1
    assert result["disk_full_episodes"] == (1 if full_disk else 0), detail
    assert {"decision", "impression", "conversion"} <= set(result["events_by_kind"]), detail  # the load recorded
    assert result["events_lost"] == 0, detail
    assert result["duplicates_after_dedup"] == 0, detail
    assert result["faults_delivered"] == result["faults"], detail  # after each fault, not only at the end
    expected = {"broker"} | ({"disk_full"} if full_disk else set()) | ({"adapter"} if result["ble"] else set())
    expected |= {"camera"} if result["vision"] else set()
    assert result["recovered"] == dict.fromkeys(expected, True), detail
    if full_disk:
        assert result["checkins_while_full"].get("503:storage_full", 0) >= 1, detail  # refused, with the reason
        assert result["starts_on_full_disk"] == 1 and result["failed_starts_on_full_disk"] == 0, detail
