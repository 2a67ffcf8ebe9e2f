"""Presence from app reports beside the store's receivers: one subject, one BLE zone, whichever way the phone
was heard; a report holds for its ttl; a departure ends only what reports hold."""

from edge_agent.events import Channel, Customer, Departed, Sighting

from .test_presence_radio import WALL, heard, rssi_at, tracker


def reported(t, zone, who="alice", hold_s=30.0):
    return Sighting(Customer(who), zone, Channel.BLE, mono=t, wall=WALL, hold_s=hold_s)


def kinds(events):
    return [(e.kind.value, e.zone) for e in events]


def test_a_report_holds_its_zone_for_its_ttl_then_the_customer_leaves():
    p = tracker()
    assert kinds(p.observe(reported(0.0, "bakery", hold_s=30.0))) == [("enter", "bakery")]
    assert ("exit", "bakery") not in kinds(p.tick(29.5, WALL))
    assert ("exit", "bakery") in kinds(p.tick(30.0, WALL))
    assert p.placed() == set()


def test_a_report_of_another_zone_moves_the_customer():
    p = tracker()
    p.observe(reported(0.0, "entrance"))
    assert kinds(p.observe(reported(5.0, "bakery"))) == [("exit", "entrance"), ("enter", "bakery")]
    assert p.placed() == {("customer:alice", "bakery")}


def test_the_receivers_placement_wins_over_a_report_of_another_zone():
    p = tracker()
    for k in range(6):  # an Android phone advertising near the entrance receiver
        p.observe(heard(k * 0.5, rssi_at(1.5)))
    assert p.placed() == {("customer:alice", "entrance")}
    assert p.observe(reported(3.0, "bakery")) == []  # the same phone's app reports the bakery beacon
    assert p.placed() == {("customer:alice", "entrance")} and p.reports_deferred == 1
    assert p.depart(Departed(Customer("alice"), 3.5, WALL)) == []  # nothing reports alone hold


def test_the_receivers_take_over_from_reports_as_one_presence():
    p = tracker()
    p.observe(reported(0.0, "bakery"))
    events = []
    for k in range(6):
        events += p.observe(heard(1.0 + k * 0.5, rssi_at(1.5)))
    assert kinds(events) == [("exit", "bakery"), ("enter", "entrance")]
    assert p.placed() == {("customer:alice", "entrance")}


def test_a_departure_ends_the_reported_zones_and_leaves_a_checkin_alone():
    p = tracker()
    p.observe(Sighting(Customer("alice"), "entrance", Channel.CHECKIN, mono=0.0, wall=WALL))
    p.observe(reported(1.0, "bakery"))
    assert kinds(p.depart(Departed(Customer("alice"), 2.0, WALL))) == [("exit", "bakery")]
    assert p.placed() == {("customer:alice", "entrance")}


def test_the_count_of_reported_states_follows_the_table():
    p = tracker()
    p.observe(reported(0.0, "bakery"))
    p.observe(reported(1.0, "bakery", who="bob"))
    assert p._reported_states == 2
    p.observe(
        Sighting(Customer("bob"), "bakery", Channel.CHECKIN, mono=2.0, wall=WALL)
    )  # bob's zone: not reports alone
    assert p._reported_states == 1
    p.depart(Departed(Customer("alice"), 3.0, WALL))
    assert p._reported_states == 0 and p.placed() == {("customer:bob", "bakery")}


def test_a_report_refreshing_a_checkin_zone_keeps_it_from_a_departure():
    p = tracker()
    p.observe(Sighting(Customer("alice"), "entrance", Channel.CHECKIN, mono=0.0, wall=WALL))
    assert p.observe(reported(1.0, "entrance")) == []
    assert p.depart(Departed(Customer("alice"), 2.0, WALL)) == []
    assert p.placed() == {("customer:alice", "entrance")}


def test_a_phone_the_receivers_hear_outside_every_zone_is_not_placed_by_its_reports():
    p = tracker()
    p.observe(reported(0.0, "bakery"))
    assert kinds(p.observe(heard(1.0, rssi_at(12.0)))) == [("exit", "bakery")]  # heard, far from every receiver
    assert p.observe(reported(1.5, "bakery")) == [] and p.placed() == set()
    assert p.reports_deferred == 1
    assert kinds(p.observe(reported(1.0 + 4.5, "bakery"))) == [("enter", "bakery")]  # unheard for a window (4 s)
