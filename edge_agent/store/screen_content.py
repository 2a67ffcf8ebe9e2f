"""The screens' playlists, campaigns and layouts as the offer bundle carries them (section `screens`): marketing
sells and schedules screen time centrally, and the bundle brings it to every store. Stored with the bundle, in its
transaction; while a bundle carries them they take the place of the config's (`[[surfaces.playlists]]`, …)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from sqlite_utils import Database

from ..config import Campaign, Layout, Playlist


class ScreenContent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    playlists: list[Playlist] = Field(default_factory=list, max_length=1000)
    campaigns: list[Campaign] = Field(default_factory=list, max_length=1000)
    layouts: list[Layout] = Field(default_factory=list, max_length=100)


class ScreenContentStore:
    def __init__(self, db: Database):
        self._db = db

    def replace(self, content: ScreenContent | None, version: int) -> None:
        """The bundle's content (inside the bundle's transaction); None: the bundle carries none, the config's
        playlists apply again."""
        self._db.execute("DELETE FROM screen_content")
        if content is not None:
            self._db.execute(
                "INSERT INTO screen_content (id, version, content) VALUES (1, ?, ?)",
                [version, content.model_dump_json()],
            )

    def get(self) -> ScreenContent | None:
        row = self._db.execute("SELECT content FROM screen_content").fetchone()
        return None if row is None else ScreenContent.model_validate_json(row[0], strict=False)
