"""Shared fixtures: the cloud's check-in signer, a small store's settings, a running agent, a broker and the cloud.
The plain builders they use are in factories.py."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

from edge_agent.app import Agent
from edge_agent.config import Settings, from_dict
from edge_agent.sources.vision.models import ENV_VAR, load_manifest
from simulators.broker import Mosquitto
from simulators.checkin_app import CheckinIssuer
from simulators.cloud import CloudSim

from .factories import DEVICE, DEVICE_KEY, STORE, config_dict, seed

# Property tests: the short default runs in the suite; HYPOTHESIS_PROFILE=full tries ten times as many inputs.
hypothesis_settings.register_profile("suite", deadline=None)
hypothesis_settings.register_profile("full", deadline=None, max_examples=1000)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))


@pytest.fixture(scope="session")
def models_path() -> Path:
    """The real ONNX weights ($EDGE_AGENT_MODELS). Tests that need them do not skip when they are absent: they
    fail and say how to provide them, so a CI run without the models cannot pass by testing nothing."""
    folder = os.environ.get(ENV_VAR)
    if not folder:
        pytest.fail(f"{ENV_VAR} is not set: point it at the folder of real ONNX weights (CI: ../shared/models)")
    missing = [spec.file for spec in load_manifest().values() if not (Path(folder) / spec.file).is_file()]
    if missing:
        pytest.fail(f"{ENV_VAR}={folder} lacks the model files {', '.join(missing)}")
    return Path(folder)


@pytest.fixture
def issuer() -> CheckinIssuer:
    return CheckinIssuer(STORE)


@pytest.fixture
def settings(tmp_path: Path, issuer: CheckinIssuer) -> Settings:
    return from_dict(config_dict(tmp_path, issuer))


@pytest.fixture
async def running(settings: Settings) -> AsyncIterator[Callable[..., Any]]:
    """Start agents on free ports; every agent started is stopped at the end of the test."""
    agents: list[Agent] = []

    async def start(s: Settings = settings, seeded: bool = True) -> Agent:
        agent = Agent(s)
        if seeded:
            seed(agent)
        await agent.start()
        agents.append(agent)
        return agent

    yield start
    for agent in agents:
        await agent.stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A private Mosquitto on a free port, persisting like a cloud broker; tests may kill and restart it."""
    mosquitto = Mosquitto(tmp_path / "mosquitto", durable=True).start()
    yield mosquitto
    mosquitto.stop()


@pytest.fixture
async def cloud(broker: Mosquitto) -> AsyncIterator[CloudSim]:
    """The cloud simulator on that broker, for this test's store."""
    sim = await CloudSim(broker.host, broker.port, STORE, devices={DEVICE: DEVICE_KEY.public()}).start()
    yield sim
    await sim.close()
