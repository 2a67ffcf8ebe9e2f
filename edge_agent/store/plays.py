"""Proof of play for every playlist item: each play of an item on a screen is one row, and its outbox message is
written in the same transaction; a play acknowledged twice (a screen resending after a reconnect) is recorded once.
Aggregated per hour, campaign and screen for the dashboard and the report."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlite_utils import Database

from .outbox import DropClass, Outbox


@dataclass(frozen=True)
class PlayRecord:
    play_id: str
    touchpoint: str
    item_id: str
    campaign: str | None
    started_at: str  # UTC, ISO 8601, as the screen saw it start
    ended_at: str
    duration_s: float
    completed: bool  # False: cut short (an offer interrupted it, the loop changed, the page went away)
    ntp_synced: bool  # whether this host's clock was synchronised when the play was recorded
    people: int | None  # people in front of the screen while it played, where a camera watches its zone
    recorded_at: str


class PlayLog:
    def __init__(self, db: Database, outbox: Outbox):
        self._db = db
        self._outbox = outbox

    def record(self, play: PlayRecord) -> bool:
        """Store the play once, with its outbox message; False if it was already recorded."""
        row = asdict(play)
        with self._db.atomic():
            cur = self._db.execute(
                f"INSERT OR IGNORE INTO plays ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})",
                [int(v) if isinstance(v, bool) else v for v in row.values()],
            )
            if cur.rowcount != 1:
                return False
            self._outbox.add(
                stream="events",
                kind="play",
                payload={k: v for k, v in row.items() if k != "recorded_at"},
                created_at=play.recorded_at,
                drop_class=DropClass.EVENT,
            )
        return True

    def count(self) -> int:
        n: int = self._db.execute("SELECT count(*) FROM plays").fetchone()[0]
        return n

    def last(self, touchpoint: str) -> dict[str, Any] | None:
        """The screen's latest recorded play: item, campaign, when it ended, completed."""
        row = self._db.execute(
            "SELECT item_id, campaign, ended_at, completed FROM plays WHERE touchpoint = ?"
            " ORDER BY ended_at DESC LIMIT 1",
            [touchpoint],
        ).fetchone()
        if row is None:
            return None
        return {"item": row[0], "campaign": row[1], "ended_at": row[2], "completed": bool(row[3])}

    def hourly(self, since: str, until: str | None = None) -> list[dict[str, Any]]:
        """Per hour (UTC, of the play's start), campaign and screen: plays, completed plays, seconds on screen and
        people reached (the sum over plays where a camera watched)."""
        rows = self._db.execute(
            "SELECT substr(started_at, 1, 13) AS hour, coalesce(campaign, '') AS campaign, touchpoint, count(*),"
            " sum(completed), round(sum(duration_s), 1), sum(people) FROM plays"
            " WHERE started_at >= ? AND started_at < ? GROUP BY hour, campaign, touchpoint ORDER BY hour, campaign,"
            " touchpoint",
            [since, until or "9999"],
        ).fetchall()
        return [
            {
                "hour": f"{r[0]}:00Z",
                "campaign": r[1] or None,
                "touchpoint": r[2],
                "plays": r[3],
                "completed": r[4],
                "seconds": r[5],
                "people_reached": r[6],
            }
            for r in rows
        ]
