"""Receivers with floor positions: a phone placed from every receiver's level at once, and the reference level of
a phone model nobody measured, learned from them."""

import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.bus import Bus
from edge_agent.clock import Clock
from edge_agent.config import BleSettings, PresenceSettings, Receiver
from edge_agent.presence import PresenceTracker
from edge_agent.radio.floor import Floor

from .test_presence_radio import WALL, heard

N = 2.0
AT = {"rx-a": (0.0, 0.0), "rx-b": (8.0, 0.0), "rx-c": (4.0, 7.0)}
HEIGHT = 2.0


def receivers(placed: bool = True) -> list[dict]:
    return [
        {"id": rid, "zone": rid.removeprefix("rx-"), **({"x_m": x, "y_m": y} if placed else {})}
        for rid, (x, y) in AT.items()
    ]


def level(ref: float, rid: str, x: float, y: float) -> float:
    ax, ay = AT[rid]
    return ref - 10 * N * math.log10(math.hypot(x - ax, y - ay, HEIGHT))


def floor() -> Floor:
    return Floor([Receiver(**r) for r in receivers()], N)


def distances(levels: dict, ref: float) -> dict[str, float]:
    """Each hearing receiver's distance from where the floor places the phone; empty when it places it nowhere."""
    located = floor().locate(levels, ref)
    return {} if located is None else located.distances


def test_levels_that_agree_place_the_phone_where_they_were_measured():
    for x, y in [(1.0, 1.5), (5.0, 3.0), (4.0, 6.0)]:
        levels = {rid: (level(-59.0, rid, x, y), 16.0) for rid in AT}
        got = distances(levels, -59.0)
        for rid, (ax, ay) in AT.items():
            assert abs(got[rid] - math.hypot(x - ax, y - ay, HEIGHT)) < 0.5  # within the grid's step


def test_one_receiver_alone_leaves_the_distance_to_its_own_level():
    assert distances({"rx-a": (-70.0, 16.0)}, -59.0) == {}
    assert distances({"rx-z": (-70.0, 16.0), "rx-a": (-70.0, 16.0)}, -59.0) == {}  # not on the floor


def test_the_reference_of_an_unmeasured_phone_is_found_from_three_receivers():
    for x, y in [(1.0, 1.5), (5.0, 3.0), (4.0, 6.0)]:
        levels = {rid: (level(-65.0, rid, x, y), 16.0) for rid in AT}
        got = floor().reference(levels)
        assert got is not None and abs(got + 65.0) < 0.1
    two = {rid: (level(-65.0, rid, 2.0, 2.0), 16.0) for rid in ("rx-a", "rx-b")}
    assert floor().reference(two) is None  # any reference fits some position


def tracker(placed: bool) -> PresenceTracker:
    radio = BleSettings(receivers=receivers(placed), reference_dbm=-59.0, path_loss_exponent=N, enter_m=3.0, exit_m=4.0)
    return PresenceTracker(PresenceSettings(hold_down_s=10.0), Bus(), Clock(), radio=radio)


def stand(p: PresenceTracker, x: float, y: float, ref: float, seconds: float, start: float = 0.0, seed: int = 1):
    """A phone of an unmeasured model (no reference in the sighting) at (x, y), heard by every receiver with 3 dB of
    noise; returns the zones it was placed in, second by second."""
    rng = random.Random(seed)
    placed, t = [], start
    while t < start + seconds:
        for rid in AT:
            p.observe(heard(t, level(ref, rid, x, y) + rng.gauss(0, 3.0), receiver=rid, ref=None))
        p.tick(t, WALL)
        if abs(t - round(t)) < 1e-6:
            placed.append({zone for _, zone in p.placed()})
        t = round(t + 0.25, 6)
    return placed


def test_a_weak_phone_of_an_unmeasured_model_enters_once_it_has_learned_its_level():
    # 2.45 m from rx-a with its height (inside its zone), but 6 dB weaker than reference_dbm says: read alone,
    # its level puts it 4.9 m away, outside; with the receivers' positions it learns its level and is placed
    blind = stand(tracker(placed=False), 1.0, 1.0, ref=-65.0, seconds=60)
    assert all(zones == set() for zones in blind)
    learning = tracker(placed=True)
    seen = stand(learning, 1.0, 1.0, ref=-65.0, seconds=60)
    assert all(zones == {"a"} for zones in seen[-30:])
    # three receivers, three unknowns: a spot behind rx-a, farther from all three, fits these levels as exactly with a
    # louder reference, and a still phone's measurements fall on either, so the mean lands between the two
    learned = learning.radio._phones["customer:alice"].reference
    assert learned is not None and abs(learned + 65.0) < 3.0
    # and the same phone away from every zone is not placed in any
    assert all(zones == set() for zones in stand(learning, 4.0, 2.8, ref=-65.0, seconds=30, start=61, seed=2)[-20:])


def test_a_phone_of_a_measured_model_keeps_its_reference():
    p = tracker(placed=True)
    rng = random.Random(3)
    for k in range(200):
        t = k * 0.25
        for rid in AT:
            p.observe(heard(t, level(-59.0, rid, 1.0, 1.0) + rng.gauss(0, 3.0), receiver=rid, ref=-59.0))
    assert p.radio._phones["customer:alice"].reference is None
    assert {zone for _, zone in p.placed()} == {"a"}


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(st.sampled_from([*AT, "rx-z"]), st.tuples(st.floats(-127, 20), st.floats(0.1, 400)), max_size=4))
def test_any_levels_give_a_place_on_the_floor_or_none(levels):
    got = distances(levels, -59.0)
    heard = set(levels) & set(AT)
    assert set(got) == (heard if len(heard) >= 2 else set())
    assert all(HEIGHT <= d < 30.0 for d in got.values())  # on the grid: never nearer than the receiver's height
    ref = floor().reference(levels)
    assert (ref is None) == (len(heard) < 3) and (ref is None or math.isfinite(ref))


def test_a_new_floor_without_positions_drops_the_old_placement():
    p = tracker(placed=True)
    stand(p, 1.0, 1.0, ref=-59.0, seconds=5)
    assert p.radio._phones["customer:alice"].located
    p.reconfigure(PresenceSettings(hold_down_s=10.0), BleSettings(receivers=receivers(placed=False)))
    assert p.radio._phones["customer:alice"].located == {}


def test_a_vast_floor_gets_a_coarser_grid_not_more_memory():
    vast = [Receiver(id="rx-a", zone="a", x_m=-900.0, y_m=-900.0), Receiver(id="rx-b", zone="b", x_m=900.0, y_m=900.0)]
    assert len(floor()) == 29 * 27 and len(Floor(vast, N)) <= 41_000
    assert len(Floor([Receiver(id="rx-a", zone="a")], N)) == 0  # no positions: no floor


def test_receivers_that_miss_the_weak_readings_do_not_make_an_unmeasured_phone_learn_too_loud_a_level():
    """Receivers hear nothing below their floor (here −82 dBm): a phone whose levels sit just above it is heard only
    when a reading happens to be loud, and the mean of what they heard is several dB too loud. The agent learns each
    receiver's floor from the weakest reading it reported, and the reference it learns is the phone's own."""
    p, rng, floor_dbm = tracker(placed=True), random.Random(5), -82.0
    t = 0.0
    for _ in range(800):  # a busy floor: enough readings for every receiver's floor to be known
        for rid in AT:
            reading = level(-59.0, rid, 4.0, 2.5) + rng.gauss(0, 4.0)
            if reading >= floor_dbm:
                p.observe(heard(t, round(reading), receiver=rid, who="bob", ref=-59.0))
        t = round(t + 0.25, 6)
    passed = []
    for _ in range(600):  # 150 s of an unmeasured phone 6 dB weaker, 5 m from every receiver: −79 dBm, 3 dB up
        for rid in AT:
            reading = level(-65.0, rid, 4.0, 2.5) + rng.gauss(0, 4.0)
            if reading >= floor_dbm:
                passed.append(reading - level(-65.0, rid, 4.0, 2.5))
                p.observe(heard(t, round(reading), receiver=rid, ref=None))
        t = round(t + 0.25, 6)
    assert sum(passed) / len(passed) > 1.5  # what was heard is too loud...
    learned = p.radio._phones["customer:alice"].reference
    assert learned is not None and abs(learned + 65.0) < 1.0  # ...and the learned reference is not
