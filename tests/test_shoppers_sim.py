"""The shopper simulator against the agent's presence logic (the figures themselves are in the README)."""

import json

from simulators import shoppers


def test_the_agent_follows_simulated_shoppers_closely(capsys):
    assert shoppers.main(["--eval", "--seed", "3", "--shoppers", "15", "--minutes", "8"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["opted_in"] > 0 and result["adverts_heard"] > 10_000
    # regression guard well below the measured figures (precision/recall ~0.9, latency ~1 s)
    assert result["precision"] >= 0.8
    assert result["recall"] >= 0.8
    assert result["median_enter_latency_s"] <= 3.0


def test_ground_truth_is_physical():
    import random

    plan = shoppers.SCENARIOS["default"]
    people = shoppers.make_shoppers(plan, random.Random(1), 5, 10)
    for s in people:
        assert s.position(s.arrive - 1) is None and s.position(s.leave + 1) is None
        assert s.position(s.arrive) == plan.door
        assert plan.zone_at(-15.0, plan.door[1]) is None
    assert plan.zone_at(4, 10) == "entrance" and plan.zone_at(4, 14) is None
