"""Recordings replayed through the agent's presence path: the formats refused line by line, the measures on
hand-made timelines, the naive rule, and a simulated day end to end through `edge-agent ble replay`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.replay import naive
from edge_agent.replay.recording import Reading, RecordingError, TruthRow, readings, truth
from edge_agent.replay.scoring import Timeline, Visit, held, score
from simulators import shoppers

ROOT = Path(__file__).resolve().parents[2]


def _csv(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "code", "where"),
    [
        ("t_s,receiver,subject\n1,rx-a,s\n", "header", "line 1"),
        ("t_s,receiver,subject,rssi_dbm\n1,rx-a,s,-60\n2,rx-z,s,-60\n", "receiver", "line 3"),
        ("t_s,receiver,subject,rssi_dbm\n5,rx-a,s,-60\n4,rx-a,s,-60\n", "clock", "line 3"),
        ("t_s,receiver,subject,rssi_dbm\n1,rx-a,s,loud\n", "malformed", "line 2"),
        ("t_s,receiver,subject,rssi_dbm\n1,rx-a,s,-60,7\n", "malformed", "line 2"),
        ("t_s,receiver,subject,rssi_dbm\n1,rx-a,,-60\n", "malformed", "line 2"),
        ("t_s,receiver,subject,rssi_dbm\nnan,rx-a,s,-60\n", "malformed", "line 2"),
        ("t_s,receiver,subject,rssi_dbm,tx_dbm\n1,rx-a,s,-60,x\n", "malformed", "line 2"),
    ],
)
def test_a_reading_that_is_not_one_is_refused_with_its_line(tmp_path, text, code, where):
    with pytest.raises(RecordingError) as err:
        list(readings(_csv(tmp_path, "r.csv", text), ["rx-a"]))
    assert err.value.code == code and where in err.value.reason and "r.csv" in err.value.reason


def test_readings_and_truth_are_read_as_written(tmp_path):
    got = list(
        readings(
            _csv(tmp_path, "r.csv", "t_s,receiver,subject,rssi_dbm,tx_dbm\n1.5,rx-a,s,-61,-12\n\n2,rx-a,s,-60,\n"),
            ["rx-a"],
        )
    )
    assert got == [Reading(1.5, "rx-a", "s", -61.0, -12), Reading(2.0, "rx-a", "s", -60.0, None)]
    rows = truth(_csv(tmp_path, "t.csv", "t_s,subject,zone\n0,s,bakery\n10,s,\n"), ["bakery"])
    assert rows == [TruthRow(0.0, "s", "bakery"), TruthRow(10.0, "s", None)]
    with pytest.raises(RecordingError, match=r"t.csv line 2: zone 'dairy' is not in \[\[zones\]\]"):
        truth(_csv(tmp_path, "t.csv", "t_s,subject,zone\n0,s,dairy\n"), ["bakery"])


def test_the_measures_on_a_hand_made_day():
    """Alice in the bakery 10–40 s and in the dairy 60–70 s; Bob in no zone. The method found the bakery from
    12 s, lost it 20–22 s (a flap), kept it to 43 s; missed the dairy; placed Bob in the dairy 50–53 s."""
    timeline = Timeline(
        [
            TruthRow(0, "alice", None),
            TruthRow(10, "alice", "bakery"),
            TruthRow(40, "alice", None),
            TruthRow(60, "alice", "dairy"),
            TruthRow(70, "alice", None),
            TruthRow(0, "bob", None),
        ]
    )
    detected = [Visit("alice", "bakery", 12, 20), Visit("alice", "bakery", 22, 43), Visit("bob", "dairy", 50, 53)]
    result = score(timeline, detected, 0, 80, min_visit_s=5)
    # seconds: alice true bakery 10..39 (30 s), dairy 60..69 (10 s); found bakery 12..19, 22..42
    tp, fp = 8 + 18, 3 + 3  # bakery seconds found; 40..42 after she left, Bob's 50..52
    fn = 30 - 26 + 10
    assert result["precision"] == round(tp / (tp + fp), 4) and result["recall"] == round(tp / (tp + fn), 4)
    assert result["visits"] == {"true": 2, "detected": 3, "found": 1}
    assert result["visit_recall"] == 0.5 and result["visit_precision"] == round(2 / 3, 4)
    assert result["flaps_per_visit_hour"] == round(1 / (40 / 3600), 3)
    assert result["enter_latency_s"] == {"median": 2, "p90": 2} and result["exit_latency_s"] == {"median": 3, "p90": 3}


def test_the_naive_rule_follows_the_strongest_mean_over_its_window():
    zone_of = {"rx-a": "a", "rx-b": "b"}
    heard = [Reading(t / 2, "rx-a", "s", -60.0) for t in range(0, 20)]  # 0–9.5 s: only a hears it
    heard += [
        Reading(10 + t / 2, rx, "s", level) for t in range(0, 20) for rx, level in (("rx-a", -80.0), ("rx-b", -68.0))
    ]
    found = naive.visits(sorted(heard, key=lambda r: r.t_s), zone_of, window_s=5)
    # from 10 s a reads -80 and b -68: a's 5 s mean falls below -68 at 12 s (-70), and the subject moves to b
    assert [(v.zone, v.start, v.end) for v in found] == [("a", 0, 12), ("b", 12, 19.5)]


def test_visits_held_and_confirmed_are_what_a_debounced_screen_would_show():
    shown = [Visit("s", "a", 0, 10), Visit("s", "a", 11, 20), Visit("s", "a", 30, 31), Visit("s", "b", 12, 13)]
    assert sorted(held(shown, 2.0), key=lambda v: (v.zone, v.start)) == [
        Visit("s", "a", 0, 22),  # the 1 s gap is held over: one visit, known to end 2 s late
        Visit("s", "a", 30, 33),
        Visit("s", "b", 12, 15),
    ]
    assert held(shown, 2.0, confirm_s=2.0) == [Visit("s", "a", 2, 22)]  # shown only after 2 s; short ones never
    assert sorted(held(shown, 0.0), key=lambda v: (v.zone, v.start)) == sorted(shown, key=lambda v: (v.zone, v.start))


def test_the_evaluation_is_a_replay_of_its_own_recording(tmp_path):
    """`python -m simulators.shoppers --eval --record DIR` (default floor, seed 2; the phones that advertise):
    the figures it prints are those `edge-agent ble replay` gives on the recording it wrote, the agent clearly
    ahead of the naive rule (measured: per second 0.905 / 0.945 against 0.646 / 0.993, f1_vs_naive 1.18; 21 of 22
    visits found) and close to the oracle's (f1_vs_oracle 0.990)."""
    evaluated = shoppers.evaluate("default", 2, 40, 12, record_to=tmp_path)
    done = _replay_command(tmp_path, tmp_path / "readings.csv")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result == evaluated["advertising"]
    assert result["readings"] > 10_000 and result["subjects"] > 3
    assert result["precision"] >= 0.9 and result["recall"] >= 0.94 and result["visit_recall"] >= 0.9
    assert result["naive"]["precision"] < result["precision"] and result["f1_vs_naive"] >= 1.15
    assert evaluated["f1_vs_oracle"] >= 0.98 and set(evaluated["oracle"]) >= {"precision", "recall"}
    assert set(result) >= {"flaps_per_visit_hour", "enter_latency_s", "exit_latency_s", "visits", "naive"}
    bad = tmp_path / "bad.csv"
    bad.write_text("t_s,receiver,subject,rssi_dbm\n1,rx-nowhere,s,-60\n")
    done = _replay_command(tmp_path, bad)
    assert done.returncode == 2 and "bad.csv line 2: receiver 'rx-nowhere' is not in ble.receivers" in done.stderr


def _replay_command(folder: Path, readings_csv: Path) -> subprocess.CompletedProcess[str]:
    """`edge-agent ble replay` on a recording's config and truth, with these readings."""
    args = ["--config", folder / "store.toml", "--readings", readings_csv, "--truth", folder / "truth.csv"]
    return subprocess.run(
        [sys.executable, "-m", "edge_agent", "ble", "replay", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
