"""A camera model and how it is mounted (`firmware_configs/cameras/`): what the vision source may ask of it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ...config import Section
from ...profiles import Name


class CameraCapture(Section):
    width: Annotated[int, Field(ge=160, le=7680)] = 1280
    height: Annotated[int, Field(ge=120, le=4320)] = 720
    fps: Annotated[float, Field(gt=0, le=120)] = 30
    fourcc: Literal["MJPG", "YUYV", "H264", "RGB3"] = "MJPG"
    rotate: Literal[0, 90, 180, 270] = 0


class CameraLens(Section):
    horizontal_fov_deg: Annotated[float, Field(ge=20, le=200)] = 78


class CameraMount(Section):
    height_m: Annotated[float, Field(ge=0.3, le=6)] = 1.6
    tilt_deg: Annotated[float, Field(ge=-90, le=45)] = -10


class CameraProfile(Section):
    """A camera model and how it is mounted; the schema of firmware_configs/cameras/*.toml."""

    kind: Literal["camera"] = "camera"
    name: Name
    description: str = ""
    capture: CameraCapture = CameraCapture()
    lens: CameraLens = CameraLens()
    mount: CameraMount = CameraMount()
