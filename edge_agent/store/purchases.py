"""Till transactions: every transaction id once (identified or not), and the lines of consenting customers,
which make their profile (recent purchases, affinities, replenishment cycles)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlite_utils import Database

from ..events import Purchase


@dataclass(frozen=True)
class Bought:
    sku: str
    qty: int
    at_unix: float


class PurchaseLedger:
    def __init__(self, db: Database):
        self._db = db

    def record(self, purchase: Purchase) -> bool:
        """Store the transaction once; False if this transaction id was seen before (a repeated receipt)."""
        at, at_unix = purchase.wall.iso(), purchase.wall.at.timestamp()
        with self._db.atomic():
            cur = self._db.execute(
                "INSERT OR IGNORE INTO pos_transactions (txn_id, register, at, lines) VALUES (?, ?, ?, ?)",
                [purchase.txn_id, purchase.register, at, len(purchase.lines)],
            )
            if cur.rowcount != 1:
                return False
            if purchase.customer_ref is not None:
                self._db.conn.executemany(
                    "INSERT INTO purchases (customer_ref, txn_id, at, at_unix, sku, qty, price_cents)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (purchase.customer_ref, purchase.txn_id, at, at_unix, line.sku, line.qty, line.price_cents)
                        for line in purchase.lines
                    ],
                )
        return True

    def history(self, customer_ref: str, since_unix: float) -> list[Bought]:
        rows = self._db.execute(
            "SELECT sku, qty, at_unix FROM purchases WHERE customer_ref = ? AND at_unix >= ? ORDER BY at_unix",
            [customer_ref, since_unix],
        ).fetchall()
        return [Bought(*r) for r in rows]

    def transactions(self) -> int:
        n: int = self._db.execute("SELECT count(*) FROM pos_transactions").fetchone()[0]
        return n
