"""The images and videos an offer bundle names: url, expected sha256, type and size, and of a video its codec,
frame size and duration; `fetched_at` once on disk."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlite_utils import Database

VideoCodec = Literal["h264", "vp8", "vp9", "av1", "hevc"]
VIDEO_FIELDS = ("codec", "width", "height", "duration_s")


class AssetRef(BaseModel):
    """One asset as a bundle carries it (bundle section `assets`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: Annotated[str, Field(min_length=1, max_length=2000, pattern=r"^https?://")]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    content_type: Annotated[str, Field(pattern=r"^(image/(png|jpeg|webp|gif|svg\+xml)|video/(mp4|webm))$")]
    size: Annotated[int, Field(ge=0, le=4 * 1024 * 1024 * 1024)]
    codec: VideoCodec | None = Field(default=None, description="a video's codec")
    width: Annotated[int, Field(ge=1, le=16384)] | None = Field(default=None, description="a video's frame width")
    height: Annotated[int, Field(ge=1, le=16384)] | None = Field(default=None, description="and height (pixels)")
    duration_s: Annotated[float, Field(gt=0, le=86_400)] | None = Field(default=None, description="a video's length")

    @property
    def is_video(self) -> bool:
        return self.content_type.startswith("video/")

    @model_validator(mode="after")
    def _video_fields(self) -> Self:
        given = [name for name in VIDEO_FIELDS if getattr(self, name) is not None]
        if self.is_video and len(given) != len(VIDEO_FIELDS):
            missing = ", ".join(name for name in VIDEO_FIELDS if name not in given)
            raise ValueError(f"a video names its {', '.join(VIDEO_FIELDS)} (missing: {missing})")
        if not self.is_video and given:
            raise ValueError(f"{', '.join(given)}: only a video (video/mp4, video/webm) has these")
        return self


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
                    "INSERT OR IGNORE INTO assets (url, sha256, content_type, size, codec, width, height, duration_s)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [a.url, a.sha256, a.content_type, a.size, a.codec, a.width, a.height, a.duration_s],
                )

    def all(self) -> list[tuple[AssetRef, bool]]:
        rows = self._db.execute(f"SELECT {_COLUMNS}, fetched_at FROM assets").fetchall()
        return [(_asset(r), r[-1] is not None) for r in rows]

    def mark_fetched(self, url: str, at: str | None) -> None:
        """Record the file as verified on disk (None: it is not, fetch it again)."""
        with self._db.atomic():
            self._db.execute("UPDATE assets SET fetched_at = ? WHERE url = ?", [at, url])

    def local(self) -> dict[str, AssetRef]:
        """url → asset for every asset verified on disk."""
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM assets WHERE fetched_at IS NOT NULL").fetchall()
        return {r[0]: _asset(r) for r in rows}


_COLUMNS = "url, sha256, content_type, size, codec, width, height, duration_s"


def _asset(row: tuple[object, ...]) -> AssetRef:
    return AssetRef.model_validate(dict(zip(_COLUMNS.split(", "), row, strict=False)))
