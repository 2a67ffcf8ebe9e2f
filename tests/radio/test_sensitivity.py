"""The level behind readings that a receiver hears only above its sensitivity (a truncated normal's mean, inverted)."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.radio.sensitivity import true_level


def heard_mean(level: float, sensitivity: float, spread: float, n: int = 100_000, seed: int = 1) -> float:
    rng = random.Random(seed)
    heard = [x for x in (rng.gauss(level, spread) for _ in range(n)) if x >= sensitivity]
    return sum(heard) / len(heard)


def test_the_level_behind_what_was_heard_is_found_again():
    for level in (-99.0, -96.0, -93.0, -90.0, -85.0):
        mean = heard_mean(level, -95.0, 4.0)
        assert mean > level + 0.3 or level > -90  # near the sensitivity, the heard ones are louder
        assert abs(true_level(mean, -95.0, 4.0)[0] - level) < 0.3


def test_far_above_the_sensitivity_nothing_is_corrected():
    assert true_level(-60.0, -95.0, 4.0) == (-60.0, 1.0)


@settings(max_examples=200, deadline=None)
@given(st.floats(-130, 0), st.floats(-110, -60), st.floats(0.5, 10))
def test_any_heard_mean_gives_a_level_no_louder_and_a_growing_error(mean, sensitivity, spread):
    level, slope = true_level(mean, sensitivity, spread)
    assert min(mean, sensitivity - 3.0 * spread) - 1e-9 <= level <= mean
    assert slope >= 1.0 - 1e-9
