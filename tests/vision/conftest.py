"""Fixtures for the vision tests: the real models (from $EDGE_AGENT_MODELS), photos and rendered videos.

The model tests do not skip when the weights are absent: they fail and say how to provide them, so a
CI run without the models cannot pass by testing nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from edge_agent.config import VisionSettings
from edge_agent.sources.vision.models import ENV_VAR, load_manifest
from edge_agent.sources.vision.pipeline import VisionModels, load_models
from simulators.camera import photo


@pytest.fixture(scope="session")
def models_path() -> Path:
    folder = os.environ.get(ENV_VAR)
    if not folder:
        pytest.fail(f"{ENV_VAR} is not set: point it at the folder of real ONNX weights (CI: ../shared/models)")
    missing = [spec.file for spec in load_manifest().values() if not (Path(folder) / spec.file).is_file()]
    if missing:
        pytest.fail(f"{ENV_VAR}={folder} lacks the model files {', '.join(missing)}")
    return Path(folder)


@pytest.fixture(scope="session")
def vision_settings(models_path: Path) -> VisionSettings:
    return VisionSettings(models_dir=models_path, intra_op_threads=1, inter_op_threads=1)


@pytest.fixture(scope="session")
def models(vision_settings: VisionSettings) -> VisionModels:
    return load_models(vision_settings)


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    return photo("astronaut")


@pytest.fixture(scope="session")
def hopper() -> np.ndarray:
    return photo("hopper")
