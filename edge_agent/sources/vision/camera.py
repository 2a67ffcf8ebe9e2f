"""OpenCV capture in its own thread, handing only the latest frame to the event loop.

The thread reads as fast as the camera delivers (a file is paced at its own frame rate), runs the
motion gate, and keeps one slot: the newest frame and whether anything moved since the loop last took
one. The loop is woken with `call_soon_threadsafe`; it never waits on the camera, and a slow consumer
never builds a backlog. A camera that fails to open or stops delivering is reported and retried with
backoff; a file that ends is finished (or replayed from the start when `loop` is set).

The camera's profile (`firmware_configs/cameras/`) says how to capture: a live camera is asked for its
`capture` size, frame rate and pixel format when it opens (a driver may give something else: what it gave is
logged and kept in `delivers`), and every frame is turned upright by `rotate` before anything looks at it, a
recording from that camera included: a detector trained on upright people misses a sideways one.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import cv2
import numpy as np

from .motion import MotionGate
from .profile import CameraCapture

log = logging.getLogger(__name__)

UPRIGHT = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


class CameraState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    DOWN = "down"
    ENDED = "ended"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class Frame:
    image: np.ndarray
    index: int
    moved: bool  # something moved since the previous frame handed over


class Camera:
    def __init__(
        self,
        source: int | str,
        *,
        gate: MotionGate,
        notify: Callable[[], object],  # called from the reader thread; what it returns is ignored
        max_fps: float = 10.0,
        loop: bool = False,
        retry_max_s: float = 30.0,
        capture: CameraCapture | None = None,
    ):
        self.source = source
        self._capture = capture
        self._upright = UPRIGHT.get(capture.rotate) if capture is not None else None
        self.delivers: tuple[int, int, float] | None = None  # what a live camera gave: width, height, fps
        self._gate = gate
        self._notify = notify
        self._min_interval = 1.0 / max_fps
        self._loop = loop
        self._retry_max_s = retry_max_s
        self._lock = threading.Lock()
        self._latest: Frame | None = None
        self._moved_since_take = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"camera:{describe(source)}", daemon=True)
        self.state = CameraState.STARTING
        self.frames_read = 0
        self.frames_moved = 0
        self.failures = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.state = CameraState.STOPPED

    def take(self) -> Frame | None:
        """The newest frame (once), flagged with whether anything moved since the last take."""
        with self._lock:
            frame, self._latest = self._latest, None
            if frame is None:
                return None
            moved, self._moved_since_take = self._moved_since_take, False
        return Frame(frame.image, frame.index, moved)

    def _run(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            capture = self._open()
            if capture is None:
                self._down(f"cannot open {self._describe()}")
            else:
                delivered = self._read_all(capture)
                capture.release()
                if self._stop.is_set():
                    return
                if delivered and self._is_file() and not self._loop:
                    self.state = CameraState.ENDED
                    log.info("camera %s: end of file", self._describe())
                    self._notify()
                    return
                if delivered:
                    delay = 0.5
                if delivered and self._is_file():
                    continue
                self._down(f"{self._describe()} stopped delivering frames")
            self._stop.wait(delay)
            delay = min(delay * 2, self._retry_max_s)

    def _open(self) -> cv2.VideoCapture | None:
        capture = cv2.VideoCapture(self.source)
        if not capture.isOpened():
            capture.release()
            return None
        if not self._is_file():
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # a live camera: keep the driver's queue short
            if self._capture is not None:
                self._ask(capture, self._capture)
        return capture

    def _ask(self, capture: cv2.VideoCapture, want: CameraCapture) -> None:
        """Ask a live camera for the profile's mode, then read back what it agreed to (drivers round or refuse)."""
        capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*want.fourcc))
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, want.width)
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, want.height)
        capture.set(cv2.CAP_PROP_FPS, want.fps)
        got = (
            int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            float(capture.get(cv2.CAP_PROP_FPS)),
        )
        if got != self.delivers and got != (want.width, want.height, float(want.fps)):
            log.warning(
                "camera %s: asked for %dx%d at %g fps (%s), it delivers %dx%d at %g fps",
                self._describe(),
                want.width,
                want.height,
                want.fps,
                want.fourcc,
                *got,
            )
        self.delivers = got

    def _read_all(self, capture: cv2.VideoCapture) -> bool:
        """Read until the source ends or fails; returns whether it delivered any frame."""
        file_interval = 0.0
        if self._is_file():
            fps = capture.get(cv2.CAP_PROP_FPS)
            file_interval = 1.0 / fps if 0 < fps < 1000 else 0.0
        interval = max(file_interval, self._min_interval)
        skip = max(1, round(interval / file_interval)) if file_interval else 1
        delivered = False
        next_at = time.monotonic()
        index = 0
        while not self._stop.is_set():
            ok, image = capture.read()
            if not ok or image is None:
                return delivered
            index += 1
            if self._is_file() and index % skip:
                continue  # a file faster than max_fps: drop frames the way a live camera would
            if self._upright is not None:
                image = cv2.rotate(image, self._upright)
            if self.state is not CameraState.RUNNING:
                self.state = CameraState.RUNNING
                log.info("camera %s: running", self._describe())
            delivered = True
            self._hand_over(image, index)
            next_at += interval
            wait = next_at - time.monotonic()
            if wait > 0:
                self._stop.wait(wait)
            else:
                next_at = time.monotonic()
        return delivered

    def _hand_over(self, image: np.ndarray, index: int) -> None:
        moved = self._gate.moved(image)
        self.frames_read += 1
        with self._lock:
            self._latest = Frame(image, index, moved)
            self._moved_since_take = self._moved_since_take or moved
        if moved:
            self.frames_moved += 1
            self._notify()

    def _down(self, reason: str) -> None:
        self.failures += 1
        if self.state is not CameraState.DOWN:
            log.warning("camera down: %s; retrying", reason)
        self.state = CameraState.DOWN
        self._notify()

    def _is_file(self) -> bool:
        return isinstance(self.source, str) and "://" not in self.source

    def _describe(self) -> str:
        return describe(self.source)


def describe(source: int | str) -> str:
    """The source for logs, with any user:password of an RTSP URL removed."""
    if isinstance(source, int):
        return f"device {source}"
    return re.sub(r"^([a-z][a-z0-9+.-]*://)[^@/]*@", r"\1***@", source, flags=re.IGNORECASE)
