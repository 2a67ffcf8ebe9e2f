"""The operator's commands, run as a real process."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _edge_agent(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def test_demo_runs_a_store_and_ends_with_a_json_summary(tmp_path):
    done = _edge_agent("demo", "--seconds", "8", "--port", "0", "--dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    assert {"checkins", "decisions", "shown", "impressions", "purchases", "conversions", "errors"} <= set(summary)
    assert summary["purchases"] >= 1 and summary["conversions"] <= summary["purchases"]  # read by the receipt tap
    assert summary["errors"] == 0
    assert summary["checkins"] >= 1
    assert summary["decisions"] >= summary["checkins"]
    assert summary["shown"] >= 1 and summary["impressions"] >= 1
    assert any("/screen/screen-entrance" in line for line in lines)
    # the demo leaves a real config behind that the operator tools accept
    config = tmp_path / "edge-agent.toml"
    assert _edge_agent("check-config", str(config)).returncode == 0
    status = _edge_agent("db", "status", "--config", str(config))
    assert status.returncode == 0
    report = json.loads(status.stdout)
    assert report["impressions"] == summary["impressions"] and report["offers"] == 5


def test_run_refuses_a_bad_config_with_the_reason(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[store]\nid = "s"\nchain_id = "c"\ndevice_id = "d"\ncolour = "blue"\n')
    done = _edge_agent("run", "--config", str(bad))
    assert done.returncode != 0
    assert "store.colour" in done.stderr and "no such key" in done.stderr
    assert "zones" in done.stderr  # the missing section is named too


def test_the_path_loss_exponent_is_fitted_from_a_calibration_walk_file(tmp_path):
    import math
    import random

    rng = random.Random(5)
    walk = tmp_path / "walk.csv"
    lines = ["# distance_m,rssi_dbm of a pixel (-58 dBm at 1 m) held still"]
    for d in (1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0):
        lines += [f"{d},{round(-58 - 26 * math.log10(d) + rng.gauss(0, 4))}" for _ in range(60)]
    walk.write_text("\n".join(lines) + "\n")
    done = _edge_agent("ble", "fit-path-loss", "--reference", "-58", str(walk))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["readings"] == 420 and abs(result["path_loss_exponent"] - 2.6) < 0.1

    walk.write_text("3.0,-70\n4.0;-75\n")
    done = _edge_agent("ble", "fit-path-loss", "--reference", "-58", str(walk))
    assert done.returncode == 2 and "walk.csv:2: got '4.0;-75', expected `distance_m,rssi_dbm`" in done.stderr
