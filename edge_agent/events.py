"""The facts that move between the rooms of the agent (see DESIGN.md, "Data flow").

Events are frozen so a subscriber can never change what another one sees. Monotonic time (`mono`) is for
filters and latencies; wall time (`at`, UTC) with the clock's sync state is what gets stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


@dataclass(frozen=True, slots=True)
class Customer:
    """A shopper resolved from the roster whose consent covers the channel that saw them."""

    customer_ref: str

    @property
    def key(self) -> str:
        return f"customer:{self.customer_ref}"


@dataclass(frozen=True, slots=True)
class Anonymous:
    """Someone counted but never identified; the track id lives only as long as the track."""

    track_id: str

    @property
    def key(self) -> str:
        return f"anonymous:{self.track_id}"


Subject = Customer | Anonymous


class Channel(StrEnum):
    """How a subject was noticed; consent is given per channel."""

    CHECKIN = "checkin"
    BLE = "ble"
    FACE = "face"
    VISION = "vision"


@dataclass(frozen=True, slots=True)
class WallTime:
    at: datetime
    ntp_synced: bool

    def iso(self) -> str:
        return self.at.isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True)
class Sighting:
    """A subject seen in a zone by one source. Raw identifiers never get this far."""

    subject: Subject
    zone: str
    channel: Channel
    mono: float
    wall: WallTime
    touchpoint: str | None = None
    rssi: float | None = None
    explicit: bool = False  # the shopper acted (check-in, kiosk); the screen should answer now
    receiver: str | None = None  # the radio receiver that heard it; with `rssi`, presence places the subject
    ref_dbm: float | None = None  # calibrated RSSI at 1 m of the transmitter, when the advert tells
    origin: str | None = None  # another host of the store that saw it (shared presence); None: this host
    hold_s: float | None = None  # an app report's sighting: how long it alone keeps the subject (ble.report_ttl_s)


@dataclass(frozen=True, slots=True)
class Departed:
    """An app report said the phone left the store's region, or hears every zone beacon far off: the zones its
    reports put the customer in end now (zones other channels or the store's receivers hold stay)."""

    subject: Customer
    mono: float
    wall: WallTime


@dataclass(frozen=True, slots=True)
class AppReportRelayed:
    """An app report the cloud relayed (signed envelope opened): the BLE report intake verifies it like any."""

    data: bytes


class PresenceKind(StrEnum):
    ENTER = "enter"
    DWELL = "dwell"
    EXIT = "exit"


@dataclass(frozen=True, slots=True)
class Presence:
    subject: Subject
    zone: str
    kind: PresenceKind
    dwell_s: float
    mono: float
    wall: WallTime
    touchpoint: str | None = None
    explicit: bool = False


@dataclass(frozen=True, slots=True)
class Show:
    """What a touchpoint should display now; `show_id` is the decision id that proof of play refers to."""

    touchpoint: str
    show_id: str
    offer: dict[str, Any]
    customer_ref: str | None
    mono: float
    origin_mono: float = field(default=0.0)  # when the triggering sighting happened, for latency


@dataclass(frozen=True, slots=True)
class ScreenReload:
    """The cloud asked for a screen's page to be loaded afresh (a `reload_screen` command): its players reload."""

    touchpoint: str


@dataclass(frozen=True, slots=True)
class ShowRequested:
    """The cloud asked for an offer on a touchpoint (a `show` command, already checked): `decide/` logs it as a
    decision of its own under `show_id` and shows it, before the command is acknowledged."""

    touchpoint: str
    offer_id: str
    command_id: str
    show_id: str


@dataclass(frozen=True, slots=True)
class OffersChanged:
    """The offers or the decision policy in the store changed (a bundle applied, a reload asked for)."""

    version: int


@dataclass(frozen=True, slots=True)
class Idle:
    """Nothing to show at a touchpoint: it falls back to its idle playlist."""

    touchpoint: str
    mono: float


@dataclass(frozen=True, slots=True)
class Impression:
    """Proof of play: a touchpoint acknowledged it displayed a show."""

    impression_id: str
    show_id: str
    touchpoint: str
    offer_id: str
    customer_ref: str | None
    wall: WallTime
    arm: str = ""


@dataclass(frozen=True, slots=True)
class PurchaseLine:
    sku: str
    qty: int
    price_cents: int | None = None
    claim_code: str | None = None  # a claimed offer's code, scanned or typed at the till


@dataclass(frozen=True, slots=True)
class Purchase:
    """A till transaction. `customer_ref` only for a loyalty id of a consenting roster customer; otherwise
    the purchase is anonymous and the loyalty id never leaves the POS source."""

    txn_id: str
    register: str
    customer_ref: str | None
    lines: tuple[PurchaseLine, ...]
    wall: WallTime


@dataclass(frozen=True, slots=True)
class Conversion:
    """A purchase attributed to a decision (and the impression that showed it, if any)."""

    conversion_id: str
    decision_id: str
    impression_id: str | None
    customer_ref: str
    offer_id: str
    arm: str
    txn_id: str
    sku: str
    via: str  # "window" (bought within the attribution window) or "claim" (a claim code on the receipt)
    wall: WallTime


@dataclass(frozen=True, slots=True)
class ContextUpdate:
    """Store context sent by the cloud (weather, local events), for the decision engine."""

    weather: dict[str, Any]
    local_events: tuple[dict[str, Any], ...]
    wall: WallTime


@dataclass(frozen=True, slots=True)
class Crowd:
    """How many people a camera sees in a zone: a number, never an identity."""

    zone: str
    people: int
    mono: float
    wall: WallTime


@dataclass(frozen=True, slots=True)
class ConsentChanged:
    """A shopper changed their consent for one channel (at a kiosk of this host, or of `from_host`, which told
    this one); it takes effect at once."""

    customer_ref: str
    channel: str
    granted: bool
    wall: WallTime
    from_host: str | None = None


@dataclass(frozen=True, slots=True)
class TokenUsed:
    """A check-in token this host took: the store's other hosts are told, so it is refused there too."""

    token_id: str
    expires_unix: float


@dataclass(frozen=True, slots=True)
class Erased:
    """A customer was erased (a cloud command, or dropped from the roster): every room forgets them at once."""

    customer_ref: str
    wall: WallTime
