"""What a screen's player can decode (`firmware_configs/screens/*.toml`): the codecs and the largest frame it
plays smoothly. A video item a screen cannot play is refused with the reason, before it would have shown a black
or stuttering screen (`video.py`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from .. import profiles
from ..store.assets import VideoCodec

DEFAULT = "pi4-chromium"  # a screen with no profile is taken for the most limited player the agent runs on


class DecodePart(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    codecs: list[VideoCodec] = Field(min_length=1, description="the video codecs it plays smoothly")
    max_width: Annotated[int, Field(ge=1, le=16384)] = Field(
        description="the widest frame it plays smoothly (landscape; a frame on end, for a portrait screen, too)"
    )
    max_height: Annotated[int, Field(ge=1, le=16384)] = Field(description="the tallest frame it plays smoothly")


class ScreenProfile(BaseModel):
    """A screen player's limits; the schema of firmware_configs/screens/*.toml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["screen"] = "screen"
    name: str = Field(min_length=1)
    decode: DecodePart


def load(name: str | Path) -> ScreenProfile:
    """A profile by file path or by name in `firmware_configs/screens/`."""
    return profiles.load(name, ScreenProfile, "screens")
