"""The vision source end to end: OpenCV reading rendered videos in its thread, the real models, the bus.

Videos are short and small (CPU is shared); every wait is for a condition, with a generous timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import cv2
import numpy
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge_agent.bus import Bus
from edge_agent.clock import Clock
from edge_agent.config import Settings, from_dict
from edge_agent.events import Anonymous, Channel, Crowd, Customer, Show, Sighting
from edge_agent.ops import metrics
from edge_agent.sources.vision import camera as camera_module
from edge_agent.sources.vision.camera import Camera, CameraState
from edge_agent.sources.vision.motion import MotionGate
from edge_agent.sources.vision.pipeline import VisionModels
from edge_agent.sources.vision.profile import CameraCapture
from edge_agent.sources.vision.source import VisionSource
from edge_agent.sources.vision.track import Tracker
from edge_agent.store import Store, open_store
from edge_agent.store.faces import encode_embedding
from edge_agent.store.roster import RosterEntry
from simulators.camera import Walker, render, scene
from simulators.checkin_app import CheckinIssuer
from tests.factories import OPS, config_dict, running_task, seed

from .factories import embedding_of

TIMEOUT = 60.0


async def wait_for(condition: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


class Collector:
    """Every event of the given types published on the bus, in order."""

    def __init__(self, bus: Bus, *types: type):
        self.events: list[Any] = []
        self._subs = [bus.subscribe(t, f"test.{t.__name__}", maxsize=100_000) for t in types]

    def drain(self) -> list[Any]:
        for sub in self._subs:
            while not sub.queue.empty():
                self.events.append(sub.queue.get_nowait())
        self.events.sort(key=lambda e: e.mono)
        return self.events

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.drain() if isinstance(e, kind)]


def vision_config(tmp_path: Path, issuer: CheckinIssuer, models_path: Path, cameras: list[dict], **vision) -> Settings:
    data = config_dict(
        tmp_path,
        issuer,
        sources={"checkin": True, "vision": True},
        vision={
            "models_dir": str(models_path),
            "intra_op_threads": 1,
            "cameras": cameras,
            "track_hold_s": 0.6,
            **vision,
        },
    )
    return from_dict(data)


def test_people_are_counted_frame_by_frame_against_the_ground_truth(models: VisionModels, tmp_path: Path) -> None:
    truth = render(tmp_path / "scene.avi", scene(6.0), seconds=6.0)
    assert max(truth.people) == 2
    capture = cv2.VideoCapture(str(tmp_path / "scene.avi"))
    tracker, counts = Tracker(hold_s=0.25), []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        assert models.people is not None
        counts.append(len(tracker.update(models.people(frame), len(counts) / truth.fps)))
    assert len(counts) == truth.frames
    # Away from the moments someone crosses the frame's edge, the count is exact.
    stable = [i for i in range(truth.frames) if len(set(truth.people[max(0, i - 4) : i + 5])) == 1]
    exact = sum(counts[i] == truth.people[i] for i in stable)
    assert len(stable) > truth.frames / 3 and exact >= 0.9 * len(stable), (counts, truth.people)


async def test_agent_publishes_the_anonymous_audience_and_crowd_of_a_rendered_scene(
    tmp_path: Path, issuer: CheckinIssuer, models_path: Path, running
) -> None:
    render(tmp_path / "scene.avi", scene(6.0), seconds=6.0)
    cameras = [{"id": "cam-a", "source": str(tmp_path / "scene.avi"), "zone": "entrance", "touchpoint": "screen-a"}]
    agent = await running(vision_config(tmp_path, issuer, models_path, cameras))
    seen = Collector(agent.bus, Crowd, Sighting)
    camera = lambda: agent.vision.health()["cameras"].get("cam-a", {})  # noqa: E731
    await wait_for(lambda: camera().get("state") == "ended" and camera().get("people") == 0, "the video to end")
    crowd = [c.people for c in seen.of(Crowd) if c.zone == "entrance"]
    assert max(crowd) == 2 and crowd[-1] == 0
    sightings = seen.of(Sighting)
    assert sightings and all(isinstance(s.subject, Anonymous) and s.channel is Channel.VISION for s in sightings)
    assert {s.touchpoint for s in sightings} == {"screen-a"} and {s.zone for s in sightings} == {"entrance"}
    assert len({s.subject.track_id for s in sightings}) >= 2
    # The presence tracker turned them into anonymous presence in the zone.
    assert agent.bus.published["Presence"] >= 2
    async with aiohttp.ClientSession() as http, http.get(f"{agent.url}/healthz", headers=OPS) as resp:
        health = await resp.json()
    assert health["components"]["vision"] == "running" and health["vision"]["error"] is None
    assert health["vision"]["cameras"]["cam-a"]["frames_inferred"] > 0
    assert health["vision"]["cameras"]["cam-a"]["dwell_s"] == [], "everyone has left"
    families = {f.name: f for f in text_string_to_metric_families(metrics.render(agent.metrics).decode())}
    timed = {s.name: s.value for s in families["edge_vision_inference_seconds"].samples}
    assert timed["edge_vision_inference_seconds_count"] == agent.vision.counts["frames_inferred"] > 0
    assert timed["edge_vision_inference_seconds_sum"] > 0


async def test_a_missing_model_turns_vision_off_and_the_agent_keeps_serving(
    tmp_path: Path, issuer: CheckinIssuer, running
) -> None:
    cameras = [{"id": "cam-a", "source": str(tmp_path / "none.avi"), "zone": "entrance"}]
    agent = await running(vision_config(tmp_path, issuer, tmp_path / "no-models", cameras))
    await wait_for(lambda: agent.vision.error is not None, "the vision source to report its error")
    assert "yolox_nano.onnx: missing" in agent.health()["vision"]["error"]
    async with aiohttp.ClientSession() as http:
        token = issuer.token("alice", "kiosk-a")
        async with http.post(f"{agent.url}/api/checkin", json={"token": token}) as resp:
            assert resp.status == 202


def roster(models: VisionModels, astronaut, hopper) -> list[RosterEntry]:
    alice, hopper_vector = embedding_of(models, astronaut), embedding_of(models, hopper)
    return [
        RosterEntry(
            customer_ref="alice",
            consents={"checkin": True, "face": True},
            face_embeddings=[encode_embedding(alice)],
        ),
        # Bob enrolled a face once but does not consent to face recognition now: never recognised.
        RosterEntry(
            customer_ref="bob",
            consents={"checkin": True, "face": False},
            face_embeddings=[encode_embedding(hopper_vector)],
        ),
    ]


def source_of(settings: Settings, models: VisionModels) -> tuple[VisionSource, Bus, Store]:
    """A vision source on the real models, with its own bus and store, not yet running."""
    store = open_store(settings.database.path)
    bus = Bus()
    return VisionSource(settings, store, bus, Clock(), models=models), bus, store


def face_scene(path: Path) -> None:
    """Both faces, large enough to recognise, walking in and standing; played in a loop."""
    walkers = [
        Walker("astronaut", enter_s=0.0, leave_s=2.2, stand_x=0.02, height=0.9),
        Walker("hopper", enter_s=0.3, leave_s=2.2, stand_x=0.55, height=0.8, from_right=True),
    ]
    render(path, walkers, seconds=3.0, size=(480, 360))


@pytest.fixture
def face_source(tmp_path: Path, issuer: CheckinIssuer, models_path: Path, models: VisionModels, astronaut, hopper):
    face_scene(tmp_path / "faces.avi")

    def make(**faces) -> tuple[VisionSource, Bus, Any]:
        cameras = [
            {"id": "kiosk-cam", "source": str(tmp_path / "faces.avi"), "zone": "entrance", "touchpoint": "kiosk-a"}
            | {"loop": True}
        ]
        source, bus, store = source_of(vision_config(tmp_path, issuer, models_path, cameras, faces=faces), models)
        store.roster.upsert(roster(models, astronaut, hopper), datetime.now(UTC).isoformat())
        return source, bus, store

    return make


async def test_identification_recognises_only_consenting_customers_and_stops_at_erasure(face_source) -> None:
    source, bus, store = face_source(identify=True)
    seen = Collector(bus, Sighting)
    async with running_task(source.run(), store.close):
        faces = lambda: [s for s in seen.of(Sighting) if s.channel is Channel.FACE]  # noqa: E731
        await wait_for(lambda: faces(), "alice to be recognised")
        assert {s.subject for s in faces()} == {Customer("alice")}
        assert all(s.touchpoint == "kiosk-a" and s.zone == "entrance" for s in faces())
        await wait_for(lambda: source.counts["faces_unmatched"] >= 1, "bob's face to be seen (it matches nobody)")
        assert {s.subject for s in faces()} == {Customer("alice")}

        with store.db.atomic():
            store.db.execute("DELETE FROM customers WHERE customer_ref = 'alice'")
        erased_at = time.monotonic()
        unmatched = source.counts["faces_unmatched"]
        await wait_for(lambda: source.counts["faces_unmatched"] >= unmatched + 4, "more faces after the erasure")
        assert not [s for s in faces() if s.mono > erased_at], "an erased customer is never recognised"


async def test_a_kiosk_checkin_is_verified_by_face_only_with_face_consent(face_source) -> None:
    source, bus, store = face_source(identify=False)
    seen = Collector(bus, Sighting)
    clock = Clock()
    async with running_task(source.run(), store.close):
        await wait_for(lambda: source.counts["frames_inferred"] >= 3, "the camera to run")
        faces = lambda: [s for s in seen.of(Sighting) if s.channel is Channel.FACE]  # noqa: E731
        assert faces() == [] and source.counts["faces_seen"] == 0, "with identification off, no face is even looked at"

        def checkin(ref: str) -> None:
            bus.publish(
                Sighting(Customer(ref), "entrance", Channel.CHECKIN, clock.mono(), clock.wall(), "kiosk-a", True)
            )

        checkin("bob")
        await wait_for(lambda: source.counts["verify_skipped_no_consent"] == 1, "bob's check-in to be considered")
        checkin("alice")
        await wait_for(lambda: faces(), "alice's check-in to be verified")
        assert {s.subject for s in faces()} == {Customer("alice")} and source.counts["faces_verified"] >= 1


async def test_a_still_scene_runs_no_inference(models: VisionModels, tmp_path: Path, issuer, models_path) -> None:
    render(tmp_path / "still.avi", [], seconds=3.0)
    cameras = [{"id": "cam", "source": str(tmp_path / "still.avi"), "zone": "bakery"}]
    source, bus, store = source_of(vision_config(tmp_path, issuer, models_path, cameras), models)
    seen = Collector(bus, Crowd)
    async with running_task(source.run(), store.close):
        await wait_for(lambda: source.health()["cameras"].get("cam", {}).get("state") == "ended", "the video to end")
        camera = source.health()["cameras"]["cam"]
        assert camera["frames_read"] >= 25
        assert camera["frames_inferred"] <= 1, "only the first frame (nothing to compare with) is analysed"
        assert [c.people for c in seen.of(Crowd)][-1] == 0


async def test_a_camera_that_is_missing_is_reported_and_retried_until_it_appears(tmp_path: Path) -> None:
    path = tmp_path / "later.avi"
    woken = []
    camera = Camera(str(path), gate=MotionGate(), notify=lambda: woken.append(1), retry_max_s=0.3)
    camera.start()
    try:
        await wait_for(lambda: camera.state is CameraState.DOWN and camera.failures >= 2, "the camera to be down")
        render(path, scene(2.0), seconds=2.0)
        await wait_for(lambda: camera.frames_read > 0, "the camera to come back")
        assert camera.state in (CameraState.RUNNING, CameraState.ENDED) and woken
    finally:
        await asyncio.to_thread(camera.stop)


async def test_the_loop_gets_the_latest_frame_never_a_backlog(tmp_path: Path) -> None:
    render(tmp_path / "fast.avi", scene(3.0), seconds=3.0, fps=30.0)
    camera = Camera(str(tmp_path / "fast.avi"), gate=MotionGate(), notify=lambda: None, max_fps=30.0)
    camera.start()
    try:
        await wait_for(lambda: camera.frames_read >= 20, "twenty frames")
        frame = camera.take()
        assert frame is not None and frame.index >= 20, "the newest frame, not the first one waiting"
        assert camera.take() is None or camera.frames_read > 20, "one slot: a frame is handed over once"
    finally:
        await asyncio.to_thread(camera.stop)


async def test_a_recognised_customer_is_greeted_with_their_offer(
    tmp_path: Path, issuer: CheckinIssuer, models_path: Path, models: VisionModels, astronaut, hopper, running
) -> None:
    face_scene(tmp_path / "faces.avi")
    cameras = [{"id": "cam", "source": str(tmp_path / "faces.avi"), "zone": "entrance", "loop": True}]
    agent = await running(vision_config(tmp_path, issuer, models_path, cameras, faces={"identify": True}), seeded=False)
    shows = Collector(agent.bus, Show)
    alice = roster(models, astronaut, hopper)[0]
    consented = alice.model_copy(
        update={"consents": {**alice.consents, "personalisation": True}, "segments": ("coffee",)}
    )
    seed(agent, roster=[consented, roster(models, astronaut, hopper)[1]])
    await wait_for(lambda: any(s.customer_ref == "alice" for s in shows.of(Show)), "a show for alice")
    personal = [s for s in shows.of(Show) if s.customer_ref is not None]
    assert {s.customer_ref for s in personal} == {"alice"} and {s.offer["offer_id"] for s in personal} == {"coffee"}


def sideways(src: Path, dst: Path) -> None:
    """The same video as a camera mounted on its side records it: every frame turned a quarter to the left."""
    capture = cv2.VideoCapture(str(src))
    fps, frames = capture.get(cv2.CAP_PROP_FPS), []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.rotate(frame, cv2.ROTATE_90_COUNTERCLOCKWISE))
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(dst), cv2.VideoWriter.fourcc(*"MJPG"), fps, (width, height))
    for frame in frames:
        writer.write(frame)
    writer.release()


def frame_at(path: Path, index: int) -> Any:
    capture = cv2.VideoCapture(str(path))
    for _ in range(index):
        ok, frame = capture.read()
        assert ok
    return frame


async def test_a_camera_profile_turns_every_frame_upright_before_anything_looks_at_it(tmp_path: Path) -> None:
    render(tmp_path / "upright.avi", scene(2.0), seconds=2.0, size=(320, 240))
    sideways(tmp_path / "upright.avi", tmp_path / "sideways.avi")
    camera = Camera(
        str(tmp_path / "sideways.avi"), gate=MotionGate(), notify=lambda: None, capture=CameraCapture(rotate=90)
    )
    camera.start()
    try:
        await wait_for(lambda: camera.frames_read >= 3, "three frames")
        frame = camera.take()
        assert frame is not None
        recorded = frame_at(tmp_path / "sideways.avi", frame.index)
        assert recorded.shape[:2] == (320, 240) and frame.image.shape[:2] == (240, 320)
        assert (frame.image == cv2.rotate(recorded, cv2.ROTATE_90_CLOCKWISE)).all()
        assert camera.delivers is None, "a file is not asked for a capture mode"
    finally:
        await asyncio.to_thread(camera.stop)


class Driver:
    """A V4L2 driver as OpenCV sees it: takes every setting, then delivers the one mode it has."""

    def __init__(self, source: int) -> None:
        self.has = {cv2.CAP_PROP_FRAME_WIDTH: 640.0, cv2.CAP_PROP_FRAME_HEIGHT: 480.0, cv2.CAP_PROP_FPS: 15.0}
        self.asked: dict[int, float] = {}
        self.frames = 3
        opened.append(self)

    def isOpened(self) -> bool:
        return True

    def set(self, prop: int, value: float) -> bool:
        self.asked[prop] = value
        return True

    def get(self, prop: int) -> float:
        return self.has.get(prop, 0.0)

    def read(self) -> tuple[bool, Any]:
        self.frames -= 1
        return (True, numpy.zeros((480, 640, 3), numpy.uint8)) if self.frames >= 0 else (False, None)

    def release(self) -> None:
        pass


opened: list[Driver] = []


async def test_a_live_camera_is_asked_for_the_profiles_mode_and_what_it_delivers_is_reported(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(camera_module.cv2, "VideoCapture", Driver)
    opened.clear()
    want = CameraCapture(width=1280, height=720, fps=30, fourcc="MJPG")
    camera = Camera(0, gate=MotionGate(), notify=lambda: None, capture=want, retry_max_s=60)
    camera.start()
    try:
        await wait_for(lambda: camera.frames_read >= 3 and camera.state is CameraState.DOWN, "the frames")
    finally:
        await asyncio.to_thread(camera.stop)
    asked = opened[0].asked
    assert asked[cv2.CAP_PROP_FOURCC] == cv2.VideoWriter.fourcc(*"MJPG")
    assert (asked[cv2.CAP_PROP_FRAME_WIDTH], asked[cv2.CAP_PROP_FRAME_HEIGHT], asked[cv2.CAP_PROP_FPS]) == (
        1280,
        720,
        30,
    )
    assert asked[cv2.CAP_PROP_BUFFERSIZE] == 1
    assert camera.delivers == (640, 480, 15.0)
    assert "asked for 1280x720 at 30 fps (MJPG), it delivers 640x480 at 15 fps" in caplog.text


async def test_vision_counts_people_seen_by_a_sideways_camera_and_names_a_broken_profile(
    models: VisionModels, tmp_path: Path, issuer, models_path
) -> None:
    render(tmp_path / "upright.avi", scene(6.0), seconds=6.0)
    sideways(tmp_path / "upright.avi", tmp_path / "sideways.avi")
    (tmp_path / "on-its-side.toml").write_text('kind = "camera"\nname = "on its side"\n[capture]\nrotate = 90\n')
    (tmp_path / "broken.toml").write_text('kind = "camera"\nname = "broken"\n[capture]\nrotate = 45\n')
    cameras = [
        {
            "id": "side",
            "source": str(tmp_path / "sideways.avi"),
            "zone": "bakery",
            "profile": str(tmp_path / "on-its-side.toml"),
        },
        {
            "id": "bad",
            "source": str(tmp_path / "upright.avi"),
            "zone": "entrance",
            "profile": str(tmp_path / "broken.toml"),
        },
    ]
    source, bus, store = source_of(vision_config(tmp_path, issuer, models_path, cameras), models)
    seen = Collector(bus, Crowd)
    async with running_task(source.run(), store.close):
        side = lambda: source.health()["cameras"].get("side", {})  # noqa: E731
        await wait_for(lambda: side().get("state") == "ended", "the sideways video to end")
        assert max(c.people for c in seen.of(Crowd) if c.zone == "bakery") == 2
        error = source.health()["error"]
        assert "bad" in error and "broken.toml" in error and "capture.rotate" in error
        assert "bad" not in source.health()["cameras"], "the camera with the broken profile does not run"
