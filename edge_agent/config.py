"""TOML configuration → typed, validated settings.

Every problem is reported with the key, the value found and what was expected, so an operator can fix
a file without reading code. Unknown keys are errors: a typo must not silently fall back to a default.
"""

from __future__ import annotations

import base64
import binascii
import re
import tomllib
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator, model_validator

from .errors import Refused
from .secret_files import credential

Ident = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Seconds = Annotated[float, Field(gt=0, le=86_400)]
Uuid = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")]


class ConfigProblem(BaseModel):
    key: str
    value: Any
    expected: str

    def __str__(self) -> str:
        return f"{self.key}: got {self.value!r}, expected {self.expected}"


class ConfigError(Refused):
    """A configuration that cannot be used; carries every problem found, not just the first."""

    def __init__(self, source: str, problems: list[ConfigProblem]):
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__("invalid_config", f"invalid configuration {source}:\n{lines}")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class StoreSettings(Section):
    id: Ident = Field(description="store id, part of every MQTT topic")
    chain_id: Ident = Field(description="chain id, the salt of the BLE day keys")
    device_id: Ident = Field(description="this host's id among the store's touchpoint hosts")
    device_key_file: Annotated[Path, Field(strict=False)] | None = Field(
        default=None,
        description="this host's device key (`edge-agent keys new --device`): the roster's secrets are sealed to it",
    )
    timezone: str = Field(
        default="UTC", description="the store's IANA time zone: playlist schedules, time of day and week for offers"
    )
    language: Annotated[str, Field(pattern=r"^[a-z]{2,3}(-[A-Z]{2})?$")] = Field(
        default="en", description="the language offers are shown in when a shopper's is not known (BCP 47)"
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("an IANA time zone name such as Europe/Berlin") from None
        return name


Metres = Annotated[float, Field(ge=-1000, le=1000)]


class CircleArea(Section):
    """A round area of the floor plan: its centre and radius, in metres."""

    x_m: Metres
    y_m: Metres
    r_m: Annotated[float, Field(gt=0, le=500)]


class PolygonArea(Section):
    """An area of the floor plan bounded by its corners in order, in metres; a simple polygon (no crossing edges)."""

    polygon: list[Annotated[list[Metres], Field(min_length=2, max_length=2)]] = Field(min_length=3, max_length=256)

    @field_validator("polygon")
    @classmethod
    def _simple(cls, corners: list[list[float]]) -> list[list[float]]:
        points = [(x, y) for x, y in corners]
        for i, point in enumerate(points):
            if point in points[:i]:
                raise ValueError(
                    f"each corner once (corner {i + 1} repeats corner {points.index(point) + 1}; the "
                    "last corner joins the first by itself)"
                )
        edges = list(zip(points, points[1:] + points[:1], strict=True))
        for i, a in enumerate(edges):
            for j in range(i + 2, len(edges)):
                if (i, j) != (0, len(edges) - 1) and _segments_cross(*a, *edges[j]):
                    raise ValueError(f"edges that do not cross (edge {i + 1} crosses edge {j + 1})")
        if abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in edges)) < 0.01:
            raise ValueError("corners enclosing an area (these lie on one line or repeat)")
        return corners


def _segments_cross(
    a: tuple[float, float], b: tuple[float, float], c: tuple[float, float], d: tuple[float, float]
) -> bool:
    """Whether segment ab and segment cd share a point."""

    def side(p: tuple[float, float], q: tuple[float, float], r: tuple[float, float]) -> float:
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])

    def within(p: tuple[float, float], q: tuple[float, float], r: tuple[float, float]) -> bool:
        return min(p[0], q[0]) <= r[0] <= max(p[0], q[0]) and min(p[1], q[1]) <= r[1] <= max(p[1], q[1])

    d1, d2, d3, d4 = side(c, d, a), side(c, d, b), side(a, b, c), side(a, b, d)
    if ((d1 > 0 > d2) or (d1 < 0 < d2)) and ((d3 > 0 > d4) or (d3 < 0 < d4)):
        return True
    return any(
        v == 0 and within(p, q, r) for v, p, q, r in ((d1, c, d, a), (d2, c, d, b), (d3, a, b, c), (d4, a, b, d))
    )


def _area_kind(value: object) -> str:
    has_polygon = "polygon" in value if isinstance(value, dict) else isinstance(value, PolygonArea)
    return "polygon" if has_polygon else "circle"


Area = Annotated[
    Annotated[CircleArea, Tag("circle")] | Annotated[PolygonArea, Tag("polygon")], Discriminator(_area_kind)
]


class Zone(Section):
    id: Ident
    name: str = ""
    area: Area | None = Field(
        default=None,
        description="where the zone lies on the floor plan (m): BLE places a phone in it from where the receivers "
        "(with x_m, y_m) put it on the floor",
    )


class Touchpoint(Section):
    id: Ident
    kind: Literal["screen", "kiosk", "sign"]
    zone: Ident
    name: str = ""
    profile: str | None = Field(
        default=None,
        min_length=1,
        description="a screen's player (firmware_configs/screens/): the videos it plays; default pi4-chromium",
    )
    layout: Ident | None = Field(default=None, description="a screen's layout (surfaces.layouts); default: full screen")


class DatabaseSettings(Section):
    path: Annotated[Path, Field(strict=False)] = Field(
        default=Path("edge-agent.db"), description="SQLite file, relative to the config file"
    )


class HttpSettings(Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    max_request_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 64 * 1024
    report_listen: str | None = Field(
        default=None,
        pattern=r"^[^\s:]+:[0-9]{1,5}$",
        description="host:port of a second listener, for the store Wi-Fi, that serves only POST /api/ble/report",
    )
    report_rate_per_minute: Annotated[int, Field(ge=1, le=100_000)] = Field(
        default=60, description="app reports taken per minute from one address on the report listener"
    )


def _ed25519_keys(keys: list[str]) -> list[str]:
    return [_public_key(key, "Ed25519") for key in keys]


def _public_key(key: str, kind: str) -> str:
    """A public key as config carries it: the raw 32 bytes in base64."""
    try:
        raw = base64.b64decode(key, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"base64 text ({exc})") from None
    if len(raw) != 32:
        raise ValueError(f"a 32-byte {kind} public key, decoded {len(raw)} bytes")
    return key


FilePath = Annotated[Path, Field(strict=False)]
SECRET_FILES = ("tls_key_file", "password_file")  # may be systemd credentials


class MqttSettings(Section):
    """The store's link to the cloud (docs/protocols/mqtt.md); relative file paths are from the config file."""

    host: str = Field(min_length=1)
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 30
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    client_id: Ident | None = Field(default=None, description="default edge-{store}-{device}; stable for the session")
    topic_prefix: str = Field(default="retail/v1", pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
    tls_ca_file: FilePath | None = None
    tls_cert_file: FilePath | None = None
    tls_key_file: FilePath | None = None
    username: str | None = None
    password_file: FilePath | None = None
    bundle_public_keys: list[str] = Field(
        default_factory=list, description="base64 Ed25519 public keys that may sign offer bundles and rosters"
    )
    max_bundle_bytes: Annotated[int, Field(ge=1024, le=256 * 1024 * 1024)] = 32 * 1024 * 1024
    outbox_max_rows: Annotated[int, Field(ge=100, le=10_000_000)] = 200_000
    batch_max_events: Annotated[int, Field(ge=1, le=10_000)] = 200
    inflight_batches: Annotated[int, Field(ge=1, le=100)] = 8
    puback_timeout_s: Seconds = 30
    telemetry_interval_s: Seconds = 30
    reconnect_min_s: Annotated[float, Field(gt=0, le=3600)] = 1
    reconnect_max_s: Annotated[float, Field(gt=0, le=3600)] = 60
    connect_timeout_s: Seconds = 10
    max_roster_age_s: Annotated[float, Field(gt=0, le=90 * 86_400)] = Field(
        default=36 * 3600, description="older than this, BLE and faces identify nobody (stale consent fails closed)"
    )

    @field_validator("bundle_public_keys")
    @classmethod
    def _keys_are_ed25519(cls, keys: list[str]) -> list[str]:
        return _ed25519_keys(keys)

    def resolved(self, base_dir: Path) -> MqttSettings:
        """The same settings with relative file paths taken from the config file's folder; a secret named without
        a folder is the systemd credential of that name when the unit passes one (`LoadCredential=`)."""
        files = ("tls_ca_file", "tls_cert_file", "tls_key_file", "password_file")
        update = {
            name: (credential(path) if name in SECRET_FILES else None) or (base_dir / path).resolve()
            for name in files
            if (path := getattr(self, name)) is not None and not path.is_absolute()
        }
        return self.model_copy(update=update)


class SourcesSettings(Section):
    checkin: bool = True
    ble: bool = False
    ble_reports: bool = Field(default=False, description="take app reports of the store's beacons (iPhones' way in)")
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
        return _ed25519_keys(keys)


class PresenceSettings(Section):
    hold_down_s: Seconds = 20
    checkin_hold_s: Seconds = 120
    dwell_interval_s: Seconds = 10


class Receiver(Section):
    id: Ident = Field(description="the local scanner (ble.receiver_id) or a remote scanner node's id")
    zone: Ident
    offset_db: Annotated[float, Field(ge=-30, le=30)] = Field(
        default=0.0, description="how many dB this receiver reads above a reference receiver"
    )
    enter_m: Annotated[float, Field(gt=0, le=50)] | None = Field(default=None, description="default ble.enter_m")
    exit_m: Annotated[float, Field(gt=0, le=50)] | None = Field(default=None, description="default ble.exit_m")
    x_m: Annotated[float, Field(ge=-1000, le=1000)] | None = Field(
        default=None, description="where the receiver hangs on the store's floor plan, across (m)"
    )
    y_m: Annotated[float, Field(ge=-1000, le=1000)] | None = Field(default=None, description="and along (m)")
    height_m: Annotated[float, Field(ge=0, le=20)] = Field(default=2.0, description="how high the receiver hangs")
    profile: str | None = Field(
        default=None, min_length=1, description="a scanner-node profile (firmware_configs/scanners/) for this node"
    )
    api_key_file: Annotated[Path, Field(strict=False)] | None = Field(
        default=None, description="an ESPHome proxy's API encryption key (base64, owner-only or a credential)"
    )


class BeaconPosition(Section):
    """Where one of the store's fixed beacons hangs: with the receivers' positions, what each should hear."""

    beacon: str = Field(min_length=1, description="an id of ble.beacons or a beacon profile of ble.beacon_profiles")
    x_m: Annotated[float, Field(ge=-1000, le=1000)] = Field(description="on the store's floor plan, across (m)")
    y_m: Annotated[float, Field(ge=-1000, le=1000)] = Field(description="and along (m)")
    height_m: Annotated[float, Field(ge=0, le=20)] = Field(default=2.0, description="how high the beacon hangs")


class ZoneBeacon(Section):
    """The iBeacon this host advertises for its zone (docs/protocols/app-reports.md), and the store secret its
    rotating minor is derived from (the same file on every host of the store)."""

    advertise: bool = Field(default=False, description="advertise this host's zone beacon (beside any scanning)")
    uuid: Uuid | None = Field(
        default=None, description="the chain's app UUID: one region for the app to monitor in every store"
    )
    major: Annotated[int, Field(ge=0, le=0xFFFF)] | None = Field(default=None, description="the store's number")
    key_file: Annotated[Path, Field(strict=False)] | None = Field(
        default=None, description="the store's 32-byte zone-beacon key (64 hex digits), owner-only or a credential"
    )
    zone: Ident | None = Field(default=None, description="the zone advertised; default that of this host's receiver")
    interval_ms: Annotated[int, Field(ge=20, le=10_240)] = Field(
        default=100, description="advertising interval (Apple's iBeacon guideline: 100 ms)"
    )
    tx_power_dbm: Annotated[int, Field(ge=-127, le=20)] | None = Field(
        default=None, description="transmit power asked of the adapter; default the adapter's own"
    )
    measured_power_dbm: Annotated[int, Field(ge=-127, le=0)] = Field(
        default=-59, description="the level a phone reads 1 m away, advertised in the beacon for ranging"
    )


class BeaconZone(Section):
    """A store-owned battery beacon of ble.beacons standing for a zone in app reports (no rotating minor)."""

    beacon: str = Field(min_length=1, description="an iBeacon id of ble.beacons, ibeacon:UUID:MAJOR:MINOR")
    zone: Ident


class BleSettings(Section):
    company_id: Annotated[int, Field(ge=0, le=0xFFFF)] = Field(
        default=0xFFFF, description="manufacturer id under which the app advertises its token"
    )
    adapter: Annotated[str, Field(pattern=r"^hci[0-9]{1,2}$")] = "hci0"
    receiver_id: Ident | None = Field(default=None, description="id of the local adapter; default store.device_id")
    receivers: list[Receiver] = Field(default_factory=list)
    reference_dbm: Annotated[float, Field(ge=-100, le=0)] = Field(
        default=-59.0, description="RSSI of a phone at 1 m when the advert does not say"
    )
    reference_by_model: dict[str, Annotated[float, Field(ge=-100, le=0)]] = Field(
        default_factory=dict, description="RSSI at 1 m per phone model the roster names (calibrated in store)"
    )
    path_loss_exponent: Annotated[float, Field(ge=1.5, le=5.0)] = 2.2
    enter_m: Annotated[float, Field(gt=0, le=50)] = 3.6
    exit_m: Annotated[float, Field(gt=0, le=50)] = 4.6
    window_s: Annotated[float, Field(gt=0, le=60)] = Field(
        default=2.0, description="a receiver that has not heard the phone for this long no longer counts"
    )
    min_samples: Annotated[int, Field(ge=1, le=20)] = Field(default=2, description="readings before a phone can enter")
    noise_db: Annotated[float, Field(gt=0, le=20)] = Field(
        default=4.0, description="spread of single RSSI readings of a phone held still (filter)"
    )
    drift_db: Annotated[float, Field(gt=0, le=20)] = Field(
        default=6.0, description="how fast a walking phone's level can move, in dB per square root of a second (filter)"
    )
    shadow_db: Annotated[float, Field(ge=0, le=20)] = Field(
        default=2.7, description="how far body shadowing moves a standing phone's level (filter)"
    )
    stand_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=60.0, description="how long a shopper typically stands before walking on (filter)"
    )
    walk_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=10.0, description="how long a shopper typically walks before stopping (filter)"
    )
    gate_sigma: Annotated[float, Field(gt=0, le=10)] = Field(
        default=2.5, description="a reading further than this many standard deviations is clipped (filter)"
    )
    switch_db: Annotated[float, Field(ge=0, le=30)] = 4.0
    switch_s: Annotated[float, Field(ge=0, le=60)] = Field(
        default=2.0, description="how long another receiver must stay switch_db stronger to take the phone over"
    )
    leave_s: Seconds = Field(default=0.1, description="hold-down once readings say the phone is out of range")
    area_exit_m: Annotated[float, Field(ge=0, le=20)] = Field(
        default=1.0, description="a phone placed in a zone's area leaves it only this far beyond its edge"
    )
    queue_size: Annotated[int, Field(ge=100, le=1_000_000)] = 20_000
    stall_s: Seconds = Field(
        default=60.0, description="no advert for this long: the scan is restarted, a scanner node reported silent"
    )
    remote_scanners: bool = Field(default=False, description="take sightings of scanner nodes from [mqtt]")
    beacons: list[Annotated[str, Field(pattern=r"^(ibeacon|eddystone|eddystone-url):\S{1,120}$")]] = Field(
        default_factory=list,
        description="the store's own fixed beacons (ids as ibeacon:UUID:MAJOR:MINOR or eddystone:NAMESPACE:INSTANCE)",
    )
    beacon_profiles: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list, description="beacon profiles (firmware_configs/beacons/) whose ids join ble.beacons"
    )
    beacon_positions: list[BeaconPosition] = Field(
        default_factory=list, description="where fixed beacons hang: GET /healthz then suggests each receiver's offset"
    )
    zone_beacon: ZoneBeacon = ZoneBeacon()
    beacon_zones: list[BeaconZone] = Field(
        default_factory=list, description="fixed beacons whose sightings in app reports place a shopper in a zone"
    )
    static_beacon_reports: bool = Field(
        default=False,
        description="accept app reports naming ble.beacon_zones: a weaker proof (a fixed minor can be replayed)",
    )
    report_ttl_s: Seconds = Field(default=60, description="how long one app report keeps a shopper in its zone")
    report_max_age_s: Annotated[float, Field(ge=5, le=3600)] = Field(
        default=120, description="an app report older (or further ahead) than this is refused as stale"
    )

    def thresholds(self, receiver: Receiver) -> tuple[float, float]:
        """A receiver's enter and exit distances (m): its own, else the [ble] ones."""
        return receiver.enter_m or self.enter_m, receiver.exit_m or self.exit_m


class IdleItem(Section):
    id: Ident | None = Field(default=None, description="names its plays (proof of play); default: its place")
    title: str
    text: str = ""
    image: str = ""
    video: str = Field(default="", description="an MP4 or WebM the offer bundle names (played muted, from the cache)")
    duration_s: Seconds | None = Field(default=None, description="default: a video's own length, else 8 s")


class SignageSettings(Section):
    rotate_s: Seconds = Field(default=30, description="how often anonymous content is decided afresh")
    idle: list[IdleItem] = Field(
        default_factory=lambda: [IdleItem(title="Welcome", text="Ask our team about today's offers")]
    )

    def item_ids(self) -> list[str]:
        """Each idle item's id: its own, else `idle.<place>` (from 1)."""
        return [item.id or f"idle.{k}" for k, item in enumerate(self.idle, start=1)]


class OpsSettings(Section):
    log_format: Literal["text", "json"] = Field(default="text", description="json for journald and log shippers")
    stall_after_s: Seconds = Field(
        default=30, description="a vital part with work waiting and no progress for this long stops the watchdog"
    )


class FleetHost(Section):
    """Another host of the store, as `edge-agent keys new --device` printed its public keys."""

    device: Ident = Field(description="its store.device_id")
    sign: str = Field(description="its device key's `sign` public key: what it tells this host is signed with it")

    @field_validator("sign")
    @classmethod
    def _key_is_ed25519(cls, key: str) -> str:
        return _ed25519_keys([key])[0]


class FleetSettings(Section):
    """Several touchpoint hosts in one store (docs/fleet.md)."""

    hosts: list[FleetHost] = Field(
        default_factory=list,
        description="the store's other hosts: a consent withdrawal or a used check-in token here reaches them at once",
    )

    share_presence: bool = Field(
        default=False,
        description="share what this host sees with the store's other hosts over [mqtt], and use theirs",
    )
    share_interval_s: Annotated[float, Field(ge=0.1, le=60)] = Field(
        default=1.0, description="how often this host publishes what it saw"
    )


Clock24 = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$")]
Secret = Annotated[str, Field(min_length=16, max_length=256)]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_EVERY_DAY: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class PlaylistItem(IdleItem):
    transition: Literal["fade", "slide", "cut"] = "fade"
    campaign: Ident | None = Field(default=None, description="the campaign its plays are counted for")


class Playlist(Section):
    """Idle content for a time of day: the first playlist whose window holds the store's local time wins."""

    id: Ident
    touchpoints: list[Ident] = Field(default_factory=list, description="empty: every screen")
    days: list[Weekday] = Field(default_factory=lambda: list(_EVERY_DAY))
    start: Clock24 = "00:00"
    end: Clock24 = "24:00"
    items: list[PlaylistItem] = Field(min_length=1)
    layout: Ident | None = Field(default=None, description="the screen's layout while this playlist plays")

    def item_ids(self) -> list[str]:
        """Each item's id: its own, else `<playlist>.<place>` (from 1)."""
        return [item.id or f"{self.id}.{k}" for k, item in enumerate(self.items, start=1)]


class AuthSettings(Section):
    """Shared secrets per role; a page asks for one once and keeps a signed session cookie."""

    kiosk_tokens: list[Secret] = Field(default_factory=list)
    associate_tokens: list[Secret] = Field(default_factory=list)
    dashboard_tokens: list[Secret] = Field(default_factory=list)
    till_tokens: list[Secret] = Field(default_factory=list)
    ops_tokens: list[Secret] = Field(
        default_factory=list, description="for /healthz and /metrics (Authorization: Bearer, e.g. for Prometheus)"
    )
    session_s: Annotated[float, Field(gt=0, le=30 * 86_400)] = 12 * 3600
    local_screens_paired: bool = Field(
        default=True,
        description="a browser on this host itself (loopback) is its screen without pairing, as the kiosk unit is",
    )


KioskLanguage = Literal["en", "fa", "he"]
_KIOSK_LANGUAGES: tuple[KioskLanguage, ...] = ("en", "fa", "he")


class KioskSettings(Section):
    phone_salt: str = Field(default="", max_length=256, description="the chain's salt of the roster's phone hashes")
    session_s: Annotated[float, Field(ge=15, le=1800)] = 120
    claim_valid_s: Annotated[float, Field(ge=60, le=90 * 86_400)] = 7 * 86_400
    max_failures_per_minute: Annotated[int, Field(ge=1, le=1000)] = 5
    languages: list[KioskLanguage] = Field(default_factory=lambda: list(_KIOSK_LANGUAGES), min_length=1)


class AssetSettings(Section):
    dir: Annotated[Path, Field(strict=False)] = Field(default=Path("assets"), description="relative to the config")
    max_bytes: Annotated[int, Field(ge=1024, le=4 * 1024 * 1024 * 1024)] = Field(
        default=512 * 1024 * 1024, description="the largest image or video fetched"
    )
    fetch_timeout_s: Seconds = Field(default=30, description="a download that stalls this long is cut (and resumed)")
    retry_s: Seconds = 60


class SerialSign(Section):
    id: Ident
    touchpoint: Ident
    port: str = Field(min_length=1, description="a device path or a pyserial URL")
    profile: str = Field(min_length=1, description="a profile file in firmware_configs/signs/ or a path")


Percent = Annotated[float, Field(ge=0, le=100)]


class Region(Section):
    """A part of a screen, in percent of its width and height: the item loop, the offer panel, a ticker of text
    lines or the store's clock."""

    id: Ident
    kind: Literal["loop", "offer", "ticker", "clock"]
    x: Percent = 0
    y: Percent = 0
    width: Annotated[float, Field(gt=0, le=100)] = 100
    height: Annotated[float, Field(gt=0, le=100)] = 100
    text: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=20, description="a ticker's lines"
    )


class Layout(Section):
    """How a screen is divided. Without an `offer` region an offer takes the loop's region for as long as it
    shows (the loop resumes after); with one, offers show there and the loop plays on."""

    id: Ident
    orientation: Literal["landscape", "portrait"] = Field(
        default="landscape", description="portrait: on a landscape output the page turns its content a quarter"
    )
    regions: list[Region] = Field(min_length=1, max_length=8)

    @model_validator(mode="after")
    def _regions(self) -> Layout:
        problems = []
        ids = [r.id for r in self.regions]
        problems += [f"region id {r} used twice" for r in sorted({i for i in ids if ids.count(i) > 1})]
        kinds = [r.kind for r in self.regions]
        if kinds.count("loop") != 1:
            problems.append(f"exactly one region of kind loop (found {kinds.count('loop')})")
        if kinds.count("offer") > 1:
            problems.append(f"at most one region of kind offer (found {kinds.count('offer')})")
        for r in self.regions:
            if r.x + r.width > 100 or r.y + r.height > 100:
                problems.append(f"region {r.id} within the screen (x + width and y + height at most 100)")
            if r.kind == "ticker" and not r.text:
                problems.append(f"region {r.id}, a ticker, with lines of text")
            if r.kind != "ticker" and r.text:
                problems.append(f"region {r.id} without text (only a ticker has lines)")
        for i, a in enumerate(self.regions):
            for b in self.regions[i + 1 :]:
                if a.x < b.x + b.width and b.x < a.x + a.width and a.y < b.y + b.height and b.y < a.y + a.height:
                    problems.append(f"regions {a.id} and {b.id} apart (they overlap)")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class Campaign(Section):
    """A brand's (or the store's own) screen time: its items play for `share` of each screen's loop while the
    campaign runs — between its dates, in its daypart — a share of voice measured in seconds on screen."""

    id: Ident
    name: str = ""
    share: Annotated[float, Field(gt=0, le=1)] | None = Field(
        default=None, description="its share of the loop's airtime; none: it fills what the others leave (house)"
    )
    priority: int = Field(default=0, description="served first when the shares add up to more than the loop")
    start: Annotated[date, Field(strict=False)] | None = Field(default=None, description="first day (store's date)")
    end: Annotated[date, Field(strict=False)] | None = Field(default=None, description="last day, inclusive")
    days: list[Weekday] = Field(default_factory=lambda: list(_EVERY_DAY))
    from_time: Clock24 = Field(default="00:00", description="its daypart starts (store's local time)")
    until: Clock24 = Field(default="24:00", description="and ends")
    touchpoints: list[Ident] = Field(default_factory=list, description="empty: every screen")


class SurfacesSettings(Section):
    """Everything people touch: screen playlists and their campaigns, kiosk, associate tablet, dashboard, serial
    signs."""

    playlists: list[Playlist] = Field(default_factory=list)
    campaigns: list[Campaign] = Field(default_factory=list)
    layouts: list[Layout] = Field(default_factory=list)
    auth: AuthSettings = AuthSettings()
    kiosk: KioskSettings = KioskSettings()
    assets: AssetSettings = AssetSettings()
    signs: list[SerialSign] = Field(default_factory=list)


class DecideSettings(Section):
    profile_days: Annotated[float, Field(gt=0, le=730)] = Field(
        default=365, description="how far back purchases make a customer's profile"
    )
    crowd_quiet_below: Annotated[int, Field(ge=0)] = 3
    crowd_busy_from: Annotated[int, Field(ge=1)] = 10
    crowd_max_age_s: Seconds = Field(default=120, description="a crowd count older than this is ignored")
    long_dwell_s: Seconds = 60


class PosSettings(Section):
    port: str = Field(description="serial device (/dev/ttyUSB0) or a pyserial URL")
    profile: Annotated[Path, Field(strict=False)] = Field(
        description="line-protocol profile (TOML), see firmware_configs/pos"
    )
    till_id: Ident = Field(default="till-1", description="names this till on every transaction")
    scanner_port: str | None = Field(
        default=None,
        min_length=1,
        description="a barcode scanner at this till in serial mode (9600 8N1): claim codes, loyalty cards",
    )
    reconnect_s: Seconds = Field(default=2.0, description="wait before reopening a port that vanished")


class CameraSettings(Section):
    id: Ident
    source: int | str = Field(description="device index, video file path (relative to the config file) or rtsp:// URL")
    zone: Ident = Field(description="the zone whose audience this camera counts")
    touchpoint: Ident | None = Field(default=None, description="the screen or kiosk the camera looks out from")
    max_fps: Annotated[float, Field(gt=0, le=60)] = 10
    loop: bool = Field(default=False, description="replay a video file from the start when it ends (demos)")
    profile: str | None = Field(
        default=None, min_length=1, description="the camera's profile (firmware_configs/cameras/): model, mount"
    )


class EnrolmentSettings(Section):
    """Face enrolment at a kiosk by the camera that looks out from it (docs/vision.md#enrolment-at-the-kiosk)."""

    cloud_key: str | None = Field(
        default=None,
        description="base64 X25519 public key of the cloud's enrolment service: embeddings go up sealed to it; "
        "without it kiosks do not offer enrolment",
    )
    frames: Annotated[int, Field(ge=1, le=10)] = Field(default=5, description="good frames an enrolment takes")
    timeout_s: Seconds = Field(default=30, description="how long the camera looks for good frames before giving up")
    interval_s: Annotated[float, Field(ge=0, le=10)] = Field(
        default=0.3, description="at least this long between two frames taken, so they are not one moment"
    )
    min_face_px: Annotated[int, Field(ge=16, le=1024)] = Field(
        default=80, description="the face's shorter side, larger than recognition needs: a template should be sharp"
    )
    min_sharpness: Annotated[float, Field(ge=0)] = Field(
        default=25, description="variance of the Laplacian of the aligned 112 x 112 face (lower: blurred)"
    )
    min_brightness: Annotated[float, Field(ge=0, le=255)] = 50
    max_brightness: Annotated[float, Field(ge=0, le=255)] = 210
    max_turn: Annotated[float, Field(gt=0, le=0.5)] = Field(
        default=0.2, description="the nose off the eyes' midpoint, as a share of the distance between the eyes"
    )
    max_tilt_deg: Annotated[float, Field(gt=0, le=90)] = Field(default=20, description="the eyes' line off level")

    @field_validator("cloud_key")
    @classmethod
    def _key_is_x25519(cls, key: str | None) -> str | None:
        return None if key is None else _public_key(key, "X25519")


class FaceSettings(Section):
    identify: bool = Field(default=False, description="1:N recognition of enrolled, consenting customers")
    verify_checkins: bool = Field(default=True, description="1:1 check of a kiosk check-in against the face")
    verify_threshold: Annotated[float, Field(ge=-1, le=1)] = 0.40
    identify_threshold: Annotated[float, Field(ge=-1, le=1)] = 0.45
    verify_window_s: Seconds = 30
    detect_threshold: Annotated[float, Field(gt=0, lt=1)] = 0.6
    min_face_px: Annotated[int, Field(ge=16, le=1024)] = 40
    enrolment: EnrolmentSettings = EnrolmentSettings()


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
    ble: BleSettings = BleSettings()
    signage: SignageSettings = SignageSettings()
    ops: OpsSettings = OpsSettings()
    fleet: FleetSettings = FleetSettings()
    surfaces: SurfacesSettings = SurfacesSettings()
    decide: DecideSettings = DecideSettings()
    pos: PosSettings | None = None
    vision: VisionSettings = VisionSettings()

    def zone_of(self, touchpoint_id: str) -> str | None:
        for tp in self.touchpoints:
            if tp.id == touchpoint_id:
                return tp.zone
        return None

    def touchpoints_in(self, zone_id: str) -> list[Touchpoint]:
        return [tp for tp in self.touchpoints if tp.zone == zone_id]

    def beacon_zone(self) -> str | None:
        """The zone this host's beacon advertises: as configured, else that of this host's receiver."""
        local = self.ble.receiver_id or self.store.device_id
        return self.ble.zone_beacon.zone or next((r.zone for r in self.ble.receivers if r.id == local), None)


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


def with_screens(
    settings: Settings, playlists: list[Playlist], campaigns: list[Campaign], layouts: list[Layout], source: str
) -> Settings:
    """The settings with these playlists, campaigns and layouts in place of the config's (an offer bundle's);
    ConfigError naming every problem (a touchpoint, layout or campaign this store does not have)."""
    surfaces = settings.surfaces.model_copy(update={"playlists": playlists, "campaigns": campaigns, "layouts": layouts})
    merged = settings.model_copy(update={"surfaces": surfaces})
    problems = _cross_check(merged)
    if problems:
        raise ConfigError(source, problems)
    return merged


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
    if not settings.surfaces.assets.dir.is_absolute():
        root = base_dir if base_dir is not None else settings.database.path.parent
        assets = settings.surfaces.assets.model_copy(update={"dir": (root / settings.surfaces.assets.dir).resolve()})
        settings = settings.model_copy(update={"surfaces": settings.surfaces.model_copy(update={"assets": assets})})
    if base_dir is not None and settings.mqtt is not None:
        settings = settings.model_copy(update={"mqtt": settings.mqtt.resolved(base_dir)})
    key = settings.store.device_key_file
    if base_dir is not None and key is not None and not key.is_absolute():
        store = settings.store.model_copy(update={"device_key_file": credential(key) or (base_dir / key).resolve()})
        settings = settings.model_copy(update={"store": store})
    beacon_key = settings.ble.zone_beacon.key_file
    if base_dir is not None and beacon_key is not None and not beacon_key.is_absolute():
        zb = settings.ble.zone_beacon.model_copy(update={"key_file": credential(beacon_key) or (base_dir / beacon_key)})
        settings = settings.model_copy(update={"ble": settings.ble.model_copy(update={"zone_beacon": zb})})
    if base_dir is not None and any(r.api_key_file is not None for r in settings.ble.receivers):
        receivers = [
            r.model_copy(update={"api_key_file": credential(r.api_key_file) or (base_dir / r.api_key_file)})
            if r.api_key_file is not None and not r.api_key_file.is_absolute()
            else r
            for r in settings.ble.receivers
        ]
        settings = settings.model_copy(update={"ble": settings.ble.model_copy(update={"receivers": receivers})})
    if base_dir is not None and settings.pos is not None and not settings.pos.profile.is_absolute():
        pos = settings.pos.model_copy(update={"profile": (base_dir / settings.pos.profile).resolve()})
        settings = settings.model_copy(update={"pos": pos})
    if base_dir is not None:
        settings = settings.model_copy(update={"vision": _vision_paths(settings.vision, base_dir)})
        settings = _profile_paths(settings, base_dir)
    return settings


def _profile_paths(s: Settings, base_dir: Path) -> Settings:
    """A device profile given as a relative `.toml` path is taken from the config file's folder; a name stays."""

    def at(name: str) -> str:
        path = Path(name)
        return str((base_dir / path).resolve()) if path.suffix == ".toml" and not path.is_absolute() else name

    def each(items: list[Any]) -> list[Any]:
        return [i.model_copy(update={"profile": at(i.profile)}) if i.profile is not None else i for i in items]

    ble = s.ble.model_copy(
        update={
            "beacon_profiles": [at(p) for p in s.ble.beacon_profiles],
            "beacon_positions": [p.model_copy(update={"beacon": at(p.beacon)}) for p in s.ble.beacon_positions],
            "receivers": each(s.ble.receivers),
        }
    )
    return s.model_copy(
        update={
            "ble": ble,
            "surfaces": s.surfaces.model_copy(update={"signs": each(s.surfaces.signs)}),
            "vision": s.vision.model_copy(update={"cameras": each(s.vision.cameras)}),
        }
    )


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


def _check_campaigns(s: Settings, tp_ids: set[str]) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    ids = [c.id for c in s.surfaces.campaigns]
    for i, c in enumerate(s.surfaces.campaigns):
        key = f"surfaces.campaigns[{i}]"
        if c.id in ids[:i]:
            problems.append(ConfigProblem(key=f"{key}.id", value=c.id, expected="an id not used before"))
        if c.from_time >= c.until:
            problems.append(ConfigProblem(key=f"{key}.until", value=c.until, expected="a time after from_time"))
        if c.start is not None and c.end is not None and c.end < c.start:
            problems.append(ConfigProblem(key=f"{key}.end", value=str(c.end), expected="a date from start on"))
        problems += [
            ConfigProblem(key=f"{key}.touchpoints[{j}]", value=tp, expected="a touchpoint id")
            for j, tp in enumerate(c.touchpoints)
            if tp not in tp_ids
        ]
    for i, playlist in enumerate(s.surfaces.playlists):
        for j, item in enumerate(playlist.items):
            if item.campaign is not None and item.campaign not in ids:
                problems.append(
                    ConfigProblem(
                        key=f"surfaces.playlists[{i}].items[{j}].campaign",
                        value=item.campaign,
                        expected=f"a campaign of [[surfaces.campaigns]]: {', '.join(ids) or 'none defined'}",
                    )
                )
    return problems


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
        if tp.profile is not None and tp.kind != "screen":
            problems.append(
                ConfigProblem(key=f"touchpoints[{i}].profile", value=tp.profile, expected="a profile on a screen only")
            )
    tp_ids = {t.id for t in s.touchpoints}
    for i, playlist in enumerate(s.surfaces.playlists):
        for j, tp_id in enumerate(playlist.touchpoints):
            if tp_id not in tp_ids:
                problems.append(
                    ConfigProblem(
                        key=f"surfaces.playlists[{i}].touchpoints[{j}]", value=tp_id, expected="a touchpoint id"
                    )
                )
        if playlist.start >= playlist.end:
            problems.append(
                ConfigProblem(key=f"surfaces.playlists[{i}].end", value=playlist.end, expected="a time after start")
            )
    problems.extend(_check_campaigns(s, tp_ids))
    layouts = [layout.id for layout in s.surfaces.layouts]
    named = [(f"touchpoints[{i}].layout", tp.layout) for i, tp in enumerate(s.touchpoints)]
    named += [(f"surfaces.playlists[{i}].layout", p.layout) for i, p in enumerate(s.surfaces.playlists)]
    problems += [
        ConfigProblem(
            key=key, value=layout, expected=f"a layout of [[surfaces.layouts]]: {', '.join(layouts) or 'none'}"
        )
        for key, layout in named
        if layout is not None and layout not in layouts
    ]
    seen: set[str] = set(s.signage.item_ids())
    for i, playlist in enumerate(s.surfaces.playlists):
        for j, item_id in enumerate(playlist.item_ids()):
            if item_id in seen:
                problems.append(
                    ConfigProblem(
                        key=f"surfaces.playlists[{i}].items[{j}].id",
                        value=item_id,
                        expected="an item id not used before",
                    )
                )
            seen.add(item_id)
    for i, sign in enumerate(s.surfaces.signs):
        if not any(t.id == sign.touchpoint and t.kind == "sign" for t in s.touchpoints):
            problems.append(
                ConfigProblem(
                    key=f"surfaces.signs[{i}].touchpoint", value=sign.touchpoint, expected="a touchpoint of kind 'sign'"
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
    if s.sources.pos and s.pos is None:
        problems.append(
            ConfigProblem(key="pos", value=None, expected="a [pos] section (port, profile) while sources.pos is on")
        )
    if s.decide.crowd_busy_from <= s.decide.crowd_quiet_below:
        problems.append(
            ConfigProblem(
                key="decide.crowd_busy_from",
                value=s.decide.crowd_busy_from,
                expected=f"more than decide.crowd_quiet_below ({s.decide.crowd_quiet_below})",
            )
        )
    if s.mqtt is not None:
        problems += _mqtt_problems(s.mqtt)
    problems += _check_ble(s)
    if s.fleet.share_presence and s.mqtt is None:
        problems.append(
            ConfigProblem(key="fleet.share_presence", value=True, expected="an [mqtt] section with the store's broker")
        )
    if s.fleet.share_presence and (not s.fleet.hosts or s.store.device_key_file is None):
        problems.append(
            ConfigProblem(
                key="fleet.share_presence",
                value=True,
                expected="store.device_key_file (what this host signs with) and [[fleet.hosts]] (whose it takes)",
            )
        )
    return problems


def _mqtt_problems(m: MqttSettings) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    if not m.bundle_public_keys:
        problems.append(
            ConfigProblem(
                key="mqtt.bundle_public_keys", value=[], expected="at least one key, so signed bundles can be verified"
            )
        )
    if (m.tls_cert_file is None) != (m.tls_key_file is None):
        problems.append(
            ConfigProblem(
                key="mqtt.tls_key_file" if m.tls_key_file is None else "mqtt.tls_cert_file",
                value=None,
                expected="tls_cert_file and tls_key_file set together (a client certificate needs its key)",
            )
        )
    if m.password_file is not None and m.username is None:
        problems.append(
            ConfigProblem(key="mqtt.username", value=None, expected="a username while password_file is set")
        )
    if m.reconnect_min_s > m.reconnect_max_s:
        problems.append(
            ConfigProblem(
                key="mqtt.reconnect_min_s",
                value=m.reconnect_min_s,
                expected=f"at most reconnect_max_s ({m.reconnect_max_s})",
            )
        )
    return problems


def _check_ble(s: Settings) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    zone_ids = [z.id for z in s.zones]
    receiver_ids = [r.id for r in s.ble.receivers]
    for i, rx in enumerate(s.ble.receivers):
        if rx.zone not in zone_ids:
            problems.append(
                ConfigProblem(key=f"ble.receivers[{i}].zone", value=rx.zone, expected=f"one of {', '.join(zone_ids)}")
            )
        if rx.id in receiver_ids[:i]:
            problems.append(ConfigProblem(key=f"ble.receivers[{i}].id", value=rx.id, expected="an id not used before"))
    if s.ble.exit_m < s.ble.enter_m:
        problems.append(
            ConfigProblem(key="ble.exit_m", value=s.ble.exit_m, expected=f"at least ble.enter_m ({s.ble.enter_m})")
        )
    placed = [rx.x_m is not None and rx.y_m is not None for rx in s.ble.receivers]
    for i, rx in enumerate(s.ble.receivers):
        if (rx.x_m is None) != (rx.y_m is None) or (any(placed) and not placed[i]):
            problems.append(
                ConfigProblem(
                    key=f"ble.receivers[{i}]",
                    value={"x_m": rx.x_m, "y_m": rx.y_m},
                    expected="both x_m and y_m, on every receiver or on none",
                )
            )
        enter, exit_ = s.ble.thresholds(rx)
        if exit_ < enter:
            problems.append(
                ConfigProblem(key=f"ble.receivers[{i}].exit_m", value=exit_, expected=f"at least its enter_m ({enter})")
            )
    named = [*s.ble.beacons, *s.ble.beacon_profiles]
    for i, at in enumerate(s.ble.beacon_positions):
        if at.beacon not in named:
            problems.append(
                ConfigProblem(
                    key=f"ble.beacon_positions[{i}].beacon",
                    value=at.beacon,
                    expected="an id of ble.beacons or a name of ble.beacon_profiles",
                )
            )
        if at.beacon in [p.beacon for p in s.ble.beacon_positions[:i]]:
            problems.append(
                ConfigProblem(key=f"ble.beacon_positions[{i}].beacon", value=at.beacon, expected="a beacon placed once")
            )
    areas = [z.id for z in s.zones if z.area is not None]
    if areas and (len(s.ble.receivers) < 3 or not all(placed)):
        problems.append(
            ConfigProblem(
                key="ble.receivers",
                value=f"{sum(placed)} of {len(placed)} with x_m and y_m",
                expected=f"at least 3 receivers, each with x_m and y_m: zones {', '.join(areas)} are areas of the "
                "floor, where the receivers' levels place a phone",
            )
        )
    if s.ble.beacon_positions and not any(placed):
        problems.append(
            ConfigProblem(
                key="ble.beacon_positions",
                value=len(s.ble.beacon_positions),
                expected="receivers with floor positions (x_m, y_m): what they should hear is worked out from both",
            )
        )
    local = s.ble.receiver_id or s.store.device_id
    if s.sources.ble and local not in receiver_ids:
        problems.append(
            ConfigProblem(
                key="ble.receivers",
                value=receiver_ids,
                expected=f"an entry for this host's adapter, id {local!r} (ble.receiver_id or store.device_id)",
            )
        )
    if s.ble.remote_scanners and s.mqtt is None:
        problems.append(
            ConfigProblem(key="ble.remote_scanners", value=True, expected="an [mqtt] section with the store's broker")
        )
    return problems + _check_zone_beacons(s, zone_ids)


def _check_zone_beacons(s: Settings, zone_ids: list[str]) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    zb = s.ble.zone_beacon
    needs_key = zb.advertise or (s.sources.ble_reports and not s.ble.beacon_zones)
    for name in ("uuid", "major", "key_file"):
        if needs_key and getattr(zb, name) is None:
            why = "ble.zone_beacon.advertise" if zb.advertise else "sources.ble_reports"
            problems.append(
                ConfigProblem(key=f"ble.zone_beacon.{name}", value=None, expected=f"a value while {why} is on")
            )
    if zb.zone is not None and zb.zone not in zone_ids:
        problems.append(
            ConfigProblem(key="ble.zone_beacon.zone", value=zb.zone, expected=f"one of {', '.join(zone_ids)}")
        )
    if zb.advertise and s.beacon_zone() is None:
        problems.append(
            ConfigProblem(
                key="ble.zone_beacon.zone",
                value=None,
                expected="a zone, or an entry of ble.receivers for this host's adapter whose zone is advertised",
            )
        )
    for i, bz in enumerate(s.ble.beacon_zones):
        if bz.beacon not in s.ble.beacons or not re.fullmatch(r"ibeacon:[0-9A-Fa-f-]{36}:\d{1,5}:\d{1,5}", bz.beacon):
            problems.append(
                ConfigProblem(
                    key=f"ble.beacon_zones[{i}].beacon", value=bz.beacon, expected="an iBeacon id of ble.beacons"
                )
            )
        if bz.zone not in zone_ids:
            problems.append(
                ConfigProblem(
                    key=f"ble.beacon_zones[{i}].zone", value=bz.zone, expected=f"one of {', '.join(zone_ids)}"
                )
            )
    if s.sources.ble_reports and s.http.report_listen is None and s.mqtt is None:
        problems.append(
            ConfigProblem(
                key="sources.ble_reports",
                value=True,
                expected="a way in for reports: http.report_listen (store Wi-Fi) or an [mqtt] section (cloud relay)",
            )
        )
    if s.ble.beacon_zones and not s.ble.static_beacon_reports:
        problems.append(
            ConfigProblem(
                key="ble.static_beacon_reports",
                value=False,
                expected="true to take reports naming fixed beacons (their minor never changes: it can be replayed)",
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
    return problems + _check_enrolment(s)


def _check_enrolment(s: Settings) -> list[ConfigProblem]:
    """Enrolment uploads are signed by this host and go up through the outbox, from a camera at a kiosk."""
    e = s.vision.faces.enrolment
    if e.cloud_key is None:
        return []
    needs = {
        "store.device_key_file (uploads are signed by this host)": s.store.device_key_file is not None,
        "an [mqtt] section (uploads go up through the outbox)": s.mqtt is not None,
        "sources.vision on": s.sources.vision,
        "a camera whose touchpoint is a kiosk": bool(enrolment_kiosks(s)),
    }
    problems = [
        ConfigProblem(key="vision.faces.enrolment.cloud_key", value="(set)", expected=need)
        for need, met in needs.items()
        if not met
    ]
    if e.min_brightness >= e.max_brightness:
        problems.append(
            ConfigProblem(
                key="vision.faces.enrolment.min_brightness",
                value=e.min_brightness,
                expected=f"less than max_brightness ({e.max_brightness})",
            )
        )
    return problems


def enrolment_kiosks(s: Settings) -> set[str]:
    """The kiosks a camera of this host looks out from: where a shopper can enrol."""
    kiosks = {t.id for t in s.touchpoints if t.kind == "kiosk"}
    return {c.touchpoint for c in s.vision.cameras if c.touchpoint is not None and c.touchpoint in kiosks}


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
