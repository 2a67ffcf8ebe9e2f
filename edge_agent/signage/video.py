"""Video items: what a downloaded file really is (probed with PyAV, FFmpeg's bindings), whether it is what the
bundle said, and whether a screen's player can decode it.

The bundle names each video's codec, frame size and duration, so a screen's items can be checked the moment a
bundle arrives; the file is probed once it is on disk, and one that is not what the bundle said is refused like
a wrong hash. A screen is sent only the videos its profile (`screen_profile.py`) plays smoothly: an item it
cannot play is refused with the reason, never shown as a black screen.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..store.assets import AssetRef
from .screen_profile import ScreenProfile

DURATION_TOLERANCE_S = 0.5  # containers round their duration; more than this apart is another video

# FFmpeg's decoder names → the codec names bundles and profiles use
_CODECS = {"h264": "h264", "vp8": "vp8", "vp9": "vp9", "av1": "av1", "libdav1d": "av1", "hevc": "hevc"}


@dataclass(frozen=True)
class Probed:
    codec: str
    width: int
    height: int
    duration_s: float


def probe(path: Path) -> Probed | None:
    """The file's first video stream, or None when it is not a video FFmpeg can open (blocking: run in a thread)."""
    import av  # only a store that shows videos loads FFmpeg

    try:
        container = av.open(str(path))
    except av.FFmpegError:
        return None
    try:
        if not container.streams.video or container.duration is None:
            return None
        stream = container.streams.video[0]
        name = stream.codec_context.name
        return Probed(_CODECS.get(name, name), stream.width, stream.height, container.duration / av.time_base)
    finally:
        container.close()


def mismatch(asset: AssetRef, found: Probed | None) -> str | None:
    """Why the file is not the video the bundle named, or None when it is."""
    if found is None:
        return "not a video FFmpeg can open"
    said = (asset.codec, asset.width, asset.height)
    if (found.codec, found.width, found.height) != said:
        return f"{found.codec} {found.width}x{found.height}, the bundle says {asset.codec} {asset.width}x{asset.height}"
    assert asset.duration_s is not None
    if abs(found.duration_s - asset.duration_s) > DURATION_TOLERANCE_S:
        return f"{found.duration_s:.1f} s long, the bundle says {asset.duration_s:.1f} s"
    return None


def unplayable(asset: AssetRef, profile: ScreenProfile) -> str | None:
    """Why a screen with this profile cannot play the video smoothly, or None when it can."""
    decode = profile.decode
    if asset.codec not in decode.codecs:
        return f"codec {asset.codec} is not one {profile.name} plays ({', '.join(decode.codecs)})"
    w, h = asset.width, asset.height
    assert w is not None and h is not None
    fits = (w <= decode.max_width and h <= decode.max_height) or (w <= decode.max_height and h <= decode.max_width)
    if not fits:  # either way round: a portrait screen plays its frames on end
        return (
            f"{asset.width}x{asset.height} is larger than {profile.name} plays ({decode.max_width}x{decode.max_height})"
        )
    return None
