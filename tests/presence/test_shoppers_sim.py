"""The shopper simulator against the agent's presence logic (the figures themselves are in docs/evaluation.md)."""

import json
import random

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
    """A full simulated 20 minutes (40 shoppers, ~4 s each) with every phone advertising, the model the receivers'
    placement was tuned on: the evaluation is deterministic per seed, so these floors sit ~0.01 under the measured
    figures (docs/evaluation.md) and catch any loss of accuracy.

    They are NOT the aim of issue 5 (precision and recall ≥ 0.95): the agent does not reach it yet (default
    ~0.94/0.94; body shadowing at zone edges, and in `corner-shop` small zones close together), and a test
    asserting it would fail. Latency does meet the aim (median ≤ 3 s) and is asserted as such."""
    result = shoppers.evaluate(scenario, seed, 40, 20, advertising_share=None)
    assert result["visits_entered"] > 40
    # the replay of the day's recording against the oracle: measured 0.980 (hypermarket 4) to 1.010 (corner-shop 4)
    assert result["f1_vs_oracle"] >= 0.975
    assert result["precision"] >= precision
    assert result["recall"] >= recall
    assert result["median_enter_latency_s"] <= 3.0


def test_a_grid_of_receivers_places_shoppers_in_areas_of_the_floor():
    """`receiver-grid`: departments as areas of the floor (10 × 8 m, aisles of 4 m), receivers every 7 m at 3 m,
    none of them over a zone of its own. The replay of the day (every phone advertising; seed 2, 12 minutes):
    measured 0.855 / 0.944 against the naive rule's 0.679 / 0.950 (f1_vs_naive 1.13), f1_vs_oracle 0.965 — the
    aim of 0.97 / 0.97 is not reached (docs/evaluation.md, "Zones as floor areas"); the floors keep what is."""
    result = shoppers.evaluate("receiver-grid", 2, 40, 12, advertising_share=None)
    replayed = result["advertising"]
    assert replayed["precision"] >= 0.84 and replayed["recall"] >= 0.93 and replayed["visit_recall"] >= 0.93
    assert replayed["f1_vs_naive"] >= 1.1 and result["f1_vs_oracle"] >= 0.95
    assert replayed["enter_latency_s"]["median"] <= 2.5


def test_iphones_never_advertise_and_are_found_by_their_reports():
    """The platform-aware day (default floor, seed 1; figures in docs/evaluation.md): no iPhone advert reaches a
    receiver; every iPhone visit the platform let the app range in is detected at its arrival, at most 2 s after
    that first chance (median); every report the apps sent is verified; the phones that advertise keep their
    figures. Floors ~0.01 under the measured figures."""
    plan = shoppers.SCENARIOS["default"]
    people = shoppers.make_shoppers(plan, random.Random(1), 40, 20)
    devices = {h.device for h in shoppers.Radio(plan, people, random.Random(1)).adverts(20 * 60)}
    iphones = {s.phone.customer_ref for s in people if s.platform.name == "ios"}
    assert iphones and not devices & iphones
    assert {s.phone.customer_ref for s in people if s.advertises} == devices
    result = shoppers.evaluate("default", 1, 40, 20)
    ios = result["by_platform"]["ios"]
    assert ios["arrival_recall_deliverable"] == 1.0 and ios["arrival_latency_over_platform_delay_s"] <= 2.0
    assert result["reports"] == {"taken_lan": result["reports_sent"]}
    assert result["by_path"]["advert"]["precision"] >= 0.94 and result["by_path"]["advert"]["recall"] >= 0.93


def test_apps_open_all_visit_place_their_shoppers_about_as_well_as_advertising_phones():
    """Every app open (ranging every second): the report path against the advert path on the same floor and
    walks. Measured 0.927 / 0.930 against 0.949 / 0.943 (seed 1; the aim of 0.02 is missed there by 0.002 in
    precision, met on the other runs of docs/evaluation.md); the floors keep what is reached."""
    result = shoppers.evaluate("default", 1, 40, 20, app_always_open=True)
    report, advert = result["by_path"]["report"], result["by_path"]["advert"]
    assert report["precision"] >= 0.92 and report["recall"] >= 0.92
    assert advert["precision"] - report["precision"] <= 0.025 and advert["recall"] - report["recall"] <= 0.02


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
    advert = baseline["by_path"]["advert"]  # the phones the receivers hear
    assert off["by_path"]["advert"]["recall"] < advert["recall"] - 0.1  # a node reading weak keeps shoppers out
    assert calibrated["offset_error_db"] <= 1.0
    for score in ("precision", "recall"):
        assert calibrated["by_path"]["advert"][score] >= advert[score] - 0.02


def test_the_ground_truth_log_holds_every_zone_visit(tmp_path):
    out = tmp_path / "truth.jsonl"
    assert shoppers.main(["--truth", str(out), "--seed", "2", "--shoppers", "12", "--minutes", "6"]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    plan = shoppers.SCENARIOS["default"]
    people = {s.phone.customer_ref: s for s in shoppers.make_shoppers(plan, random.Random(2), 12, 6)}
    visits = [r for r in records if r["kind"] == "visit"]
    assert {r["shopper"] for r in visits} == set(people)  # everyone walks through the entrance at least
    for r in visits:
        s = people[r["shopper"]]
        assert (r["opted_in"], r["phone"], r["path"]) == (s.opted_in, s.model.name, s.path_name)
        middle = (r["enter_s"] + r["exit_s"]) / 2
        assert plan.zone_at(*s.position(middle)) == r["zone"]
        assert plan.zone_at(*s.position(r["enter_s"] - 0.15)) != r["zone"]  # it starts where they walked in
    # every second of the evaluation's truth is inside one logged visit, and the other way round (the log's
    # times are to its 0.1 s step: a second within a step of a logged crossing is left out)
    for ref, s in people.items():
        crossings = [t for r in visits if r["shopper"] == ref for t in (r["enter_s"], r["exit_s"])]
        for t in range(int(s.arrive) + 1, int(s.leave)):
            if any(abs(t - c) <= 0.1 for c in crossings):
                continue
            zone = plan.zone_at(*s.position(t))
            inside = [r for r in visits if r["shopper"] == ref and r["enter_s"] <= t < r["exit_s"]]
            assert [r["zone"] for r in inside] == ([zone] if zone else []), (ref, t)
    silences = [r for r in records if r["kind"] == "silent"]
    assert len(silences) == sum(len(s.silent) for s in people.values())


def test_ground_truth_is_physical():
    plan = shoppers.SCENARIOS["default"]
    people = shoppers.make_shoppers(plan, random.Random(1), 5, 10)
    for s in people:
        assert s.position(s.arrive - 1) is None and s.position(s.leave + 1) is None
        assert s.position(s.arrive) == plan.door
        assert plan.zone_at(-15.0, plan.door[1]) is None
    assert plan.zone_at(4, 10) == "entrance" and plan.zone_at(4, 14) is None


def test_receivers_a_store_can_buy_place_phones_as_the_adapter_does_but_espresense_later():
    """Every receiver behind a Theengs Gateway or an ESPHome proxy (default floor, seed 1): the phones that
    advertise are placed as through the host's adapter, within run-to-run spread (docs/receivers.md); behind
    ESPresense its 5 s reports of a 15 s median cost latency and accuracy even with the placement told."""
    adapter = shoppers.evaluate("default", 1, 40, 20)["by_path"]["advert"]
    for kind in ("theengs-gateway", "esphome-proxy"):
        through = shoppers.evaluate("default", 1, 40, 20, receivers=kind)["by_path"]["advert"]
        assert abs(through["precision"] - adapter["precision"]) <= 0.01, (kind, through, adapter)
        assert abs(through["recall"] - adapter["recall"]) <= 0.01, (kind, through, adapter)
        assert through["median_enter_latency_s"] <= adapter["median_enter_latency_s"] + 0.5
    told = {"ble": {"window_s": 6.0, "min_samples": 1}}
    espresense = shoppers.evaluate("default", 1, 40, 20, overrides=told, receivers="espresense")["by_path"]["advert"]
    assert espresense["median_enter_latency_s"] >= adapter["median_enter_latency_s"] + 5  # measured 11 s against 1 s
    assert espresense["precision"] >= 0.82 and espresense["recall"] >= 0.81  # measured 0.832 / 0.825
