"""The shipped systemd units pass `systemd-analyze verify`, and the installer is valid shell."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SYSTEMD = Path(__file__).resolve().parents[2] / "systemd"
INSTALLED_AGENT = "/opt/edge-agent/venv/bin/edge-agent"


def _verify(unit: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60
    )


def _as_installed(tmp_path: Path, name: str, text: str | None = None) -> Path:
    """The unit as install.sh writes it; only the venv's path is pointed at this machine's edge-agent."""
    beside_python = Path(sys.executable).with_name("edge-agent")  # the console script of this interpreter
    agent = str(beside_python) if beside_python.exists() else shutil.which("edge-agent")
    assert agent, "edge-agent is not installed (pip install -e .)"
    text = text if text is not None else (SYSTEMD / name).read_text()
    unit = tmp_path / name
    unit.write_text(text.replace(INSTALLED_AGENT, agent))
    return unit


def test_agent_unit_verifies(tmp_path):
    done = _verify(_as_installed(tmp_path, "edge-agent.service"))
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == ""


def test_agent_unit_has_the_promised_behaviour():
    text = (SYSTEMD / "edge-agent.service").read_text()
    promised = ["Type=notify", "WatchdogSec=", "DynamicUser=yes", "ProtectSystem=strict", "StateDirectory=edge-agent"]
    promised += ["LoadCredential=mqtt-password:", "NoNewPrivileges=yes", "CapabilityBoundingSet=\n"]
    for line in promised:
        assert line in text, line


@pytest.mark.parametrize("instance", ["edge-agent-kiosk@.service", "edge-agent-kiosk@screen-entrance.service"])
def test_kiosk_unit_verifies(tmp_path, instance):
    unit = _as_installed(tmp_path, instance, (SYSTEMD / "edge-agent-kiosk@.service").read_text())
    done = _verify(unit)
    assert done.returncode == 0, done.stderr


def test_a_broken_unit_is_caught(tmp_path):
    broken = (SYSTEMD / "edge-agent.service").read_text().replace("Type=notify", "Type=notify-ish")
    done = _verify(_as_installed(tmp_path, "edge-agent.service", broken))
    assert "notify-ish" in done.stderr


def test_installer_is_valid_bash():
    assert subprocess.run(["bash", "-n", str(SYSTEMD / "install.sh")]).returncode == 0
