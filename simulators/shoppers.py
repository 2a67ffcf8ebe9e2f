"""Shoppers with phones on a store floor: adverts at every receiver, and the ground truth of who was where.

A floor plan has zones (circles around a screen, where its receiver hangs) and aisles between them.
Shoppers arrive at random, walk between stops (mostly in zones, some in aisles), dwell, and leave by the
door. Some opted in to BLE, some did not. Each phone does what its platform can (`platforms.py`): iPhones never
advertise the token — their app hears the zone beacons the hosts advertise and reports (ranging at region entry,
every second while the app is open, a region exit after leaving); Android apps advertise every 0.2–0.5 s with
their TX power under a foreground service (a share of them), the others report like iPhones. Signal:
log-distance path loss per phone model, slow body shadowing, per-advert noise, receiver sensitivity and lost
packets, the same both ways. The ground truth is each shopper's zone, second by second.

    python -m simulators.shoppers --eval --seed 1 --shoppers 40 --minutes 20 [--scenario default] [--truth FILE]

runs the agent's own paths — parse → resolve → filter → zone for adverts, verify → nearest beacon for reports,
one presence tracker — and prints JSON precision, recall (opted-in shopper × zone × second against the truth)
and the median enter latency, overall, `by_platform` (with each platform's store arrivals), `by_path`, and for
reporting apps while open beside advertising Androids; `every_phone_advertising` gives the figures of the old
model, where iPhones advertised too. `--truth FILE` writes the ground truth as JSON lines (every zone visit with
its times, every silent spell of a pocketed phone).
`--receiver-gain-db G` makes every receiver but this host's read up to G dB off; `--beacon-offsets` then
configures the offsets the store's fixed beacons suggest (`edge_agent.radio.beacon_offsets`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import csv
import functools
import hashlib
import heapq
import json
import math
import random
import statistics
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from edge_agent.bus import Bus
from edge_agent.clock import SetClock
from edge_agent.config import BeaconPosition, Settings, from_dict
from edge_agent.events import Customer, Departed, Sighting
from edge_agent.presence import PresenceTracker
from edge_agent.radio.areas import Areas
from edge_agent.radio.beacon_offsets import BeaconLevels
from edge_agent.radio.floor import Floor
from edge_agent.radio.placer import distance_m, fit_path_loss_exponent
from edge_agent.replay import replay, scoring
from edge_agent.replay.recording import Reading
from edge_agent.replay.scoring import Visit
from edge_agent.sources.ble import zone_beacons
from edge_agent.sources.ble.report_intake import ReportIntake
from edge_agent.sources.ble.reports import HeardBeacon, ReportRefused
from edge_agent.sources.ble.scanner import AdvertResolver
from edge_agent.sources.ble.tokens import INTERVAL_S
from edge_agent.store import open_store
from simulators import platforms
from simulators.bluez import SimulatedBlueZ
from simulators.phone import Phone, phone_for
from simulators.platforms import PhonePlatform
from simulators.receivers import KINDS, Heard, through

CHAIN = "sim-chain"
START_UNIX = 1_800_000_000.0
SENSITIVITY_DBM = -95.0
RECEIVER_HEIGHT_M = 2.0
ANDROID_ADVERTISING_SHARE = 0.6  # Android apps whose foreground service keeps advertising (an assumption)
BEACON_KEY = hashlib.sha256(b"sim-zone-beacon").digest()  # the simulated store's zone-beacon key
BEACON_UUID = "e2c56db5-dffb-48d2-b060-d0f5a71096e0"
BEACON_MAJOR = 1
BEACON_POWER_DBM = -59  # the zone beacons' measured power at 1 m
BEACON_ADVERTS_PER_S = 10  # a zone beacon advertises every 100 ms (ble.zone_beacon.interval_ms)
SHADOW_DB = 1.2 / math.sqrt(1 - 0.9**2)  # the slow shadowing's spread, ≈ 2.75 dB
SHADOW_S = -0.35 / math.log(0.9)  # how long it lasts: 0.9 per advert at a typical 0.35 s, ≈ 3.3 s
MIN_VISIT_S = 5.0  # shorter true visits are not counted (as `edge-agent ble replay` by default)


@dataclass(frozen=True)
class Zone:
    """A circle of `radius` around (x, y), or with `half` a rectangle of that half width and depth around it."""

    id: str
    x: float
    y: float
    radius: float
    half: tuple[float, float] | None = None

    def holds(self, x: float, y: float) -> bool:
        if self.half is not None:
            return abs(x - self.x) <= self.half[0] and abs(y - self.y) <= self.half[1]
        return (x - self.x) ** 2 + (y - self.y) ** 2 <= self.radius**2

    def clear_of(self, x: float, y: float, margin: float) -> bool:
        """Whether the point is more than `margin` from the zone."""
        if self.half is not None:
            return abs(x - self.x) > self.half[0] + margin or abs(y - self.y) > self.half[1] + margin
        return math.dist((x, y), (self.x, self.y)) > self.radius + margin

    def stop(self, rng: random.Random) -> tuple[float, float]:
        """Where a shopper stops in the zone: anywhere but its outer 30 %."""
        if self.half is not None:
            return self.x + 0.7 * self.half[0] * rng.uniform(-1, 1), self.y + 0.7 * self.half[1] * rng.uniform(-1, 1)
        r, a = self.radius * 0.7 * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
        return self.x + r * math.cos(a), self.y + r * math.sin(a)


@dataclass(frozen=True)
class Spot:
    """Where a receiver (or a zone beacon) hangs."""

    id: str
    x: float
    y: float


@dataclass(frozen=True)
class FloorPlan:
    """A store's floor: one receiver over each zone, or with `grid_m` receivers on a grid of that pitch, the zones
    then areas of the floor (rectangles) that the agent is configured with."""

    width: float
    depth: float
    door: tuple[float, float]
    zones: tuple[Zone, ...]
    path_loss_exponent: float = 2.2
    uncalibrated_share: float = 0.0  # phones of a model missing from the store's calibration table
    grid_m: float | None = None
    receiver_height_m: float = RECEIVER_HEIGHT_M

    def zone_at(self, x: float, y: float) -> str | None:
        return next((z.id for z in self.zones if z.holds(x, y)), None)

    @functools.cached_property
    def receivers(self) -> tuple[Spot, ...]:
        if self.grid_m is None:
            return tuple(Spot(receiver_id(z.id), z.x, z.y) for z in self.zones)
        g = self.grid_m
        xs = [g / 2 + g * i for i in range(int(self.width // g))]
        ys = [g / 2 + g * j for j in range(int(self.depth // g))]
        return tuple(Spot(f"rx-{i}-{j}", x, y) for j, y in enumerate(ys) for i, x in enumerate(xs))

    def nearest_zone(self, spot: Spot) -> Zone:
        return min(self.zones, key=lambda z: (not z.holds(spot.x, spot.y), math.dist((z.x, z.y), (spot.x, spot.y))))


SCENARIOS: dict[str, FloorPlan] = {
    # the one the defaults were tuned on
    "default": FloorPlan(
        40,
        20,
        (0.0, 10.0),
        (
            Zone("entrance", 4, 10, 3.5),
            Zone("bakery", 16, 4, 3.5),
            Zone("dairy", 30, 4, 3.5),
            Zone("produce", 16, 16, 3.5),
            Zone("checkout", 32, 16, 3.5),
        ),
    ),
    # the demo store's three zones (`edge-agent demo`)
    "demo": FloorPlan(
        30,
        14,
        (0.0, 7.0),
        (Zone("entrance", 4, 7, 3.5), Zone("bakery", 15, 3.5, 3.5), Zone("dairy", 25, 7, 3.5)),
    ),
    # not tuned on: a small shop with zones close together and more reflective walls
    "corner-shop": FloorPlan(
        16,
        10,
        (0.0, 5.0),
        (Zone("entrance", 3, 5, 2.5), Zone("coffee", 10, 2.5, 2.5), Zone("deli", 12, 8, 2.5)),
        path_loss_exponent=2.0,
        uncalibrated_share=0.15,
    ),
    # not tuned on: a big floor with wide zones and a lossier path
    "hypermarket": FloorPlan(
        80,
        40,
        (0.0, 20.0),
        tuple(Zone(f"z{i}{j}", 10 + 20 * i, 10 + 20 * j, 4.5) for i in range(4) for j in range(2)),
        path_loss_exponent=2.6,
        uncalibrated_share=0.15,
    ),
    # departments as areas of the floor (10 × 8 m, aisles of 4 m between), receivers on a 7 m grid at 3 m
    "receiver-grid": FloorPlan(
        42,
        24,
        (0.0, 12.0),
        tuple(
            Zone(f"{name}", 7 + 14 * i, 6 + 12 * j, 4.0, half=(5.0, 4.0))
            for (i, j), name in zip(
                [(i, j) for j in range(2) for i in range(3)],
                ("bakery", "dairy", "drinks", "produce", "frozen", "household"),
                strict=True,
            )
        ),
        grid_m=7.0,
        receiver_height_m=3.0,
    ),
}


@dataclass(frozen=True)
class Model:
    name: str
    ref_dbm: float  # RSSI at 1 m
    tx_power: int | None  # what the advert's TX power level says, if the OS puts it there
    interval: tuple[float, float]


ANDROID = [
    Model("pixel", -58.0, -17, (0.2, 0.5)),
    Model("galaxy", -61.0, -20, (0.2, 0.5)),
    Model("moto", -63.0, None, (0.3, 0.8)),  # not in the store's calibration table, no TX power: the default
]
IPHONE = Model("iphone", -56.0, None, (0.1, 0.3))
CALIBRATED = [IPHONE, ANDROID[0], ANDROID[1]]  # the models the operator measured in store


@dataclass
class Shopper:
    phone: Phone
    opted_in: bool
    model: Model
    arrive: float
    path: list[tuple[float, float, float]] = field(default_factory=list)  # (t, x, y) waypoints
    silent: list[tuple[float, float]] = field(default_factory=list)  # locked-phone periods
    platform: PhonePlatform | None = None  # None: the phone advertises the token whatever it is (the old model)

    @property
    def advertises(self) -> bool:
        return self.platform is None or self.platform.advertises

    @property
    def path_name(self) -> str:
        """How the agent can hear this phone: `advert` (it advertises the token) or `report` (its app reports)."""
        return "advert" if self.advertises else "report"

    @property
    def leave(self) -> float:
        return self.path[-1][0]

    def position(self, t: float) -> tuple[float, float] | None:
        if t < self.arrive or t > self.leave:
            return None
        for (t0, x0, y0), (t1, x1, y1) in zip(self.path, self.path[1:], strict=False):
            if t0 <= t <= t1:
                f = 0.0 if t1 == t0 else (t - t0) / (t1 - t0)
                return x0 + f * (x1 - x0), y0 + f * (y1 - y0)
        return None

    def is_silent(self, t: float) -> bool:
        return any(a <= t < b for a, b in self.silent)


def make_shoppers(
    plan: FloorPlan,
    rng: random.Random,
    n: int,
    minutes: float,
    chain_id: str = CHAIN,
    prefix: str = "shopper",
    advertising_share: float | None = ANDROID_ADVERTISING_SHARE,
    app_always_open: bool = False,
) -> list[Shopper]:
    """Shoppers and their walks; each phone behaves as its platform can (`platforms.py`), or, with
    `advertising_share` None, every phone advertises the token (the model before iPhones were told apart). The
    platforms are drawn apart from the walks, so both models see the same shoppers walk the same way."""
    span = minutes * 60.0
    out = []
    for i in range(n):
        opted_in = rng.random() < 0.6
        ios = rng.random() < 0.45
        model = IPHONE if ios else rng.choice(ANDROID[:2])
        if rng.random() < plan.uncalibrated_share:
            model = ANDROID[2]
        arrive = rng.uniform(0, span * 0.7)
        shopper = Shopper(phone_for(f"{prefix}-{i:04d}", chain_id), opted_in, model, arrive)
        t, (x, y) = arrive, plan.door
        shopper.path.append((t, x, y))
        for _ in range(rng.randint(2, 5)):
            if rng.random() < 0.75:
                nx, ny = rng.choice(plan.zones).stop(rng)
            else:
                nx, ny = _aisle_point(plan, rng)
            t += math.dist((x, y), (nx, ny)) / rng.uniform(0.8, 1.4)
            shopper.path.append((t, nx, ny))
            t += rng.uniform(15, 120)
            shopper.path.append((t, nx, ny))
            x, y = nx, ny
        t += math.dist((x, y), plan.door) / 1.2
        shopper.path.append((t, *plan.door))
        t += 5.0
        shopper.path.append((t, -15.0, plan.door[1]))  # out through the door and away
        if ios and rng.random() < 0.5:  # pocketed: the app stops advertising for a while
            start = rng.uniform(shopper.arrive, shopper.leave)
            shopper.silent.append((start, start + rng.uniform(5, 25)))
        if advertising_share is not None:
            own = random.Random(f"{prefix}-{i}-{arrive}")
            shopper.platform = platforms.draw(
                own, ios, shopper.arrive, shopper.leave, advertising_share, app_always_open
            )
        out.append(shopper)
    return out


def _aisle_point(plan: FloorPlan, rng: random.Random) -> tuple[float, float]:
    while True:
        x, y = rng.uniform(1, plan.width - 1), rng.uniform(1, plan.depth - 1)
        if all(z.clear_of(x, y, 1.5) for z in plan.zones):
            return x, y


@dataclass(frozen=True)
class Ranged:
    """One reporting app's ranging second: (RSSI, zone, proximity) of the zone beacons heard, strongest first; none
    is the region exit."""

    t: float
    shopper: int
    beacons: tuple[tuple[float, str, str], ...]


def receiver_id(zone: str) -> str:
    return f"rx-{zone}"


class Radio:
    """Turns shoppers' movements into what each receiver hears."""

    def __init__(
        self,
        plan: FloorPlan,
        shoppers: list[Shopper],
        rng: random.Random,
        noise_db: float = 4.0,
        start_unix: float = START_UNIX,
        gains: dict[str, float] | None = None,
    ):
        self.plan = plan
        self.start_unix = start_unix
        self.shoppers = shoppers
        self.rng = rng
        self.noise_db = noise_db
        self.gains = gains or {}  # receiver → dB it reads above the true level (antenna, case, mounting)
        self._shadow: dict[tuple[int, str], float] = {}
        self.level = 0.0  # the last reading's level without noise (see `_rssi`)

    def adverts(self, until: float) -> Iterator[Heard]:
        """Every advert heard by any receiver, in time order, up to `until` seconds."""
        queue = [(s.arrive + self.rng.uniform(0, 0.3), i) for i, s in enumerate(self.shoppers)]
        heapq.heapify(queue)
        while queue:
            t, i = heapq.heappop(queue)
            if t > until:
                break
            shopper = self.shoppers[i]
            pos = shopper.position(t)
            if pos is None:
                continue
            heapq.heappush(queue, (t + self.rng.uniform(*shopper.model.interval), i))
            if shopper.is_silent(t) or not shopper.advertises:
                continue
            payload = shopper.phone.advert(self.start_unix + t)
            for rx in self.plan.receivers:
                rssi = self._rssi(i, shopper.model, rx, pos)
                if rssi is not None:
                    yield Heard(t, rx.id, shopper.phone.customer_ref, rssi, payload, shopper.model.tx_power, self.level)

    def ranging(self, until: float) -> Iterator[Ranged]:
        """What each reporting app ranges and sends, in time order: the zone beacons heard each ranging second
        (each zone's beacon hangs over its middle: the host there advertises it), and a region exit after the
        shopper left."""
        beacon = Model("zone-beacon", float(BEACON_POWER_DBM), None, (0.1, 0.1))
        events: list[Ranged] = []
        for i, shopper in enumerate(self.shoppers):
            if shopper.platform is None:
                continue
            last = float("-inf")
            for t in shopper.platform.ranging_times(shopper.arrive, min(shopper.leave, until)):
                pos = shopper.position(t)
                if pos is None:
                    continue
                heard = []
                since, last = t - last, t
                for zone in self.plan.zones:
                    spot = Spot(receiver_id(zone.id), zone.x, zone.y)
                    rssi = self._rssi(-1 - i, beacon, spot, pos, since, BEACON_ADVERTS_PER_S)
                    if rssi is not None:
                        heard.append((rssi, zone.id, platforms.proximity(rssi, BEACON_POWER_DBM)))
                if heard:
                    events.append(Ranged(t, i, tuple(sorted(heard, reverse=True)[:8])))
            if shopper.platform.region_entered(shopper.arrive, shopper.leave):
                gone = shopper.leave + shopper.platform.exit_delay_s
                if gone <= until:
                    events.append(Ranged(gone, i, ()))
        return iter(sorted(events, key=lambda r: (r.t, r.shopper)))

    def _rssi(
        self,
        i: int,
        model: Model,
        rx: Spot,
        pos: tuple[float, float],
        since_s: float | None = None,
        samples: int = 1,
    ) -> float | None:
        """One reading; the slow shadowing (a body, a shelf) moves by 0.9 per advert, or with `since_s` (the
        seconds since this link's last reading) by the same process in time: the ~3.3 s it lasts for a phone
        advertising every 0.35 s. With `samples`, the reading is the mean of that many adverts, as CoreLocation
        reports a ranged beacon ("the average RSSI value of the samples received since the ranging of the beacon
        was last reported", `CLBeacon.rssi`): the noise of the adverts received averaged, none only if all were lost."""
        d = max(0.5, math.hypot(pos[0] - rx.x, pos[1] - rx.y, self.plan.receiver_height_m))
        key = (i, rx.id)
        keep = 0.9 if since_s is None else math.exp(-since_s / SHADOW_S)
        step = 1.2 if since_s is None else SHADOW_DB * math.sqrt(1 - keep * keep)
        shadow = keep * self._shadow.get(key, 0.0) + self.rng.gauss(0, step)
        self._shadow[key] = shadow
        rssi = model.ref_dbm - 10 * self.plan.path_loss_exponent * math.log10(d) + shadow
        self.level = rssi  # what an oracle would read: the true level under this advert's shadowing, no noise
        gain = self.gains.get(rx.id, 0.0)
        if samples == 1:
            rssi += self.rng.gauss(0, self.noise_db) + gain
            lost = rssi < SENSITIVITY_DBM or self.rng.random() < 0.1  # 10 % of adverts lost
            return None if lost else round(rssi)
        received = sum(self.rng.random() >= 0.1 for _ in range(samples))
        if received == 0:
            return None
        rssi += self.rng.gauss(0, self.noise_db / math.sqrt(received)) + gain
        return None if rssi < SENSITIVITY_DBM else round(rssi)


async def feed_bluez(bluez: SimulatedBlueZ, radio: Radio, local_receiver: str, until: float) -> int:
    """Play what `local_receiver` hears, in real time, through the simulated BlueZ to the real scanner."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent = 0
    for heard in radio.adverts(until):
        if heard.receiver != local_receiver:
            continue
        delay = start + heard.t - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        sent += bluez.advertise(heard.device, int(heard.rssi), heard.manufacturer_data, tx_power=heard.tx_power)
    return sent


async def feed_reports(url: str, radio: Radio, until: float) -> int:
    """Play what the reporting apps send, in real time, to the agent's report listener at `url` (the store Wi-Fi);
    returns how many were taken."""
    import aiohttp

    from edge_agent.sources.ble.report_listener import ROUTE

    loop = asyncio.get_running_loop()
    start = loop.time()
    taken = 0
    nonces = random.Random()
    async with aiohttp.ClientSession() as http:
        for ranged in radio.ranging(until):
            shopper = radio.shoppers[ranged.shopper]
            if not shopper.opted_in:
                continue  # an app without the customer's consent to BLE reports nothing
            delay = start + ranged.t - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            body = _report(shopper.phone, radio.start_unix + ranged.t, ranged, nonces)
            async with http.post(f"{url}{ROUTE}", data=body) as resp:
                taken += resp.status == 202
    return taken


def receiver_config(plan: FloorPlan, rx: Spot, offset_db: float = 0.0) -> dict[str, Any]:
    """What an operator writes for a receiver: where it hangs on the floor plan, its offset, the zone it hangs
    over (on a grid, the one it is in or nearest); over a zone of its own, enter at 1.05× the distance from the
    receiver to the zone's edge (docs/ble-presence.md), leave 0.3 m further out."""
    zone = plan.nearest_zone(rx)
    at = {"id": rx.id, "zone": zone.id, "offset_db": offset_db, "x_m": rx.x, "y_m": rx.y}
    if plan.grid_m is not None:
        return {**at, "height_m": plan.receiver_height_m}
    enter = round(1.05 * math.hypot(zone.radius, plan.receiver_height_m), 1)
    return {**at, "enter_m": enter, "exit_m": round(enter + 0.3, 1), "height_m": plan.receiver_height_m}


def zone_config(plan: FloorPlan, zone: Zone) -> dict[str, Any]:
    """A zone as the operator configures it: on a receiver grid, its area on the floor plan."""
    if plan.grid_m is None:
        return {"id": zone.id}
    assert zone.half is not None
    (x0, x1), (y0, y1) = (
        (zone.x - zone.half[0], zone.x + zone.half[0]),
        (zone.y - zone.half[1], zone.y + zone.half[1]),
    )
    return {"id": zone.id, "area": {"polygon": [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]}}


def receiver_gains(plan: FloorPlan, spread_db: float, seed: int) -> dict[str, float]:
    """Receivers that read up to `spread_db` above or below the true level; the first zone's is this host's, the
    reference the phone models' 1 m levels were measured with (0)."""
    rng = random.Random(f"gains-{seed}")
    return {rx.id: 0.0 if i == 0 else rng.uniform(-spread_db, spread_db) for i, rx in enumerate(plan.receivers)}


def beacon_offsets(plan: FloorPlan, gains: dict[str, float], seed: int, minutes: float = 30.0) -> dict[str, float]:
    """What an operator does once per store (docs/ble-presence.md, "Receiver offsets"): a fixed beacon
    halfway between neighbouring receivers (the shortest links that connect them all), heard for half an hour by
    every receiver through the same radio as the shoppers (gains, shadowing, noise, loss), and the offsets the
    agent's `BeaconLevels` suggests."""
    beacon = Model("beacon", -59.0, None, (0.35, 0.35))
    placed = [
        (f"ibeacon:00000000-0000-0000-0000-000000000000:1:{k}", (a.x + b.x) / 2, (a.y + b.y) / 2)
        for k, (a, b) in enumerate(_neighbours(plan.receivers))
    ]
    ble = agent_settings(plan, seed=seed).ble.model_copy(
        update={
            "beacons": [b for b, _, _ in placed],
            "beacon_positions": [BeaconPosition(beacon=b, x_m=x, y_m=y, height_m=0.0) for b, x, y in placed],
        }
    )
    levels = BeaconLevels(ble, plan.receivers[0].id)
    radio = Radio(plan, [], random.Random(f"beacons-{seed}"), gains=gains)
    for n in range(int(minutes * 60 / 0.35)):
        for k, (beacon_id, x, y) in enumerate(placed):
            for rx in plan.receivers:
                rssi = radio._rssi(-1 - k, beacon, rx, (x, y))
                if rssi is not None:
                    levels.record(beacon_id, rx.id, rssi, int(beacon.ref_dbm), n * 0.35)
    return levels.offsets()


def calibration_walk(plan: FloorPlan, seed: int) -> float:
    """What an operator does once per store: a calibrated phone held still for ~30 s at each of 1.5–12 m under one
    receiver, heard through the same noisy radio as the shoppers; the agent fits the path-loss exponent."""
    model, rx, height = CALIBRATED[1], plan.receivers[0], plan.receiver_height_m
    radio = Radio(plan, [], random.Random(f"calibration-{seed}"))
    readings = []
    for distance in (1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0):
        across = math.sqrt(distance**2 - height**2) if distance > height else 0.0
        for _ in range(100):
            rssi = radio._rssi(-1, model, rx, (rx.x + across, rx.y))
            if rssi is not None:
                readings.append((max(distance, height), rssi))
    return round(fit_path_loss_exponent(readings, model.ref_dbm), 2)


def _neighbours(spots: tuple[Spot, ...]) -> list[tuple[Spot, Spot]]:
    """The shortest links that connect every receiver (a minimum spanning tree, Prim's)."""
    linked, links = [spots[0]], []
    while len(linked) < len(spots):
        a, b = min(
            ((a, b) for a in linked for b in spots if b not in linked),
            key=lambda ab: math.dist((ab[0].x, ab[0].y), (ab[1].x, ab[1].y)),
        )
        linked.append(b)
        links.append((a, b))
    return links


def agent_settings(
    plan: FloorPlan,
    overrides: dict[str, dict[str, Any]] | None = None,
    seed: int = 0,
    offsets: dict[str, float] | None = None,
) -> Settings:
    """The agent's configuration for a floor plan: one receiver per zone (with `offsets`, receiver → dB, if
    given), the path-loss exponent from the operator's calibration walk, every other tuning knob at its default
    unless overridden (`{"ble": {"enter_m": 4.0}}`)."""
    overrides, offsets = overrides or {}, offsets or {}
    return from_dict(
        {
            "store": {"id": "sim-store", "chain_id": CHAIN, "device_id": "edge-sim"},
            "zones": [zone_config(plan, z) for z in plan.zones],
            "sources": {"checkin": False, "ble": False, "ble_reports": True},
            "http": {"report_listen": "127.0.0.1:0"},
            "ble": {
                "receivers": [receiver_config(plan, rx, offsets.get(rx.id, 0.0)) for rx in plan.receivers],
                "reference_by_model": {m.name: m.ref_dbm for m in CALIBRATED},
                "path_loss_exponent": calibration_walk(plan, seed),
                "zone_beacon": {
                    "uuid": BEACON_UUID,
                    "major": BEACON_MAJOR,
                    "key_file": "zone-beacon.key",  # the simulation hands the key over itself
                    "measured_power_dbm": BEACON_POWER_DBM,
                },
                **overrides.get("ble", {}),
            },
            "presence": overrides.get("presence", {}),
            "database": {"path": ":memory:"},
        }
    )


class Oracle:
    """Presence as it could be at best on this radio: every phone's true reference and the floor's true
    path-loss exponent, each advert's level under its shadowing but without its noise, no filter and no lag;
    the receivers' enter and exit distances as configured, the zone of the nearest receiver — or, with zones as
    areas, the zone whose area holds the position those levels fit best, left `area_exit_m` beyond its edge; a
    phone not heard keeps its zone for the hold-down, as the agent's does."""

    WINDOW_S = 1.0  # adverts of the last second count

    def __init__(self, settings: Settings, exponent: float):
        self._exponent = exponent
        ble = settings.ble
        self._zone = {r.id: r.zone for r in ble.receivers}
        self._enter = {r.id: ble.thresholds(r)[0] for r in ble.receivers}
        self._exit = {r.id: ble.thresholds(r)[1] for r in ble.receivers}
        self._areas = Areas(settings.zones)
        self._floor = Floor(ble.receivers, exponent)
        self._margin = ble.area_exit_m
        self._hold_s = settings.presence.hold_down_s
        self._heard: dict[str, dict[str, tuple[float, float]]] = {}  # subject → receiver → (t, true level)
        self._ref: dict[str, float] = {}
        self._at: dict[str, str] = {}  # subject → the receiver whose zone it is in (with areas: the zone)

    def hear(self, h: Heard, ref_dbm: float) -> None:
        if h.level is not None:
            self._heard.setdefault(h.device, {})[h.receiver] = (h.t, h.level)
            self._ref[h.device] = ref_dbm

    def placed(self, t: float) -> set[tuple[str, str]]:
        out = set()
        for subject, heard in self._heard.items():
            recent = {rx: level for rx, (at, level) in heard.items() if t - at <= self.WINDOW_S}
            current = self._at.get(subject)
            last = max(at for at, _ in heard.values())
            if not recent and current is not None and t - last <= self._hold_s:
                out.add((subject, current if self._areas else self._zone[current]))  # not heard: held, as the agent
                continue
            now = (
                self._in_area(current, recent, self._ref[subject])
                if self._areas
                else self._near(current, recent, subject)
            )
            if now is None:
                self._at.pop(subject, None)
            else:
                self._at[subject] = now
                out.add((subject, now if self._areas else self._zone[now]))
        return out

    def _near(self, current: str | None, recent: dict[str, float], subject: str) -> str | None:
        distances = {rx: distance_m(level, self._ref[subject], self._exponent) for rx, level in recent.items()}
        if current in distances and distances[current] <= self._exit[current]:
            return current
        nearest = min(distances, key=distances.__getitem__, default=None)
        return nearest if nearest is not None and distances[nearest] <= self._enter[nearest] else None

    def _in_area(self, current: str | None, recent: dict[str, float], ref: float) -> str | None:
        located = self._floor.locate({rx: (level, 1.0) for rx, level in recent.items()}, ref)
        if located is None:
            return current
        if current is not None and self._areas.outside_m(current, located.x, located.y) <= self._margin:
            return current
        return self._areas.zone_at(located.x, located.y)


class SimClock(SetClock):
    """Simulated time: monotonic seconds from the start, wall and unix time from START_UNIX."""

    def __init__(self) -> None:
        super().__init__(START_UNIX)


def evaluate(
    scenario: str,
    seed: int,
    n: int,
    minutes: float,
    overrides: dict[str, dict[str, Any]] | None = None,
    gain_db: float = 0.0,
    calibrate_offsets: bool = False,
    advertising_share: float | None = ANDROID_ADVERTISING_SHARE,
    app_always_open: bool = False,
    receivers: str = "adapter",
    record_to: Path | None = None,
    holds: tuple[tuple[float, float], ...] = (),
) -> dict[str, Any]:
    """Scores the agent's presence logic on both BLE paths: adverts through `AdvertResolver`, app reports through
    `ReportIntake`, one `PresenceTracker`. What reached the agent from the phones that advertise is also kept as a
    recording (in `record_to`, else a temporary folder) and replayed as `edge-agent ble replay` does: the
    `advertising` figures are that replay's, beside the oracle's on the same truth (`f1_vs_oracle`).

    With `gain_db`, receivers read up to that many dB off the true level, and with `calibrate_offsets` the agent is
    given the offsets the store's fixed beacons suggest; with `advertising_share` None every phone advertises the
    token (the old model, for comparison); with `app_always_open` every app is open all visit; `receivers` puts
    every receiver behind that kind of firmware (`simulators/receivers.py`): the adverts reach the agent as it
    publishes them."""
    plan = SCENARIOS[scenario]
    rng = random.Random(seed)
    shoppers = make_shoppers(
        plan, rng, n, minutes, advertising_share=advertising_share, app_always_open=app_always_open
    )
    gains = receiver_gains(plan, gain_db, seed) if gain_db else {}
    offsets = beacon_offsets(plan, gains, seed) if calibrate_offsets else {}
    settings = agent_settings(plan, overrides, seed, offsets)
    clock = SimClock()
    bus = Bus()
    resolver = AdvertResolver(settings, clock)
    store = open_store(":memory:")
    store.roster.upsert(
        [s.phone.roster_entry(START_UNIX, {"ble": True}) for s in shoppers if s.opted_in], updated_at="sim"
    )
    intake = ReportIntake(settings, resolver.tokens, store, bus, clock, BEACON_KEY)
    tracker = PresenceTracker(settings.presence, bus, clock, radio=settings.ble, zones=settings.zones)
    reported, departed = bus.subscribe(Sighting, "eval"), bus.subscribe(Departed, "eval")
    keys = {
        s.phone.customer_ref: {day: base64.b64decode(k) for day, k in s.phone.day_keys(START_UNIX, 0, 1).items()}
        for s in shoppers
        if s.opted_in
    }
    by_ref = {s.phone.customer_ref: s for s in shoppers if s.opted_in}
    models = {ref: s.model.name for ref, s in by_ref.items()}
    span = minutes * 60.0
    adverts = Radio(plan, shoppers, rng, gains=gains).adverts(span)
    ranging = Radio(plan, shoppers, random.Random(f"ranging-{seed}"), gains=gains).ranging(span)
    nonces = random.Random(f"nonces-{seed}")
    receive = through(receivers)
    pending, ranged = next(adverts, None), next(ranging, None)
    score = _Score(plan, by_ref)
    oracle = Oracle(settings, plan.path_loss_exponent)
    true_ref = {ref: s.model.ref_dbm for ref, s in by_ref.items()}
    heard = reports_sent = 0
    recorded: list[Reading] = []  # what reached the agent from the phones that advertise
    oracle_runs = _Runs()
    step, next_second, next_rebuild = 0.5, 1.0, 0.0
    t = 0.0
    while t <= span:
        if t >= next_rebuild:
            clock.t = t
            resolver.rebuild(keys, models, clock.unix())
            next_rebuild = (math.floor(clock.unix() / INTERVAL_S) + 1) * INTERVAL_S - START_UNIX
        while pending is not None and pending.t <= t:
            clock.t = pending.t
            heard += 1
            if pending.device in true_ref:
                oracle.hear(pending, true_ref[pending.device])
            advert = receive(pending)
            if advert is not None:
                clock.t = advert.mono
                sighting = resolver.handle(advert)
                if sighting is not None:
                    tracker.observe(sighting)
                    recorded.append(_reading(sighting, advert.tx_power))
            pending = next(adverts, None)
        while ranged is not None and ranged.t <= t:
            clock.t = ranged.t
            shopper = shoppers[ranged.shopper]
            if shopper.opted_in:
                reports_sent += 1
                with contextlib.suppress(ReportRefused):  # counted by the intake
                    intake.take(_report(shopper.phone, clock.unix(), ranged, nonces), "lan")
                while not reported.queue.empty():
                    tracker.observe(reported.queue.get_nowait())
                while not departed.queue.empty():
                    tracker.depart(departed.queue.get_nowait())
            ranged = next(ranging, None)
        clock.t = t
        tracker.tick(t, clock.wall())
        placed = {(key.removeprefix("customer:"), zone) for key, zone in tracker.placed()}
        assert not {ref for ref, _ in placed} - by_ref.keys(), "a shopper who did not opt in was placed"
        score.arrivals(t, placed)
        if t >= next_second:
            next_second += 1.0
            score.second(t, placed)
            oracle_runs.second(t, {p for p in oracle.placed(t) if by_ref[p[0]].advertises})
        t = round(t + step, 6)
    with contextlib.ExitStack() as stack:
        folder = record_to or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        advertising = [s for s in by_ref.values() if s.advertises]
        _write_recording(folder, settings, recorded, ground_truth(plan, advertising))
        rec = replay.load(settings, folder / "readings.csv", folder / "truth.csv")
    replayed = replay.figures(settings, rec)
    oracle_figures = scoring.score(rec.timeline, oracle_runs.visits(rec.end), rec.start, rec.end, MIN_VISIT_S)
    sweep = _held(settings, rec, oracle_runs.visits(rec.end), holds) if holds else None
    return {
        "scenario": scenario,
        "seed": seed,
        "shoppers": n,
        "opted_in": len(by_ref),
        "minutes": minutes,
        "adverts_heard": heard,
        **({} if receivers == "adapter" else {"receivers": receivers}),
        **score.overall(),
        "advertising": replayed,
        "oracle": oracle_figures,
        "f1_vs_oracle": round(scoring.f1(replayed) / scoring.f1(oracle_figures), 4)
        if scoring.f1(oracle_figures)
        else None,
        **({} if sweep is None else {"held": sweep}),
        **({"receiver_gain_db": gain_db} if gain_db else {}),
        **(
            {"offset_error_db": round(max((abs(offsets.get(r, 0.0) - g) for r, g in gains.items()), default=0.0), 2)}
            if calibrate_offsets
            else {}
        ),
        **(
            {}
            if advertising_share is None
            else {
                "android_advertising_share": advertising_share,
                "reports_sent": reports_sent,
                "reports": dict(sorted(intake.counts.items())),
                "reports_deferred": tracker.reports_deferred,
                **score.split(),
            }
        ),
    }


def _report(phone: Phone, unix: float, ranged: Ranged, nonces: random.Random) -> bytes:
    """What the app sends for one ranging second (or its region exit): the zone beacons' current minors."""
    j = math.floor(unix / INTERVAL_S)
    beacons = tuple(
        HeardBeacon(BEACON_MAJOR, zone_beacons.minor(BEACON_KEY, zone, j), round(rssi), near)
        for rssi, zone, near in ranged.beacons
    )
    return phone.report(int(unix), beacons, nonces.randbytes(8))


class _Score:
    """Opted-in shopper × zone × second against the truth, overall and per platform, path and app state; and each
    visit's store arrival: when the agent first placed the shopper anywhere."""

    def __init__(self, plan: FloorPlan, shoppers: dict[str, Shopper]):
        self._plan = plan
        self._shoppers = shoppers
        self._counts: dict[str, Counter[str]] = {}
        self._first_seen: dict[tuple[str, str], float] = {}
        self._truth_start: dict[tuple[str, str], float] = {}
        self._previous: set[tuple[str, str]] = set()
        self.latencies: list[float] = []
        self._path_latencies: dict[str, list[float]] = {}
        self.arrived: dict[str, float] = {}  # customer_ref → when first placed during the visit

    def _groups(self, shopper: Shopper, t: float) -> list[str]:
        groups = ["all"]
        if shopper.platform is not None:
            groups += [f"platform:{shopper.platform.name}", f"path:{shopper.path_name}"]
            if shopper.path_name == "report" and any(a <= t <= b for a, b in shopper.platform.app_open):
                groups.append("report_app_open")
            if shopper.platform.name == "android" and shopper.advertises:
                groups.append("android_advert")
        return groups

    def arrivals(self, t: float, placed: set[tuple[str, str]]) -> None:
        for ref, _zone in placed:
            shopper = self._shoppers[ref]
            if ref not in self.arrived and shopper.arrive <= t <= shopper.leave + 60.0:
                self.arrived[ref] = t

    def _truth(self, t: float) -> set[tuple[str, str]]:
        truth = set()
        for ref, s in self._shoppers.items():
            pos = s.position(t)
            zone = self._plan.zone_at(*pos) if pos is not None else None
            if zone is not None:
                truth.add((ref, zone))
        return truth

    def _count(self, groups: list[str], ref: str, truth: set[tuple[str, str]], placed: set[tuple[str, str]]) -> None:
        """One shopper's second: (shopper, zone) pairs found, placed wrongly and missed, into each group."""
        mine_truth = {p for p in truth if p[0] == ref}
        mine = {p for p in placed if p[0] == ref}
        for group in groups:
            counts = self._counts.setdefault(group, Counter())
            counts["tp"] += len(mine_truth & mine)
            counts["fp"] += len(mine - mine_truth)
            counts["fn"] += len(mine_truth - mine)

    def second(self, t: float, placed: set[tuple[str, str]]) -> None:
        truth = self._truth(t)
        for ref, s in self._shoppers.items():
            self._count(self._groups(s, t), ref, truth, placed)
        for pair in truth - self._previous:
            self._truth_start[pair] = t
            self._first_seen.pop(pair, None)
        for pair in truth & placed:
            if pair in self._truth_start and pair not in self._first_seen:
                self._first_seen[pair] = t
                self.latencies.append(t - self._truth_start[pair])
                self._path_latencies.setdefault(self._shoppers[pair[0]].path_name, []).append(
                    t - self._truth_start[pair]
                )
        self._previous = truth

    def _pr(self, group: str) -> dict[str, float]:
        c = self._counts.get(group, Counter())
        tp, fp, fn = c["tp"], c["fp"], c["fn"]
        return {
            "precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
            "recall": round(tp / (tp + fn), 4) if tp + fn else 1.0,
        }

    def _latency(self, path: str) -> dict[str, float | None]:
        found = self._path_latencies.get(path)
        return {"median_enter_latency_s": round(statistics.median(found), 2) if found else None}

    def overall(self) -> dict[str, Any]:
        return {
            **self._pr("all"),
            "median_enter_latency_s": round(statistics.median(self.latencies), 2) if self.latencies else None,
            "visits_entered": len(self.latencies),
        }

    def split(self) -> dict[str, Any]:
        """Per platform (with its store arrivals), per path, and reporting apps while open beside advertising
        Androids (the same floor, the same seconds' kind of movement)."""
        by_platform = {}
        for name in ("ios", "android"):
            visits = [s for s in self._shoppers.values() if s.platform is not None and s.platform.name == name]
            by_platform[name] = {"shoppers": len(visits), **self._pr(f"platform:{name}"), **self._arrivals(visits)}
        return {
            "by_platform": by_platform,
            "by_path": {path: {**self._pr(f"path:{path}"), **self._latency(path)} for path in ("advert", "report")},
            "app_open": {"report": self._pr("report_app_open"), "android_advert": self._pr("android_advert")},
        }

    def _arrivals(self, visits: list[Shopper]) -> dict[str, Any]:
        """Share of visits whose arrival was detected (of all, and of those the platform let the app range in at
        all), the median latency from the door, and the median beyond the platform's own delay (the first moment
        the app could range; 0 for a phone that advertises)."""
        latencies, over_delay, deliverable = [], [], 0
        for s in visits:
            assert s.platform is not None
            chance = s.arrive if s.advertises else s.platform.first_chance(s.arrive, s.leave)
            deliverable += chance is not None
            if s.phone.customer_ref in self.arrived:
                latency = self.arrived[s.phone.customer_ref] - s.arrive
                latencies.append(latency)
                over_delay.append(latency - ((chance or s.arrive) - s.arrive))
        found = len(latencies)
        return {
            "arrival_recall": round(found / len(visits), 4) if visits else None,
            "arrival_recall_deliverable": round(found / deliverable, 4) if deliverable else None,
            "arrival_latency_s": round(statistics.median(latencies), 2) if latencies else None,
            "arrival_latency_over_platform_delay_s": round(statistics.median(over_delay), 2) if over_delay else None,
            "arrivals_within_delay_plus_2s": round(sum(d <= 2.0 for d in over_delay) / len(visits), 4)
            if visits
            else None,
        }


HOLD_SWEEP = ((0, 0), (1, 0), (2, 0), (3, 0), (5, 0), (8, 0), (0, 1), (0, 2), (0, 4), (3, 2))


def _held(
    settings: Settings, rec: replay.Recording, oracle: list[Visit], holds: tuple[tuple[float, float], ...]
) -> list[dict[str, Any]]:
    """The replayed agent's and the oracle's visits debounced (`scoring.held`): each (hold, confirm) scored."""
    agent = replay.agent_visits(settings, rec.readings, None)
    out = []
    for hold_s, confirm_s in holds:
        row: dict[str, Any] = {"hold_s": hold_s, "confirm_s": confirm_s}
        for name, visits in (("agent", agent), ("oracle", oracle)):
            r = scoring.score(rec.timeline, scoring.held(visits, hold_s, confirm_s), rec.start, rec.end, MIN_VISIT_S)
            row[name] = {
                "f1": round(scoring.f1(r), 4),
                **{k: r[k] for k in ("visit_precision", "visit_recall", "flaps_per_visit_hour")},
                "median_enter_latency_s": r["enter_latency_s"]["median"],
            }
        out.append(row)
    return out


class _Runs:
    """Per-second placements as visits: a (subject, zone) placed from one whole second to the first it is not."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, str], float] = {}
        self._closed: list[Visit] = []

    def second(self, t: float, placed: set[tuple[str, str]]) -> None:
        for pair in set(self._open) - placed:
            self._closed.append(Visit(*pair, self._open.pop(pair), t))
        for pair in placed - set(self._open):
            self._open[pair] = t

    def visits(self, end: float) -> list[Visit]:
        return self._closed + [Visit(*pair, since, max(since, end)) for pair, since in self._open.items()]


def _reading(s: Sighting, tx_dbm: int | None) -> Reading:
    assert s.receiver is not None and s.rssi is not None and isinstance(s.subject, Customer)
    return Reading(s.mono, s.receiver, s.subject.customer_ref, s.rssi, tx_dbm)


def ground_truth(plan: FloorPlan, shoppers: list[Shopper], step: float = 0.1) -> Iterator[dict[str, Any]]:
    """Who was in which zone when (to `step` seconds), and when each pocketed iPhone was silent: one record per
    zone visit (`kind` "visit": shopper, opted_in, phone, zone, enter_s, exit_s) and per silence."""
    for s in shoppers:
        who = {"shopper": s.phone.customer_ref, "opted_in": s.opted_in, "phone": s.model.name, "path": s.path_name}
        zone, since = None, s.arrive
        for k in range(math.ceil((s.leave - s.arrive) / step) + 2):
            t = round(s.arrive + k * step, 6)
            pos = s.position(t)
            now = plan.zone_at(*pos) if pos is not None else None
            if now != zone:
                if zone is not None:
                    yield {"kind": "visit", **who, "zone": zone, "enter_s": round(since, 2), "exit_s": round(t, 2)}
                zone, since = now, t
        for start, end in s.silent:
            yield {"kind": "silent", **who, "from_s": round(start, 3), "to_s": round(end, 3)}


def record(scenario: str, seed: int, n: int, minutes: float, folder: Path) -> dict[str, int]:
    """A simulated day as a recording (`edge-agent ble replay`'s formats, docs/evaluation.md), the one `--eval`
    replays: `readings.csv` (every advert of an opted-in phone that advertises, as it reached the agent),
    `truth.csv` (each of those phones' zone from each moment it changes, to 0.1 s), and `store.toml`, the agent's
    config for the floor."""
    replayed = evaluate(scenario, seed, n, minutes, record_to=folder)["advertising"]
    return {"readings": replayed["readings"], "subjects": replayed["subjects"]}


def _write_recording(
    folder: Path, settings: Settings, readings: list[Reading], truth: Iterator[dict[str, Any]]
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "readings.csv").open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["t_s", "receiver", "subject", "rssi_dbm", "tx_dbm"])
        writer.writerows(
            [f"{r.t_s:.3f}", r.receiver, r.subject, f"{r.rssi_dbm:g}", "" if r.tx_dbm is None else r.tx_dbm]
            for r in readings
        )
    with (folder / "truth.csv").open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["t_s", "subject", "zone"])
        changes = sorted(
            (t, ref, zone)
            for v in truth
            if v["kind"] == "visit"
            for t, ref, zone in ((v["enter_s"], v["shopper"], v["zone"]), (v["exit_s"], v["shopper"], ""))
        )
        writer.writerows([f"{t:.2f}", ref, zone] for t, ref, zone in changes)
    config = settings.model_dump(mode="json", exclude_defaults=True)
    (folder / "store.toml").write_text(tomli_w.dumps(config), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulators.shoppers", description=__doc__)
    parser.add_argument("--eval", action="store_true", help="score the agent's presence logic on a simulated day")
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="default")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--shoppers", type=int, default=40)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument(
        "--receiver-gain-db", type=float, default=0.0, help="receivers read up to this many dB off (this host's: 0)"
    )
    parser.add_argument(
        "--beacon-offsets", action="store_true", help="configure the offsets the store's fixed beacons suggest"
    )
    parser.add_argument(
        "--record",
        metavar="DIR",
        help="write the day as a recording (readings.csv, truth.csv, store.toml): the one --eval replays",
    )
    parser.add_argument(
        "--hold-sweep",
        action="store_true",
        help="also score the replayed agent and the oracle with exits held and entries confirmed (held)",
    )
    parser.add_argument(
        "--truth", metavar="FILE", help="write the ground truth (zone visits, silent phones) as JSON lines"
    )
    parser.add_argument(
        "--receivers",
        choices=KINDS,
        default="adapter",
        help="every receiver behind this kind of firmware: what it publishes reaches the agent's reader for it",
    )
    parser.add_argument(
        "--app-always-open",
        action="store_true",
        help="every shopper's app open all visit: the report path ranging every second, against the advert path",
    )
    parser.add_argument(
        "--android-advertising-share",
        type=float,
        default=ANDROID_ADVERTISING_SHARE,
        help="share of Android apps that advertise under a foreground service (the rest report, like iPhones)",
    )
    args = parser.parse_args(argv)
    if not args.eval and not args.truth and not args.record:
        parser.error("give --eval, --truth FILE, --record DIR or several")
    if args.record and not args.eval:
        print(json.dumps(record(args.scenario, args.seed, args.shoppers, args.minutes, Path(args.record))))
    if args.truth:
        plan = SCENARIOS[args.scenario]
        people = make_shoppers(  # as evaluate makes them
            plan,
            random.Random(args.seed),
            args.shoppers,
            args.minutes,
            advertising_share=args.android_advertising_share,
        )
        with open(args.truth, "w", encoding="utf-8") as out:
            out.writelines(json.dumps(record) + "\n" for record in ground_truth(plan, people))
    if not args.eval:
        return 0
    run = functools.partial(
        evaluate,
        args.scenario,
        args.seed,
        args.shoppers,
        args.minutes,
        gain_db=args.receiver_gain_db,
        calibrate_offsets=args.beacon_offsets,
        receivers=args.receivers,
    )
    result = run(
        advertising_share=args.android_advertising_share,
        app_always_open=args.app_always_open,
        record_to=Path(args.record) if args.record else None,
        holds=HOLD_SWEEP if args.hold_sweep else (),
    )
    old = run(advertising_share=None)  # every phone advertising, iPhones too: what the figures used to count
    result["every_phone_advertising"] = {k: old[k] for k in ("precision", "recall", "median_enter_latency_s")}
    print(json.dumps(result), file=sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
