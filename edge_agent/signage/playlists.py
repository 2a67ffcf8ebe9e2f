"""Which idle playlist a screen plays now: the first configured playlist whose days and hours hold the
store's local time, else the default `signage.idle` list. Pure, so schedules are easy to test."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..config import IdleItem, Playlist

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def active(playlists: list[Playlist], touchpoint: str, local: datetime) -> Playlist | None:
    day = WEEKDAYS[local.weekday()]
    now = f"{local.hour:02d}:{local.minute:02d}"
    for playlist in playlists:
        if playlist.touchpoints and touchpoint not in playlist.touchpoints:
            continue
        if day in playlist.days and playlist.start <= now < playlist.end:
            return playlist
    return None


def items_for(
    playlists: list[Playlist], default: list[IdleItem], touchpoint: str, local: datetime
) -> list[dict[str, Any]]:
    playlist = active(playlists, touchpoint, local)
    return [item.model_dump() for item in (playlist.items if playlist else default)]
