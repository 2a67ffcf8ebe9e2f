"""Shoppers with phones on a store floor: adverts at every receiver, and the ground truth of who was where.

A floor plan has zones (circles around a screen, where its receiver hangs) and aisles between them.
Shoppers arrive at random, walk between stops (mostly in zones, some in aisles), dwell, and leave by the
door. Some opted in to BLE, some did not; Android phones advertise every 0.2–0.5 s with their TX power, an
iPhone in the foreground every 0.1–0.3 s without it, and a locked iPhone goes silent for a while. Signal:
log-distance path loss per phone model, slow body shadowing, per-advert noise, receiver sensitivity and lost
packets. The ground truth is each shopper's zone, second by second.

    python -m simulators.shoppers --eval --seed 1 --shoppers 40 --minutes 20 [--scenario default] [--truth FILE]

runs the agent's own parse → resolve → filter → zone path on the adverts and prints JSON precision, recall
(opted-in shopper × zone × second against the truth) and the median enter latency; `--truth FILE` writes the
ground truth as JSON lines (every zone visit with its times, every silent spell of a pocketed phone).
`--receiver-gain-db G` makes every receiver but this host's read up to G dB off; `--beacon-offsets` then
configures the offsets the store's fixed beacons suggest (`edge_agent.radio.beacon_offsets`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import heapq
import json
import math
import random
import statistics
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from edge_agent.bus import Bus
from edge_agent.clock import Clock
from edge_agent.config import BeaconPosition, Settings, from_dict
from edge_agent.events import WallTime
from edge_agent.presence import PresenceTracker
from edge_agent.radio.beacon_offsets import BeaconLevels
from edge_agent.radio.placer import fit_path_loss_exponent
from edge_agent.sources.ble.scanner import Advert, AdvertResolver
from edge_agent.sources.ble.tokens import INTERVAL_S
from simulators.bluez import SimulatedBlueZ
from simulators.phone import Phone, phone_for

CHAIN = "sim-chain"
START_UNIX = 1_800_000_000.0
SENSITIVITY_DBM = -95.0
RECEIVER_HEIGHT_M = 2.0


@dataclass(frozen=True)
class Zone:
    id: str
    x: float
    y: float
    radius: float


@dataclass(frozen=True)
class FloorPlan:
    width: float
    depth: float
    door: tuple[float, float]
    zones: tuple[Zone, ...]
    path_loss_exponent: float = 2.2
    uncalibrated_share: float = 0.0  # phones of a model missing from the store's calibration table

    def zone_at(self, x: float, y: float) -> str | None:
        for z in self.zones:
            if (x - z.x) ** 2 + (y - z.y) ** 2 <= z.radius**2:
                return z.id
        return None


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
    plan: FloorPlan, rng: random.Random, n: int, minutes: float, chain_id: str = CHAIN, prefix: str = "shopper"
) -> list[Shopper]:
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
                z = rng.choice(plan.zones)
                r, a = z.radius * 0.7 * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
                nx, ny = z.x + r * math.cos(a), z.y + r * math.sin(a)
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
        out.append(shopper)
    return out


def _aisle_point(plan: FloorPlan, rng: random.Random) -> tuple[float, float]:
    while True:
        x, y = rng.uniform(1, plan.width - 1), rng.uniform(1, plan.depth - 1)
        if plan.zone_at(x, y) is None and all(math.dist((x, y), (z.x, z.y)) > z.radius + 1.5 for z in plan.zones):
            return x, y


@dataclass(frozen=True)
class Heard:
    """One advert as one receiver heard it (the simulator knows the phone; the agent will not)."""

    t: float
    receiver: str
    device: str
    rssi: float
    manufacturer_data: dict[int, bytes]
    tx_power: int | None


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
            if shopper.is_silent(t):
                continue
            payload = shopper.phone.advert(self.start_unix + t)
            for zone in self.plan.zones:
                rssi = self._rssi(i, shopper.model, zone, pos)
                if rssi is not None:
                    rx = receiver_id(zone.id)
                    yield Heard(t, rx, shopper.phone.customer_ref, rssi, payload, shopper.model.tx_power)

    def _rssi(self, i: int, model: Model, zone: Zone, pos: tuple[float, float]) -> float | None:
        d = max(0.5, math.hypot(pos[0] - zone.x, pos[1] - zone.y, RECEIVER_HEIGHT_M))
        key = (i, zone.id)
        shadow = 0.9 * self._shadow.get(key, 0.0) + self.rng.gauss(0, 1.2)  # slow: a body, a shelf
        self._shadow[key] = shadow
        rssi = model.ref_dbm - 10 * self.plan.path_loss_exponent * math.log10(d) + shadow
        rssi += self.rng.gauss(0, self.noise_db) + self.gains.get(receiver_id(zone.id), 0.0)
        if rssi < SENSITIVITY_DBM or self.rng.random() < 0.1:
            return None
        return round(rssi)


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


def receiver_config(zone: Zone, offset_db: float = 0.0) -> dict[str, Any]:
    """What an operator writes for a receiver over a zone: enter at 1.05× the distance from the receiver to the
    zone's edge (docs/ble-presence.md), leave 0.3 m further out, where it hangs on the floor plan, its offset."""
    enter = round(1.05 * math.hypot(zone.radius, RECEIVER_HEIGHT_M), 1)
    return {
        "id": receiver_id(zone.id),
        "zone": zone.id,
        "offset_db": offset_db,
        "enter_m": enter,
        "exit_m": round(enter + 0.3, 1),
        "x_m": zone.x,
        "y_m": zone.y,
        "height_m": RECEIVER_HEIGHT_M,
    }


def receiver_gains(plan: FloorPlan, spread_db: float, seed: int) -> dict[str, float]:
    """Receivers that read up to `spread_db` above or below the true level; the first zone's is this host's, the
    reference the phone models' 1 m levels were measured with (0)."""
    rng = random.Random(f"gains-{seed}")
    return {receiver_id(z.id): 0.0 if i == 0 else rng.uniform(-spread_db, spread_db) for i, z in enumerate(plan.zones)}


def beacon_offsets(plan: FloorPlan, gains: dict[str, float], seed: int, minutes: float = 30.0) -> dict[str, float]:
    """What an operator does once per store (docs/ble-presence.md, "Receiver offsets"): a fixed beacon
    halfway between neighbouring receivers (the shortest links that connect them all), heard for half an hour by
    every receiver through the same radio as the shoppers (gains, shadowing, noise, loss), and the offsets the
    agent's `BeaconLevels` suggests."""
    beacon = Model("beacon", -59.0, None, (0.35, 0.35))
    placed = [
        (f"ibeacon:00000000-0000-0000-0000-000000000000:1:{k}", (a.x + b.x) / 2, (a.y + b.y) / 2)
        for k, (a, b) in enumerate(_neighbours(plan.zones))
    ]
    ble = agent_settings(plan, seed=seed).ble.model_copy(
        update={
            "beacons": [b for b, _, _ in placed],
            "beacon_positions": [BeaconPosition(beacon=b, x_m=x, y_m=y, height_m=0.0) for b, x, y in placed],
        }
    )
    levels = BeaconLevels(ble, receiver_id(plan.zones[0].id))
    radio = Radio(plan, [], random.Random(f"beacons-{seed}"), gains=gains)
    for n in range(int(minutes * 60 / 0.35)):
        for k, (beacon_id, x, y) in enumerate(placed):
            for zone in plan.zones:
                rssi = radio._rssi(-1 - k, beacon, zone, (x, y))
                if rssi is not None:
                    levels.record(beacon_id, receiver_id(zone.id), rssi, int(beacon.ref_dbm), n * 0.35)
    return levels.offsets()


def calibration_walk(plan: FloorPlan, seed: int) -> float:
    """What an operator does once per store: a calibrated phone held still for ~30 s at each of 1.5–12 m under one
    receiver, heard through the same noisy radio as the shoppers; the agent fits the path-loss exponent."""
    model, zone = CALIBRATED[1], plan.zones[0]
    radio = Radio(plan, [], random.Random(f"calibration-{seed}"))
    readings = []
    for distance in (1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0):
        across = math.sqrt(distance**2 - RECEIVER_HEIGHT_M**2) if distance > RECEIVER_HEIGHT_M else 0.0
        for _ in range(100):
            rssi = radio._rssi(-1, model, zone, (zone.x + across, zone.y))
            if rssi is not None:
                readings.append((max(distance, RECEIVER_HEIGHT_M), rssi))
    return round(fit_path_loss_exponent(readings, model.ref_dbm), 2)


def _neighbours(zones: tuple[Zone, ...]) -> list[tuple[Zone, Zone]]:
    """The shortest links that connect every zone (a minimum spanning tree, Prim's)."""
    linked, links = [zones[0]], []
    while len(linked) < len(zones):
        a, b = min(
            ((a, b) for a in linked for b in zones if b not in linked),
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
            "zones": [{"id": z.id} for z in plan.zones],
            "sources": {"checkin": False, "ble": False},
            "ble": {
                "receivers": [receiver_config(z, offsets.get(receiver_id(z.id), 0.0)) for z in plan.zones],
                "reference_by_model": {m.name: m.ref_dbm for m in CALIBRATED},
                "path_loss_exponent": calibration_walk(plan, seed),
                **overrides.get("ble", {}),
            },
            "presence": overrides.get("presence", {}),
            "database": {"path": ":memory:"},
        }
    )


class SimClock(Clock):
    """Simulated time: monotonic seconds from the start, wall and unix time from START_UNIX."""

    def __init__(self) -> None:
        super().__init__()
        self.t = 0.0

    def mono(self) -> float:
        return self.t

    def unix(self) -> float:
        return START_UNIX + self.t

    def wall(self) -> WallTime:
        return WallTime(datetime.fromtimestamp(START_UNIX + self.t, UTC), True)


def evaluate(
    scenario: str,
    seed: int,
    n: int,
    minutes: float,
    overrides: dict[str, dict[str, Any]] | None = None,
    gain_db: float = 0.0,
    calibrate_offsets: bool = False,
) -> dict[str, Any]:
    """Scores the agent's presence logic; with `gain_db`, receivers read up to that many dB off the true level,
    and with `calibrate_offsets` the agent is given the offsets the store's fixed beacons suggest."""
    plan = SCENARIOS[scenario]
    rng = random.Random(seed)
    shoppers = make_shoppers(plan, rng, n, minutes)
    gains = receiver_gains(plan, gain_db, seed) if gain_db else {}
    offsets = beacon_offsets(plan, gains, seed) if calibrate_offsets else {}
    settings = agent_settings(plan, overrides, seed, offsets)
    clock = SimClock()
    resolver = AdvertResolver(settings, clock)
    tracker = PresenceTracker(settings.presence, Bus(), clock, radio=settings.ble)
    keys = {
        s.phone.customer_ref: {day: base64.b64decode(k) for day, k in s.phone.day_keys(START_UNIX, 0, 1).items()}
        for s in shoppers
        if s.opted_in
    }
    opted_in = {s.phone.customer_ref for s in shoppers if s.opted_in}
    models = {s.phone.customer_ref: s.model.name for s in shoppers if s.opted_in}
    span = minutes * 60.0
    adverts = Radio(plan, shoppers, rng, gains=gains).adverts(span)
    pending = next(adverts, None)
    tp = fp = fn = 0
    first_seen: dict[tuple[str, str], float] = {}
    truth_start: dict[tuple[str, str], float] = {}
    previous_truth: set[tuple[str, str]] = set()
    latencies: list[float] = []
    heard = 0
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
            sighting = resolver.handle(
                Advert(pending.receiver, pending.t, pending.rssi, pending.manufacturer_data, {}, pending.tx_power)
            )
            if sighting is not None:
                tracker.observe(sighting)
            pending = next(adverts, None)
        clock.t = t
        tracker.tick(t, clock.wall())
        if t >= next_second:
            next_second += 1.0
            truth = set()
            for s in shoppers:
                pos = s.position(t)
                zone = plan.zone_at(*pos) if pos is not None else None
                if zone is not None and s.opted_in:
                    truth.add((s.phone.customer_ref, zone))
            agent = {(key.removeprefix("customer:"), zone) for key, zone in tracker.placed()}
            assert not {ref for ref, _ in agent} - opted_in, "a shopper who did not opt in was placed"
            tp += len(truth & agent)
            fp += len(agent - truth)
            fn += len(truth - agent)
            for pair in truth - previous_truth:
                truth_start[pair] = t
                first_seen.pop(pair, None)
            for pair in truth & agent:
                if pair in truth_start and pair not in first_seen:
                    first_seen[pair] = t
                    latencies.append(t - truth_start[pair])
            previous_truth = truth
        t = round(t + step, 6)
    return {
        "scenario": scenario,
        "seed": seed,
        "shoppers": n,
        "opted_in": len(opted_in),
        "minutes": minutes,
        "adverts_heard": heard,
        "precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
        "recall": round(tp / (tp + fn), 4) if tp + fn else 1.0,
        "median_enter_latency_s": round(statistics.median(latencies), 2) if latencies else None,
        "visits_entered": len(latencies),
        **({"receiver_gain_db": gain_db} if gain_db else {}),
        **(
            {"offset_error_db": round(max((abs(offsets.get(r, 0.0) - g) for r, g in gains.items()), default=0.0), 2)}
            if calibrate_offsets
            else {}
        ),
    }


def ground_truth(plan: FloorPlan, shoppers: list[Shopper], step: float = 0.1) -> Iterator[dict[str, Any]]:
    """Who was in which zone when (to `step` seconds), and when each pocketed iPhone was silent: one record per
    zone visit (`kind` "visit": shopper, opted_in, phone, zone, enter_s, exit_s) and per silence."""
    for s in shoppers:
        who = {"shopper": s.phone.customer_ref, "opted_in": s.opted_in, "phone": s.model.name}
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
        "--truth", metavar="FILE", help="write the ground truth (zone visits, silent phones) as JSON lines"
    )
    args = parser.parse_args(argv)
    if not args.eval and not args.truth:
        parser.error("give --eval, --truth FILE or both")
    if args.truth:
        plan = SCENARIOS[args.scenario]
        people = make_shoppers(plan, random.Random(args.seed), args.shoppers, args.minutes)  # as evaluate makes them
        with open(args.truth, "w", encoding="utf-8") as out:
            out.writelines(json.dumps(record) + "\n" for record in ground_truth(plan, people))
    if not args.eval:
        return 0
    result = evaluate(
        args.scenario,
        args.seed,
        args.shoppers,
        args.minutes,
        gain_db=args.receiver_gain_db,
        calibrate_offsets=args.beacon_offsets,
    )
    print(json.dumps(result), file=sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
