"""Each touchpoint's pairing key: what a screen shows it is that touchpoint's screen with."""

from __future__ import annotations

import hmac
import secrets

from sqlite_utils import Database


class ScreenKeys:
    def __init__(self, db: Database):
        self._db = db

    def key(self, touchpoint: str) -> str:
        """The touchpoint's key, made (and kept) the first time it is asked for; a read after that (the
        dashboard asks on every refresh)."""
        found = self._stored(touchpoint)
        if found is not None:
            return found
        with self._db.atomic():
            self._db.execute(
                "INSERT OR IGNORE INTO screen_keys (touchpoint, key) VALUES (?, ?)",
                [touchpoint, secrets.token_urlsafe(18)],
            )
        made = self._stored(touchpoint)
        assert made is not None
        return made

    def check(self, touchpoint: str, key: object) -> bool:
        stored = self._stored(touchpoint)
        return isinstance(key, str) and stored is not None and hmac.compare_digest(key.encode(), stored.encode())

    def _stored(self, touchpoint: str) -> str | None:
        row = self._db.execute("SELECT key FROM screen_keys WHERE touchpoint = ?", [touchpoint]).fetchone()
        return None if row is None else str(row[0])
