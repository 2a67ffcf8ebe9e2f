from datetime import UTC, datetime

from edge_agent.bus import Bus
from edge_agent.clock import Clock
from edge_agent.config import PresenceSettings
from edge_agent.events import Anonymous, Channel, Customer, PresenceKind, Sighting, WallTime
from edge_agent.presence import PresenceTracker

WALL = WallTime(datetime(2026, 11, 24, 10, tzinfo=UTC), True)


def tracker(**cfg):
    settings = PresenceSettings(**{"hold_down_s": 5.0, "checkin_hold_s": 60.0, "dwell_interval_s": 10.0, **cfg})
    return PresenceTracker(settings, Bus(), Clock())


def seen(t, who="alice", zone="entrance", channel=Channel.BLE, explicit=False):
    subject = Customer(who) if channel is not Channel.VISION else Anonymous(who)
    return Sighting(subject, zone, channel, mono=t, wall=WALL, explicit=explicit, touchpoint=None)


def kinds(events):
    return [(e.kind.value, e.subject.key, e.zone) for e in events]


def test_enter_dwell_and_exit_after_the_hold_down():
    p = tracker()
    assert kinds(p.observe(seen(0.0))) == [("enter", "customer:alice", "entrance")]
    timeline = []
    for t in range(1, 30):  # seen every second until t=22, then gone
        if t <= 22:
            timeline += p.observe(seen(float(t)))
        timeline += p.tick(float(t), WALL)
    assert [e.kind for e in timeline] == [PresenceKind.DWELL, PresenceKind.DWELL, PresenceKind.EXIT]
    exit_event = timeline[-1]
    assert exit_event.mono == 27.0  # last seen at 22 + 5 s hold-down
    assert exit_event.dwell_s == 27.0


def test_gaps_shorter_than_the_hold_down_do_not_flap():
    p = tracker()
    events = p.observe(seen(0.0))
    for t in (4.0, 8.5, 13.0, 17.9):  # gaps of up to 4.9 s with a 5 s hold-down
        events += p.tick(t - 0.1, WALL)
        events += p.observe(seen(t))
    assert [e.kind for e in events].count(PresenceKind.EXIT) == 0
    assert [e.kind for e in events].count(PresenceKind.ENTER) == 1


def test_a_checkin_holds_longer_than_a_radio_sighting():
    p = tracker()
    p.observe(seen(0.0, channel=Channel.CHECKIN, explicit=True))
    assert [e.kind for e in p.tick(30.0, WALL)] == [PresenceKind.DWELL]
    assert [e.kind for e in p.tick(60.0, WALL)] == [PresenceKind.EXIT]


def test_an_explicit_checkin_of_someone_present_asks_for_an_answer_now():
    p = tracker()
    p.observe(seen(0.0))
    again = p.observe(seen(1.0, channel=Channel.CHECKIN, explicit=True))
    assert [(e.kind, e.explicit) for e in again] == [(PresenceKind.DWELL, True)]
    assert p.observe(seen(2.0)) == []


def test_zones_and_subjects_are_tracked_apart():
    p = tracker()
    events = p.observe(seen(0.0, "alice", "entrance")) + p.observe(seen(0.0, "alice", "bakery"))
    events += p.observe(seen(0.0, "t-1", "bakery", channel=Channel.VISION))
    assert kinds(events) == [
        ("enter", "customer:alice", "entrance"),
        ("enter", "customer:alice", "bakery"),
        ("enter", "anonymous:t-1", "bakery"),
    ]


def test_the_table_is_bounded_and_lets_the_stalest_go_first():
    settings = PresenceSettings(hold_down_s=5.0, checkin_hold_s=60.0, dwell_interval_s=10.0)
    p = PresenceTracker(settings, Bus(), Clock(), max_subjects=3)
    for i in range(3):
        p.observe(seen(float(i), f"c{i}"))
    events = p.observe(seen(3.0, "c3"))
    assert kinds(events) == [("exit", "customer:c0", "entrance"), ("enter", "customer:c3", "entrance")]


def test_a_withdrawn_channel_is_forgotten_and_the_shopper_leaves_when_none_is_left():
    p = tracker()
    p.observe(seen(0.0, channel=Channel.CHECKIN, explicit=True))
    p.observe(seen(1.0, channel=Channel.BLE))
    p.observe(seen(1.0, who="bob", channel=Channel.CHECKIN))
    assert p.withdraw("alice", "ble", 2.0, WALL) == []  # still checked in
    assert kinds(p.withdraw("alice", "checkin", 3.0, WALL)) == [("exit", "customer:alice", "entrance")]
    assert [ref for ref, _, _ in p.customers(3.0)] == ["bob"]
    assert p.counts() == {"entrance": {"identified": 1, "anonymous": 0}}
