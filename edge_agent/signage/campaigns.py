"""A screen's loop from its playlist's items and the campaigns they belong to: each running campaign gets its
share of voice — its share of the loop's seconds on screen — and the store's own items (no campaign, or a
campaign without a share) fill the rest. Pure, so a simulated day can be played against it.

Which campaigns run: those whose dates hold the store's local date, whose daypart (days, from_time–until) holds
its local time, and which name the screen (or no screen). When their shares add up to more than the whole loop,
the higher `priority` is served first and the last one served gets what is left. With no store items, the
campaigns' shares are scaled up to fill the loop; with nothing running at all, the loop is the store's idle list.

The loop is built by airtime (deficit round robin): the next item always comes from the group furthest behind
its share so far, and items of a group take turns. Over LOOP_S of airtime each group is within one item of its
share; the screen repeats the loop, so the shares hold over a day.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from ..config import Campaign
from .playlists import WEEKDAYS

LOOP_S = 1800.0  # the loop's airtime: a 15 s item is 0.8 % of it
HOUSE = ""  # the group of the store's own items


def running(campaigns: Iterable[Campaign], touchpoint: str, local: datetime) -> dict[str, Campaign]:
    """The campaigns that run on this screen at this local time, by id."""
    day, now, today = WEEKDAYS[local.weekday()], f"{local.hour:02d}:{local.minute:02d}", local.date()
    return {
        c.id: c
        for c in campaigns
        if (not c.touchpoints or touchpoint in c.touchpoints)
        and (c.start is None or c.start <= today)
        and (c.end is None or today <= c.end)
        and day in c.days
        and c.from_time <= now < c.until
    }


def shares(groups: Iterable[str], campaigns: dict[str, Campaign]) -> dict[str, float]:
    """Each group's share of the loop: campaigns by priority up to the whole, the store's items the rest."""
    groups = set(groups)
    out: dict[str, float] = {}
    left = 1.0
    for c in sorted((campaigns[g] for g in groups if g != HOUSE), key=lambda c: (-c.priority, c.id)):
        if c.share is not None:
            out[c.id] = min(c.share, left)
            left -= out[c.id]
    if HOUSE in groups:
        out[HOUSE] = left
    elif out and sum(out.values()) > 0:
        total = sum(out.values())
        out = {g: s / total for g, s in out.items()}  # nothing of the store's own: the campaigns fill the loop
    return {g: s for g, s in out.items() if s > 0}


def loop(
    items: Sequence[dict[str, Any]], campaigns: dict[str, Campaign], loop_s: float = LOOP_S
) -> list[dict[str, Any]]:
    """The loop a screen plays: `items` (each with its `campaign` and `duration_s`) of the running campaigns and
    the store's own, in an order that gives each its share of airtime."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        campaign = item.get("campaign")
        if campaign is None or (campaign in campaigns and campaigns[campaign].share is None):
            groups.setdefault(HOUSE, []).append(item)
        elif campaign in campaigns:
            groups.setdefault(campaign, []).append(item)
    share = shares(groups, campaigns)
    if not share:
        return []
    aired = dict.fromkeys(share, 0.0)
    turn = dict.fromkeys(share, 0)
    out: list[dict[str, Any]] = []
    elapsed = 0.0
    while elapsed < loop_s:
        group = max(share, key=lambda g: (share[g] * elapsed - aired[g], share[g], g))
        item = groups[group][turn[group] % len(groups[group])]
        turn[group] += 1
        seconds = float(item["duration_s"])
        aired[group] += seconds
        elapsed += seconds
        out.append(item)
    return out
