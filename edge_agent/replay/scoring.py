"""The measures a store feels, from the true and the detected visits of each subject. Pure.

- per second: `precision`, `recall` of (subject, zone) at every whole second of the recording;
- per visit: a true visit of at least `min_visit_s` is found when a detected visit of the same subject and zone
  overlaps it (`visit_recall`); a detected visit that overlaps no true visit of its subject and zone is false
  (`visit_precision` = the share of detected visits that overlap a true one);
- `flaps_per_visit_hour`: each detected visit beyond the first that overlaps the same true visit (the screen
  flipped away and back while the shopper stood there), per hour of true visits;
- `enter_latency_s`, `exit_latency_s`: for each found visit, the first overlapping detection's start less the
  true start, and the last one's end less the true end (median and p90; negative: early).
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .recording import TruthRow


@dataclass(frozen=True, slots=True)
class Visit:
    subject: str
    zone: str
    start: float
    end: float

    def overlaps(self, other: Visit) -> bool:
        return (
            self.subject == other.subject
            and self.zone == other.zone
            and self.start < other.end
            and other.start < self.end
        )


class Timeline:
    """Each subject's zone over time, from rows "from t on, in zone"."""

    def __init__(self, rows: Iterable[TruthRow]):
        self._times: dict[str, list[float]] = defaultdict(list)
        self._zones: dict[str, list[str | None]] = defaultdict(list)
        for row in rows:
            self._times[row.subject].append(row.t_s)
            self._zones[row.subject].append(row.zone)

    @property
    def subjects(self) -> set[str]:
        return set(self._times)

    def zone_at(self, subject: str, t: float) -> str | None:
        times = self._times.get(subject)
        if not times:
            return None
        i = bisect.bisect_right(times, t) - 1
        return None if i < 0 else self._zones[subject][i]

    def visits(self, end: float) -> list[Visit]:
        """The true visits (same zone rows merged), the last one ending at `end`."""
        out = []
        for subject, times in self._times.items():
            zones = self._zones[subject]
            start, zone = None, None
            for t, z in [*zip(times, zones, strict=True), (end, None)]:
                if z == zone and t != end:
                    continue
                if zone is not None and start is not None and t > start:
                    out.append(Visit(subject, zone, start, t))
                start, zone = t, z
        return out


def score(truth: Timeline, detected: list[Visit], start: float, end: float, min_visit_s: float) -> dict[str, Any]:
    """Every measure of the module docstring for one presence method on one recording."""
    tp = fp = fn = 0
    by_subject: Mapping[str, list[Visit]] = _by_subject(detected)
    subjects = truth.subjects | set(by_subject)
    for second in range(math.ceil(start), math.floor(end) + 1):
        for subject in subjects:
            true = truth.zone_at(subject, second)
            found = {v.zone for v in by_subject.get(subject, ()) if v.start <= second < v.end}
            tp += true in found
            fp += len(found - {true})
            fn += true is not None and true not in found
    true_visits = [v for v in truth.visits(end) if v.end - v.start >= min_visit_s]
    found_visits, flaps, enters, exits = 0, 0, [], []
    for visit in true_visits:
        hits = sorted((d for d in by_subject.get(visit.subject, ()) if d.overlaps(visit)), key=lambda d: d.start)
        if hits:
            found_visits += 1
            flaps += len(hits) - 1
            enters.append(hits[0].start - visit.start)
            exits.append(hits[-1].end - visit.end)
    all_true = truth.visits(end)
    real = sum(1 for d in detected if any(d.overlaps(v) for v in all_true))
    hours = sum(v.end - v.start for v in true_visits) / 3600
    return {
        "precision": _share(tp, tp + fp),
        "recall": _share(tp, tp + fn),
        "visit_precision": _share(real, len(detected)),
        "visit_recall": _share(found_visits, len(true_visits)),
        "flaps_per_visit_hour": round(flaps / hours, 3) if hours else 0.0,
        "enter_latency_s": _spread(enters),
        "exit_latency_s": _spread(exits),
        "visits": {"true": len(true_visits), "detected": len(detected), "found": found_visits},
    }


def held(visits: Iterable[Visit], hold_s: float, confirm_s: float = 0.0) -> list[Visit]:
    """The visits as a screen would see them with their exits held `hold_s` (a return within it continues the
    visit, and every exit is known that much later) and their entries confirmed after `confirm_s` (shorter ones
    never shown): what debouncing costs and gains, for the evaluation's trade-off table."""
    by_pair: dict[tuple[str, str], list[Visit]] = defaultdict(list)
    for v in visits:
        by_pair[(v.subject, v.zone)].append(v)
    out = []
    for (subject, zone), pair in by_pair.items():
        pair.sort(key=lambda v: v.start)
        runs = [[pair[0].start, pair[0].end]]
        for v in pair[1:]:
            if v.start - runs[-1][1] <= hold_s:
                runs[-1][1] = max(runs[-1][1], v.end)
            else:
                runs.append([v.start, v.end])
        out += [
            Visit(subject, zone, start + confirm_s, end + hold_s) for start, end in runs if end - start >= confirm_s
        ]
    return out


def f1(result: Mapping[str, Any]) -> float:
    p, r = result["precision"], result["recall"]
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def _by_subject(visits: list[Visit]) -> dict[str, list[Visit]]:
    out: dict[str, list[Visit]] = defaultdict(list)
    for v in visits:
        out[v.subject].append(v)
    return out


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 1.0


def _spread(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "p90": None}
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 2),
        "p90": round(ordered[min(len(ordered) - 1, math.ceil(0.9 * len(ordered)) - 1)], 2),
    }
