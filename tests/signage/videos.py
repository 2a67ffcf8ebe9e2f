"""Real video files for the tests, encoded with PyAV (FFmpeg): MP4 with H.264 video and AAC sound, as signage
content is delivered, and WebM with VP8 or VP9."""

from __future__ import annotations

import hashlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from edge_agent.store.assets import AssetRef

ENCODERS = {"h264": "libx264", "vp8": "libvpx", "vp9": "libvpx-vp9"}


def make_video(path: Path, codec: str = "h264", size: tuple[int, int] = (320, 240), seconds: float = 3.0) -> Path:
    """A clip of `seconds` at 25 frames/s whose picture changes every frame (a moving bar), with a 440 Hz tone in
    an MP4."""
    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream(ENCODERS[codec], rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        sound = container.add_stream("aac", rate=48_000) if path.suffix == ".mp4" else None
        frames = round(seconds * 25)
        for i in range(frames):
            picture = np.full((height, width, 3), 40, np.uint8)
            x = i * width // frames
            picture[:, x : x + max(4, width // 20)] = (255, 178, 63)
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                container.mux(packet)
        if sound is not None:
            samples = np.arange(round(seconds * 48_000))
            tone = (0.2 * np.sin(2 * np.pi * 440 * samples / 48_000)).astype(np.float32)
            for start in range(0, len(tone), 1024):
                frame = av.AudioFrame.from_ndarray(tone[None, start : start + 1024], format="fltp", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = 48_000, start, Fraction(1, 48_000)
                for packet in sound.encode(frame):
                    container.mux(packet)
            for packet in sound.encode():
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def asset_of(path: Path, url: str, codec: str, size: tuple[int, int], seconds: float) -> AssetRef:
    """The bundle's entry for the file: its hash, type, size and what the video is."""
    body = path.read_bytes()
    return AssetRef(
        url=url,
        sha256=hashlib.sha256(body).hexdigest(),
        content_type="video/mp4" if path.suffix == ".mp4" else "video/webm",
        size=len(body),
        codec=codec,
        width=size[0],
        height=size[1],
        duration_s=seconds,
    )
