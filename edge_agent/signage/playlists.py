"""Which idle playlist a screen plays now: the first configured playlist whose days and hours hold the
store's local time, else the default `signage.idle` list. Each item carries its id (its own, else its place) and
its campaign, which its plays are recorded under. Pure, so schedules are easy to test."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ..config import IdleItem, Playlist, SignageSettings

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
    playlists: list[Playlist], default: SignageSettings, touchpoint: str, local: datetime
) -> list[dict[str, Any]]:
    playlist = active(playlists, touchpoint, local)
    items: Sequence[IdleItem] = default.idle if playlist is None else playlist.items
    ids = default.item_ids() if playlist is None else playlist.item_ids()
    return [{**item.model_dump(), "id": item_id} for item, item_id in zip(items, ids, strict=True)]


def campaigns(playlists: list[Playlist], default: SignageSettings, touchpoint: str) -> dict[str, str | None]:
    """Every item a screen may play, at any hour: item id → its campaign (None for none)."""
    out: dict[str, str | None] = dict.fromkeys(default.item_ids())
    for playlist in playlists:
        if not playlist.touchpoints or touchpoint in playlist.touchpoints:
            out |= {item_id: item.campaign for item, item_id in zip(playlist.items, playlist.item_ids(), strict=True)}
    return out
