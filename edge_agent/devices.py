"""The device kinds a store runs (beacons, ESP32 scanner nodes, cameras, plus the serial signs and tills
defined beside their drivers), one schema each, and the check that every profile a config names is good
and agrees with the config.

Profiles describe hardware and firmware, never secrets: a scanner node's broker password is flashed
separately, so a profile can be kept in git and shared between stores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from . import profiles
from .config import BeaconPosition, Settings
from .signage.sign_profile import SignProfile
from .signage.sign_profile import load as load_sign
from .sources.ble.node_format import MAX_ADVERTS, topic_filter
from .sources.pos.protocol import PosProfile

Ident = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Name = Annotated[str, Field(min_length=1, max_length=64)]
Dbm = Annotated[int, Field(ge=-100, le=20)]


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class IBeaconId(_Part):
    uuid: Annotated[str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")] = Field(
        description="proximity UUID, lower-case with dashes"
    )
    major: Annotated[int, Field(ge=0, le=65535)]
    minor: Annotated[int, Field(ge=0, le=65535)]


class EddystoneUid(_Part):
    namespace: Annotated[str, Field(pattern=r"^[0-9a-f]{20}$")] = Field(description="10 bytes, lower-case hex")
    instance: Annotated[str, Field(pattern=r"^[0-9a-f]{12}$")] = Field(description="6 bytes, lower-case hex")


class BeaconRadio(_Part):
    tx_power_dbm: Annotated[int, Field(ge=-40, le=20)] = Field(default=0, description="transmit power setting")
    measured_power_dbm: Annotated[int, Field(ge=-100, le=0)] = Field(
        default=-59, description="RSSI at 1 m, as calibrated and advertised"
    )
    interval_ms: Annotated[int, Field(ge=20, le=10_240)] = Field(default=350, description="advertising interval")


class BeaconProfile(_Part):
    """A store's own fixed beacon; the schema of firmware_configs/beacons/*.toml."""

    kind: Literal["beacon"] = "beacon"
    name: Name
    description: str = ""
    ibeacon: IBeaconId | None = None
    eddystone: EddystoneUid | None = None
    radio: BeaconRadio = BeaconRadio()

    @model_validator(mode="after")
    def _advertises_something(self) -> BeaconProfile:
        if self.ibeacon is None and self.eddystone is None:
            raise ValueError("an [ibeacon] or an [eddystone] frame (or both): a beacon must advertise an id")
        return self

    def ids(self) -> list[str]:
        """The ids the scanner reports this beacon under (the format of `ble.beacons`)."""
        out = []
        if self.ibeacon is not None:
            out.append(f"ibeacon:{self.ibeacon.uuid}:{self.ibeacon.major}:{self.ibeacon.minor}")
        if self.eddystone is not None:
            out.append(f"eddystone:{self.eddystone.namespace}:{self.eddystone.instance}")
        return out


class NodeBroker(_Part):
    host: Annotated[str, Field(min_length=1, max_length=253)]
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    tls: bool = False
    username: Annotated[str, Field(min_length=1, max_length=64)] | None = Field(
        default=None, description="the node's broker user; its password is flashed separately, never in a profile"
    )
    topic_prefix: str = Field(default="retail/v1", pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
    store: Ident = Field(description="the store id in the topic the node publishes to")


class NodeScan(_Part):
    window_ms: Annotated[int, Field(ge=10, le=10_240)] = 100
    interval_ms: Annotated[int, Field(ge=10, le=10_240)] = 100
    active: bool = Field(default=False, description="active scanning asks for scan responses (more airtime)")
    rssi_floor_dbm: Annotated[int, Field(ge=-127, le=0)] = Field(default=-95, description="weaker adverts dropped")
    company_ids: list[Annotated[int, Field(ge=0, le=0xFFFF)]] = Field(
        default_factory=list, description="manufacturer ids to forward; empty: every advert"
    )

    @model_validator(mode="after")
    def _window_fits(self) -> NodeScan:
        if self.window_ms > self.interval_ms:
            raise ValueError(f"scan.window_ms ({self.window_ms}) at most scan.interval_ms ({self.interval_ms})")
        return self


class NodeReport(_Part):
    interval_ms: Annotated[int, Field(ge=100, le=10_000)] = 500
    max_adverts: Annotated[int, Field(ge=1, le=MAX_ADVERTS)] = 200


class ScannerProfile(_Part):
    """An ESP32 scanner node that reports what it hears to the store's broker; firmware_configs/scanners/*.toml."""

    kind: Literal["scanner"] = "scanner"
    name: Name
    description: str = ""
    scanner_id: Ident = Field(description="the id the node publishes under: its topic and `scanner` field")
    hardware: Literal["esp32", "esp32-s3", "esp32-c3", "esp32-c6"] = "esp32"
    offset_db: Annotated[float, Field(ge=-30, le=30)] = Field(
        default=0.0, description="how many dB this node reads above the reference receiver"
    )
    broker: NodeBroker
    scan: NodeScan = NodeScan()
    report: NodeReport = NodeReport()

    def topic(self) -> str:
        return f"{self.broker.topic_prefix}/{self.broker.store}/scanners/{self.scanner_id}/adverts"


class CameraCapture(_Part):
    width: Annotated[int, Field(ge=160, le=7680)] = 1280
    height: Annotated[int, Field(ge=120, le=4320)] = 720
    fps: Annotated[float, Field(gt=0, le=120)] = 30
    fourcc: Literal["MJPG", "YUYV", "H264", "RGB3"] = "MJPG"
    rotate: Literal[0, 90, 180, 270] = 0


class CameraLens(_Part):
    horizontal_fov_deg: Annotated[float, Field(ge=20, le=200)] = 78


class CameraMount(_Part):
    height_m: Annotated[float, Field(ge=0.3, le=6)] = 1.6
    tilt_deg: Annotated[float, Field(ge=-90, le=45)] = -10


class CameraProfile(_Part):
    """A camera model and how it is mounted; the schema of firmware_configs/cameras/*.toml."""

    kind: Literal["camera"] = "camera"
    name: Name
    description: str = ""
    capture: CameraCapture = CameraCapture()
    lens: CameraLens = CameraLens()
    mount: CameraMount = CameraMount()


KINDS: dict[str, tuple[str, type[BaseModel]]] = {
    "beacon": ("beacons", BeaconProfile),
    "scanner": ("scanners", ScannerProfile),
    "camera": ("cameras", CameraProfile),
    "sign": ("signs", SignProfile),
    "pos": ("pos", PosProfile),
}


def load_any(path: Path) -> BaseModel:
    """Any profile, by its `kind` key."""
    data = profiles.read(path)
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:  # `kind = []` must not reach a dict lookup
        raise profiles.ProfileError(f"{path}: kind: got {kind!r}, expected one of {', '.join(map(repr, KINDS))}")
    if kind == "sign":
        return load_sign(path)  # adds the sign's own cross-field checks
    return profiles.validate(data, KINDS[kind][1], str(path))


def referenced(settings: Settings) -> list[str]:
    """Every problem with the profiles the config names, as 'config key: file: key: reason'; empty if none."""
    problems: list[str] = []

    def check(key: str, name: str | Path, model: type[BaseModel], folder: str) -> BaseModel | None:
        try:
            return load_sign(name) if model is SignProfile else profiles.load(name, model, folder)
        except profiles.ProfileError as exc:
            problems.append(f"{key}: {exc}")
            return None

    for i, sign in enumerate(settings.surfaces.signs):
        check(f"surfaces.signs[{i}].profile", sign.profile, SignProfile, "signs")
    if settings.pos is not None:
        check("pos.profile", settings.pos.profile, PosProfile, "pos")
    for i, name in enumerate(settings.ble.beacon_profiles):
        check(f"ble.beacon_profiles[{i}]", name, BeaconProfile, "beacons")
    for i, rx in enumerate(settings.ble.receivers):
        if rx.profile is not None:
            node = check(f"ble.receivers[{i}].profile", rx.profile, ScannerProfile, "scanners")
            if isinstance(node, ScannerProfile):
                problems += _node_agrees(f"ble.receivers[{i}].profile", node, rx.id, settings)
    for i, cam in enumerate(settings.vision.cameras):
        if cam.profile is not None:
            model = check(f"vision.cameras[{i}].profile", cam.profile, CameraProfile, "cameras")
            if isinstance(model, CameraProfile) and cam.max_fps > model.capture.fps:
                problems.append(
                    f"vision.cameras[{i}].max_fps: got {cam.max_fps}, expected at most the camera's "
                    f"capture.fps ({model.capture.fps}) in {profiles.resolve(cam.profile, 'cameras')}"
                )
    return problems


def _node_agrees(key: str, node: ScannerProfile, receiver_id: str, s: Settings) -> list[str]:
    """A node that publishes where the agent does not listen would be silently unheard: say so now."""
    problems = [
        f"{key}: {field}: got {has!r}, expected {want!r}"
        for field, has, want in (
            ("scanner_id", node.scanner_id, receiver_id),
            ("broker.store", node.broker.store, s.store.id),
        )
        if has != want
    ]
    prefix = s.mqtt.topic_prefix if s.mqtt is not None else "retail/v1"
    listened = topic_filter(s.store.id, prefix).replace("+", node.scanner_id)
    if not problems and node.topic() != listened:
        problems.append(
            f"{key}: broker.topic_prefix: got {node.broker.topic_prefix!r}, the agent listens on {listened}"
        )
    return problems


def beacon_ids(settings: Settings) -> list[str]:
    """`ble.beacons` plus the ids of the beacon profiles it names (profiles already checked)."""
    ids = list(settings.ble.beacons)
    for name in settings.ble.beacon_profiles:
        ids += [i for i in profiles.load(name, BeaconProfile, "beacons").ids() if i not in ids]
    return ids


def _positions_by_id(settings: Settings) -> list[BeaconPosition]:
    """A beacon profile placed on the floor places every id it advertises under (one device, one place)."""
    out = []
    for at in settings.ble.beacon_positions:
        if at.beacon in settings.ble.beacon_profiles:
            ids = profiles.load(at.beacon, BeaconProfile, "beacons").ids()
            out += [at.model_copy(update={"beacon": i}) for i in ids]
        else:
            out.append(at)
    return out


def with_profiles(settings: Settings) -> Settings:
    """The settings with what the profiles say applied: beacon ids into `ble.beacons` (and their positions),
    node offsets."""
    receivers = [
        rx.model_copy(update={"offset_db": profiles.load(rx.profile, ScannerProfile, "scanners").offset_db})
        if rx.profile is not None and "offset_db" not in rx.model_fields_set
        else rx
        for rx in settings.ble.receivers
    ]
    ble = settings.ble.model_copy(
        update={"beacons": beacon_ids(settings), "beacon_positions": _positions_by_id(settings), "receivers": receivers}
    )
    return settings.model_copy(update={"ble": ble})
