"""App reports → sightings of consenting customers: the way in for phones that cannot advertise (iPhones).

One verifier for both transports (the store Wi-Fi listener, `report_listener.py`, and the cloud's relay,
`AppReportRelayed`): the report's form (reports.py), its age, a roster fresh enough to trust consent, its token
among the tokens of customers who consent to BLE (the same table the adverts resolve through), that customer's
consent as the store holds it now, the tag with that customer's day key, a nonce not seen before, and beacons
whose minor names a zone now (zone_beacons.py; fixed beacons only where the config opts in). A refusal is
counted by code and logged without the report's content; nothing about a refused report is kept.

Where the shopper is, from each beacon's RSSI averaged over the phone's last reports: the zone of the beacon
heard nearest (proximity class first, then RSSI) if it is close enough — proximity immediate or near, or within
the zone receiver's enter distance (its exit distance to stay, and another beacon must be `switch_db` stronger
to move: the receivers' hysteresis) — for `ble.report_ttl_s`. The first report of a visit places the customer
in the nearest beacon's zone whatever the distance: it is the store arrival, and an iPhone in the background
gets only a few seconds of ranging when it enters the store's region. A report that hears every beacon far off
(by the averaged levels), or an exit report (no beacons), ends the zones reports hold.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter, OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, Metric

from ...bus import Bus
from ...clock import Clock
from ...config import Settings
from ...events import AppReportRelayed, Channel, ConsentChanged, Customer, Departed, Erased, Sighting
from ...radio.placer import distance_m
from ...store import Store
from ..roster_age import RosterAge
from . import reports, zone_beacons
from .tokens import TokenResolver, day_of, interval_of

log = logging.getLogger(__name__)

MAX_NONCES = 200_000  # reports remembered for replay checks; beyond that (a flood) reports are refused
_RANK = {"immediate": 0, "near": 1, "far": 2, "unknown": 3}
SMOOTH_S = 2.5  # a longer gap between reports starts the average afresh
ALPHA = 0.5


@dataclass(slots=True)
class _Phone:
    """What one customer's reports have said lately."""

    last: float  # when the last report came (mono): the next after `ble.report_ttl_s` is a new arrival
    zone: str | None = None  # the zone the reports hold the customer in
    levels: dict[str, tuple[float, float]] = field(default_factory=dict)  # zone → (when, averaged RSSI)


@dataclass(frozen=True, slots=True)
class Taken:
    """What a verified report meant: the customer's zone now, or None (far from every zone, or left)."""

    zone: str | None


class ReportIntake:
    def __init__(
        self,
        settings: Settings,
        tokens: TokenResolver,
        store: Store,
        bus: Bus,
        clock: Clock,
        key: bytes | None,
        roster_age: RosterAge | None = None,
    ):
        ble = settings.ble
        self._tokens = tokens
        self._store = store
        self._bus = bus
        self._clock = clock
        self._key = key
        self._roster_age = roster_age
        self._major = ble.zone_beacon.major
        self._zones = [z.id for z in settings.zones]
        self._minors: tuple[int | None, dict[int, str]] = (None, {})  # (interval, minor → zone) of the zone beacons
        self._static = {_major_minor(b.beacon): b.zone for b in ble.beacon_zones} if ble.static_beacon_reports else {}
        self._measured_power = float(ble.zone_beacon.measured_power_dbm)
        self._thresholds = {r.zone: ble.thresholds(r) for r in reversed(ble.receivers)}  # a zone's first receiver
        self._default_thresholds = ble.enter_m, ble.exit_m
        self._switch_db = ble.switch_db
        self._exponent = ble.path_loss_exponent
        self._ttl_s = ble.report_ttl_s
        self._max_age_s = ble.report_max_age_s
        self._nonces: OrderedDict[bytes, float] = OrderedDict()  # token + nonce → when taken (mono)
        self._phones: dict[str, _Phone] = {}  # customer_ref → what their reports have said lately
        self._next_prune = float("-inf")
        self.counts: Counter[str] = Counter()
        bus.on(Erased, "ble.reports", lambda e: self.forget(e.customer_ref))
        bus.on(ConsentChanged, "ble.reports", self._on_consent)
        bus.on(AppReportRelayed, "ble.reports", lambda r: self._relayed(r.data))

    def forget(self, customer_ref: str) -> None:
        self._phones.pop(customer_ref, None)

    def _on_consent(self, change: ConsentChanged) -> None:
        if change.channel == Channel.BLE and not change.granted:
            self.forget(change.customer_ref)

    def _relayed(self, data: bytes) -> None:
        with contextlib.suppress(reports.ReportRefused):  # counted and logged by take
            self.take(data, "cloud")

    def take(self, data: bytes, via: str) -> Taken:
        """Verify one report and publish what it means; ReportRefused (counted, logged) when it is not taken."""
        try:
            taken = self._take(data)
        except reports.ReportRefused as refused:
            self.counts[f"refused_{refused.code}"] += 1
            log.info("app report via %s refused: %s (%s)", via, refused.code, refused.reason)
            raise
        self.counts[f"taken_{via}"] += 1
        return taken

    def _take(self, data: bytes) -> Taken:
        report = reports.parse(data)
        now_unix, now = self._clock.unix(), self._clock.mono()
        if abs(now_unix - report.at) > self._max_age_s:
            raise reports.ReportRefused("stale", f"sent more than {self._max_age_s:.0f} s from now")
        if self._roster_age is not None and self._roster_age.stale():
            self._roster_age.refuse()
            raise reports.ReportRefused("stale_roster", "the roster is too old to trust anyone's consent")
        ref = self._tokens.resolve(report.token)
        if ref is None:
            raise reports.ReportRefused("unknown_token", "the token is no consenting customer's now")
        held = self._store.roster.held([ref]).get(ref)
        if held is None or not held[1].get(Channel.BLE, False):
            raise reports.ReportRefused("no_consent", "the customer's consent does not cover BLE")
        day_key = self._tokens.day_key(ref, day_of(interval_of(report.at)))
        if day_key is None or not reports.verify(report, day_key):
            raise reports.ReportRefused("bad_tag", "the tag does not match the customer's key")
        self._remember_nonce(report.token + report.nonce, now)
        wall = self._clock.wall()
        subject = Customer(ref)
        phone = self._phones.get(ref)
        arrival = phone is None or now - phone.last > self._ttl_s
        if not report.beacons:  # region exit
            self.forget(ref)
            self._bus.publish(Departed(subject, now, wall))
            return Taken(None)
        heard = [(b, zone) for b in report.beacons if (zone := self._zone_of(b, now_unix)) is not None]
        if not heard:
            raise reports.ReportRefused("stale_minor", "no beacon heard names a zone of this store now")
        if phone is None:
            phone = self._phones[ref] = _Phone(now)
        heard = self._smoothed(phone, heard, now)
        phone.last = now
        if now >= self._next_prune:  # visits long over
            self._next_prune = now + self._ttl_s
            self._phones = {r: p for r, p in self._phones.items() if now - p.last <= self._ttl_s}
        phone.zone = self._nearest(heard, phone.zone)
        if phone.zone is None and arrival:
            phone.zone = min(heard, key=_nearness)[1]
        if phone.zone is not None:
            self._bus.publish(Sighting(subject, phone.zone, Channel.BLE, mono=now, wall=wall, hold_s=self._ttl_s))
        else:
            self._bus.publish(Departed(subject, now, wall))
        return Taken(phone.zone)

    def _smoothed(
        self, phone: _Phone, heard: list[tuple[reports.HeardBeacon, str]], now: float
    ) -> list[tuple[reports.HeardBeacon, str]]:
        """Each beacon's RSSI as a moving average over the phone's reports (weight ALPHA for the newest), restarted
        after a gap of more than SMOOTH_S: one ranging second is a mean of a second's adverts, still a noisy one."""
        before = phone.levels
        out, levels = [], {}
        for b, zone in heard:
            if b.rssi:
                prev = before.get(zone)
                level = float(b.rssi)
                if prev is not None and now - prev[0] <= SMOOTH_S:
                    level = prev[1] + ALPHA * (level - prev[1])
                levels[zone] = (now, level)
                b = reports.HeardBeacon(b.major, b.minor, round(level), b.proximity)
            out.append((b, zone))
        phone.levels = levels
        return out

    def _nearest(self, heard: list[tuple[reports.HeardBeacon, str]], current: str | None) -> str | None:
        """The zone the phone is in by its report, or None (every beacon far): the nearest beacon's zone if within
        its enter distance; the current zone while its beacon is within the exit distance and no other is
        `switch_db` stronger (the receivers' hysteresis)."""
        beacon, zone = min(heard, key=_nearness)
        held = next((b for b, z in heard if z == current), None)
        if held is not None and self._close(held, current, inside=True):
            stronger = zone != current and beacon.rssi and held.rssi and beacon.rssi >= held.rssi + self._switch_db
            if not (stronger and self._close(beacon, zone, inside=False)):
                return current
        return zone if self._close(beacon, zone, inside=zone == current) else None

    def _remember_nonce(self, nonce: bytes, now: float) -> None:
        """A report is taken once: its nonce is kept while a copy of it could still pass as fresh."""
        keep_s = 2 * self._max_age_s
        while self._nonces and now - next(iter(self._nonces.values())) > keep_s:
            self._nonces.popitem(last=False)
        if nonce in self._nonces:
            raise reports.ReportRefused("replay", "this report was taken before")
        if len(self._nonces) >= MAX_NONCES:
            raise reports.ReportRefused("overloaded", "too many reports to remember; try again")
        self._nonces[nonce] = now

    def _zone_of(self, beacon: reports.HeardBeacon, unix: float) -> str | None:
        if self._key is not None and beacon.major == self._major:
            interval = interval_of(unix)
            if self._minors[0] != interval:  # the minors of the intervals around now, made once an interval
                self._minors = (interval, zone_beacons.zones_by_minor(self._key, self._zones, interval))
            zone = self._minors[1].get(beacon.minor)
            if zone is not None:
                return zone
        return self._static.get((beacon.major, beacon.minor))

    def _close(self, beacon: reports.HeardBeacon, zone: str | None, *, inside: bool) -> bool:
        """Within the zone: as the phone's ranging says, or by its RSSI and the zone beacon's power at 1 m — within
        the zone receiver's enter distance to come in, its exit distance to stay (as the receivers' placement)."""
        if beacon.proximity in ("immediate", "near"):
            return True
        if beacon.rssi == 0:  # unknown
            return False
        enter_m, exit_m = self._thresholds.get(zone or "", self._default_thresholds)
        return distance_m(beacon.rssi, self._measured_power, self._exponent) <= (exit_m if inside else enter_m)

    def health(self) -> dict[str, object]:
        return {
            "reports": dict(self.counts),
            "nonces_kept": len(self._nonces),
            "zone_beacon_key": self._key is not None,
        }

    def metrics(self) -> Iterator[Metric]:
        family = CounterMetricFamily("edge_ble_app_reports", "App reports by what became of them", labels=["result"])
        for result, n in self.counts.items():
            family.add_metric([result], n)
        yield family


def _nearness(heard: tuple[reports.HeardBeacon, str]) -> tuple[int, int]:
    """Proximity class first, then RSSI (0, unknown, last)."""
    beacon = heard[0]
    return _RANK[beacon.proximity], -(beacon.rssi or -200)


def _major_minor(beacon_id: str) -> tuple[int, int]:
    """(major, minor) of an id ibeacon:UUID:MAJOR:MINOR (checked by the config)."""
    _, _, major, minor = beacon_id.split(":")
    return int(major), int(minor)
