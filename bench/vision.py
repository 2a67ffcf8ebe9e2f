"""Vision pipeline: frames per second against bare onnxruntime, per-face recognition time, idle CPU.

- `fps` / `bare_fps` / `ratio`: the same rendered frames through the agent's path (executor hand-off from
  the event loop, letterbox, person model, decode and NMS, tracker) and through a bare
  `session.run` on tensors prepared beforehand, same model, same threads, alternating frame by frame.
- `loop_lag_p99_ms`: how late a 10 ms timer on the event loop fires while the pipeline runs flat out
  (inference never blocks the loop).
- `face_ms`: one face recognised (YuNet on the photo, alignment, MobileFaceNet, gallery match) against
  `embed_bare_ms`, a bare MobileFaceNet run.
- `still_cpu_percent` / `moving_cpu_percent`: process CPU (% of one core) while the vision source watches
  a still, empty scene (motion gating: no inference) and the moving scene, each played in real time.
- `calibration`: similarities of the same face under changes (genuine) and of different people
  (impostor) on the public-domain photos in `simulators/assets`, with the false-match and false-non-match
  rates at the configured thresholds.

Needs the real models: `EDGE_AGENT_MODELS` or `../shared/models`.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bench.harness import models_folder
from edge_agent.bus import Bus
from edge_agent.clock import Clock
from edge_agent.config import Settings, VisionSettings, from_dict
from edge_agent.sources.vision.match import FaceGallery
from edge_agent.sources.vision.models import ENV_VAR, load_manifest, open_model
from edge_agent.sources.vision.pipeline import VisionModels, analyse, face_vectors, load_models
from edge_agent.sources.vision.source import VisionSource
from edge_agent.sources.vision.track import Tracker
from edge_agent.store import open_store
from simulators.camera import ASSETS, photo, render, scene


def _models_dir() -> Path:
    folder = models_folder()
    if folder is None:
        raise SystemExit(f"bench vision needs the real models: set {ENV_VAR} (e.g. ../shared/models)")
    return folder


def _frames(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame)


async def _interleaved_fps(
    models: VisionModels, session: Any, frames: list[np.ndarray], tensors: list[np.ndarray], rounds: int
) -> tuple[float, float]:
    """Pipeline fps and bare fps, frame by frame in alternation.

    Each frame goes once through the agent's path and once through a bare `session.run` on its tensor,
    one right after the other, so load from other jobs on a shared machine hits both sides alike.
    """
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vision-inference")
    name = session.get_inputs()[0].name
    tracker, gallery = Tracker(), FaceGallery()
    bare_s = pipeline_s = 0.0
    for _ in range(rounds):
        for frame, tensor in zip(frames, tensors, strict=True):
            t0 = time.perf_counter()
            session.run(None, {name: tensor})
            t1 = time.perf_counter()
            result = await loop.run_in_executor(executor, _people, models, gallery, frame)
            tracker.update(result.people, time.monotonic())
            t2 = time.perf_counter()
            bare_s, pipeline_s = bare_s + (t1 - t0), pipeline_s + (t2 - t1)
    executor.shutdown()
    n = rounds * len(frames)
    return n / pipeline_s, n / bare_s


def _people(models: VisionModels, gallery: FaceGallery, frame: np.ndarray) -> Any:
    return analyse(models, frame, gallery=gallery, identify_threshold=None)


async def _loop_lag_p99_ms(models: VisionModels, frames: list[np.ndarray]) -> float:
    """How late a 10 ms timer on the event loop fires while the pipeline runs flat out in its executor."""
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vision-inference")
    gallery, lags = FaceGallery(), []
    done = False

    async def ticker() -> None:
        while not done:
            start = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - start - 0.01)

    tick = asyncio.create_task(ticker())
    for frame in frames:
        await loop.run_in_executor(executor, _people, models, gallery, frame)
    done = True
    await tick
    executor.shutdown()
    return statistics.quantiles(lags, n=100)[98] * 1000


def _face_times(models: VisionModels, embed_session: Any, repeats: int) -> tuple[float, float]:
    image = photo("astronaut")
    gallery = FaceGallery([("alice", face_vectors(models, image)[0][1])])
    start = time.perf_counter()
    for _ in range(repeats):
        for _, vector in face_vectors(models, image):
            gallery.best(vector, 0.45)
    face_ms = (time.perf_counter() - start) / repeats * 1000
    tensor = np.zeros((1, 3, 112, 112), dtype=np.float32)
    start = time.perf_counter()
    for _ in range(repeats):
        embed_session.run(None, {"input0": tensor})
    return face_ms, (time.perf_counter() - start) / repeats * 1000


async def _cpu_while_watching(video: Path, workdir: Path, models: VisionModels, folder: Path) -> float:
    """Process CPU (% of one core) while the vision source plays `video` in real time."""
    settings: Settings = from_dict(
        {
            "store": {"id": "bench", "chain_id": "bench", "device_id": "edge-bench"},
            "zones": [{"id": "entrance"}],
            "database": {"path": str(workdir / f"{video.stem}.db")},
            "sources": {"checkin": False, "vision": True},
            "vision": {"models_dir": str(folder), "cameras": [{"id": "cam", "source": str(video), "zone": "entrance"}]},
        }
    )
    store = open_store(settings.database.path)
    source = VisionSource(settings, store, Bus(), Clock(), models=models)
    task = asyncio.create_task(source.run())
    while "cam" not in source.health()["cameras"] or source.health()["cameras"]["cam"]["frames_read"] < 3:
        await asyncio.sleep(0.05)
    cpu, wall = time.process_time(), time.perf_counter()
    while source.health()["cameras"]["cam"]["state"] != "ended":
        await asyncio.sleep(0.05)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    store.close()
    return 100.0 * cpu / wall


def _shift(image: np.ndarray, dx: float, dy: float, scale: float) -> np.ndarray:
    matrix = np.float32([[scale, 0, dx], [0, scale, dy]])
    return cv2.warpAffine(image, matrix, (image.shape[1], image.shape[0]), borderValue=(60, 60, 60))


def calibrate(models: VisionModels, settings: VisionSettings) -> dict[str, Any]:
    """Genuine and impostor similarities on the shipped public-domain photos, and the error rates."""
    changes = [
        lambda im: im,
        lambda im: _shift(im, 40, -20, 1.0),
        lambda im: _shift(im, 80, 90, 0.6),
        lambda im: _shift(im, -120, -40, 1.4),
        lambda im: cv2.convertScaleAbs(im, alpha=1.0, beta=50),
        lambda im: cv2.convertScaleAbs(im, alpha=0.6, beta=0),
        lambda im: cv2.GaussianBlur(im, (5, 5), 0),
        lambda im: cv2.imdecode(cv2.imencode(".jpg", im, [cv2.IMWRITE_JPEG_QUALITY, 30])[1], cv2.IMREAD_COLOR),
        lambda im: cv2.flip(im, 1),
    ]
    people = {
        "astronaut": photo("astronaut"),
        "hopper": photo("hopper"),
        "camera": cv2.imread(str(ASSETS / "camera.jpg")),
    }
    vectors: dict[str, list[np.ndarray]] = {}
    for name, image in people.items():
        vectors[name] = [v for change in changes for _, v in face_vectors(models, change(image))[:1]]
    genuine = [float(a @ b) for vs in vectors.values() for i, a in enumerate(vs) for b in vs[i + 1 :]]
    names = list(vectors)
    impostor = [
        float(a @ b) for i, n in enumerate(names) for m in names[i + 1 :] for a in vectors[n] for b in vectors[m]
    ]
    faces = settings.faces
    return {
        "identities": len(names),
        "genuine_pairs": len(genuine),
        "impostor_pairs": len(impostor),
        "genuine_min": round(min(genuine), 3),
        "impostor_max": round(max(impostor), 3),
        "fmr_at_identify": sum(s >= faces.identify_threshold for s in impostor) / len(impostor),
        "fnmr_at_identify": sum(s < faces.identify_threshold for s in genuine) / len(genuine),
        "fmr_at_verify": sum(s >= faces.verify_threshold for s in impostor) / len(impostor),
        "fnmr_at_verify": sum(s < faces.verify_threshold for s in genuine) / len(genuine),
    }


async def run(quick: bool) -> dict[str, Any]:
    folder = _models_dir()
    settings = VisionSettings(models_dir=folder)
    models = load_models(settings)
    rounds = 3 if quick else 10
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        seconds = 5.0 if quick else 15.0
        render(workdir / "scene.avi", scene(seconds), seconds=seconds)
        render(workdir / "still.avi", [], seconds=seconds)
        frames = _frames(workdir / "scene.avi")
        assert models.people is not None
        tensors = [models.people.preprocess(f)[0].copy() for f in frames]
        threads = {"intra_op_threads": settings.intra_op_threads, "inter_op_threads": settings.inter_op_threads}
        bare_session = open_model(load_manifest()[settings.people_model], folder, **threads)
        for tensor, frame in zip(tensors[:5], frames[:5], strict=True):  # warm-up
            bare_session.run(None, {bare_session.get_inputs()[0].name: tensor})
            models.people(frame)
        fps, bare = await _interleaved_fps(models, bare_session, frames, tensors, rounds)
        lag = await _loop_lag_p99_ms(models, frames)
        embed_session = open_model(load_manifest()["embedding"], folder, **threads)
        face_ms, embed_ms = _face_times(models, embed_session, 20 if quick else 100)
        still = await _cpu_while_watching(workdir / "still.avi", workdir, models, folder)
        moving = await _cpu_while_watching(workdir / "scene.avi", workdir, models, folder)
    return {
        "model": settings.people_model,
        "frames": len(frames) * rounds,
        "fps": round(fps, 1),
        "bare_fps": round(bare, 1),
        "ratio": round(fps / bare, 3),
        "loop_lag_p99_ms": round(lag, 2),
        "face_ms": round(face_ms, 2),
        "embed_bare_ms": round(embed_ms, 2),
        "still_cpu_percent": round(still, 2),
        "moving_cpu_percent": round(moving, 2),
        "calibration": calibrate(models, settings),
    }
