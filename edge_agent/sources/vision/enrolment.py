"""Face enrolment at a kiosk: the camera that looks out from it takes a few good frames of the shopper who
agreed, and their embeddings go up sealed to the cloud, which adds them to the roster.

One enrolment at a time per kiosk. It begins only with face consent recorded (the kiosk asked for the app's
QR code first) and ends one of three ways: *sent* (enough good frames, all of the same face, consent
checked again, the embeddings sealed and signed into the outbox), *cancelled* (the shopper, the kiosk
session ending, consent withdrawn, erasure) or *failed* (no good frames in time, with the last reason).
The embeddings exist only in this process's memory until sealed, and are dropped the moment an enrolment
ends; the host cannot open what it sealed. docs/protocols/face-enrolment.md has the upload's format.
"""

from __future__ import annotations

import base64
import contextlib
import json
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ...bus import Bus
from ...clock import Clock
from ...config import Settings, enrolment_kiosks
from ...errors import Refused
from ...events import Channel, ConsentChanged, Erased
from ...keys import DeviceKey, seal_to, x25519_public_from_b64
from ...store import Store
from ...store.enrolments import Outcome, upload_info
from ...store.faces import encode_embedding
from ...store.faults import StorageRefused
from .face_quality import Hint, Sample
from .match import similarity
from .models import load_manifest

CAPTURING = "capturing"


class EnrolmentRefused(Refused):
    """Not begun: `not_offered` (no camera at this kiosk takes enrolments) or `no_consent`."""


@dataclass
class Enrolment:
    enrolment_id: str
    customer_ref: str
    touchpoint: str
    deadline: float
    needed: int
    state: str = CAPTURING  # or an Outcome's value
    hint: Hint | None = None  # what the last frame lacked
    reason: str | None = None  # why it was cancelled or failed
    taken: int = 0
    last_taken: float = float("-inf")
    vectors: list[npt.NDArray[np.float32]] = field(default_factory=list, repr=False)

    def view(self) -> dict[str, Any]:
        """What the kiosk shows: how far it got and what to change (or, when it failed, what was wrong)."""
        return {
            "state": self.state,
            "frames": self.taken,
            "of": self.needed,
            "hint": self.hint.value if self.hint and self.state in (CAPTURING, Outcome.FAILED) else None,
            "reason": self.reason,
        }


class EnrolmentDesk:
    def __init__(self, settings: Settings, store: Store, bus: Bus, clock: Clock, device_key: DeviceKey | None):
        self._rules = settings.vision.faces.enrolment
        self._same_face = settings.vision.faces.verify_threshold  # a frame of someone else is not taken
        self._settings = settings
        self._store = store
        self._clock = clock
        self._device_key = device_key
        key = self._rules.cloud_key
        self._cloud_key = x25519_public_from_b64(key) if key is not None else None
        usable = key is not None and device_key is not None and settings.sources.vision
        self.kiosks = enrolment_kiosks(settings) if usable else set()
        self._model = load_manifest()["embedding"].sha256
        self._at: dict[str, Enrolment] = {}  # kiosk → its enrolment under way, or the last one until the next
        self.counts: Counter[str] = Counter()
        bus.on(Erased, "enrolment", lambda e: self._stop(e.customer_ref, "erased"))
        bus.on(ConsentChanged, "enrolment", self._on_consent)

    # -- the kiosk's side ---------------------------------------------------------------------------------

    def start(self, customer_ref: str, touchpoint: str) -> Enrolment:
        """Begin at this kiosk (ending whatever was under way there); EnrolmentRefused says why not."""
        if touchpoint not in self.kiosks:
            raise EnrolmentRefused("not_offered", "no camera at this kiosk takes face enrolments")
        under_way = self._at.get(touchpoint)
        if under_way is not None:
            self.cancel(under_way.customer_ref, touchpoint, "replaced")
        enrolment = Enrolment(
            uuid.uuid4().hex, customer_ref, touchpoint, self._clock.mono() + self._rules.timeout_s, self._rules.frames
        )
        try:
            self._store.enrolments.begin(
                enrolment.enrolment_id, customer_ref, touchpoint=touchpoint, at=self._clock.wall().iso()
            )
        except PermissionError as exc:
            raise EnrolmentRefused("no_consent", str(exc)) from None
        self._at[touchpoint] = enrolment
        self.counts["started"] += 1
        return enrolment

    def status(self, customer_ref: str, touchpoint: str) -> Enrolment | None:
        enrolment = self._at.get(touchpoint)
        if enrolment is None or enrolment.customer_ref != customer_ref:
            return None
        self.tick(touchpoint, self._clock.mono())
        return enrolment

    def cancel(self, customer_ref: str, touchpoint: str, reason: str = "cancelled_by_shopper") -> None:
        """Stop this shopper's enrolment under way at this kiosk, if there is one; its frames are dropped."""
        enrolment = self._at.get(touchpoint)
        if enrolment is not None and enrolment.customer_ref == customer_ref and enrolment.state == CAPTURING:
            self._end(enrolment, Outcome.CANCELLED, reason)

    # -- the camera's side --------------------------------------------------------------------------------

    def wants_frames(self, touchpoint: str | None) -> bool:
        enrolment = self._at.get(touchpoint) if touchpoint is not None else None
        return enrolment is not None and enrolment.state == CAPTURING

    def tick(self, touchpoint: str, now: float, *, picture: bool = True) -> None:
        """Time passes at the kiosk: an enrolment without enough good frames by its deadline fails."""
        enrolment = self._at.get(touchpoint)
        if enrolment is None or enrolment.state != CAPTURING:
            return
        if not picture:
            enrolment.hint = Hint.NO_PICTURE
        if now >= enrolment.deadline:
            enrolment.hint = enrolment.hint or Hint.NO_FACE
            self._end(enrolment, Outcome.FAILED, "timeout")

    def take(self, touchpoint: str, sample: Sample, now: float) -> None:
        """One analysed frame from the kiosk's camera."""
        enrolment = self._at.get(touchpoint)
        if enrolment is None or enrolment.state != CAPTURING:
            return
        self.counts[f"frames:{sample.hint or 'good'}"] += 1
        if sample.vector is None:
            enrolment.hint = sample.hint
        elif enrolment.vectors and similarity(enrolment.vectors[0], sample.vector) < self._same_face:
            enrolment.hint = Hint.SOMEONE_ELSE
        elif now - enrolment.last_taken >= self._rules.interval_s:
            enrolment.vectors.append(sample.vector)
            enrolment.taken, enrolment.last_taken, enrolment.hint = enrolment.taken + 1, now, None
            if enrolment.taken >= enrolment.needed:
                self._send(enrolment)
                return
        self.tick(touchpoint, now)

    # -- endings ------------------------------------------------------------------------------------------

    def _send(self, enrolment: Enrolment) -> None:
        assert self._cloud_key is not None and self._device_key is not None
        store, device = self._settings.store.id, self._settings.store.device_id
        info = upload_info(store, device, enrolment.customer_ref, enrolment.enrolment_id)
        plain = json.dumps(
            {
                "customer_ref": enrolment.customer_ref,
                "enrolment_id": enrolment.enrolment_id,
                "model": self._model,
                "face_embeddings": [encode_embedding(v) for v in enrolment.vectors],
            }
        ).encode()
        sealed = seal_to(self._cloud_key, plain, info)
        upload = {
            "enrolment_id": enrolment.enrolment_id,
            "customer_ref": enrolment.customer_ref,
            "touchpoint": enrolment.touchpoint,
            "device": device,
            "outcome": Outcome.SENT.value,
            "frames": len(enrolment.vectors),
            "model": self._model,
            "sealed": base64.b64encode(sealed).decode("ascii"),
            "signature": base64.b64encode(self._device_key.sign_key.sign(info + sealed)).decode("ascii"),
        }
        enrolment.vectors.clear()
        try:
            with self._store.faults.writing("enrolment", "the face enrolment"):
                self._store.enrolments.sent(
                    enrolment.enrolment_id, enrolment.customer_ref, upload, at=self._clock.wall().iso()
                )
        except PermissionError:  # withdrawn or erased between the last frame and now: nothing goes up
            self._ended_unrecorded(enrolment, Outcome.CANCELLED, "consent_withdrawn")
            return
        except StorageRefused:  # a full disk: the shopper is told it failed; nothing of the face is kept
            self._ended_unrecorded(enrolment, Outcome.FAILED, "storage_full")
            return
        enrolment.state = Outcome.SENT.value
        self.counts["sent"] += 1

    def _end(self, enrolment: Enrolment, outcome: Outcome, reason: str) -> None:
        self._ended_unrecorded(enrolment, outcome, reason)
        at = self._clock.wall().iso()
        # a full disk: it ends all the same (the store counts the refused write)
        with contextlib.suppress(StorageRefused), self._store.faults.writing("enrolment", "the end of an enrolment"):
            self._store.enrolments.ended(enrolment.enrolment_id, enrolment.customer_ref, outcome, reason, at=at)

    def _ended_unrecorded(self, enrolment: Enrolment, outcome: Outcome, reason: str) -> None:
        """The enrolment ends here, its frames dropped; what the store records (if anything) is the caller's."""
        enrolment.vectors.clear()
        enrolment.state, enrolment.reason = outcome.value, reason
        self.counts[outcome.value] += 1

    def _stop(self, customer_ref: str, reason: str) -> None:
        """Erased or face consent withdrawn: the store already recorded it; the frames go now."""
        for enrolment in self._at.values():
            if enrolment.customer_ref == customer_ref and enrolment.state == CAPTURING:
                self._ended_unrecorded(enrolment, Outcome.CANCELLED, reason)

    def _on_consent(self, change: ConsentChanged) -> None:
        if change.channel == Channel.FACE and not change.granted:
            self._stop(change.customer_ref, "consent_withdrawn")

    def health(self) -> dict[str, Any]:
        return {
            "kiosks": sorted(self.kiosks),
            "capturing": sorted(tp for tp, e in self._at.items() if e.state == CAPTURING),
            "counts": dict(self.counts),
        }
