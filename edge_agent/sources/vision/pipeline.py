"""One frame through the models: people, and faces matched against the gallery.

`analyse` runs in the inference executor. It returns boxes and matches only: face crops and embeddings
stay inside this function, so nothing identifying about a passer-by ever reaches the event loop. The one
exception is asked for: while a shopper enrols at the camera's kiosk, the embedding of a frame that shows
exactly that one face, close and clear (face_quality.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from ...config import EnrolmentSettings, VisionSettings
from .detect import Detection, Face, FaceDetector, PersonDetector
from .embed import Embedder, align
from .face_quality import Sample, sample
from .match import FaceGallery, Match
from .models import load_manifest, models_dir, open_model


@dataclass(frozen=True)
class VisionModels:
    people: PersonDetector | None
    faces: FaceDetector | None
    embedder: Embedder | None


def load_models(vision: VisionSettings, *, people: bool = True, faces: bool = True) -> VisionModels:
    """Open and verify the models the settings need; raises ModelError naming the file at fault."""
    specs = load_manifest()
    folder = models_dir(vision.models_dir)
    threads = {"intra_op_threads": vision.intra_op_threads, "inter_op_threads": vision.inter_op_threads}
    person = detector = embedder = None
    if people:
        session = open_model(specs[vision.people_model], folder, **threads)
        person = PersonDetector(session, threshold=vision.person_threshold)
    if faces:
        session = open_model(specs["faces"], folder, **threads)
        detector = FaceDetector(session, threshold=vision.faces.detect_threshold)
        embedder = Embedder(open_model(specs["embedding"], folder, **threads))
    return VisionModels(person, detector, embedder)


def face_vectors(
    models: VisionModels, frame: np.ndarray, min_face_px: int = 0
) -> list[tuple[Face, npt.NDArray[np.float32]]]:
    """Every face large enough to recognise, with its embedding (operator tools and the pipeline)."""
    assert models.faces is not None
    return embedded(models, frame, models.faces(frame), min_face_px)


def embedded(
    models: VisionModels, frame: np.ndarray, faces: list[Face], min_face_px: int
) -> list[tuple[Face, npt.NDArray[np.float32]]]:
    assert models.embedder is not None
    out = []
    for face in faces:
        x1, y1, x2, y2 = face.box
        if min(x2 - x1, y2 - y1) < min_face_px:
            continue
        crop = align(frame, face.landmarks)
        if crop is not None:
            out.append((face, models.embedder(crop)))
    return out


@dataclass(frozen=True)
class Analysis:
    people: list[Detection]
    matches: list[Match] = field(default_factory=list)
    verified: list[Match] = field(default_factory=list)
    faces_seen: int = 0
    enrolment: Sample | None = None  # asked for while a shopper enrols at this camera's kiosk


def analyse(
    models: VisionModels,
    frame: np.ndarray,
    *,
    gallery: FaceGallery,
    identify_threshold: float | None,
    verify: frozenset[str] = frozenset(),
    verify_threshold: float = 1.0,
    min_face_px: int = 40,
    enrol: EnrolmentSettings | None = None,
) -> Analysis:
    """People in the frame; with faces wanted, 1:N matches (identify), 1:1 checks of pending check-ins and the
    frame's verdict for an enrolment under way."""
    people = models.people(frame) if models.people is not None else []
    if identify_threshold is None and not verify and enrol is None:
        return Analysis(people)
    assert models.faces is not None and models.embedder is not None
    detected = models.faces(frame)
    enrolment = sample(frame, detected, models.embedder, enrol, min_face_px) if enrol is not None else None
    if identify_threshold is None and not verify:
        return Analysis(people, enrolment=enrolment)
    matches, verified = [], []
    faces = embedded(models, frame, detected, min_face_px)
    for _, vector in faces:
        if verify:
            hit = gallery.best(vector, verify_threshold, among=set(verify))
            if hit is not None:
                verified.append(hit)
                continue
        if identify_threshold is not None:
            hit = gallery.best(vector, identify_threshold)
            if hit is not None:
                matches.append(hit)
        # a face that matched nobody: its vector goes out of scope here and is never kept
    return Analysis(people, matches, verified, len(faces), enrolment)
