"""The model manifest (`models/manifest.toml`): finding, verifying, installing and loading the ONNX weights.

Weights are installed once (copied from a folder and checked against the pinned sha256), never
downloaded at run time. Every failure names the file and what is wrong with it, so an operator can fix
it; the caller decides whether the rest of the agent keeps running (it does: vision just stays off).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV_VAR = "EDGE_AGENT_MODELS"
Dim = int | str  # a number must match exactly; a name is a free dimension


class ModelError(Exception):
    """A model file that cannot be used: missing, corrupt, or not the shape the code expects."""

    def __init__(self, file: Path | str, problem: str):
        self.file = str(file)
        self.problem = problem
        super().__init__(f"{file}: {problem}")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    job: str
    file: str
    sha256: str
    source: str
    licence: str
    inputs: dict[str, tuple[Dim, ...]]
    outputs: dict[str, tuple[Dim, ...]]


def manifest_path() -> Path:
    """The manifest of a source checkout, else the copy installed with the package."""
    for candidate in (
        Path(__file__).resolve().parents[3] / "models" / "manifest.toml",
        Path(sys.prefix) / "share" / "edge-agent" / "models" / "manifest.toml",
    ):
        if candidate.is_file():
            return candidate
    raise ModelError("models/manifest.toml", "the model manifest is not installed with the agent")


def load_manifest(path: Path | None = None) -> dict[str, ModelSpec]:
    path = path or manifest_path()
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    specs = {}
    for entry in data["model"]:
        spec = ModelSpec(
            **{k: entry[k] for k in ("name", "job", "file", "sha256", "source", "licence")},
            inputs={k: tuple(v) for k, v in entry["inputs"].items()},
            outputs={k: tuple(v) for k, v in entry["outputs"].items()},
        )
        specs[spec.name] = spec
    return specs


def models_dir(configured: Path | None) -> Path:
    """Where the weights are: the configured folder, else `$EDGE_AGENT_MODELS`."""
    if configured is not None:
        return configured
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    raise ModelError("(models folder)", f"not configured: set vision.models_dir or the {ENV_VAR} environment variable")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def session_options(intra_op_threads: int, inter_op_threads: int) -> Any:
    """Sequential, with the thread counts asked for, and threads that sleep when a run ends: by default
    onnxruntime's pool spins on its cores after every run, which on a Pi shared with the kiosk browser takes
    CPU from it, and makes the agent's two or three sessions (people, faces, embeddings) fight each other."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = intra_op_threads
    opts.inter_op_num_threads = inter_op_threads
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return opts


def open_model(spec: ModelSpec, folder: Path, *, intra_op_threads: int = 1, inter_op_threads: int = 1) -> Any:
    """Verify one model file (present, pinned sha256, loads, I/O contract) and return its session."""
    import onnxruntime as ort

    path = folder / spec.file
    if not path.is_file():
        raise ModelError(path, f"missing (the {spec.name} model, {spec.job}); install it: edge-agent models install")
    actual = sha256_of(path)
    if actual != spec.sha256:
        raise ModelError(path, f"sha256 is {actual}, the manifest pins {spec.sha256} (corrupt or a different file)")
    try:
        session = ort.InferenceSession(
            str(path), session_options(intra_op_threads, inter_op_threads), providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own exception types for a broken graph
        raise ModelError(path, f"onnxruntime cannot load it: {exc}") from None
    _check_contract(path, "input", spec.inputs, {i.name: i.shape for i in session.get_inputs()})
    _check_contract(path, "output", spec.outputs, {o.name: o.shape for o in session.get_outputs()})
    return session


def _check_contract(path: Path, kind: str, wanted: dict[str, tuple[Dim, ...]], found: dict[str, list[Any]]) -> None:
    for name, dims in wanted.items():
        if name not in found:
            raise ModelError(path, f"has no {kind} named {name!r} (it has {', '.join(found) or 'none'})")
        shape = found[name]
        fixed_ok = all(not isinstance(w, int) or w == f for w, f in zip(dims, shape, strict=False))
        if len(shape) != len(dims) or not fixed_ok:
            raise ModelError(path, f"{kind} {name!r} has shape {list(shape)}, expected {list(dims)}")


def check_all(folder: Path, specs: dict[str, ModelSpec] | None = None) -> dict[str, str]:
    """Every model of the manifest: `"ok"` or what is wrong with it."""
    report = {}
    for name, spec in (specs or load_manifest()).items():
        try:
            open_model(spec, folder)
            report[name] = "ok"
        except ModelError as exc:
            report[name] = str(exc)
    return report


def install(source: Path, target: Path, specs: dict[str, ModelSpec] | None = None) -> list[str]:
    """Copy every model from `source` into `target`, verified first; nothing is replaced by a bad file."""
    specs = specs or load_manifest()
    for spec in specs.values():
        open_model(spec, source)  # raises, naming the file, before anything is copied
    installed = []
    for spec in specs.values():
        destination = target / spec.file
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(destination.name + ".partial")
        shutil.copyfile(source / spec.file, partial)
        if sha256_of(partial) != spec.sha256:
            partial.unlink()
            raise ModelError(destination, "the copy does not match the pinned sha256 (disk full or failing?)")
        os.replace(partial, destination)
        installed.append(spec.file)
    return installed
