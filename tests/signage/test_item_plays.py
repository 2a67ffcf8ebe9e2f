"""Proof of play for every playlist item: each play a screen reports is one record with its outbox message, under
the item's campaign, with the people a camera counted in front of the screen; bad reports are refused with the
reason; a report sent again is recorded once; the hour's totals per campaign and screen."""

import json
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from edge_agent.app import Agent
from edge_agent.bus import Bus
from edge_agent.clock import SetClock, WallTime
from edge_agent.config import from_dict
from edge_agent.decide import report
from edge_agent.events import Crowd
from edge_agent.signage.audience import Audience
from edge_agent.signage.item_plays import ItemPlays, PlayRefused
from edge_agent.signage.schedule import Schedule
from edge_agent.store import open_store
from edge_agent.store.decisions import DecisionRecord
from tests.factories import offer, paired_screen, seed, wait_for
from tests.surfaces import surfaces_settings

T0 = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)


def _settings():
    return from_dict(
        {
            "store": {"id": "s1", "chain_id": "c", "device_id": "d"},
            "sources": {"checkin": False, "ble": False},
            "zones": [{"id": "entrance"}, {"id": "bakery"}],
            "touchpoints": [
                {"id": "door", "kind": "screen", "zone": "entrance"},
                {"id": "oven", "kind": "screen", "zone": "bakery"},
            ],
            "surfaces": {
                "campaigns": [{"id": "brand-a", "share": 0.5}, {"id": "brand-b", "share": 0.2}],
                "playlists": [
                    {
                        "id": "morning",
                        "touchpoints": ["door"],
                        "items": [
                            {"title": "Coffee", "campaign": "brand-a"},
                            {"id": "bread-loop", "title": "Bread", "campaign": "brand-b"},
                            {"title": "Welcome"},
                        ],
                    }
                ],
            },
            "vision": {"cameras": [{"id": "cam-door", "source": 0, "zone": "entrance"}]},
        }
    )


def _play(play_id="p1", item="morning.1", start=T0, seconds=8.0, completed=True):
    return {
        "type": "played",
        "play_id": play_id,
        "item": item,
        "started_at": start.isoformat().replace("+00:00", "Z"),
        "ended_at": (start + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z"),
        "completed": completed,
    }


@pytest.fixture
def plays(tmp_path):
    store = open_store(tmp_path / "edge.db")
    bus = Bus()
    clock = SetClock(T0.timestamp() + 60)
    settings = _settings()
    recorder = ItemPlays(Schedule(settings, store, bus), store, Audience(settings, bus), clock)
    yield recorder, store, bus
    store.close()


def test_a_play_is_recorded_once_under_its_campaign_with_its_outbox_message(plays):
    recorder, store, _ = plays
    assert recorder.played("door", _play()) is True
    assert recorder.played("door", _play()) is False  # the screen sent it again after a reconnect
    row = store.db.execute("SELECT item_id, campaign, duration_s, completed, people FROM plays").fetchall()
    assert row == [("morning.1", "brand-a", 8.0, 1, None)]  # no camera count yet: no people figure
    (payload,) = [json.loads(r[0]) for r in store.db.execute("SELECT payload FROM outbox WHERE kind = 'play'")]
    assert payload["play_id"] == "p1" and payload["campaign"] == "brand-a" and payload["completed"] is True
    assert payload["started_at"] == "2026-12-05T10:00:00.000+00:00" and "customer_ref" not in payload
    assert recorder.recorded == 1 and recorder.duplicates == 1


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"play_id": ""}, "bad_play_id"),
        ({"item": "evening.1"}, "unknown_item"),
        ({"started_at": "10:00"}, "bad_times"),
        ({"ended_at": "2026-12-05T10:00:08"}, "bad_times"),  # no zone
        ({"ended_at": "2026-12-05T09:59:00Z"}, "bad_times"),  # before it started
        ({"completed": "yes"}, "bad_completed"),
    ],
)
def test_a_bad_play_report_is_refused_with_the_reason_and_kept_out(plays, change, code):
    recorder, store, _ = plays
    with pytest.raises(PlayRefused) as refused:
        recorder.played("door", {**_play(), **change})
    assert refused.value.code == code and recorder.rejected[code] == 1
    assert store.plays.count() == 0 and store.db.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0


def test_an_item_of_another_screens_playlist_is_not_this_screens_play(plays):
    recorder, _, _ = plays
    with pytest.raises(PlayRefused, match="in no playlist of this screen"):
        recorder.played("oven", _play(item="bread-loop"))
    assert recorder.played("oven", _play(item="idle.1")) is True  # the default idle list plays everywhere


def test_people_reached_is_the_most_a_camera_counted_while_the_item_played(plays):
    recorder, store, bus = plays

    def crowd(zone, people, at):
        bus.publish(Crowd(zone, people, 0.0, WallTime(at, True)))

    crowd("entrance", 2, T0 - timedelta(seconds=30))  # in force when the play starts
    crowd("entrance", 5, T0 + timedelta(seconds=3))
    crowd("entrance", 1, T0 + timedelta(seconds=6))
    crowd("entrance", 9, T0 + timedelta(seconds=20))  # after it ended
    crowd("bakery", 7, T0 + timedelta(seconds=1))  # another zone
    recorder.played("door", _play("p1", seconds=8))
    recorder.played("door", _play("p2", "bread-loop", start=T0 + timedelta(seconds=8), seconds=2))
    recorder.played("oven", _play("p3", "idle.1", seconds=8))  # no camera watches the bakery
    people = dict(store.db.execute("SELECT play_id, people FROM plays").fetchall())
    assert people == {"p1": 5, "p2": 1, "p3": None}


def test_the_hours_totals_per_campaign_and_screen(plays):
    recorder, store, _ = plays
    recorder.played("door", _play("a", "morning.1", T0, 8))
    recorder.played("door", _play("b", "morning.1", T0 + timedelta(minutes=5), 3, completed=False))
    recorder.played("door", _play("c", "bread-loop", T0 + timedelta(minutes=10), 8))
    recorder.played("door", _play("d", "morning.1", T0 + timedelta(hours=1), 8))
    assert store.plays.hourly(T0.isoformat()) == [
        {"hour": "2026-12-05T10:00Z", "campaign": "brand-a", "touchpoint": "door", "plays": 2, "completed": 1,
         "seconds": 11.0, "people_reached": None},
        {"hour": "2026-12-05T10:00Z", "campaign": "brand-b", "touchpoint": "door", "plays": 1, "completed": 1,
         "seconds": 8.0, "people_reached": None},
        {"hour": "2026-12-05T11:00Z", "campaign": "brand-a", "touchpoint": "door", "plays": 1, "completed": 1,
         "seconds": 8.0, "people_reached": None},
    ]  # fmt: skip
    assert store.plays.last("door") == {
        "item": "morning.1", "campaign": "brand-a", "ended_at": "2026-12-05T11:00:08.000+00:00", "completed": True,
    }  # fmt: skip


def test_item_ids_must_be_unique_across_playlists():
    data = _settings().model_dump(mode="json", exclude_defaults=True)
    data["surfaces"]["playlists"].append({"id": "later", "items": [{"id": "bread-loop", "title": "Again"}]})
    with pytest.raises(Exception, match=r"surfaces.playlists\[1\].items\[0\].id: got 'bread-loop'"):
        from_dict(data)


async def test_the_dashboard_sees_what_a_screen_plays_and_when_it_stalls(tmp_path, issuer):
    """A screen's page says which item it started; the dashboard shows it, then the screen's last play; a page
    that says nothing for longer than its longest item and a minute is stalled."""
    loop = {"id": "loop", "items": [{"id": "coffee", "title": "Coffee", "duration_s": 10}]}
    clock = SetClock(T0.timestamp())
    agent = Agent(surfaces_settings(tmp_path, issuer, playlists=[loop]), clock)
    await agent.start()
    try:
        async with aiohttp.ClientSession() as http:
            ws = await paired_screen(http, agent, "screen-b")
            await ws.send_json({"type": "playing", "item": "coffee", "started_at": "2026-12-05T10:00:00Z"})
            await wait_for(lambda: agent.hub.showing("screen-b").get("item") == "coffee", what="now playing")
            await ws.send_json(_play("p1", "coffee", T0, 10))
            frame = await ws.receive_json()
            while frame["type"] != "play_recorded":  # hello, idle, noted come first
                frame = await ws.receive_json()
            assert frame == {"type": "play_recorded", "play_id": "p1"}
            screens = {tp["id"]: tp for tp in agent.dashboard.snapshot()["touchpoints"]}
            assert screens["screen-b"]["last_play"]["item"] == "coffee" and not screens["screen-b"]["stalled"]
            clock.t += 10 + 61  # longer than its longest item and a minute, without a word from the page
            assert agent.hub.stalled("screen-b", clock.mono())
            await ws.close()
    finally:
        await agent.stop()


async def test_an_impression_records_the_people_a_camera_counted_in_front_of_its_screen(tmp_path, issuer):
    """A camera watches screen-b's zone: the offer it acknowledges records the people in front of it then, the
    number goes up with the impression, and the dashboard and the report show the people reached."""
    clock = SetClock(T0.timestamp())
    data = surfaces_settings(tmp_path, issuer).model_dump(mode="json", exclude_defaults=True)
    data["vision"] = {"cameras": [{"id": "cam-b", "source": 0, "zone": "bakery", "touchpoint": "screen-b"}]}
    agent = Agent(from_dict(data), clock)
    seed(agent, offers=[offer("croissant")], roster=[])
    agent.bus.publish(Crowd("bakery", 4, 0.0, WallTime(T0 - timedelta(seconds=5), True)))
    agent.store.decisions.record(
        DecisionRecord("show-1", T0.isoformat(), True, "screen-b", "bakery", None, "croissant", ["croissant"],
                       {"croissant": 1.0}, "test", arm="anonymous", intended_offer_id="croissant")
    )  # fmt: skip
    assert agent.proof.acknowledge("screen-b", {"show_id": "show-1", "displayed_at": "2026-12-05T10:00:01Z"})
    assert agent.store.db.execute("SELECT people FROM impressions").fetchone() == (4,)
    payload = json.loads(agent.store.db.execute("SELECT payload FROM outbox WHERE kind = 'impression'").fetchone()[0])
    assert payload["people"] == 4
    assert agent.dashboard.snapshot()["today"]["people_reached"] == 4
    (shown,) = report.anonymous(agent.store)
    assert (shown.offer_id, shown.impressions, shown.people_reached) == ("croissant", 1, 4)
