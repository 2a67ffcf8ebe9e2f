"""App reports: verified offline with what the store holds, refused with a code (and no content in the log)
otherwise, and turned into presence: the nearest zone beacon's zone, the arrival wherever heard, a far report
or an exit report ending the zones reports hold."""

from __future__ import annotations

import json
import logging

import pytest

from edge_agent.bus import Bus
from edge_agent.config import ConfigError, from_dict
from edge_agent.events import Departed, Sighting
from edge_agent.sources.ble import zone_beacons
from edge_agent.sources.ble.report_intake import ReportIntake
from edge_agent.sources.ble.reports import HeardBeacon, ReportRefused
from edge_agent.sources.ble.scanner import BleSource
from edge_agent.sources.ble.tokens import interval_of
from edge_agent.sources.roster_age import RosterAge
from edge_agent.store import open_store
from simulators.phone import phone_for
from tests.factories import config_dict

from .test_ble_source import ALICE, T0, FakeClock

KEY = bytes(range(32))
UUID = "e2c56db5-dffb-48d2-b060-d0f5a71096e0"
MAJOR = 7
BOB = phone_for("bob", "chain-test")  # opted in to check-in only
AT = int(T0)


def ble_settings(**ble):
    return {
        "receivers": [{"id": "edge-test", "zone": "entrance"}, {"id": "rx-bakery", "zone": "bakery"}],
        "zone_beacon": {"uuid": UUID, "major": MAJOR, "key_file": "zone-beacon.key"},
        **ble,
    }


async def intake(tmp_path, issuer, **ble):
    data = config_dict(tmp_path, issuer, sources={"ble_reports": True}, ble=ble_settings(**ble))
    data["http"]["report_listen"] = "127.0.0.1:0"
    settings = from_dict(data)
    store = open_store(settings.database.path)
    store.roster.upsert(
        [ALICE.roster_entry(T0, {"ble": True}), BOB.roster_entry(T0, {"checkin": True, "ble": False})],
        updated_at="t1",
    )
    bus, clock = Bus(), FakeClock()
    source = BleSource(settings, store, bus, clock)
    await source.refresh(force=True)
    return ReportIntake(settings, source.resolver.tokens, store, bus, clock, KEY), bus, clock, store


def heard(zone, rssi, proximity="unknown", at=AT, major=MAJOR):
    return HeardBeacon(major, zone_beacons.minor(KEY, zone, interval_of(at)), rssi, proximity)


def published(bus):
    sightings, departures = bus.subscribe(Sighting, "t"), bus.subscribe(Departed, "t")

    def drain():
        out = []
        for queue in (sightings.queue, departures.queue):
            while not queue.empty():
                out.append(queue.get_nowait())
        return out

    return drain


async def test_a_report_places_its_customer_in_the_nearest_beacons_zone_for_the_report_ttl(tmp_path, issuer):
    reports, bus, _clock, _ = await intake(tmp_path, issuer, report_ttl_s=45)
    events = published(bus)
    data = ALICE.report(AT, (heard("entrance", -80, "far"), heard("bakery", -62, "near")))
    assert reports.take(data, "lan").zone == "bakery"
    [sighting] = events()
    assert (sighting.subject.customer_ref, sighting.zone, sighting.channel, sighting.hold_s) == (
        "alice",
        "bakery",
        "ble",
        45,
    )
    assert sighting.receiver is None and sighting.rssi is None
    assert reports.counts["taken_lan"] == 1


async def test_without_proximity_the_strongest_beacon_is_the_nearest(tmp_path, issuer):
    reports, _bus, _clock, _ = await intake(tmp_path, issuer)
    data = ALICE.report(AT, (heard("entrance", -70), heard("bakery", -61)))
    assert reports.take(data, "lan").zone == "bakery"


async def test_the_arrival_enters_the_nearest_zone_whatever_the_distance_and_a_far_report_leaves(tmp_path, issuer):
    reports, bus, clock, _ = await intake(tmp_path, issuer, report_ttl_s=60)
    events = published(bus)
    assert reports.take(ALICE.report(AT, (heard("entrance", -90, "far"),)), "lan").zone == "entrance"
    assert [type(e) for e in events()] == [Sighting]  # the store arrival: an iPhone may range only now
    clock.t += 1
    assert reports.take(ALICE.report(AT + 1, (heard("entrance", -88, "far"),)), "lan").zone is None
    [departed] = events()
    assert isinstance(departed, Departed) and departed.subject.customer_ref == "alice"
    clock.t += 1
    assert reports.take(ALICE.report(AT + 2, (heard("entrance", -45),)), "lan").zone == "entrance"  # near (mean -66.5)
    clock.t += 61  # a report after the visit's ttl is an arrival again
    assert reports.take(ALICE.report(AT + 63, (heard("bakery", -95, "far"),)), "lan").zone == "bakery"


async def test_the_reported_zone_holds_until_another_beacon_is_clearly_nearer(tmp_path, issuer):
    reports, _bus, clock, _ = await intake(tmp_path, issuer, switch_db=4.0)
    assert reports.take(ALICE.report(AT, (heard("entrance", -60), heard("bakery", -66))), "lan").zone == "entrance"
    clock.t += 1  # the bakery's beacon a little stronger now (means of two reports: -62 against -63): the phone stays
    assert reports.take(ALICE.report(AT + 1, (heard("entrance", -66), heard("bakery", -58))), "lan").zone == "entrance"
    clock.t += 1  # clearly stronger (-55 against -68)
    assert reports.take(ALICE.report(AT + 2, (heard("entrance", -70), heard("bakery", -52))), "lan").zone == "bakery"


async def test_an_exit_report_ends_the_reported_zones(tmp_path, issuer):
    reports, bus, _clock, _ = await intake(tmp_path, issuer)
    events = published(bus)
    assert reports.take(ALICE.report(AT, ()), "cloud").zone is None
    [departed] = events()
    assert isinstance(departed, Departed)
    assert reports.counts["taken_cloud"] == 1


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda: b"{", "malformed"),
        (lambda: BOB.report(AT, (heard("entrance", -60),)), "unknown_token"),  # no BLE consent: not resolvable
        (lambda: phone_for("stranger", "chain-test").report(AT, (heard("entrance", -60),)), "unknown_token"),
        (lambda: ALICE.report(AT - 600, (heard("entrance", -60, at=AT - 600),)), "stale"),
        (lambda: ALICE.report(AT, (heard("entrance", -60, at=AT - 1800),)), "stale_minor"),  # three intervals old
        (lambda: ALICE.report(AT, (HeardBeacon(MAJOR, 1234, -60, "near"),)), "stale_minor"),  # invented
        (lambda: ALICE.report(AT, (heard("entrance", -60, major=MAJOR + 1),)), "stale_minor"),  # another store
        (lambda: _altered(ALICE.report(AT, (heard("entrance", -60),))), "bad_tag"),
    ],
)
async def test_a_report_that_proves_nothing_is_refused_counted_and_logged_without_content(
    tmp_path, issuer, caplog, make, code
):
    reports, bus, _clock, _ = await intake(tmp_path, issuer)
    events = published(bus)
    caplog.set_level(logging.INFO, logger="edge_agent.sources.ble.report_intake")
    data = make()
    with pytest.raises(ReportRefused) as refused:
        reports.take(data, "lan")
    assert refused.value.code == code and reports.counts[f"refused_{code}"] == 1
    assert events() == []
    logged = caplog.text
    assert code in logged
    if data.startswith(b'{"'):
        body = json.loads(data)
        assert body["token"] not in logged and body["nonce"] not in logged and body["tag"] not in logged
    assert "alice" not in logged and "bob" not in logged


def _altered(data: bytes) -> bytes:
    body = json.loads(data)
    body["beacons"][0]["rssi"] -= 1
    return json.dumps(body).encode()


async def test_a_report_is_taken_once(tmp_path, issuer):
    reports, _bus, _clock, _ = await intake(tmp_path, issuer)
    data = ALICE.report(AT, (heard("entrance", -60),))
    reports.take(data, "lan")
    with pytest.raises(ReportRefused) as refused:
        reports.take(data, "cloud")  # the same report by the other way in
    assert refused.value.code == "replay"


async def test_consent_withdrawn_in_the_store_refuses_before_the_token_table_is_rebuilt(tmp_path, issuer):
    reports, _bus, _clock, store = await intake(tmp_path, issuer)
    store.consents.set("alice", "ble", False, at="2027-01-15T08:00:01", touchpoint="kiosk-a")
    with pytest.raises(ReportRefused) as refused:
        reports.take(ALICE.report(AT, (heard("entrance", -60),)), "lan")
    assert refused.value.code == "no_consent"


async def test_a_stale_roster_trusts_nobodys_report(tmp_path, issuer):
    data = config_dict(tmp_path, issuer, sources={"ble_reports": True}, ble=ble_settings())
    data["http"]["report_listen"] = "127.0.0.1:0"
    settings = from_dict(data)
    store, bus, clock = open_store(settings.database.path), Bus(), FakeClock()
    store.roster.upsert([ALICE.roster_entry(T0, {"ble": True})], updated_at="2027-01-14T00:00:00+00:00")
    source = BleSource(settings, store, bus, clock)
    await source.refresh(force=True)
    age = RosterAge(store, clock, max_age_s=3600)
    reports = ReportIntake(settings, source.resolver.tokens, store, bus, clock, KEY, age)
    with pytest.raises(ReportRefused) as refused:
        reports.take(ALICE.report(AT, (heard("entrance", -60),)), "lan")
    assert refused.value.code == "stale_roster" and age.refused == 1


async def test_fixed_beacons_name_zones_only_where_the_config_opts_into_their_weaker_proof(tmp_path, issuer):
    fixed = f"ibeacon:{UUID}:3:9"
    with pytest.raises(ConfigError, match="static_beacon_reports"):
        from_dict(
            config_dict(
                tmp_path,
                issuer,
                sources={"ble_reports": True},
                http={"report_listen": "127.0.0.1:0"},
                ble=ble_settings(beacons=[fixed], beacon_zones=[{"beacon": fixed, "zone": "bakery"}]),
            )
        )
    reports, _bus, _clock, _ = await intake(
        tmp_path,
        issuer,
        beacons=[fixed],
        beacon_zones=[{"beacon": fixed, "zone": "bakery"}],
        static_beacon_reports=True,
    )
    assert reports.take(ALICE.report(AT, (HeardBeacon(3, 9, -60, "near"),)), "lan").zone == "bakery"


def test_the_config_names_what_taking_reports_needs(tmp_path, issuer):
    with pytest.raises(ConfigError) as err:
        from_dict(config_dict(tmp_path, issuer, sources={"ble_reports": True}))
    text = str(err.value)
    for key in ("ble.zone_beacon.uuid", "ble.zone_beacon.major", "ble.zone_beacon.key_file", "sources.ble_reports"):
        assert key in text
