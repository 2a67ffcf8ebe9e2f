"""Each touchpoint's pairing key: what a screen shows it is that touchpoint's screen with."""

from __future__ import annotations

import hmac
import secrets

from sqlite_utils import Database


class ScreenKeys:
    def __init__(self, db: Database):
        self._db = db

    def key(self, touchpoint: str) -> str:
        """The touchpoint's key, made (and kept) the first time it is asked for."""
        with self._db.atomic():
            self._db.execute(
                "INSERT OR IGNORE INTO screen_keys (touchpoint, key) VALUES (?, ?)",
                [touchpoint, secrets.token_urlsafe(18)],
            )
            found: str = self._db.execute("SELECT key FROM screen_keys WHERE touchpoint = ?", [touchpoint]).fetchone()[
                0
            ]
        return found

    def check(self, touchpoint: str, key: object) -> bool:
        row = self._db.execute("SELECT key FROM screen_keys WHERE touchpoint = ?", [touchpoint]).fetchone()
        return isinstance(key, str) and row is not None and hmac.compare_digest(key.encode(), row[0].encode())
