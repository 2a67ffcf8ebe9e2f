"""Conversions: a purchase attributed to a decision. Each is written with its outbox row and is never
dropped from the outbox; a decision converts at most once."""

from __future__ import annotations

from dataclasses import asdict

from sqlite_utils import Database

from ..events import Conversion
from .outbox import DropClass, Outbox


class ConversionLog:
    def __init__(self, db: Database, outbox: Outbox):
        self._db = db
        self._outbox = outbox

    def record(self, c: Conversion) -> bool:
        """False if the decision had already converted."""
        payload = {k: v for k, v in asdict(c).items() if k != "wall"}
        row = {**payload, "at": c.wall.iso(), "at_unix": c.wall.at.timestamp()}
        with self._db.atomic():
            cur = self._db.execute(
                f"INSERT OR IGNORE INTO conversions ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                list(row.values()),
            )
            if cur.rowcount != 1:
                return False
            self._outbox.add(
                stream="events",
                kind="conversion",
                payload=payload,
                created_at=row["at"],
                drop_class=DropClass.NEVER,
                customer_ref=c.customer_ref,
            )
        return True

    def latest(self, since_unix: float) -> list[tuple[str, str, float]]:
        """(customer_ref, offer_id, at_unix) of conversions since then: the cool-downs to rebuild on start."""
        return self._db.execute(
            "SELECT customer_ref, offer_id, max(at_unix) FROM conversions WHERE at_unix >= ?"
            " GROUP BY customer_ref, offer_id",
            [since_unix],
        ).fetchall()

    def count(self) -> int:
        n: int = self._db.execute("SELECT count(*) FROM conversions").fetchone()[0]
        return n
