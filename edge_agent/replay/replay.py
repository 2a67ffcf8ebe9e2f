"""A recording through exactly the agent's presence path — the same `PresenceTracker` and radio placement the live
agent runs, with the store's config — on the recording's clock, scored beside the naive rule.

Each subject is taken as a consenting customer whose phone's reference level is unknown (learned from the
receivers' positions as live, else `ble.reference_dbm`), or `reference_dbm` when given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..bus import Bus
from ..clock import SetClock
from ..config import Settings
from ..events import Channel, Customer, PresenceKind, Sighting
from ..presence import PresenceTracker
from ..sources.ble.frames import FIRST_METRE_DB
from . import naive, recording
from .scoring import Timeline, Visit, f1, score

TICK_S = 0.5  # the tracker's tick, as live


def agent_visits(settings: Settings, readings: list[recording.Reading], reference_dbm: float | None) -> list[Visit]:
    """The visits the agent's presence path detects in the readings, closed at the last reading's time."""
    clock = SetClock()  # the recording's seconds
    tracker = PresenceTracker(settings.presence, Bus(), clock, radio=settings.ble, zones=settings.zones)
    zone_of = {r.id: r.zone for r in settings.ble.receivers}
    opened: dict[tuple[str, str], float] = {}
    out: list[Visit] = []

    def record(events: list[Any]) -> None:
        for e in events:
            key = (e.subject.customer_ref, e.zone)
            if e.kind is PresenceKind.ENTER:
                opened[key] = e.mono
            elif e.kind is PresenceKind.EXIT and key in opened:
                out.append(Visit(key[0], key[1], opened.pop(key), e.mono))

    subjects: dict[str, Customer] = {}
    next_tick = None
    wall = clock.wall()  # the wall time of the last tick: it dates events, and places nobody
    for r in readings:
        if next_tick is None:
            next_tick = r.t_s
        while r.t_s >= next_tick:
            clock.t = next_tick
            wall = clock.wall()
            record(tracker.tick(next_tick, wall))
            next_tick += TICK_S
        clock.t = r.t_s
        ref = reference_dbm
        if ref is None and r.tx_dbm is not None:
            ref = float(r.tx_dbm - FIRST_METRE_DB)  # as the scanner takes an advert's TX power level
        subject = subjects.get(r.subject) or subjects.setdefault(r.subject, Customer(r.subject))
        sighting = Sighting(
            subject,
            zone_of[r.receiver],
            Channel.BLE,
            mono=r.t_s,
            wall=wall,
            rssi=r.rssi_dbm,
            receiver=r.receiver,
            ref_dbm=ref,
        )
        record(tracker.observe(sighting))
    end = readings[-1].t_s if readings else 0.0
    out += [Visit(subject, zone, since, max(since, end)) for (subject, zone), since in opened.items()]
    return out


@dataclass(frozen=True)
class Recording:
    """A recording read and checked: its readings, its truth, and the span it is scored over."""

    readings: list[recording.Reading]
    timeline: Timeline
    start: float
    end: float


def load(settings: Settings, readings_csv: Path, truth_csv: Path) -> Recording:
    """The recording's files, checked against the store's receivers and zones; RecordingError if not one."""
    readings = list(recording.readings(readings_csv, [r.id for r in settings.ble.receivers]))
    truth_rows = recording.truth(truth_csv, [z.id for z in settings.zones])
    if not readings:
        raise recording.RecordingError("empty", f"{readings_csv.name}: no readings")
    start = min(readings[0].t_s, truth_rows[0].t_s if truth_rows else readings[0].t_s)
    return Recording(readings, Timeline(truth_rows), start, readings[-1].t_s)


def figures(
    settings: Settings,
    rec: Recording,
    *,
    min_visit_s: float = 5.0,
    naive_window_s: float = 5.0,
    reference_dbm: float | None = None,
) -> dict[str, Any]:
    """The agent's figures and the naive rule's on one recording."""
    agent = score(rec.timeline, agent_visits(settings, rec.readings, reference_dbm), rec.start, rec.end, min_visit_s)
    zone_of = {r.id: r.zone for r in settings.ble.receivers}
    rule = score(rec.timeline, naive.visits(rec.readings, zone_of, naive_window_s), rec.start, rec.end, min_visit_s)
    return {
        **agent,
        "naive": rule,
        "f1_vs_naive": round(f1(agent) / f1(rule), 4) if f1(rule) else None,
        "readings": len(rec.readings),
        "subjects": len(rec.timeline.subjects | {r.subject for r in rec.readings}),
        "seconds": round(rec.end - rec.start, 1),
    }
