"""Conversions: a purchase attributed to a decision. Each is written with its outbox row and is never
dropped from the outbox; a decision converts at most once."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sqlite_utils import Database

from .outbox import DropClass, Outbox


@dataclass(frozen=True)
class ConversionRecord:
    conversion_id: str
    decision_id: str
    impression_id: str | None
    customer_ref: str
    offer_id: str
    arm: str
    txn_id: str
    sku: str
    via: str
    at: str
    at_unix: float


class ConversionLog:
    def __init__(self, db: Database, outbox: Outbox):
        self._db = db
        self._outbox = outbox

    def record(self, c: ConversionRecord) -> bool:
        """False if the decision had already converted."""
        row = asdict(c)
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
                payload={k: v for k, v in row.items() if k not in ("at", "at_unix")},
                created_at=c.at,
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
        return self._db.execute("SELECT count(*) FROM conversions").fetchone()[0]
