"""Face enrolment at the kiosk: the frame checks on real photos and the real models, the desk's rules, and the
whole way from a shopper's agreement at the kiosk to the cloud adding their face and the camera knowing them."""

from __future__ import annotations

import asyncio
import base64
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import cv2
import numpy as np
import pytest

from edge_agent.bus import Bus
from edge_agent.clock import Clock
from edge_agent.config import ConfigError, Settings, from_dict
from edge_agent.events import Channel, ConsentChanged, Customer, Sighting
from edge_agent.sources.vision.enrolment import EnrolmentDesk, EnrolmentRefused
from edge_agent.sources.vision.face_quality import Hint, Sample, pose, sample
from edge_agent.sources.vision.pipeline import VisionModels
from edge_agent.store import Store, open_store
from edge_agent.store.outbox import DropClass
from edge_agent.store.roster import RosterEntry
from simulators.camera import Walker, backdrop, kiosk_shopper, render
from simulators.checkin_app import CheckinIssuer
from simulators.cloud import CloudSim
from tests.factories import DEVICE_KEY, config_dict, mqtt_section
from tests.surfaces import KIOSK_TOKEN

from .factories import OFFLINE_MQTT, embedding_of, enrolment_config, shifted
from .test_source import Collector, wait_for


def test_enrolment_needs_a_signing_host_a_link_and_a_camera_at_a_kiosk(tmp_path: Path, issuer: CheckinIssuer) -> None:
    key = base64.b64encode(bytes(32)).decode()
    camera = {"id": "cam", "source": "cam.avi", "zone": "entrance", "touchpoint": "screen-a"}  # a screen, no kiosk
    data = config_dict(tmp_path, issuer, vision={"cameras": [camera], "faces": {"enrolment": {"cloud_key": key}}})
    with pytest.raises(ConfigError) as info:
        from_dict(data)
    wanted = [p.expected for p in info.value.problems if p.key == "vision.faces.enrolment.cloud_key"]
    assert len(wanted) == 4 and all(any(w in e for e in wanted) for w in ("device_key_file", "[mqtt]", "vision on"))
    assert "a camera whose touchpoint is a kiosk" in wanted
    data["vision"]["faces"]["enrolment"]["cloud_key"] = base64.b64encode(bytes(31)).decode()
    with pytest.raises(ConfigError) as info:
        from_dict(data)
    assert "32-byte X25519" in str(info.value)


# -- what one frame is worth ------------------------------------------------------------------------------


def test_pose_is_zero_looking_straight_and_grows_turning_or_tilting() -> None:
    straight = np.array([[40, 50], [80, 50], [60, 70], [45, 90], [75, 90]], dtype=np.float32)
    assert pose(straight) == (0.0, 0.0)
    turned = straight.copy()
    turned[2] = [75, 70]  # the nose most of the way to one eye
    assert pose(turned)[0] == pytest.approx(0.375)
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    tilted = straight @ np.array([[c, s], [-s, c]], dtype=np.float32)
    assert pose(tilted)[1] == pytest.approx(30, abs=0.01) and pose(tilted)[0] == pytest.approx(0, abs=1e-5)


@pytest.fixture(scope="module")
def kiosk_frame(tmp_path_factory) -> np.ndarray:
    path = tmp_path_factory.mktemp("kiosk") / "one.avi"
    render(path, [kiosk_shopper()], seconds=0.2, size=(640, 480))
    ok, frame = cv2.VideoCapture(str(path)).read()
    assert ok
    return frame


def verdict(models: VisionModels, frame: np.ndarray, settings: Settings) -> Sample:
    assert models.faces is not None and models.embedder is not None
    faces = settings.vision.faces
    return sample(frame, models.faces(frame), models.embedder, faces.enrolment, faces.min_face_px)


@pytest.mark.parametrize(
    ("change", "hint"),
    [
        (lambda f: backdrop(640, 480), Hint.NO_FACE),
        (lambda f: shifted(f, scale=0.45), Hint.TOO_FAR),
        (lambda f: cv2.GaussianBlur(f, (0, 0), 4), Hint.BLURRED),
        (lambda f: (f * 0.25).astype(np.uint8), Hint.TOO_DARK),
        (lambda f: cv2.convertScaleAbs(f, alpha=1.0, beta=100), Hint.TOO_BRIGHT),
        (lambda f: cv2.warpAffine(f, cv2.getRotationMatrix2D((200, 150), 35, 1.0), (640, 480)), Hint.TURNED),
    ],
    ids=["nobody", "far", "blurred", "dark", "bright", "tilted"],
)
def test_a_frame_that_would_make_a_poor_template_says_why(
    models: VisionModels, kiosk_frame: np.ndarray, settings: Settings, change, hint: Hint
) -> None:
    assert verdict(models, kiosk_frame, settings).hint is None, "the frame itself is good"
    got = verdict(models, change(kiosk_frame), settings)
    assert (got.hint, got.vector) == (hint, None)


def test_a_good_frame_gives_the_shoppers_embedding_and_only_when_they_are_alone(
    models: VisionModels, kiosk_frame: np.ndarray, settings: Settings, astronaut: np.ndarray, tmp_path: Path
) -> None:
    good = verdict(models, kiosk_frame, settings)
    assert good.vector is not None and float(good.vector @ embedding_of(models, astronaut)) > 0.6
    render(
        tmp_path / "two.avi", [kiosk_shopper(), Walker("hopper", -10, 1e9, 0.72, 0.75)], seconds=0.2, size=(640, 480)
    )
    ok, two = cv2.VideoCapture(str(tmp_path / "two.avi")).read()
    assert ok
    crowded = verdict(models, two, settings)
    assert (crowded.hint, crowded.vector) == (Hint.SEVERAL_FACES, None), "nobody behind the shopper is enrolled"


# -- the desk: one enrolment per kiosk, its endings, and what is left on the host --------------------------


class Desk:
    """An enrolment desk on its own store and bus, with the cloud simulator (not connected) to open uploads."""

    def __init__(self, tmp_path: Path, issuer: CheckinIssuer, models_path: Path, **enrolment: Any):
        self.cloud = CloudSim("127.0.0.1", 1, "store-test", devices={"edge-test": DEVICE_KEY.public()})
        settings = enrolment_config(tmp_path, issuer, models_path, self.cloud.enrolment_key_b64, OFFLINE_MQTT)
        faces = settings.vision.faces
        faces = faces.model_copy(update={"enrolment": faces.enrolment.model_copy(update=enrolment)})
        self.settings = settings.model_copy(update={"vision": settings.vision.model_copy(update={"faces": faces})})
        self.store: Store = open_store(self.settings.database.path)
        self.store.roster.upsert(
            [
                RosterEntry(customer_ref=ref, consents={"checkin": True, "face": ref != "bob"})
                for ref in ("alice", "bob")
            ],
            datetime.now(UTC).isoformat(),
        )
        self.bus, self.clock = Bus(), Clock()
        self.desk = EnrolmentDesk(self.settings, self.store, self.bus, self.clock, DEVICE_KEY)

    def uploads(self) -> list[dict[str, Any]]:
        """What the outbox holds for the cloud about enrolments: sealed uploads and endings, in order."""
        return [e.payload for e in self.store.outbox.peek("events", 100) if e.kind.startswith("face_enrolment")]


@pytest.fixture
def desk(tmp_path: Path, issuer: CheckinIssuer, models_path: Path):
    made = Desk(tmp_path, issuer, models_path, interval_s=0.0, frames=3)
    yield made
    made.store.close()


def test_only_a_kiosk_with_a_camera_and_a_consenting_shopper_begins(desk: Desk) -> None:
    assert desk.desk.kiosks == {"kiosk-a"}
    with pytest.raises(EnrolmentRefused) as refused:
        desk.desk.start("alice", "screen-a")
    assert refused.value.code == "not_offered"
    with pytest.raises(EnrolmentRefused) as refused:
        desk.desk.start("bob", "kiosk-a")
    assert refused.value.code == "no_consent" and desk.store.enrolments.last("bob") is None


def test_good_frames_of_one_face_go_up_sealed_and_signed_and_nothing_of_them_stays(
    desk: Desk, models: VisionModels, astronaut: np.ndarray, hopper: np.ndarray
) -> None:
    alice, other = embedding_of(models, astronaut), embedding_of(models, hopper)
    enrolment = desk.desk.start("alice", "kiosk-a")
    assert desk.desk.wants_frames("kiosk-a") and not desk.desk.wants_frames("screen-a")
    desk.desk.take("kiosk-a", Sample(None, Hint.TOO_FAR), 1.0)
    assert enrolment.view() == {"state": "capturing", "frames": 0, "of": 3, "hint": "too_far", "reason": None}
    desk.desk.take("kiosk-a", Sample(alice), 2.0)
    desk.desk.take("kiosk-a", Sample(other), 3.0)  # someone else stepped in: not taken
    assert enrolment.view()["hint"] == "someone_else" and enrolment.taken == 1
    desk.desk.take("kiosk-a", Sample(alice * 0.999 / float(np.linalg.norm(alice * 0.999))), 4.0)
    assert desk.uploads() == []
    desk.desk.take("kiosk-a", Sample(alice), 5.0)
    assert enrolment.view() == {"state": "sent", "frames": 3, "of": 3, "hint": None, "reason": None}
    [upload] = desk.uploads()
    assert upload["customer_ref"] == "alice" and upload["outcome"] == "sent" and upload["frames"] == 3
    opened = desk.cloud.open_enrolment(upload)
    assert len(opened["face_embeddings"]) == 3 and opened["model"] == upload["model"]
    assert all(np.frombuffer(base64.b64decode(e), "<f4") @ alice > 0.99 for e in opened["face_embeddings"])
    for field, other_value in (("customer_ref", "bob"), ("device", "edge-other"), ("enrolment_id", "x" * 32)):
        with pytest.raises(ValueError):
            desk.cloud.open_enrolment({**upload, field: other_value})  # bound to customer, host and enrolment
    # Nothing of the face on the host: no vector's bytes in the database or its log, only the sealed copy.
    desk.store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    on_disk = b"".join(p.read_bytes() for p in Path(desk.settings.database.path).parent.glob("agent.db*"))
    assert alice.astype("<f4").tobytes()[:64] not in on_disk
    assert base64.b64encode(alice.astype("<f4").tobytes())[:40] not in on_disk
    assert desk.store.db.execute("SELECT count(*) FROM face_embeddings").fetchone()[0] == 0


def test_a_full_disk_fails_the_enrolment_and_keeps_nothing_of_the_face(
    desk: Desk, models: VisionModels, astronaut: np.ndarray
) -> None:
    alice = embedding_of(models, astronaut)
    enrolment = desk.desk.start("alice", "kiosk-a")
    db = desk.store.db
    db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0] + 4}")  # SQLite's full disk
    with pytest.raises(sqlite3.OperationalError, match="full"):  # telemetry fills the outbox's pages to the last
        for size in [1000] * 100 + [100] * 100 + [10] * 400:
            desk.store.outbox.add(
                stream="telemetry",
                kind="filler",
                payload={"x": "y" * size},
                created_at="t",
                drop_class=DropClass.TELEMETRY,
            )
    for t in (1.0, 2.0, 3.0):
        desk.desk.take("kiosk-a", Sample(alice), t)
    assert (enrolment.state, enrolment.reason, enrolment.vectors) == ("failed", "storage_full", [])
    assert desk.store.faults.failures == {"enrolment": 1} and desk.uploads() == []
    assert not desk.desk.wants_frames("kiosk-a")


def test_no_good_frame_in_time_fails_with_the_reason_and_no_face_data(desk: Desk) -> None:
    enrolment = desk.desk.start("alice", "kiosk-a")
    deadline = enrolment.deadline
    desk.desk.take("kiosk-a", Sample(None, Hint.SEVERAL_FACES), deadline - 1)
    desk.desk.tick("kiosk-a", deadline, picture=True)
    assert enrolment.view() == {"state": "failed", "frames": 0, "of": 3, "hint": "several_faces", "reason": "timeout"}
    [upload] = desk.uploads()
    assert upload["kind"] == "face_enrolment_ended" and "sealed" not in upload
    assert (upload["enrolment_id"], upload["outcome"], upload["reason"]) == (
        enrolment.enrolment_id,
        "failed",
        "timeout",
    )
    assert desk.store.enrolments.last("alice").reason == "timeout"


def test_cancel_withdrawal_erasure_and_a_restart_each_end_it_and_drop_the_frames(
    desk: Desk, models: VisionModels, astronaut: np.ndarray
) -> None:
    alice = embedding_of(models, astronaut)
    first = desk.desk.start("alice", "kiosk-a")
    desk.desk.take("kiosk-a", Sample(alice), 1.0)
    desk.desk.cancel("bob", "kiosk-a")  # somebody else's cancel does nothing
    assert first.state == "capturing"
    desk.desk.cancel("alice", "kiosk-a")
    assert (first.state, first.reason, first.vectors) == ("cancelled", "cancelled_by_shopper", [])

    second = desk.desk.start("alice", "kiosk-a")
    desk.desk.take("kiosk-a", Sample(alice), 2.0)
    wall = desk.clock.wall()
    desk.store.consents.set("alice", "face", False, at=wall.iso(), touchpoint="kiosk-a")
    desk.bus.publish(ConsentChanged("alice", Channel.FACE, False, wall))
    assert (second.state, second.reason, second.vectors) == ("cancelled", "consent_withdrawn", [])
    assert desk.store.enrolments.last("alice").reason == "consent_withdrawn"
    assert not desk.desk.wants_frames("kiosk-a")

    # An upload not yet sent when consent is withdrawn never goes up.
    desk.store.consents.set("alice", "face", True, at=wall.iso(), touchpoint="kiosk-a")
    third = desk.desk.start("alice", "kiosk-a")
    for t in (3.0, 4.0, 5.0):
        desk.desk.take("kiosk-a", Sample(alice), t)
    assert third.state == "sent" and [u["outcome"] for u in desk.uploads()] == ["cancelled", "cancelled", "sent"]
    desk.store.consents.set("alice", "face", False, at=wall.iso(), touchpoint="kiosk-a")
    ended = [(u["enrolment_id"], u["outcome"], u.get("reason")) for u in desk.uploads()]
    assert ended[-1] == (third.enrolment_id, "cancelled", "consent_withdrawn"), "the sealed upload never goes"
    assert not [u for u in desk.uploads() if "sealed" in u]

    # An enrolment under way when the agent stopped ends as failed at the next start.
    desk.store.consents.set("alice", "face", True, at=wall.iso(), touchpoint="kiosk-a")
    fourth = desk.desk.start("alice", "kiosk-a")
    assert desk.store.enrolments.interrupted(wall.iso()) == 1
    assert desk.store.enrolments.last("alice").enrolment_id == fourth.enrolment_id
    assert desk.store.enrolments.last("alice").reason == "agent_restarted"


# -- end to end: the kiosk, its camera, the outbox, the cloud, the roster back, the camera knowing her ----------


class KioskVisit:
    """A shopper at kiosk-a over HTTP, as the kiosk page talks to the agent."""

    def __init__(self, http: aiohttp.ClientSession, url: str):
        self.http, self.base, self.session = http, f"{url}/api/kiosk/kiosk-a", {}

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        async with self.http.request(method, f"{self.base}/{path}", json=body, headers=self.session) as resp:
            return resp.status, await resp.json()

    async def scan_app(self, token: str) -> dict[str, Any]:
        status, body = await self.call("POST", "identify", {"method": "qr", "value": token})
        assert status == 200, body
        self.session = {"X-Kiosk-Session": body["session"]}
        return body

    async def enrolment(self) -> dict[str, Any]:
        status, body = await self.call("GET", "session")
        assert status == 200, body
        return body["face_enrolment"]

    async def until_ended(self) -> dict[str, Any]:
        for _ in range(600):
            state = await self.enrolment()
            if state["state"] != "capturing":
                return state
            await asyncio.sleep(0.1)
        raise AssertionError(f"the enrolment did not end: {state}")


async def test_a_shopper_enrols_at_the_kiosk_and_the_camera_knows_her_once_the_cloud_adds_her(
    tmp_path: Path, issuer: CheckinIssuer, models_path: Path, models: VisionModels, astronaut, broker, cloud, running
) -> None:
    render(tmp_path / "kiosk.avi", [kiosk_shopper()], seconds=2.0, size=(640, 480))
    settings = enrolment_config(tmp_path, issuer, models_path, cloud.enrolment_key_b64, mqtt_section(broker, cloud))
    agent = await running(settings)
    seen = Collector(agent.bus, Sighting)
    await cloud.wait_for(lambda: agent.cloud.link.connected.is_set())
    headers = {"Authorization": f"Bearer {KIOSK_TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        visit = KioskVisit(http, agent.url)
        body = await visit.scan_app(issuer.token("alice", "kiosk-a"))
        assert body["face_enrolment"] == {"offered": True, "state": None, "reason": None}
        status, refused = await visit.call("POST", "face", {"agree": True})
        assert (status, refused["error"]) == (409, "no_consent"), "face consent comes first"
        assert (await visit.call("POST", "consent", {"channel": "face", "granted": True}))[0] == 200
        status, started = await visit.call("POST", "face", {"agree": True})
        assert status == 200 and started["face_enrolment"]["state"] == "capturing"
        ended = await visit.until_ended()
    assert ended == {"offered": True, "state": "sent", "frames": 5, "of": 5, "hint": None, "reason": None}

    # Up through the outbox: sealed to the cloud, signed by this host; the cloud opens it.
    upload = (await cloud.wait_for(lambda: cloud.of_kind("face_enrolment")))[0]
    opened = cloud.open_enrolment(upload)
    alice = embedding_of(models, astronaut)
    vectors = [np.frombuffer(base64.b64decode(e), "<f4") for e in opened["face_embeddings"]]
    assert len(vectors) == 5 and all(float(v @ alice) > 0.6 for v in vectors)
    assert not [s for s in seen.drain() if s.channel is Channel.FACE], "nobody is recognised by a face not enrolled"
    assert agent.store.db.execute("SELECT count(*) FROM face_embeddings").fetchone()[0] == 0

    # The cloud adds her face to the roster it sends the store (sealed to this host); the camera knows her.
    entry = agent.store.roster.get("alice")
    roster = [
        RosterEntry(
            customer_ref="alice",
            consents={"checkin": True, "face": True},
            consent_epoch=entry.consent_epoch,
            face_embeddings=opened["face_embeddings"],
        )
    ]
    await cloud.publish_roster(
        {"version": 7, "issued_at": datetime.now(UTC).isoformat()}
        | {"customers": [r.model_dump(mode="json") for r in roster]}
    )
    await wait_for(
        lambda: [s for s in seen.drain() if s.channel is Channel.FACE and s.subject == Customer("alice")],
        "alice to be recognised by the face she enrolled",
    )


async def test_the_kiosk_says_what_is_wrong_and_a_cancel_keeps_nothing(
    tmp_path: Path, issuer: CheckinIssuer, models_path: Path, running
) -> None:
    crowd = [kiosk_shopper(), Walker("hopper", -10, 1e9, 0.72, 0.75)]  # someone right behind her
    render(tmp_path / "kiosk.avi", crowd, seconds=2.0, size=(640, 480))
    cloud = CloudSim("127.0.0.1", 1, "store-test")
    agent = await running(enrolment_config(tmp_path, issuer, models_path, cloud.enrolment_key_b64, OFFLINE_MQTT))
    agent.store.consents.set("alice", "face", True, at=agent.clock.wall().iso(), touchpoint="kiosk-a")
    headers = {"Authorization": f"Bearer {KIOSK_TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        visit = KioskVisit(http, agent.url)
        await visit.scan_app(issuer.token("alice", "kiosk-a"))
        assert (await visit.call("POST", "face", {"agree": True}))[0] == 200
        await wait_for(lambda: agent.enrolments.counts["frames:several_faces"] >= 2, "frames with two faces")
        state = await visit.enrolment()
        assert (state["state"], state["hint"], state["frames"]) == ("capturing", "several_faces", 0)
        status, body = await visit.call("POST", "face/cancel", {})
        assert status == 200 and body["face_enrolment"]["state"] == "cancelled"
        assert body["face_enrolment"]["reason"] == "cancelled_by_shopper"
        # A new session (the shopper comes back) still says how the last enrolment ended.
        await visit.scan_app(issuer.token("alice", "kiosk-a"))
        assert (await visit.enrolment())["state"] == "cancelled"
    kinds = [e.kind for e in agent.store.outbox.peek("events", 1000) if e.kind.startswith("face_enrolment")]
    assert kinds == ["face_enrolment_ended"]
    assert agent.health()["vision"]["enrolment"]["capturing"] == []
