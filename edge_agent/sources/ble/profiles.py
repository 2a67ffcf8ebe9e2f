"""The BLE device kinds a store runs beside the agent: its own fixed beacons (`firmware_configs/beacons/`) and
its receivers (`firmware_configs/scanners/`): an ESP32 speaking our node format (`kind = "scanner"`), or what a
store can install or flash unchanged — a Theengs Gateway or OpenMQTTGateway (`theengs-gateway`), an ESPresense
node (`espresense`), an ESPHome Bluetooth proxy (`esphome-proxy`).

Profiles describe hardware and firmware, never secrets: a scanner node's broker password is flashed
separately, an ESPHome proxy's API key is a file the config names, so a profile can be kept in git and shared
between stores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, cast

from pydantic import Field, RootModel, model_validator

from ...config import Ident, Section
from ...profiles import Name, load_of_kind
from .node_format import MAX_ADVERTS

Topic = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$", max_length=200)]


class IBeaconId(Section):
    uuid: Annotated[str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")] = Field(
        description="proximity UUID, lower-case with dashes"
    )
    major: Annotated[int, Field(ge=0, le=65535)]
    minor: Annotated[int, Field(ge=0, le=65535)]


class EddystoneUid(Section):
    namespace: Annotated[str, Field(pattern=r"^[0-9a-f]{20}$")] = Field(description="10 bytes, lower-case hex")
    instance: Annotated[str, Field(pattern=r"^[0-9a-f]{12}$")] = Field(description="6 bytes, lower-case hex")


class BeaconRadio(Section):
    tx_power_dbm: Annotated[int, Field(ge=-40, le=20)] = Field(default=0, description="transmit power setting")
    measured_power_dbm: Annotated[int, Field(ge=-100, le=0)] = Field(
        default=-59, description="RSSI at 1 m, as calibrated and advertised"
    )
    interval_ms: Annotated[int, Field(ge=20, le=10_240)] = Field(default=350, description="advertising interval")


class BeaconProfile(Section):
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


class NodeBroker(Section):
    host: Annotated[str, Field(min_length=1, max_length=253)]
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    tls: bool = False
    username: Annotated[str, Field(min_length=1, max_length=64)] | None = Field(
        default=None, description="the node's broker user; its password is flashed separately, never in a profile"
    )
    topic_prefix: str = Field(default="retail/v1", pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
    store: Ident = Field(description="the store id in the topic the node publishes to")


class NodeScan(Section):
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


class NodeReport(Section):
    interval_ms: Annotated[int, Field(ge=100, le=10_000)] = 500
    max_adverts: Annotated[int, Field(ge=1, le=MAX_ADVERTS)] = 200


class ScannerProfile(Section):
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


class TheengsSettings(Section):
    """What the gateway must run with for the agent to read it (its command-line flags or `theengsgw.conf`)."""

    publish_advdata: Literal[True] = Field(
        default=True, description="-padv 1: the advert's own data (manufacturerdata, servicedata) is published"
    )
    publish_all: Literal[True] = Field(
        default=True, description="-pa 1: adverts Theengs cannot decode (the app's token) are published too"
    )
    discovery: Literal[False] = Field(
        default=False, description="-D 0: plain messages, not Home Assistant discovery entities"
    )


class TheengsGatewayProfile(Section):
    """A Theengs Gateway (`pip install TheengsGateway`) or an OpenMQTTGateway, publishing what it hears to the
    store's broker in its own JSON; the agent reads it unchanged and drops the addresses at the boundary."""

    kind: Literal["theengs-gateway"] = "theengs-gateway"
    name: Name
    description: str = ""
    publish_topic: Topic = Field(
        default="home/TheengsGateway/BTtoMQTT",
        description="the gateway's publish topic (-pt); each advert arrives on PUBLISH_TOPIC/ADDRESS",
    )
    offset_db: Annotated[float, Field(ge=-30, le=30)] = Field(
        default=0.0, description="how many dB this gateway reads above the reference receiver"
    )
    gateway: TheengsSettings = TheengsSettings()

    def topic(self) -> str:
        return f"{self.publish_topic}/+"


class EspresenseProfile(Section):
    """An ESPresense node: it reports, per device id it keeps, a filtered RSSI on `espresense/devices/ID/ROOM`."""

    kind: Literal["espresense"] = "espresense"
    name: Name
    description: str = ""
    room: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] = Field(
        description="the node's room id (its `room` setting, as in its topics)"
    )
    channel: Topic = Field(default="espresense", description="the node's MQTT channel (topic root)")
    skip_ms: Annotated[int, Field(ge=0, le=60_000)] = Field(
        default=5000, description="the node's report interval per device (its throttling: a limit on latency)"
    )
    offset_db: Annotated[float, Field(ge=-30, le=30)] = Field(
        default=0.0, description="how many dB this node reads above the reference receiver (after its rx_adj_rssi)"
    )

    def topic(self) -> str:
        return f"{self.channel}/devices/+/{self.room}"


class EsphomeProxyProfile(Section):
    """An ESP32 running ESPHome's `bluetooth_proxy`: the agent connects to its native API and takes raw adverts."""

    kind: Literal["esphome-proxy"] = "esphome-proxy"
    name: Name
    description: str = ""
    host: Annotated[str, Field(min_length=1, max_length=253)] = Field(description="the proxy's address or name")
    port: Annotated[int, Field(ge=1, le=65535)] = Field(default=6053, description="the native API port")
    encrypted: bool = Field(
        default=True, description="the API has an encryption key (the receiver's api_key_file holds it)"
    )
    offset_db: Annotated[float, Field(ge=-30, le=30)] = Field(
        default=0.0, description="how many dB this proxy reads above the reference receiver"
    )


ReceiverProfile = ScannerProfile | TheengsGatewayProfile | EspresenseProfile | EsphomeProxyProfile
RECEIVER_MODELS: dict[str, type[ReceiverProfile]] = {
    "scanner": ScannerProfile,
    "theengs-gateway": TheengsGatewayProfile,
    "espresense": EspresenseProfile,
    "esphome-proxy": EsphomeProxyProfile,
}


class ReceiverKinds(RootModel[Annotated[ReceiverProfile, Field(discriminator="kind")]]):
    """The schema of firmware_configs/scanners/*.toml: one of the receiver kinds, by its `kind`."""


def load_receiver(name: str | Path) -> ReceiverProfile:
    """A receiver's profile of any kind, by bare name or `.toml` path; ProfileError naming the file otherwise."""
    return cast(ReceiverProfile, load_of_kind(name, "scanners", RECEIVER_MODELS, "scanner"))
