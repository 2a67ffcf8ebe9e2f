"""Erasure of one customer: every row of theirs in every table, then a receipt for the cloud.

The tables are found by looking at the schema (every table with a `customer_ref` column), so a table added
by a later migration is covered without a change here. Rows are overwritten on disk (`secure_delete`)
and the write-ahead log is checkpointed and truncated so no old copy of a page stays behind in it.
"""

from __future__ import annotations

from typing import Any

from sqlite_utils import Database

from .outbox import DropClass, Outbox

RECEIPT_STREAM = "ack"


def customer_tables(db: Database) -> list[str]:
    """Every table with a `customer_ref` column; `customers` last, so cascades do not hide counts."""
    names = [
        r[0]
        for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]
    found = [n for n in names if any(col[1] == "customer_ref" for col in db.execute(f'PRAGMA table_info("{n}")'))]
    return sorted(found, key=lambda n: n == "customers")


def erase_customer(
    db: Database, outbox: Outbox, customer_ref: str, receipt: dict[str, Any], now: str
) -> dict[str, int]:
    """Delete the customer everywhere and queue the receipt (never dropped) in the same transaction.

    `receipt` carries what the cloud asked to see again (command id, consent epoch); the rows deleted per
    table are added. Returns those counts.
    """
    with db.atomic():
        deleted = {
            table: db.execute(f'DELETE FROM "{table}" WHERE customer_ref = ?', [customer_ref]).rowcount
            for table in customer_tables(db)
        }
        outbox.add(
            stream=RECEIPT_STREAM,
            kind="erasure_receipt",
            payload={**receipt, "customer_ref": customer_ref, "erased_at": now, "deleted": deleted},
            created_at=now,
            drop_class=DropClass.NEVER,
        )
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return deleted
