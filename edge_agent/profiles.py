"""Device profiles (`firmware_configs/<kind>s/*.toml`): one way to read, validate and report a bad one.

A profile is a TOML file whose `kind` key says which schema it follows (a pydantic model per kind, defined
where the kind is used). Every refusal names the file, the key, the value found and what was expected,
so an operator can fix a profile without reading code.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, Field, ValidationError

from .errors import Refused

Model = TypeVar("Model", bound=BaseModel)
Name = Annotated[str, Field(min_length=1, max_length=64)]  # a profile's name, as an operator reads it


class ProfileError(Refused):
    """A profile that cannot be used; names the file, the key, the value and what was expected."""

    def __init__(self, reason: str):
        super().__init__("invalid_profile", reason)


def firmware_dir() -> Path:
    """Where profiles named without a path live: `$EDGE_AGENT_FIRMWARE` (the systemd unit sets it), read when asked,
    else the repository's `firmware_configs/`."""
    return Path(os.environ.get("EDGE_AGENT_FIRMWARE", Path(__file__).resolve().parents[1] / "firmware_configs"))


def resolve(name: str | Path, folder: str) -> Path:
    """A profile given by file path (`.toml`), or by bare name in `firmware_configs/<folder>/`."""
    path = Path(name)
    return path if path.suffix == ".toml" else firmware_dir() / folder / f"{name}.toml"


def read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read the profile ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ProfileError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML ({exc})") from None


def validate(data: dict[str, Any], model: type[Model], source: str) -> Model:
    """The profile as `model`; a `kind` other than the model's is refused before anything else."""
    expected = model.model_fields["kind"].default
    if data.get("kind", expected) != expected:
        raise ProfileError(f"{source}: kind: got {data['kind']!r}, expected {expected!r}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(f"{source}: {'; '.join(_problem(e) for e in exc.errors())}") from None


def model_of_kind(
    data: dict[str, Any], models: Mapping[str, type[BaseModel]], default: str, source: str
) -> type[BaseModel]:
    """For a folder that holds several kinds: the model of the profile's `kind` (`default` when it names none);
    ProfileError naming the file and the kinds there are otherwise."""
    kind = data.setdefault("kind", default)
    model = models.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise ProfileError(f"{source}: kind: got {kind!r}, expected one of {', '.join(models)}")
    return model


def load(name: str | Path, model: type[Model], folder: str) -> Model:
    path = resolve(name, folder)
    return validate(read(path), model, str(path))


def load_of_kind(name: str | Path, folder: str, models: Mapping[str, type[BaseModel]], default: str) -> BaseModel:
    """A profile from a folder that holds several kinds, validated as the model its `kind` names."""
    path = resolve(name, folder)
    data = read(path)
    return validate(data, model_of_kind(data, models, default, str(path)), str(path))


def _problem(err: Any) -> str:
    key = ".".join(str(p) for p in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"{key}: got {err['input']!r}, expected no such key"
    if err["type"] == "missing":
        return f"{key}: missing, expected this key (it is required)"
    reason = err["msg"].removeprefix("Value error, ").removeprefix("Input should be ")
    value = err.get("input")
    return f"{key}: {reason}" if isinstance(value, dict | list) else f"{key}: got {value!r}, expected {reason}"
