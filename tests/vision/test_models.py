"""The model manifest against the real weights: verification, refusal of bad files, installation."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from edge_agent.cli import main
from edge_agent.sources.vision.models import ModelError, check_all, install, load_manifest, open_model


def copy_models(source: Path, target: Path) -> Path:
    for spec in load_manifest().values():
        (target / spec.file).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / spec.file, target / spec.file)
    return target


def test_manifest_pins_the_same_sha256_as_the_model_folder(models_path: Path) -> None:
    sums = dict(reversed(line.split()) for line in (models_path / "SHA256SUMS").read_text().splitlines() if line)
    for spec in load_manifest().values():
        assert sums[spec.file] == spec.sha256, spec.file
        assert spec.source and spec.licence.startswith("Apache-2.0")


def test_every_real_model_passes_the_check(models_path: Path) -> None:
    assert check_all(models_path) == {name: "ok" for name in load_manifest()}


def test_a_corrupt_model_is_refused_naming_the_file(models_path: Path, tmp_path: Path) -> None:
    folder = copy_models(models_path, tmp_path)
    spec = load_manifest()["embedding"]
    path = folder / spec.file
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError) as err:
        open_model(spec, folder)
    assert err.value.file == str(path) and "sha256" in err.value.problem


def test_a_missing_model_is_named(tmp_path: Path) -> None:
    spec = load_manifest()["faces"]
    with pytest.raises(ModelError, match=r"yunet_n_dynamic\.onnx: missing"):
        open_model(spec, tmp_path)


def test_a_file_that_is_not_onnx_is_refused(tmp_path: Path) -> None:
    spec = load_manifest()["faces"]
    (tmp_path / spec.file).parent.mkdir(parents=True)
    (tmp_path / spec.file).write_bytes(b"not a model")

    unpinned = replace(spec, sha256=hashlib.sha256(b"not a model").hexdigest())
    with pytest.raises(ModelError, match="onnxruntime cannot load it"):
        open_model(unpinned, tmp_path)


def test_a_wrong_shaped_model_is_refused(models_path: Path) -> None:
    yolox = load_manifest()["yolox_nano"]
    # The light detector's file, pinned correctly, where the manifest expects YOLOX-nano's shapes.
    light = load_manifest()["light_person"]
    impostor = replace(yolox, file=light.file, sha256=light.sha256)
    with pytest.raises(ModelError, match=r"input 'images' has shape \[1, 3, 192, 192\], expected \[1, 3, 416, 416\]"):
        open_model(impostor, models_path)


def test_install_copies_and_verifies_and_refuses_a_bad_source(models_path: Path, tmp_path: Path) -> None:
    bad = copy_models(models_path, tmp_path / "bad")
    (bad / load_manifest()["yolox_nano"].file).write_bytes(b"truncated")
    with pytest.raises(ModelError, match=r"yolox_nano\.onnx: sha256"):
        install(bad, tmp_path / "target")
    assert not (tmp_path / "target").exists(), "nothing is copied from a bad source"
    installed = install(models_path, tmp_path / "target")
    assert sorted(installed) == sorted(spec.file for spec in load_manifest().values())
    assert check_all(tmp_path / "target") == {name: "ok" for name in load_manifest()}


def test_models_check_command_reports_json_and_fails_on_a_bad_file(models_path: Path, tmp_path: Path, capsys) -> None:
    assert main(["models", "check", "--models", str(models_path)]) == 0
    assert set(json.loads(capsys.readouterr().out)["models"].values()) == {"ok"}
    folder = copy_models(models_path, tmp_path)
    (folder / load_manifest()["faces"].file).unlink()
    assert main(["models", "check", "--models", str(folder)]) == 1
    report = json.loads(capsys.readouterr().out)["models"]
    assert "yunet_n_dynamic.onnx: missing" in report["faces"] and report["embedding"] == "ok"


def test_models_install_command(models_path: Path, tmp_path: Path, capsys) -> None:
    assert main(["models", "install", "--from", str(models_path), "--models", str(tmp_path / "m")]) == 0
    assert len(json.loads(capsys.readouterr().out)["installed"]) == len(load_manifest())
    assert main(["models", "install", "--from", str(tmp_path / "nowhere"), "--models", str(tmp_path / "m2")]) == 1
    assert "missing" in capsys.readouterr().err
