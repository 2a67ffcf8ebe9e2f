"""Campaigns on the screens: which run when (dates, dayparts, screens), how shares of voice are served when they
add up to more than the loop, and a simulated day on a screen whose airtime per campaign is within 2 % of the
configured shares."""

from collections import defaultdict
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from edge_agent.app import Agent
from edge_agent.clock import SetClock
from edge_agent.config import Campaign, ConfigError
from edge_agent.signage import campaigns
from tests.surfaces import surfaces_settings

BERLIN = ZoneInfo("Europe/Berlin")
CAMPAIGNS = [
    {"id": "brand-a", "share": 0.30},
    {"id": "brand-b", "share": 0.20, "priority": 1},
    {"id": "lunch", "share": 0.25, "from_time": "12:00", "until": "14:00"},
    {"id": "december", "share": 0.10, "start": "2026-12-01", "end": "2026-12-24", "days": ["sat", "sun"]},
    {"id": "store", "name": "our own news"},  # no share: house content
]
ITEMS = [
    {"id": "a-short", "title": "A", "campaign": "brand-a", "duration_s": 10},
    {"id": "a-long", "title": "A", "campaign": "brand-a", "duration_s": 20},
    {"id": "b-clip", "title": "B", "campaign": "brand-b", "duration_s": 15},
    {"id": "lunch-deal", "title": "Lunch", "campaign": "lunch", "duration_s": 12},
    {"id": "xmas", "title": "Advent", "campaign": "december", "duration_s": 9},
    {"id": "bread", "title": "Bread", "duration_s": 8},
    {"id": "news", "title": "News", "campaign": "store", "duration_s": 14},
]


def _campaigns() -> list[Campaign]:
    return [Campaign.model_validate(c) for c in CAMPAIGNS]


def test_a_campaign_runs_between_its_dates_in_its_daypart_on_its_screens():
    cs = [*_campaigns(), Campaign(id="door-only", share=0.1, touchpoints=["screen-a"])]
    saturday_noon = datetime(2026, 12, 5, 12, 30, tzinfo=BERLIN)
    monday_nine = datetime(2026, 12, 7, 9, 0, tzinfo=BERLIN)
    christmas_saturday = datetime(2026, 12, 26, 12, 30, tzinfo=BERLIN)
    assert set(campaigns.running(cs, "screen-a", saturday_noon)) == {
        "brand-a", "brand-b", "lunch", "december", "store", "door-only",
    }  # fmt: skip
    assert set(campaigns.running(cs, "screen-b", monday_nine)) == {"brand-a", "brand-b", "store"}
    assert "december" not in campaigns.running(cs, "screen-b", christmas_saturday)  # after its last day


def test_shares_that_add_up_to_more_than_the_loop_are_served_by_priority():
    big = {c.id: c for c in [Campaign(id="x", share=0.7), Campaign(id="y", share=0.6, priority=2)]}
    assert campaigns.shares(["x", "y", campaigns.HOUSE], big) == {"y": 0.6, "x": pytest.approx(0.4)}
    small = {c.id: c for c in [Campaign(id="x", share=0.3), Campaign(id="y", share=0.1)]}
    assert campaigns.shares(["x", "y"], small) == {"x": pytest.approx(0.75), "y": pytest.approx(0.25)}  # no house


def test_over_a_simulated_day_each_campaign_gets_its_share_of_airtime_within_two_percent(tmp_path, issuer):
    """A screen plays its loop from 07:00 to 22:00 on a Saturday in December, the agent recomputing the loop as
    the schedule turns (lunch from 12:00 to 14:00), as the hub does; seconds on screen are tallied per campaign,
    apart for the lunch daypart."""
    playlist = {"id": "day", "items": ITEMS}
    settings = surfaces_settings(tmp_path, issuer, playlists=[playlist], campaigns=CAMPAIGNS, timezone="Europe/Berlin")
    start = datetime(2026, 12, 5, 7, 0, tzinfo=BERLIN)
    clock = SetClock(start.timestamp())
    agent = Agent(settings, clock)
    aired: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    now, end = start, datetime(2026, 12, 5, 22, 0, tzinfo=BERLIN)
    loop, index = None, 0
    while now < end:
        clock.t = now.timestamp() - clock.start_unix  # the hub's clock
        current = agent.hub.idle_items("screen-b")
        if current != loop:  # a new loop is sent: the screen starts it from its first item
            loop, index = current, 0
        item = loop[index % len(loop)]
        index += 1
        window = "lunch" if 12 <= now.hour < 14 else "rest"
        aired[window][item.get("campaign") or "store"] += item["duration_s"]
        now += timedelta(seconds=item["duration_s"])
    for window, expected in (
        ("rest", {"brand-b": 0.20, "brand-a": 0.30, "december": 0.10, "store": 0.40}),
        ("lunch", {"brand-b": 0.20, "brand-a": 0.30, "lunch": 0.25, "december": 0.10, "store": 0.15}),
    ):
        total = sum(aired[window].values())
        got = {c: s / total for c, s in aired[window].items()}
        assert set(got) == set(expected), (window, got)
        for campaign, share in expected.items():
            assert abs(got[campaign] - share) <= 0.02, (window, campaign, got[campaign], share)


def test_nothing_running_leaves_the_store_idle_list():
    loop = campaigns.loop([{"id": "a", "campaign": "brand-a", "duration_s": 10}], {})  # brand-a is not running now
    assert loop == []


def test_a_campaign_config_is_checked_with_what_is_wrong(tmp_path, issuer):
    bad = [
        {"id": "x", "share": 0.5, "from_time": "14:00", "until": "12:00"},
        {"id": "x", "start": "2026-12-10", "end": "2026-12-01", "touchpoints": ["nowhere"]},
    ]
    items = [{"title": "Y", "campaign": "y"}]
    with pytest.raises(ConfigError) as refused:
        surfaces_settings(tmp_path, issuer, campaigns=bad, playlists=[{"id": "p", "items": items}])
    message = str(refused.value)
    for expected in (
        "surfaces.campaigns[0].until: got '12:00', expected a time after from_time",
        "surfaces.campaigns[1].id: got 'x', expected an id not used before",
        "surfaces.campaigns[1].end: got '2026-12-01', expected a date from start on",
        "surfaces.campaigns[1].touchpoints[0]: got 'nowhere', expected a touchpoint id",
        "surfaces.playlists[0].items[0].campaign: got 'y', expected a campaign of [[surfaces.campaigns]]: x, x",
    ):
        assert expected in message, message
    assert date(2026, 12, 1) == Campaign.model_validate({"id": "d", "start": "2026-12-01"}).start
