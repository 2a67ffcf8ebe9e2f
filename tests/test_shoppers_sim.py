"""The shopper simulator against the agent's presence logic (the figures themselves are in the README)."""

import json

import pytest

from simulators import shoppers


def test_the_cli_prints_the_scores(capsys):
    assert shoppers.main(["--eval", "--seed", "3", "--shoppers", "15", "--minutes", "4"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["opted_in"] > 0 and result["adverts_heard"] > 5_000
    assert {"precision", "recall", "median_enter_latency_s"} <= set(result)


@pytest.mark.parametrize(
    ("scenario", "seed", "precision", "recall"),
    [
        ("default", 1, 0.931, 0.932),
        ("default", 2, 0.929, 0.932),
        ("default", 3, 0.915, 0.928),
        ("hypermarket", 4, 0.934, 0.931),
        ("corner-shop", 4, 0.912, 0.847),
    ],
)
def test_presence_accuracy_does_not_regress(scenario, seed, precision, recall):
    """A full simulated 20 minutes (40 shoppers, ~4 s each): the evaluation is deterministic per seed, so these
    floors sit ~0.01 under the measured figures (README, BLE presence) and catch any loss of accuracy.

    They are NOT the aim of issue 5 (precision and recall ≥ 0.95): the agent does not reach it yet (default
    ~0.94/0.94; body shadowing at zone edges, and in `corner-shop` small zones close together), and a test
    asserting it would fail. Latency does meet the aim (median ≤ 3 s) and is asserted as such."""
    result = shoppers.evaluate(scenario, seed, 40, 20)
    assert result["visits_entered"] > 40
    assert result["precision"] >= precision
    assert result["recall"] >= recall
    assert result["median_enter_latency_s"] <= 3.0


def test_the_calibration_walk_recovers_each_floors_path_loss():
    for plan in shoppers.SCENARIOS.values():
        for seed in (1, 2):
            assert abs(shoppers.calibration_walk(plan, seed) - plan.path_loss_exponent) <= 0.15


def test_the_stores_fixed_beacons_give_every_receivers_offset():
    """Receivers reading up to 4 dB off (this host's: 0), beacons halfway between neighbouring receivers heard
    for half an hour through the noisy radio: the offsets `BeaconLevels` suggests are each receiver's gain."""
    for name, plan in shoppers.SCENARIOS.items():
        gains = shoppers.receiver_gains(plan, 4.0, 1)
        offsets = shoppers.beacon_offsets(plan, gains, 1)
        assert set(offsets) == set(gains)
        for receiver, gain in gains.items():
            assert abs(offsets[receiver] - gain) <= 1.0, (name, receiver, gain, offsets[receiver])


def test_offsets_from_beacons_give_back_the_accuracy_receivers_of_different_gain_lose(capsys):
    baseline = shoppers.evaluate("default", 2, 40, 20)
    assert shoppers.main(["--eval", "--seed", "2", "--receiver-gain-db", "4"]) == 0
    off = json.loads(capsys.readouterr().out)
    assert shoppers.main(["--eval", "--seed", "2", "--receiver-gain-db", "4", "--beacon-offsets"]) == 0
    calibrated = json.loads(capsys.readouterr().out)
    assert off["recall"] < baseline["recall"] - 0.1  # a node reading weak keeps shoppers out of its zone
    assert calibrated["offset_error_db"] <= 1.0
    for score in ("precision", "recall"):
        assert calibrated[score] >= baseline[score] - 0.02


def test_ground_truth_is_physical():
    import random

    plan = shoppers.SCENARIOS["default"]
    people = shoppers.make_shoppers(plan, random.Random(1), 5, 10)
    for s in people:
        assert s.position(s.arrive - 1) is None and s.position(s.leave + 1) is None
        assert s.position(s.arrive) == plan.door
        assert plan.zone_at(-15.0, plan.door[1]) is None
    assert plan.zone_at(4, 10) == "entrance" and plan.zone_at(4, 14) is None
