"""Ids already used (check-in tokens, cloud commands), so each is taken once however often it is replayed."""

from __future__ import annotations

from typing import Literal

from sqlite_utils import Database


class NonceLedger:
    def __init__(self, db: Database, table: Literal["checkin_nonces", "command_ids"] = "checkin_nonces"):
        self._db = db
        self._table = table

    def seen(self, nonce: str) -> bool:
        return self._db.execute(f"SELECT 1 FROM {self._table} WHERE nonce = ?", [nonce]).fetchone() is not None

    def claim(self, nonce: str, expires_unix: float) -> bool:
        """Record the nonce; False if it was already there (a replay)."""
        with self._db.atomic():
            cur = self._db.execute(
                f"INSERT OR IGNORE INTO {self._table} (nonce, expires_unix) VALUES (?, ?)",
                [nonce, expires_unix],
            )
        return cur.rowcount == 1

    def prune(self, now_unix: float) -> int:
        with self._db.atomic():
            return self._db.execute(f"DELETE FROM {self._table} WHERE expires_unix < ?", [now_unix]).rowcount
