"""Radio sightings → which zone a phone is in: calibrated distance, robust filtering, hysteresis.

Per phone and receiver the RSSI is tracked by a pair of Kalman filters, one for a phone standing still (a long
average through body shadowing) and one for a phone walking (quick), weighed by how well each predicts the readings
(`level_filter.Level`); readings far off a prediction are clipped, and readings are weighed by how stale the estimate
is, whatever the advert rate (an iPhone's 0.1 s or an Android's 0.5 s), in O(1) time and memory. The receiver's
offset corrects its antenna; the transmitter's reference power at 1 m (from the advert, else
`reference_dbm`) and the path-loss exponent (fitted from a calibration walk, `fit_path_loss_exponent`) turn
it into a distance:

    distance_m = 10 ** ((reference_dbm - (filtered_rssi - offset_db)) / (10 * path_loss_exponent))

When the receivers' floor positions are configured (`x_m`, `y_m`, `height_m`), the distances come instead from the
position on the floor that best explains every receiver's filtered level at once (`floor.Floor`), and a phone of
a model with no known reference gets one learned from the same fit (each level first corrected for the readings its
receiver missed below its sensitivity, `sensitivity.py`); without positions, from each level alone.

Zones drawn as areas of the floor (`[[zones]] area`, `areas.py`) take the place of receivers' circles: the phone
is in the zone whose area holds its position on the floor, and leaves it once placed `area_exit_m` beyond the edge
(then after `leave_s`, as below); receivers need not hang one per zone.

Otherwise a phone enters a receiver's zone within `enter_m` and stays inside until beyond `exit_m` (two thresholds,
so a phone at the boundary does not flap); each receiver may set its own, to fit its zone. With several
receivers the zone follows the strongest filtered receiver, but switches only when another has been
`switch_db` stronger than the current one for `switch_s` (or the current one fell silent).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..config import BleSettings, Zone
from ..events import Sighting
from .areas import Areas
from .floor import Floor
from .level_filter import Level
from .sensitivity import Sensitivity

LOCATE_S = 0.25  # how often a phone is placed on the floor from all receivers' levels (~0.1 ms each)
REFIT_S = 1.0  # how often the reference of a phone of unknown model is measured again
MAX_FITS = 60  # the learned reference's memory, in measurements


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one reading means: the zone the phone is in now (or None), whether it is inside the exit
    threshold there, and a zone it has just left by switching receivers."""

    zone: str | None
    inside: bool
    left: str | None = None


@dataclass(slots=True)
class _Phone:
    links: dict[str, Level] = field(default_factory=dict)
    receiver: str | None = None  # the receiver the zone follows
    zone: str | None = None
    last: float = float("-inf")
    challenger: str | None = None  # a receiver stronger by switch_db, and since when
    challenger_since: float = 0.0
    reference: float | None = None  # learned from the receivers' positions when the model's is unknown (floor.py)
    fits: int = 0
    next_fit: float = float("-inf")
    located: dict[str, float] = field(default_factory=dict)  # receiver → distance (m), from every receiver at once
    position: tuple[float, float] | None = None  # where on the floor, from every receiver at once
    in_area: tuple[tuple[float, float], str | None, Verdict | None] | None = None  # (position, zone) → verdict
    next_locate: float = float("-inf")


def distance_m(rssi: float, ref_dbm: float, path_loss_exponent: float) -> float:
    """The log-distance model turned round: how far a transmitter whose level at 1 m is `ref_dbm` is, heard at
    `rssi`."""
    return 10 ** ((ref_dbm - rssi) / (10 * path_loss_exponent))


def fit_path_loss_exponent(readings: list[tuple[float, float]], reference_dbm: float) -> float:
    """The store's path-loss exponent from a calibration walk: (distance m, RSSI dBm) readings of a phone whose
    RSSI at 1 m is `reference_dbm`, fitted by least squares on RSSI = reference − 10·n·log10(distance)."""
    xs = [(10 * math.log10(d), reference_dbm - rssi) for d, rssi in readings if d > 1.0]
    if len(xs) < 10:
        raise ValueError(f"a calibration walk needs at least 10 readings beyond 1 m, got {len(xs)}")
    return sum(x * y for x, y in xs) / sum(x * x for x, _ in xs)


class RadioPlacer:
    def __init__(self, cfg: BleSettings, max_subjects: int = 20_000, zones: Sequence[Zone] = ()):
        self._max = max_subjects
        self._areas = Areas(zones)
        self._phones: dict[str, _Phone] = {}
        self.unknown_receiver = 0
        self.dropped: list[tuple[str, str]] = []  # (subject key, zone) of phones let go; the tracker empties it
        self._sensitivity = Sensitivity()  # of the readings with the receiver's offset removed
        self._offset: dict[str, float] = {}
        self.reconfigure(cfg)

    def reconfigure(self, cfg: BleSettings) -> None:
        """New thresholds and filter settings (a fleet desired config); what is known about phones stays."""
        self._cfg = cfg
        self._zone_of = {r.id: r.zone for r in cfg.receivers}
        offset = {r.id: r.offset_db for r in cfg.receivers}
        self._sensitivity.keep({rid for rid, db in offset.items() if db == self._offset.get(rid)})
        self._offset = offset
        self._enter_m = {r.id: cfg.thresholds(r)[0] for r in cfg.receivers}
        self._exit_m = {r.id: cfg.thresholds(r)[1] for r in cfg.receivers}
        self.leave_s = cfg.leave_s
        self._floor = Floor(cfg.receivers, cfg.path_loss_exponent)
        for phone in self._phones.values():  # placed on the old floor: from the next reading on, the new one
            phone.located, phone.position = {}, None

    def __len__(self) -> int:
        return len(self._phones)

    def distance_m(self, rssi: float, ref_dbm: float | None) -> float:
        ref = self._cfg.reference_dbm if ref_dbm is None else ref_dbm
        return distance_m(rssi, ref, self._cfg.path_loss_exponent)

    def place(self, s: Sighting) -> Verdict | None:
        """Take one reading; None when it changes nothing (not enough readings yet, unknown receiver)."""
        assert s.receiver is not None and s.rssi is not None
        receiver = s.receiver
        offset = self._offset.get(receiver)
        if offset is None:
            self.unknown_receiver += 1
            return None
        key = s.subject.key
        phone = self._phones.get(key)
        if phone is None:
            if len(self._phones) >= self._max:
                victim = min(self._phones, key=lambda k: self._phones[k].last)
                zone = self._phones.pop(victim).zone
                if zone is not None:  # forgotten while in a zone: it must leave it, or it could enter a second one
                    self.dropped.append((victim, zone))
            phone = self._phones[key] = _Phone()
        now = s.mono
        phone.last = now
        link = phone.links.get(receiver)
        if link is None:
            link = phone.links[receiver] = Level()
        rssi = s.rssi - offset
        self._sensitivity.note(receiver, rssi)
        link.update(now, rssi, self._cfg)
        horizon = now - self._cfg.window_s
        if self._floor.receivers and now >= phone.next_locate:
            self._locate(phone, now, s.ref_dbm, horizon)
        if self._areas:
            return self._in_area(phone) if link.count >= self._cfg.min_samples else None
        ref = s.ref_dbm if s.ref_dbm is not None else phone.reference
        if link.count < self._cfg.min_samples:
            return None if phone.receiver is None else Verdict(phone.zone, self._inside(phone, ref, horizon))
        return self._follow(phone, s.mono, ref, horizon)

    def _locate(self, phone: _Phone, now: float, known_ref: float | None, horizon: float) -> None:
        """Every receiver's level at once (floor.py): a reference for a phone of unknown model, and distances."""
        cfg = self._cfg
        phone.next_locate = now + LOCATE_S
        levels = {
            rid: (link.level, link.variance + cfg.noise_db**2)
            for rid, link in phone.links.items()
            if link.last >= horizon and link.count >= cfg.min_samples
        }
        if known_ref is None and now >= phone.next_fit:
            phone.next_fit = now + REFIT_S
            measured = self._floor.reference({rid: self._uncensored(rid, *lv) for rid, lv in levels.items()})
            if measured is not None and -100.0 <= measured <= 0.0:  # a running mean, then a moving one
                phone.fits = min(phone.fits + 1, MAX_FITS)
                current = cfg.reference_dbm if phone.reference is None else phone.reference
                phone.reference = current + (measured - current) / phone.fits
        ref = known_ref if known_ref is not None else phone.reference
        located = self._floor.locate(levels, cfg.reference_dbm if ref is None else ref)
        phone.located = {} if located is None else located.distances
        phone.position = None if located is None else (located.x, located.y)

    def _uncensored(self, receiver: str, level: float, variance: float) -> tuple[float, float]:
        """The level and its variance corrected for the readings the receiver missed (sensitivity.py)."""
        level, slope = self._sensitivity.true_level(receiver, level, self._cfg.noise_db)
        return level, variance * slope * slope

    def _distance(self, phone: _Phone, rid: str, level: float, ref: float | None) -> float:
        """From the phone's position on the floor if the receivers' positions are known, else from this level."""
        located = phone.located.get(rid)
        return self.distance_m(level, ref) if located is None else located

    def _follow(self, phone: _Phone, now: float, ref: float | None, horizon: float) -> Verdict | None:
        best, best_rssi = None, float("-inf")
        for rid, link in phone.links.items():
            if link.last >= horizon and link.level > best_rssi:
                best, best_rssi = rid, link.level
        if best is None:
            return None
        within_enter = self._distance(phone, best, best_rssi, ref) <= self._enter_m[best]
        current = phone.receiver
        if current is None:
            if not within_enter:
                return None
            phone.receiver, phone.zone = best, self._zone_of[best]
            return Verdict(phone.zone, True)
        cur = phone.links.get(current)
        cur_rssi = cur.level if cur is not None and cur.last >= horizon else float("-inf")
        if best == current or not within_enter or best_rssi < cur_rssi + self._cfg.switch_db:
            phone.challenger = None
        elif phone.challenger != best:
            phone.challenger, phone.challenger_since = best, now
        elif now - phone.challenger_since >= self._cfg.switch_s or cur_rssi == float("-inf"):
            old_zone = phone.zone
            phone.receiver, phone.zone, phone.challenger = best, self._zone_of[best], None
            return Verdict(phone.zone, True, left=old_zone if old_zone != phone.zone else None)
        return Verdict(phone.zone, self._inside(phone, ref, horizon))

    def _in_area(self, phone: _Phone) -> Verdict | None:
        """The zone whose area holds the phone's position; kept until the phone is `area_exit_m` beyond its edge.
        Worked out once per position (placed every LOCATE_S) and zone, not at every reading."""
        if phone.position is None:
            return None
        if phone.in_area is not None and phone.in_area[0] is phone.position and phone.in_area[1] == phone.zone:
            return phone.in_area[2]
        zone = phone.zone
        verdict = self._area_verdict(phone, zone, phone.position)
        phone.in_area = (phone.position, phone.zone, verdict) if phone.zone == zone else None
        return verdict

    def _area_verdict(self, phone: _Phone, current: str | None, at: tuple[float, float]) -> Verdict | None:
        x, y = at
        if current is not None and self._areas.outside_m(current, x, y) <= self._cfg.area_exit_m:
            return Verdict(current, True)
        found = self._areas.zone_at(x, y)
        if found is None:
            return None if current is None else Verdict(current, False)
        phone.zone = found
        return Verdict(found, True, left=current)

    def _inside(self, phone: _Phone, ref: float | None, horizon: float) -> bool:
        receiver = phone.receiver or ""
        link = phone.links.get(receiver)
        if link is None or link.last < horizon or link.level == float("-inf"):
            return False
        return self._distance(phone, receiver, link.level, ref) <= self._exit_m[receiver]

    def hears(self, subject_key: str, now: float) -> bool:
        """Whether a receiver heard this phone within the window (so its placement, or none, stands)."""
        phone = self._phones.get(subject_key)
        return phone is not None and now - phone.last <= self._cfg.window_s

    def left(self, subject_key: str, zone: str) -> None:
        """The tracker let the phone go from `zone`: it must cross the enter threshold to come back."""
        phone = self._phones.get(subject_key)
        if phone is not None and phone.zone == zone:
            phone.receiver = phone.zone = None

    def forget(self, subject_key: str) -> None:
        """Consent withdrawn: nothing about this phone's signal is kept."""
        self._phones.pop(subject_key, None)

    def prune(self, now: float) -> None:
        """Forget phones not heard for a whole window that are in no zone: the table stays small."""
        horizon = now - self._cfg.window_s
        stale = [k for k, p in self._phones.items() if p.last < horizon and p.zone is None]
        for key in stale:
            del self._phones[key]
