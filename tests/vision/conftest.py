"""Fixtures for the vision tests: the real models (`models_path`, in tests/conftest.py), photos and videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_agent.config import VisionSettings
from edge_agent.sources.vision.pipeline import VisionModels, load_models
from simulators.camera import photo


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
