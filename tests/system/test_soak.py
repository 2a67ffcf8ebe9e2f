"""A short soak: a compressed store day against the agent running as its own process (bench/soak.py).

What it promises is about leaks and loss, not speed: no supervised component dies, every event the agent
recorded reaches the cloud simulator, the outbox ends empty, and neither open file descriptors nor resident
memory keep growing once warmed up. The bounds are loose enough for a loaded 2-core machine (a healthy agent
grows about 1 MB here while its caches fill) and tight enough for a real leak: a file descriptor kept per
check-in, screen frame or reconnect would add dozens, and ~2 kB kept per advert (about 8 000 in the run) or
~50 kB per decision (several hundred) would pass the memory slack.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak import Day, store_day
from simulators.bluez import dbus_available

pytestmark = pytest.mark.skipif(not dbus_available(), reason="needs dbus-daemon (Debian package dbus)")

SHORT = Day(seconds=25, shoppers=120, checkin_gap_s=0.3, warmup_s=6, vision_s=0)
FDS_SLACK = 3  # a screen reconnecting or the broker link between two samples
RSS_SLACK_MB = 8.0


async def test_a_compressed_store_day_loses_nothing_and_leaks_nothing(tmp_path: Path) -> None:
    result = await store_day(tmp_path, SHORT)

    assert result["simulators_failed"] == []
    assert result["tasks_died"] == 0, result["tasks_died_detail"]
    assert result["events"] > 100, "the day made too few events to prove anything"
    assert result["decisions"] > 0 and result["adverts"] > 1000 and result["receipts"] > 0
    assert result["events_lost"] == 0, result["events_detail"]
    assert result["outbox_depth_end"] == 0
    assert result["fds_growth"] <= FDS_SLACK, result["fds"]
    assert result["rss_growth_mb"] <= RSS_SLACK_MB, result["rss_mb"]
