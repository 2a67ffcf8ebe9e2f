"""Pure parts of the vision source: tracker, motion gate, NMS, gallery, configuration."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.config import ConfigError, from_dict
from edge_agent.sources.vision.camera import describe
from edge_agent.sources.vision.detect import Detection, nms
from edge_agent.sources.vision.match import FaceGallery
from edge_agent.sources.vision.motion import MotionGate
from edge_agent.sources.vision.track import Tracker


def det(x: float, y: float = 50, w: float = 40, h: float = 100) -> Detection:
    return Detection((x, y, x + w, y + h), 0.9)


def test_tracker_keeps_ids_while_people_move_and_forgets_them_after_the_hold() -> None:
    tracker = Tracker(hold_s=1.0, min_hits=2)
    assert tracker.update([det(10), det(200)], 0.0) == [], "a track is confirmed on its second frame"
    first = {t.track_id for t in tracker.update([det(15), det(195)], 0.1)}
    assert len(first) == 2
    assert {t.track_id for t in tracker.update([det(22), det(190)], 0.2)} == first
    assert {t.track_id for t in tracker.update([det(190)], 0.8)} == first, "a missed frame is within the hold"
    left = tracker.update([det(188)], 1.5)
    assert len(left) == 1 and left[0].track_id in first and left[0].dwell(1.5) == pytest.approx(1.5)
    tracker.update([det(20)], 1.6)
    again = tracker.update([det(22)], 1.7)
    assert len(again) == 2
    assert len({t.track_id for t in again} - first) == 1, "a returning person is a new track"


def test_keep_alive_holds_everyone_in_a_still_scene() -> None:
    tracker = Tracker(hold_s=1.0)
    tracker.update([det(10)], 0.0)
    tracker.update([det(10)], 0.1)
    assert len(tracker.keep_alive(5.0)) == 1
    assert len(tracker.update([], 5.5)) == 1 and tracker.update([], 6.1) == []


def test_someone_who_left_just_before_the_scene_went_still_does_not_linger() -> None:
    tracker = Tracker(hold_s=1.0)
    tracker.update([det(10), det(200)], 0.0)
    tracker.update([det(10), det(200)], 0.1)
    assert len(tracker.update([det(10)], 0.2)) == 2, "the one who left is still within the hold"
    assert [t.box[0] for t in tracker.keep_alive(1.5)] == [10], "only the one still visible is renewed"
    assert [t.box[0] for t in tracker.keep_alive(30.0)] == [10]


def test_motion_gate_ignores_noise_and_sees_a_person_step_in() -> None:
    rng = np.random.default_rng(0)
    scene = np.full((240, 320, 3), 120, dtype=np.uint8)
    gate = MotionGate(threshold=0.002)
    assert gate.moved(scene), "the first frame is always analysed"
    noisy = np.clip(scene.astype(int) + rng.integers(-4, 5, scene.shape), 0, 255).astype(np.uint8)
    assert not gate.moved(noisy)
    stepped_in = noisy.copy()
    stepped_in[60:220, 20:80] = 30
    assert gate.moved(stepped_in)
    assert not gate.moved(stepped_in)


def test_camera_credentials_never_reach_the_logs() -> None:
    assert describe("rtsp://admin:s3cret@10.0.0.7:554/stream1") == "rtsp://***@10.0.0.7:554/stream1"
    assert describe("rtsp://10.0.0.7/stream1") == "rtsp://10.0.0.7/stream1"
    assert describe(0) == "device 0" and describe("/videos/a.avi") == "/videos/a.avi"


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=np.float32)
    assert nms(boxes, np.array([0.8, 0.9, 0.5]), 0.45) == [1, 2]


def test_gallery_matches_above_threshold_only_and_within_a_restricted_set() -> None:
    a, b = np.eye(128, dtype=np.float32)[:2]
    gallery = FaceGallery([("alice", a), ("bob", b)])
    probe = (0.8 * a + 0.6 * b).astype(np.float32)
    assert gallery.best(probe, 0.5).customer_ref == "alice"
    assert gallery.best(probe, 0.9) is None
    assert gallery.best(probe, 0.5, among={"bob"}).customer_ref == "bob"
    assert gallery.best(probe, 0.5, among={"carol"}) is None
    assert FaceGallery().best(probe, 0.0) is None and len(gallery) == 2


def base(**vision) -> dict:
    return {
        "store": {"id": "s", "chain_id": "c", "device_id": "d"},
        "zones": [{"id": "entrance"}],
        "touchpoints": [{"id": "kiosk", "kind": "kiosk", "zone": "entrance"}],
        "sources": {"checkin": False, "vision": True},
        "vision": vision,
    }


def test_config_names_every_vision_problem() -> None:
    with pytest.raises(ConfigError) as err:
        from_dict(
            base(
                cameras=[
                    {"id": "cam", "source": -1, "zone": "backroom", "touchpoint": "screen-x"},
                    {"id": "cam", "source": "a.avi", "zone": "entrance"},
                ],
                people_model="yolo9000",
                fps=5,
            )
        )
    text = str(err.value)
    assert "vision.people_model: got 'yolo9000'" in text
    assert "vision.fps: got 5, expected no such key; known keys here: cameras, crowd_interval_s" in text
    with pytest.raises(ConfigError) as err:
        from_dict(base(cameras=[]))
    assert "vision.cameras: got [], expected at least one camera while sources.vision is on" in str(err.value)


def test_config_checks_camera_zone_touchpoint_and_ids() -> None:
    with pytest.raises(ConfigError) as err:
        from_dict(
            base(
                cameras=[
                    {"id": "cam", "source": -1, "zone": "backroom", "touchpoint": "screen-x"},
                    {"id": "cam", "source": "a.avi", "zone": "entrance"},
                ]
            )
        )
    text = str(err.value)
    assert "vision.cameras[0].zone: got 'backroom'" in text
    assert "vision.cameras[0].touchpoint: got 'screen-x', expected one of the touchpoints: kiosk" in text
    assert "vision.cameras[0].source: got -1" in text
    assert "vision.cameras[1].id: got 'cam', expected an id not used before" in text


def test_relative_video_and_models_paths_are_taken_from_the_config_folder(tmp_path) -> None:
    settings = from_dict(
        base(models_dir="models", cameras=[{"id": "cam", "source": "clips/a.avi", "zone": "entrance"}]),
        base_dir=tmp_path,
    )
    assert settings.vision.models_dir == tmp_path / "models"
    assert settings.vision.cameras[0].source == str(tmp_path / "clips" / "a.avi")
    rtsp = from_dict(base(cameras=[{"id": "cam", "source": "rtsp://cam/1", "zone": "entrance"}]), base_dir=tmp_path)
    assert rtsp.vision.cameras[0].source == "rtsp://cam/1"
