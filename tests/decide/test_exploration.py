"""Choice probabilities: they sum to one, respect the floor, and draws follow them."""

import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.decide.exploration import draw, probabilities
from edge_agent.store.policy import Exploration

scores = st.lists(st.floats(min_value=-50, max_value=50, allow_nan=False), min_size=1, max_size=30)
explorations = st.builds(
    Exploration,
    kind=st.sampled_from(["greedy", "epsilon_greedy", "softmax"]),
    epsilon=st.floats(0, 1),
    temperature=st.floats(0.01, 100),
    floor=st.floats(0, 0.5),
)


@given(scores, explorations)
def test_probabilities_sum_to_one_and_respect_the_floor(values, exploration):
    probs = probabilities(values, exploration)
    assert len(probs) == len(values)
    assert sum(probs) == pytest.approx(1.0, abs=1e-9)
    floor = min(exploration.floor, 1 / len(values))
    assert all(p >= floor - 1e-12 for p in probs)
    best = max(range(len(values)), key=lambda i: values[i])
    assert probs[best] == pytest.approx(max(probs))


def test_epsilon_greedy_and_softmax_give_the_textbook_values():
    eg = probabilities([3.0, 1.0, 2.0, 0.0], Exploration(kind="epsilon_greedy", epsilon=0.2))
    assert eg == pytest.approx([0.85, 0.05, 0.05, 0.05])
    sm = probabilities([1.0, 0.0], Exploration(kind="softmax", temperature=1.0))
    assert sm == pytest.approx([0.7310586, 0.2689414])
    floored = probabilities([1.0, 0.0, 0.0], Exploration(kind="greedy", floor=0.1))
    assert floored == pytest.approx([0.8, 0.1, 0.1])
    assert probabilities([5.0, 1.0], Exploration(kind="greedy", floor=0.5)) == [0.5, 0.5]


def test_draws_follow_the_probabilities():
    probs = [0.6, 0.3, 0.1]
    rng = random.Random(7)
    n = 20_000
    counts = Counter(draw(probs, rng) for _ in range(n))
    for i, p in enumerate(probs):
        assert counts[i] / n == pytest.approx(p, abs=0.015)
