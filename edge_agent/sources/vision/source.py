"""The vision source: cameras → people and faces → anonymous audience, crowd levels and consented matches.

Per camera, capture runs in its own thread (`Camera`); inference runs in one executor thread shared by
all cameras, so the event loop only associates tracks and publishes:

- `Sighting(Anonymous(track_id), channel=VISION)` for each person tracked, at most every
  `sighting_interval_s` — the anonymous audience, with no image or feature kept;
- `Crowd(zone, people)` when a zone's count changes and every `crowd_interval_s`, for the engine's
  crowd level and each impression's "people who could see it";
- `Sighting(Customer(ref), channel=FACE)` only for an enrolled customer whose consent includes "face",
  re-checked against the store at that moment: by 1:N identification when `vision.faces.identify` is on,
  or by 1:1 verification of a kiosk check-in at the camera's touchpoint.

While a shopper enrols at a kiosk, its camera analyses every frame and hands the verdict to the
enrolment desk (enrolment.py).

A model that is missing or corrupt stops the vision source with an error naming the file; the rest of the
agent keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import Metric, SummaryMetricFamily

from ... import profiles
from ...bus import Bus
from ...clock import Clock
from ...config import CameraSettings, Settings
from ...events import Anonymous, Channel, ConsentChanged, Crowd, Customer, Erased, Sighting
from ...store import Store
from ..roster_age import RosterAge
from .camera import Camera, CameraState
from .enrolment import EnrolmentDesk
from .match import FaceGallery
from .models import ModelError
from .motion import MotionGate
from .pipeline import Analysis, VisionModels, analyse, load_models
from .profile import CameraProfile
from .track import Tracker

log = logging.getLogger(__name__)


@dataclass
class _CameraRun:
    settings: CameraSettings
    camera: Camera
    tracker: Tracker
    wake: asyncio.Event
    people: int = 0
    dwell_s: list[float] = field(default_factory=list)
    last_inference: float = float("-inf")
    last_sighting: dict[str, float] = field(default_factory=dict)
    pending: dict[str, float] = field(default_factory=dict)  # customer_ref → verification deadline
    inferred: int = 0


class VisionSource:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        bus: Bus,
        clock: Clock,
        models: VisionModels | None = None,
        roster_age: RosterAge | None = None,
        enrolments: EnrolmentDesk | None = None,
    ):
        self._settings = settings
        self._enrolments = enrolments
        self._roster_age = roster_age
        self._cfg = settings.vision
        self._store = store
        self._bus = bus
        self._clock = clock
        self._models = models
        self._gallery = FaceGallery()
        self._gallery_mark: tuple[Any, ...] | None = None
        self._gallery_checked = float("-inf")
        self._runs: dict[str, _CameraRun] = {}
        self._zone_people: dict[str, int] = {}
        self._crowd_sent: dict[str, tuple[int, float]] = {}
        self.counts: Counter[str] = Counter()
        self.inference_seconds = 0.0  # summed over every inferred frame, hand-off to the executor included
        self.error: str | None = None
        bus.on(Erased, "vision", lambda e: self.forget(e.customer_ref))
        bus.on(ConsentChanged, "vision", self._on_consent)
        self._checkins = (
            bus.subscribe(Sighting, "vision.verify", maxsize=256)
            if self._cfg.faces.verify_checkins and any(c.touchpoint for c in self._cfg.cameras)
            else None
        )

    @property
    def faces_wanted(self) -> bool:
        enrolling = self._enrolments is not None and bool(self._enrolments.kiosks)
        return self._cfg.faces.identify or self._checkins is not None or enrolling

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vision-inference")
        try:
            if self._models is None:
                try:
                    self._models = await loop.run_in_executor(
                        executor, lambda: load_models(self._cfg, faces=self.faces_wanted)
                    )
                except ModelError as exc:
                    self.error = str(exc)
                    log.error("vision source off: %s", exc)
                    return
            self._refresh_gallery()
            async with asyncio.TaskGroup() as tg:
                for cam in self._cfg.cameras:
                    tg.create_task(self._run_camera(cam, executor), name=f"vision.camera.{cam.id}")
                if self._checkins is not None:
                    tg.create_task(self._watch_checkins(), name="vision.checkins")
        finally:
            executor.shutdown(wait=False, cancel_futures=True)

    async def _run_camera(self, cam: CameraSettings, executor: ThreadPoolExecutor) -> None:
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        try:  # checked at start; read again here, so a file broken since then is named, not half-applied
            profile = profiles.load(cam.profile, CameraProfile, "cameras") if cam.profile is not None else None
        except profiles.ProfileError as exc:
            self.error = f"vision.cameras {cam.id!r} off: {exc}"
            log.error("%s", self.error)
            return
        camera = Camera(
            cam.source,
            gate=MotionGate(threshold=self._cfg.motion_threshold),
            notify=lambda: loop.call_soon_threadsafe(wake.set),
            max_fps=cam.max_fps,
            loop=cam.loop,
            capture=profile.capture if profile is not None else None,
        )
        run = _CameraRun(cam, camera, Tracker(hold_s=self._cfg.track_hold_s), wake)
        self._runs[cam.id] = run
        camera.start()
        tick = min(0.5, self._cfg.sighting_interval_s)
        try:
            while True:
                # asyncio.timeout, not wait_for + suppress: on 3.11 the latter can swallow a cancellation.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(tick):
                        await wake.wait()
                wake.clear()
                await self._step(run, executor)
        finally:
            await asyncio.to_thread(camera.stop)

    async def _step(self, run: _CameraRun, executor: ThreadPoolExecutor) -> None:
        now = self._clock.mono()
        run.pending = {ref: until for ref, until in run.pending.items() if until > now}
        frame = run.camera.take()
        desk, kiosk = self._enrolments, run.settings.touchpoint
        enrolling = desk is not None and desk.wants_frames(kiosk)
        if frame is None and run.camera.state is not CameraState.RUNNING:
            tracks = run.tracker.update([], now)  # no picture: the audience fades out after the hold
        elif frame is None:
            tracks = run.tracker.confirmed()
        elif (
            frame.moved
            or run.pending
            or enrolling
            or (run.tracker.confirmed() and now - run.last_inference >= self._cfg.still_refresh_s)
        ):
            self._refresh_gallery()
            started = time.perf_counter()
            result = await asyncio.get_running_loop().run_in_executor(
                executor, self._analyse, frame.image, run, enrolling
            )
            self.inference_seconds += time.perf_counter() - started
            run.last_inference, run.inferred = now, run.inferred + 1
            self.counts["frames_inferred"] += 1
            tracks = run.tracker.update(result.people, now)
            self._publish_faces(run, result, now)
            if desk is not None and kiosk is not None and result.enrolment is not None:
                desk.take(kiosk, result.enrolment, now)
        else:
            self.counts["frames_still"] += 1
            tracks = run.tracker.keep_alive(now)
        if desk is not None and kiosk is not None and enrolling:
            desk.tick(kiosk, now, picture=run.camera.state is CameraState.RUNNING)
        run.dwell_s = sorted((round(t.dwell(now), 1) for t in tracks), reverse=True)
        self._publish_audience(run, [t.track_id for t in tracks], now)

    def _analyse(self, image: Any, run: _CameraRun, enrolling: bool) -> Analysis:
        assert self._models is not None
        faces = self._cfg.faces
        return analyse(
            self._models,
            image,
            gallery=self._gallery,
            identify_threshold=faces.identify_threshold if faces.identify else None,
            verify=frozenset(run.pending),
            verify_threshold=faces.verify_threshold,
            min_face_px=faces.min_face_px,
            enrol=faces.enrolment if enrolling else None,
        )

    def _publish_audience(self, run: _CameraRun, track_ids: list[str], now: float) -> None:
        cam = run.settings
        wall = self._clock.wall()
        for track_id in track_ids:
            if now - run.last_sighting.get(track_id, float("-inf")) >= self._cfg.sighting_interval_s:
                run.last_sighting[track_id] = now
                self._bus.publish(
                    Sighting(Anonymous(track_id), cam.zone, Channel.VISION, now, wall, touchpoint=cam.touchpoint)
                )
        run.last_sighting = {t: at for t, at in run.last_sighting.items() if t in track_ids}
        run.people = len(track_ids)
        people = sum(r.people for r in self._runs.values() if r.settings.zone == cam.zone)
        sent = self._crowd_sent.get(cam.zone)
        if sent is None or sent[0] != people or now - sent[1] >= self._cfg.crowd_interval_s:
            self._crowd_sent[cam.zone] = (people, now)
            self._bus.publish(Crowd(cam.zone, people, now, wall))

    def _publish_faces(self, run: _CameraRun, result: Analysis, now: float) -> None:
        self.counts["faces_seen"] += result.faces_seen
        self.counts["faces_unmatched"] += result.faces_seen - len(result.matches) - len(result.verified)
        for match, how in [(m, "verified") for m in result.verified] + [(m, "identified") for m in result.matches]:
            # The gallery may be a moment old: consent withdrawn or erased since then means no sighting.
            if not self._store.roster.faces.consented(match.customer_ref):
                self.counts["faces_refused_no_consent"] += 1
                continue
            if self._roster_age is not None and self._roster_age.stale():
                self.counts["faces_refused_stale_roster"] += 1
                self._roster_age.refuse()
                continue
            self.counts[f"faces_{how}"] += 1
            run.pending.pop(match.customer_ref, None)
            cam = run.settings
            self._bus.publish(
                Sighting(Customer(match.customer_ref), cam.zone, Channel.FACE, now, self._clock.wall(), cam.touchpoint)
            )

    async def _watch_checkins(self) -> None:
        assert self._checkins is not None
        async for sighting in self._checkins:
            if sighting.channel is not Channel.CHECKIN or not isinstance(sighting.subject, Customer):
                continue
            ref = sighting.subject.customer_ref
            for run in self._runs.values():
                if run.settings.touchpoint is None or run.settings.touchpoint != sighting.touchpoint:
                    continue
                if not self._store.roster.faces.consented(ref):
                    self.counts["verify_skipped_no_consent"] += 1
                    continue
                run.pending[ref] = self._clock.mono() + self._cfg.faces.verify_window_s
                run.wake.set()

    def forget(self, customer_ref: str) -> None:
        """Erased or face consent withdrawn: their face stops matching now, not at the next gallery reload."""
        self._gallery = self._gallery.without(customer_ref)
        for run in self._runs.values():
            run.pending.pop(customer_ref, None)

    def _on_consent(self, change: ConsentChanged) -> None:
        if change.channel == Channel.FACE and not change.granted:
            self.forget(change.customer_ref)

    def _refresh_gallery(self) -> None:
        """Reload the consenting customers' embeddings when the roster changed them."""
        now = self._clock.mono()
        if not self.faces_wanted or now - self._gallery_checked < 1.0:
            return
        self._gallery_checked = now
        mark = self._store.db.execute(
            "SELECT count(*), max(f.updated_at) FROM face_embeddings f JOIN consents c"
            " ON c.customer_ref = f.customer_ref AND c.channel = 'face' AND c.granted = 1"
        ).fetchone()
        if mark != self._gallery_mark:
            self._gallery = FaceGallery(self._store.roster.faces.consented())
            self._gallery_mark = mark

    def health(self) -> dict[str, Any]:
        return {
            "error": self.error,
            "cameras": {
                cam_id: {
                    "state": run.camera.state.value,
                    "people": run.people,
                    "dwell_s": run.dwell_s,
                    "frames_read": run.camera.frames_read,
                    "frames_moved": run.camera.frames_moved,
                    "frames_inferred": run.inferred,
                    "failures": run.camera.failures,
                    "delivers": run.camera.delivers,
                }
                for cam_id, run in self._runs.items()
            },
            "enrolled": len(self._gallery),
            "enrolment": self._enrolments.health() if self._enrolments is not None else None,
            "counts": dict(self.counts),
        }

    def metrics(self) -> Iterator[Metric]:
        yield SummaryMetricFamily(
            "edge_vision_inference_seconds",
            "Time per inferred camera frame",
            count_value=self.counts["frames_inferred"],
            sum_value=self.inference_seconds,
        )
