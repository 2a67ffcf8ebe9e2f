"""Camera simulator: renders a test video of people who enter, stay and leave, with the ground truth.

The people are cut from public-domain photos shipped in `simulators/assets/` (see its README) and
walk across a shop wall the simulator draws itself. `render` writes an MJPG `.avi` that OpenCV reads
back like any camera file, and returns (and saves as JSON next to it) how many people are in view in
each frame.

    python -m simulators.camera OUT.avi [--seconds 8] [--still]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

ASSETS = Path(__file__).parent / "assets"
PHOTOS = {  # file, and the part of it that shows the person (x1, y1, x2, y2 as fractions)
    "astronaut": ("astronaut.jpg", (0.0, 0.0, 0.74, 1.0)),  # Eileen Collins, NASA (public domain)
    "hopper": ("grace_hopper.jpg", (0.0, 0.0, 1.0, 1.0)),  # Grace Hopper, US Navy (public domain)
}


@dataclass(frozen=True)
class Walker:
    """One person: walks in from `enter_s`, stands at `stand_x` (0–1), walks out the same side after `leave_s`."""

    photo: str
    enter_s: float
    leave_s: float
    stand_x: float = 0.3
    height: float = 0.75  # of the frame height; more than 1 for someone close to the camera
    from_right: bool = False
    top: float | None = None  # where the head is (fraction of the frame height); None: feet on the floor


def kiosk_shopper(photo: str = "astronaut", stand_x: float = -0.2) -> Walker:
    """A shopper already at a kiosk, a forearm's length from the camera above its screen: head and shoulders
    fill the frame (the face about a third of its height, as a kiosk camera sees someone using the screen)."""
    return Walker(photo, enter_s=-60.0, leave_s=1e9, stand_x=stand_x, height=1.6, top=0.02)


@dataclass(frozen=True)
class Truth:
    fps: float
    width: int
    height: int
    frames: int
    people: list[int]  # people fully in view, per frame
    walkers: list[Walker]


def photo(name: str) -> np.ndarray:
    """The whole photo, BGR."""
    path = ASSETS / PHOTOS[name][0]
    image = cv2.imread(str(path))
    if image is None:
        raise FileNotFoundError(path)
    return image


def person(name: str) -> np.ndarray:
    """The part of the photo that shows the person."""
    image = photo(name)
    x1, y1, x2, y2 = PHOTOS[name][1]
    h, w = image.shape[:2]
    return image[int(y1 * h) : int(y2 * h), int(x1 * w) : int(x2 * w)]


def backdrop(width: int, height: int) -> np.ndarray:
    """A shop wall with shelves and a floor, drawn (nothing here comes from a photo)."""
    frame = np.zeros((height, width, 3), dtype=np.uint8)
    wall = np.linspace(200, 160, height, dtype=np.float32)[:, None]
    frame[:] = np.stack([wall * 0.9, wall * 0.95, wall], axis=-1).astype(np.uint8)
    floor = int(height * 0.82)
    frame[floor:] = (90, 100, 110)
    for i, shelf_y in enumerate(range(int(height * 0.2), floor - 10, int(height * 0.18))):
        cv2.rectangle(frame, (width // 20, shelf_y), (width - width // 20, shelf_y + 6), (60, 80, 120), -1)
        for j in range(8):
            x = width // 20 + 8 + j * (width // 9)
            colour = ((40 * (i + j)) % 255, (90 + 30 * j) % 255, (150 + 20 * i) % 255)
            cv2.rectangle(frame, (x, shelf_y - 18), (x + width // 14, shelf_y), colour, -1)
    return frame


def _position(w: Walker, t: float, width: int, sprite_w: int) -> int | None:
    """Left edge of the walker's sprite at time t, or None when out of view."""
    speed = width * 0.6  # pixels per second
    stand = int(w.stand_x * width)
    if t < w.enter_s:
        return None
    offset = (t - w.enter_s) * speed if t < w.leave_s else 0.0
    away = max(0.0, (t - w.leave_s) * speed)
    if w.from_right:
        x = max(stand, int(width - offset)) if t < w.leave_s else int(stand + away)
    else:
        x = min(stand, int(-sprite_w + offset)) if t < w.leave_s else int(stand - away)
    return x if -sprite_w < x < width else None


def render(
    path: Path, walkers: list[Walker], *, seconds: float, fps: float = 10.0, size: tuple[int, int] = (320, 240)
) -> Truth:
    width, height = size
    base = backdrop(width, height)
    sprites = {}
    for w in walkers:
        image = person(w.photo)
        scale = w.height * height / image.shape[0]
        sprites[w] = cv2.resize(image, (int(image.shape[1] * scale), int(image.shape[0] * scale)))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}")
    frames = round(seconds * fps)
    people = []
    try:
        for n in range(frames):
            frame = base.copy()
            in_view = 0
            for w in walkers:
                sprite = sprites[w]
                x = _position(w, n / fps, width, sprite.shape[1])
                if x is None:
                    continue
                y = int(height * 0.95) - sprite.shape[0] if w.top is None else int(w.top * height)
                left, right = max(0, x), min(width, x + sprite.shape[1])
                rows = min(height - y, sprite.shape[0])  # someone close to the camera is cut off below
                if right > left:
                    frame[y : y + rows, left:right] = sprite[:rows, left - x : right - x]
                in_view += int((right - left) >= 0.6 * sprite.shape[1])  # most of the person in view
            people.append(in_view)
            writer.write(frame)
    finally:
        writer.release()
    truth = Truth(fps, width, height, frames, people, walkers)
    path.with_suffix(".json").write_text(json.dumps(asdict(truth)))
    return truth


def scene(seconds: float = 8.0) -> list[Walker]:
    """Two shoppers: one stays most of the clip, the other comes later and leaves first."""
    return [
        Walker("astronaut", enter_s=0.5, leave_s=seconds - 2.0, stand_x=0.05),
        Walker("hopper", enter_s=seconds * 0.3, leave_s=seconds * 0.6, stand_x=0.55, from_right=True),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulators.camera", description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--still", action="store_true", help="an empty, still scene (for motion gating)")
    args = parser.parse_args(argv)
    truth = render(args.out, [] if args.still else scene(args.seconds), seconds=args.seconds, fps=args.fps)
    print(json.dumps({"video": str(args.out), "frames": truth.frames, "max_people": max(truth.people, default=0)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
