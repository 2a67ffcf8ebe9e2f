"""The store's day everywhere a day is counted: the report's `--day`, the dashboard's "today" — in a UTC−5 store and
in one whose clocks change that night; ("ends today" is in test_decide_rules.py)."""

from datetime import UTC, datetime

import pytest

from edge_agent.app import Agent
from edge_agent.cli import _local_day
from edge_agent.clock import SetClock
from edge_agent.decide import report
from edge_agent.store.decisions import DecisionRecord
from tests.surfaces import surfaces_settings


@pytest.mark.parametrize(
    ("zone", "day", "since", "until"),
    [
        ("America/New_York", "2026-12-05", "2026-12-05T05:00:00.000+00:00", "2026-12-06T05:00:00.000+00:00"),
        # the clocks go back in the night: a day of 25 hours
        ("Europe/Berlin", "2026-10-25", "2026-10-24T22:00:00.000+00:00", "2026-10-25T23:00:00.000+00:00"),
        ("Europe/Berlin", "2026-03-29", "2026-03-28T23:00:00.000+00:00", "2026-03-29T22:00:00.000+00:00"),  # 23 h
    ],
)
def test_a_stores_day_is_its_own_midnight_to_midnight(zone, day, since, until):
    assert _local_day(day, zone) == (since, until)


def _decision(decision_id: str, at: str) -> DecisionRecord:
    return DecisionRecord(
        decision_id, at, True, "screen-a", "entrance", None, "coffee", ["coffee"], {"coffee": 1.0}, "test",
        arm="anonymous", intended_offer_id="coffee",
    )  # fmt: skip


@pytest.mark.parametrize("zone", ["America/New_York", "Europe/Berlin"])
def test_the_report_and_the_dashboard_count_the_stores_today(tmp_path, issuer, zone):
    """Decisions just before and after the store's midnight, late in the evening when UTC is already tomorrow (or
    still yesterday): `--day` and the dashboard's today hold exactly those of the store's day."""
    since, until = _local_day("2026-12-05", zone)
    start, end = datetime.fromisoformat(since), datetime.fromisoformat(until)
    moments = {
        "before": start.replace(microsecond=0).timestamp() - 60,  # a minute before the store's day
        "first": start.timestamp() + 60,
        "late": end.timestamp() - 600,  # the evening: in a UTC−5 store the UTC date has turned
        "after": end.timestamp() + 60,
    }
    clock = SetClock(end.timestamp() - 300)  # 23:55 in the store
    agent = Agent(surfaces_settings(tmp_path, issuer, timezone=zone), clock)
    for name, unix in moments.items():
        at = datetime.fromtimestamp(unix, UTC).isoformat(timespec="milliseconds")
        agent.store.decisions.record(_decision(name, at))
    shown = report.anonymous(agent.store, since, until)  # offers for anyone: counted apart, per decision
    assert sum(a.decisions for a in shown) == 2  # "first" and "late"
    agent.store.db.execute("DELETE FROM decisions WHERE decision_id = 'after'")  # not yet made at 23:55
    assert agent.dashboard.snapshot()["today"]["decisions"] == 2  # "before" was yesterday
    agent.store.decisions.record(_decision("after", datetime.fromtimestamp(moments["after"], UTC).isoformat()))
    clock.t = 420  # 00:02 the next day: a new today
    assert agent.dashboard.snapshot()["today"]["decisions"] == 1
