"""Idle playlists by time of day, end to end over the screen WebSocket: a screen is sent the playlist in
force when it connects, and the new one when the schedule turns."""

import asyncio
from datetime import UTC, datetime

from edge_agent.app import Agent
from edge_agent.clock import Clock
from edge_agent.events import WallTime
from simulators.screen import ScreenPlayer
from tests.surfaces import surfaces_settings


class SetClock(Clock):
    """Wall time the test sets; monotonic time stays real."""

    def __init__(self, at: datetime):
        super().__init__()
        self.at = at

    def wall(self) -> WallTime:
        return WallTime(at=self.at, ntp_synced=True)


async def test_a_screen_plays_the_playlist_for_the_stores_local_time(tmp_path, issuer):
    settings = surfaces_settings(
        tmp_path,
        issuer,
        timezone="Asia/Tehran",  # UTC+3:30
        playlists=[
            {
                "id": "breakfast",
                "start": "07:00",
                "end": "11:00",
                "items": [{"title": "Fresh bread from 7", "transition": "slide"}],
            },
            {"id": "evening", "start": "17:00", "touchpoints": ["screen-b"], "items": [{"title": "Dinner ideas"}]},
        ],
    )
    clock = SetClock(datetime(2026, 11, 23, 5, 0, tzinfo=UTC))  # 08:30 in the store
    agent = Agent(settings, clock=clock)  # no offers: the screens play their idle content
    await agent.start()
    player = ScreenPlayer(agent.url, "screen-b")
    task = asyncio.create_task(player.run())
    try:
        hello = await player.next_frame("hello", timeout=10)
        assert [(i["title"], i["transition"]) for i in hello["idle"]] == [("Fresh bread from 7", "slide")]
        agent.hub.refresh_playlists()
        clock.at = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)  # 17:30 in the store
        agent.hub.refresh_playlists()
        turned = await player.next_frame("playlist", timeout=10)
        assert [i["title"] for i in turned["idle"]] == ["Dinner ideas"]
        clock.at = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # 13:30: no playlist, the default idle list
        agent.hub.refresh_playlists()
        default = await player.next_frame("playlist", timeout=10)
        assert [i["title"] for i in default["idle"]] == [i.title for i in settings.signage.idle]
    finally:
        task.cancel()
        await agent.stop()
