"""The images an offer bundle names: url, expected sha256, type and size; `fetched_at` once on disk."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from sqlite_utils import Database


class AssetRef(BaseModel):
    """One asset as a bundle carries it (bundle section `assets`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: Annotated[str, Field(min_length=1, max_length=2000, pattern=r"^https?://")]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    content_type: Annotated[str, Field(pattern=r"^image/(png|jpeg|webp|gif|svg\+xml)$")]
    size: Annotated[int, Field(ge=0, le=512 * 1024 * 1024)]


class AssetIndex:
    def __init__(self, db: Database):
        self._db = db

    def replace_all(self, assets: list[AssetRef]) -> None:
        """Swap the set (inside the bundle's transaction); assets already fetched with the same hash stay so."""
        with self._db.atomic():
            keep = {a.url: a for a in assets}
            for url, sha in self._db.execute("SELECT url, sha256 FROM assets").fetchall():
                if url not in keep or keep[url].sha256 != sha:
                    self._db.execute("DELETE FROM assets WHERE url = ?", [url])
            for a in assets:
                self._db.execute(
                    "INSERT OR IGNORE INTO assets (url, sha256, content_type, size) VALUES (?, ?, ?, ?)",
                    [a.url, a.sha256, a.content_type, a.size],
                )

    def all(self) -> list[tuple[AssetRef, bool]]:
        rows = self._db.execute("SELECT url, sha256, content_type, size, fetched_at FROM assets").fetchall()
        return [(AssetRef(url=r[0], sha256=r[1], content_type=r[2], size=r[3]), r[4] is not None) for r in rows]

    def mark_fetched(self, url: str, at: str | None) -> None:
        """Record the file as verified on disk (None: it is not, fetch it again)."""
        with self._db.atomic():
            self._db.execute("UPDATE assets SET fetched_at = ? WHERE url = ?", [at, url])

    def local(self) -> dict[str, AssetRef]:
        """url → asset for every asset verified on disk."""
        rows = self._db.execute(
            "SELECT url, sha256, content_type, size FROM assets WHERE fetched_at IS NOT NULL"
        ).fetchall()
        return {r[0]: AssetRef(url=r[0], sha256=r[1], content_type=r[2], size=r[3]) for r in rows}
