"""Check-in token ids already used, so a token can be used once however often it is replayed."""

from __future__ import annotations

from sqlite_utils import Database


class NonceLedger:
    def __init__(self, db: Database):
        self._db = db

    def seen(self, nonce: str) -> bool:
        return self._db.execute("SELECT 1 FROM checkin_nonces WHERE nonce = ?", [nonce]).fetchone() is not None

    def claim(self, nonce: str, expires_unix: float) -> bool:
        """Record the nonce; False if it was already there (a replay)."""
        with self._db.atomic():
            cur = self._db.execute(
                "INSERT OR IGNORE INTO checkin_nonces (nonce, expires_unix) VALUES (?, ?)",
                [nonce, expires_unix],
            )
        return cur.rowcount == 1

    def prune(self, now_unix: float) -> int:
        with self._db.atomic():
            return self._db.execute("DELETE FROM checkin_nonces WHERE expires_unix < ?", [now_unix]).rowcount
