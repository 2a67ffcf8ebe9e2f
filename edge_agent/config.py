"""TOML configuration → typed, validated settings.

Every problem is reported with the key, the value found and what was expected, so an operator can fix
a file without reading code. Unknown keys are errors: a typo must not silently fall back to a default.
"""

from __future__ import annotations

import base64
import binascii
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

Ident = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Seconds = Annotated[float, Field(gt=0, le=86_400)]


class ConfigProblem(BaseModel):
    key: str
    value: Any
    expected: str

    def __str__(self) -> str:
        return f"{self.key}: got {self.value!r}, expected {self.expected}"


class ConfigError(Exception):
    """A configuration that cannot be used; carries every problem found, not just the first."""

    def __init__(self, source: str, problems: list[ConfigProblem]):
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"invalid configuration {source}:\n{lines}")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class StoreSettings(Section):
    id: Ident = Field(description="store id, part of every MQTT topic")
    chain_id: Ident = Field(description="chain id, the salt of the BLE day keys")
    device_id: Ident = Field(description="this host's id among the store's touchpoint hosts")


class Zone(Section):
    id: Ident
    name: str = ""


class Touchpoint(Section):
    id: Ident
    kind: Literal["screen", "kiosk"]
    zone: Ident
    name: str = ""


class DatabaseSettings(Section):
    path: Annotated[Path, Field(strict=False)] = Field(
        default=Path("edge-agent.db"), description="SQLite file, relative to the config file"
    )


class HttpSettings(Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    max_request_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 64 * 1024


class MqttSettings(Section):
    host: str
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 30


class SourcesSettings(Section):
    checkin: bool = True
    ble: bool = False
    vision: bool = False
    pos: bool = False


class CheckinSettings(Section):
    public_keys: list[str] = Field(
        default_factory=list, description="base64 Ed25519 public keys that may sign check-in tokens"
    )
    max_lifetime_s: Seconds = 900
    clock_skew_s: Annotated[float, Field(ge=0, le=600)] = 30

    @field_validator("public_keys")
    @classmethod
    def _keys_are_ed25519(cls, keys: list[str]) -> list[str]:
        for key in keys:
            try:
                raw = base64.b64decode(key, validate=True)
            except binascii.Error as exc:
                raise ValueError(f"base64 text ({exc})") from None
            if len(raw) != 32:
                raise ValueError(f"a 32-byte Ed25519 public key, decoded {len(raw)} bytes")
        return keys


class PresenceSettings(Section):
    hold_down_s: Seconds = 20
    checkin_hold_s: Seconds = 120
    dwell_interval_s: Seconds = 10


class IdleItem(Section):
    title: str
    text: str = ""
    image: str = ""
    duration_s: Seconds = 8


class SignageSettings(Section):
    rotate_s: Seconds = Field(default=30, description="how often anonymous content is decided afresh")
    idle: list[IdleItem] = Field(
        default_factory=lambda: [IdleItem(title="Welcome", text="Ask our team about today's offers")]
    )


class CameraSettings(Section):
    id: Ident
    source: int | str = Field(description="device index, video file path (relative to the config file) or rtsp:// URL")
    zone: Ident = Field(description="the zone whose audience this camera counts")
    touchpoint: Ident | None = Field(default=None, description="the screen or kiosk the camera looks out from")
    max_fps: Annotated[float, Field(gt=0, le=60)] = 10
    loop: bool = Field(default=False, description="replay a video file from the start when it ends (demos)")


class FaceSettings(Section):
    identify: bool = Field(default=False, description="1:N recognition of enrolled, consenting customers")
    verify_checkins: bool = Field(default=True, description="1:1 check of a kiosk check-in against the face")
    verify_threshold: Annotated[float, Field(ge=-1, le=1)] = 0.40
    identify_threshold: Annotated[float, Field(ge=-1, le=1)] = 0.45
    verify_window_s: Seconds = 30
    detect_threshold: Annotated[float, Field(gt=0, lt=1)] = 0.6
    min_face_px: Annotated[int, Field(ge=16, le=1024)] = 40


class VisionSettings(Section):
    models_dir: Annotated[Path, Field(strict=False)] | None = Field(
        default=None, description="folder of the installed weights; default $EDGE_AGENT_MODELS"
    )
    people_model: Literal["yolox_nano", "light_person"] = "yolox_nano"
    person_threshold: Annotated[float, Field(gt=0, lt=1)] = 0.5
    intra_op_threads: Annotated[int, Field(ge=1, le=64)] = 2
    inter_op_threads: Annotated[int, Field(ge=1, le=64)] = 1
    motion_threshold: Annotated[float, Field(ge=0, le=1)] = 0.002
    still_refresh_s: Seconds = 10
    track_hold_s: Seconds = 1.5
    sighting_interval_s: Seconds = 1
    crowd_interval_s: Seconds = 5
    cameras: list[CameraSettings] = Field(default_factory=list)
    faces: FaceSettings = FaceSettings()


class Settings(Section):
    store: StoreSettings
    zones: list[Zone] = Field(min_length=1)
    touchpoints: list[Touchpoint] = Field(default_factory=list)
    database: DatabaseSettings = DatabaseSettings()
    http: HttpSettings = HttpSettings()
    mqtt: MqttSettings | None = None
    sources: SourcesSettings = SourcesSettings()
    checkin: CheckinSettings = CheckinSettings()
    presence: PresenceSettings = PresenceSettings()
    signage: SignageSettings = SignageSettings()
    vision: VisionSettings = VisionSettings()

    def zone_of(self, touchpoint_id: str) -> str | None:
        for tp in self.touchpoints:
            if tp.id == touchpoint_id:
                return tp.zone
        return None

    def touchpoints_in(self, zone_id: str) -> list[Touchpoint]:
        return [tp for tp in self.touchpoints if tp.zone == zone_id]


def load(path: str | Path) -> Settings:
    """Read and validate a config file; relative paths inside it are taken from the file's folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            str(path),
            [ConfigProblem(key="(file)", value=str(path), expected=f"a readable file ({exc.strerror})")],
        ) from None
    return parse(text, source=str(path), base_dir=path.parent)


def parse(text: str, *, source: str = "<string>", base_dir: Path | None = None) -> Settings:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [ConfigProblem(key="(syntax)", value=str(exc), expected="valid TOML")]) from None
    return from_dict(data, source=source, base_dir=base_dir)


def from_dict(data: dict[str, Any], *, source: str = "<dict>", base_dir: Path | None = None) -> Settings:
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, [_problem(err) for err in exc.errors()]) from None
    problems = _cross_check(settings)
    if problems:
        raise ConfigError(source, problems)
    if base_dir is not None and not settings.database.path.is_absolute():
        resolved = DatabaseSettings(path=(base_dir / settings.database.path).resolve())
        settings = settings.model_copy(update={"database": resolved})
    if base_dir is not None:
        settings = settings.model_copy(update={"vision": _vision_paths(settings.vision, base_dir)})
    return settings


def _vision_paths(vision: VisionSettings, base_dir: Path) -> VisionSettings:
    """Relative model folder and video files are taken from the config file's folder."""
    models = vision.models_dir
    if models is not None and not models.is_absolute():
        models = (base_dir / models).resolve()
    cameras = [
        cam.model_copy(update={"source": str((base_dir / cam.source).resolve())})
        if isinstance(cam.source, str) and "://" not in cam.source and not Path(cam.source).is_absolute()
        else cam
        for cam in vision.cameras
    ]
    return vision.model_copy(update={"models_dir": models, "cameras": cameras})


def _cross_check(s: Settings) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    zone_ids = [z.id for z in s.zones]
    for label, ids in (("zones", zone_ids), ("touchpoints", [t.id for t in s.touchpoints])):
        for i, ident in enumerate(ids):
            if ident in ids[:i]:
                problems.append(ConfigProblem(key=f"{label}[{i}].id", value=ident, expected="an id not used before"))
    for i, tp in enumerate(s.touchpoints):
        if tp.zone not in zone_ids:
            problems.append(
                ConfigProblem(
                    key=f"touchpoints[{i}].zone",
                    value=tp.zone,
                    expected=f"one of the zones defined under [[zones]]: {', '.join(zone_ids)}",
                )
            )
    problems.extend(_check_vision(s, zone_ids))
    if s.sources.checkin and not s.checkin.public_keys:
        problems.append(
            ConfigProblem(
                key="checkin.public_keys",
                value=[],
                expected="at least one key while sources.checkin is on (or set sources.checkin = false)",
            )
        )
    return problems


def _check_vision(s: Settings, zone_ids: list[str]) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    if s.sources.vision and not s.vision.cameras:
        problems.append(
            ConfigProblem(key="vision.cameras", value=[], expected="at least one camera while sources.vision is on")
        )
    camera_ids = [c.id for c in s.vision.cameras]
    touchpoint_ids = [t.id for t in s.touchpoints]
    for i, cam in enumerate(s.vision.cameras):
        if cam.id in camera_ids[:i]:
            problems.append(
                ConfigProblem(key=f"vision.cameras[{i}].id", value=cam.id, expected="an id not used before")
            )
        if cam.zone not in zone_ids:
            problems.append(
                ConfigProblem(
                    key=f"vision.cameras[{i}].zone",
                    value=cam.zone,
                    expected=f"one of the zones defined under [[zones]]: {', '.join(zone_ids)}",
                )
            )
        if cam.touchpoint is not None and cam.touchpoint not in touchpoint_ids:
            problems.append(
                ConfigProblem(
                    key=f"vision.cameras[{i}].touchpoint",
                    value=cam.touchpoint,
                    expected=f"one of the touchpoints: {', '.join(touchpoint_ids) or '(none defined)'}",
                )
            )
        if isinstance(cam.source, int) and cam.source < 0:
            problems.append(
                ConfigProblem(key=f"vision.cameras[{i}].source", value=cam.source, expected="a device index >= 0")
            )
    return problems


def _problem(err: Any) -> ConfigProblem:
    loc = tuple(err["loc"])
    key = _dotted(loc)
    if err["type"] == "extra_forbidden":
        known = _known_keys(loc[:-1])
        return ConfigProblem(key=key, value=err["input"], expected=f"no such key; known keys here: {', '.join(known)}")
    if err["type"] == "missing":
        return ConfigProblem(key=key, value=None, expected="this key (it is required)")
    expected = err["msg"].removeprefix("Value error, ").removeprefix("Input should be ")
    return ConfigProblem(key=key, value=err.get("input"), expected=expected)


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _known_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys a section accepts, found by walking the models along the error's location."""
    model: Any = Settings
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        model = _section_type(field.annotation)
        if model is None:
            return []
    return sorted(model.model_fields)


def _section_type(annotation: Any) -> type[Section] | None:
    if isinstance(annotation, type) and issubclass(annotation, Section):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _section_type(arg)
        if found is not None:
            return found
    return None
