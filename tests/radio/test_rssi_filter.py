"""The RSSI filter of one phone at one receiver: a long average while the phone stands, a quick one while it walks."""

import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.config import BleSettings
from edge_agent.radio.level_filter import Level

CFG = BleSettings()


def readings(true_level, seconds: float, seed: int, start: float = 0.0, every: float = 0.25):
    """(t, true level, reading): slow body shadowing (2.7 dB, correlated over ~10 readings) and 4 dB of noise."""
    rng, shadow, t = random.Random(seed), 0.0, start
    while t < start + seconds:
        shadow = 0.9 * shadow + rng.gauss(0, 1.2)
        yield t, true_level(t), true_level(t) + shadow + rng.gauss(0, 4.0)
        t = round(t + every, 6)


def single_kalman(seq, drift_db: float = 2.0, noise_db: float = 4.0):
    """What a phone's level was filtered with before: one Kalman filter of one speed (the previous default)."""
    level = variance = last = None
    for t, truth, rssi in seq:
        if level is None:
            level, variance = rssi, noise_db**2
        else:
            prior = variance + drift_db**2 * (t - last)
            spread = prior + noise_db**2
            bound = CFG.gate_sigma * spread**0.5
            gain = prior / spread
            level += gain * max(-bound, min(bound, rssi - level))
            variance = (1 - gain) * prior
        last = t
        yield t, truth, level


def two_models(seq):
    level = Level()
    for t, truth, rssi in seq:
        level.update(t, rssi, CFG)
        yield t, truth, level.level


def mean(xs) -> float:
    xs = list(xs)
    return sum(xs) / len(xs)


def rms(xs) -> float:
    return math.sqrt(mean(x * x for x in xs))


SEEDS = range(1, 21)


def test_a_standing_phone_is_averaged_through_body_shadowing():
    def standing(t: float) -> float:
        return -75.0

    def error(filtered) -> float:  # after 20 s standing
        return rms(level - truth for t, truth, level in filtered if t >= 20)

    mine = mean(error(two_models(readings(standing, 90, seed))) for seed in SEEDS)
    before = mean(error(single_kalman(readings(standing, 90, seed))) for seed in SEEDS)
    assert mine < 0.85 * before  # measured: 1.96 against 2.62 dB


def test_a_phone_that_starts_walking_is_followed_with_less_lag():
    def walking_away(t: float) -> float:  # stands 30 s, then walks away: 3 dB a second
        return -70.0 - 3.0 * max(0.0, t - 30.0)

    def lag(filtered) -> float:  # how far behind, in dB, from 2 s after setting off
        return mean(level - truth for t, truth, level in filtered if t >= 32)

    mine = mean(lag(two_models(readings(walking_away, 38, seed))) for seed in SEEDS)
    before = mean(lag(single_kalman(readings(walking_away, 38, seed))) for seed in SEEDS)
    assert 0 < mine < 0.85 * before  # measured: 2.3 against 3.25 dB (0.8 s against 1.1 s behind)
    level = Level()
    for t, _, rssi in readings(walking_away, 38, 1):
        level.update(t, rssi, CFG)
    assert level.p_still < 0.5  # and it knows the phone is walking


def test_after_silence_longer_than_the_window_the_filter_starts_afresh():
    level = Level()
    for k in range(40):
        level.update(k * 0.25, -60.0, CFG)
    level.update(10.0 + CFG.window_s + 1, -85.0, CFG)
    assert level.level == -85.0 and level.count == 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0.01, 5.0), st.integers(-127, 20)), min_size=1, max_size=60))
def test_any_readings_give_a_level_among_them(steps):
    level, t = Level(), 0.0
    for dt, rssi in steps:
        t += dt
        level.update(t, float(rssi), CFG)
        assert math.isfinite(level.level) and level.variance > 0 and 0 < level.p_still < 1
    heard = [r for _, r in steps]
    assert min(heard) - 1e-6 <= level.level <= max(heard) + 1e-6
