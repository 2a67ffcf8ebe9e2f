"""Faces with the real YuNet and MobileFaceNet models, on public-domain photos."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent.cli import main
from edge_agent.config import VisionSettings
from edge_agent.sources.vision.match import FaceGallery
from edge_agent.sources.vision.pipeline import VisionModels
from edge_agent.store.faces import decode_embedding
from simulators.camera import ASSETS, backdrop, photo

from .factories import embedding_of, jpeg, shifted

DEFAULTS = VisionSettings().faces


def test_a_face_is_found_in_a_public_domain_photo(models: VisionModels, astronaut: np.ndarray) -> None:
    assert models.faces is not None
    faces = models.faces(astronaut)
    assert len(faces) == 1
    x1, y1, x2, y2 = faces[0].box
    # Eileen Collins' face in the 512×512 photo sits around x 180–270, y 65–175.
    assert 150 < x1 < 210 and 240 < x2 < 300 and 40 < y1 < 100 and 150 < y2 < 210
    eyes, nose = faces[0].landmarks[:2], faces[0].landmarks[2]
    assert eyes[0][0] < nose[0] < eyes[1][0] and eyes[:, 1].max() < nose[1]


def test_no_face_in_a_drawn_shop_wall(models: VisionModels) -> None:
    assert models.faces is not None
    assert models.faces(backdrop(640, 480)) == []


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda im: shifted(im, dx=60, dy=-30), id="shift"),
        pytest.param(lambda im: shifted(im, scale=0.55, dx=100, dy=120), id="smaller"),
        pytest.param(lambda im: shifted(im, scale=1.5, dx=-150, dy=-40), id="larger"),
        pytest.param(lambda im: cv2.convertScaleAbs(im, alpha=1.0, beta=60), id="brighter"),
        pytest.param(lambda im: cv2.convertScaleAbs(im, alpha=0.6, beta=-10), id="darker"),
        pytest.param(lambda im: jpeg(im, 25), id="jpeg-25"),
        pytest.param(lambda im: jpeg(shifted(im, scale=0.7, dx=40), 40), id="smaller-jpeg-40"),
    ],
)
def test_an_enrolled_face_is_recognised_under_changes(models: VisionModels, astronaut: np.ndarray, change) -> None:
    gallery = FaceGallery([("alice", embedding_of(models, astronaut))])
    probe = embedding_of(models, change(astronaut))
    match = gallery.best(probe, DEFAULTS.identify_threshold)
    assert match is not None and match.customer_ref == "alice"


@pytest.mark.parametrize("other", ["hopper", "camera"])
def test_a_different_face_is_not_recognised(models: VisionModels, astronaut: np.ndarray, other: str) -> None:
    image = photo(other) if other != "camera" else cv2.imread(str(ASSETS / "camera.jpg"))
    gallery = FaceGallery([("alice", embedding_of(models, astronaut))])
    probe = embedding_of(models, image)
    assert gallery.best(probe, DEFAULTS.verify_threshold) is None
    assert gallery.best(probe, DEFAULTS.identify_threshold) is None


def test_enroll_prints_embeddings_the_roster_accepts(
    models_path: Path, tmp_path: Path, astronaut: np.ndarray, capsys
) -> None:
    image = tmp_path / "alice.jpg"
    cv2.imwrite(str(image), shifted(astronaut, dx=20))
    assert (
        main(["enroll", "--customer", "alice", "--models", str(models_path), str(image), str(ASSETS / "astronaut.jpg")])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["customer_ref"] == "alice" and len(out["face_embeddings"]) == 2
    first, second = (decode_embedding(e) for e in out["face_embeddings"])
    assert float(first @ second) > DEFAULTS.identify_threshold


def test_enroll_refuses_an_image_without_exactly_one_face(models_path: Path, tmp_path: Path, capsys) -> None:
    empty = tmp_path / "wall.png"
    cv2.imwrite(str(empty), backdrop(640, 480))
    assert main(["enroll", "--customer", "alice", "--models", str(models_path), str(empty)]) == 1
    err = capsys.readouterr().err
    assert str(empty) in err and "found 0 faces" in err


def test_faces_verify_prints_similarity_and_decision(models_path: Path, capsys) -> None:
    args = ["faces", "verify", "--models", str(models_path)]
    assert main([*args, str(ASSETS / "astronaut.jpg"), str(ASSETS / "astronaut.jpg")]) == 0
    same = json.loads(capsys.readouterr().out)
    assert same["same_person"] is True and same["similarity"] > 0.99
    assert main([*args, str(ASSETS / "astronaut.jpg"), str(ASSETS / "grace_hopper.jpg")]) == 0
    different = json.loads(capsys.readouterr().out)
    assert different["same_person"] is False and different["similarity"] < different["threshold"]


def test_the_default_thresholds_give_the_false_match_rate_stated_in_the_docs(models: VisionModels) -> None:
    from bench.vision import calibrate

    figures = calibrate(models, VisionSettings())
    assert figures["impostor_pairs"] >= 200 and figures["genuine_pairs"] >= 100
    assert figures["fmr_at_identify"] == 0.0 and figures["fmr_at_verify"] == 0.0
    assert figures["fnmr_at_identify"] == 0.0
    page = (Path(__file__).parents[2] / "docs" / "vision.md").read_text()
    assert f"impostor pairs {figures['impostor_pairs']}, highest similarity {figures['impostor_max']}" in page
