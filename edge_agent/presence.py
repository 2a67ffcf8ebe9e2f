"""Sightings → presence: enter, dwell and exit per subject and zone.

A subject leaves a zone only after a hold-down with no sighting, so a phone that skips a few adverts or
a shopper who checked in and keeps browsing does not flap in and out. The table is bounded: when full,
the subject closest to expiry is let go (with its exit event) before a new one is admitted.

Radio sightings (a receiver and an RSSI) first go through `radio.RadioPlacer`, which filters the signal and
decides which zone, if any, the phone is in; only its verdicts reach the table.

An app report (the phone heard the store's zone beacons, `sources/ble/report_intake.py`) is a BLE sighting with
its own hold (`hold_s`, ble.report_ttl_s); a customer is in one zone by BLE whichever way the phone was heard:
a report moves them out of the zones reports put them in; while the store's receivers place the phone, its
reports neither move nor hold it (the receivers' filtered placement is the better measure); a `Departed` ends
the zones reports hold.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from .bus import Bus
from .clock import Clock
from .config import BleSettings, PresenceSettings, Zone
from .events import (
    Channel,
    ConsentChanged,
    Customer,
    Departed,
    Erased,
    Presence,
    PresenceKind,
    Sighting,
    Subject,
    WallTime,
)
from .ops.progress import Progress
from .radio.placer import RadioPlacer


@dataclass
class _State:
    subject: Subject
    zone: str
    entered: float
    expires: float
    last_dwell: float
    touchpoint: str | None
    channels: set[Channel]
    reported: bool = False  # held by app reports alone (no receiver, no other channel has refreshed it)
    radio: bool = False  # the store's receivers place the phone here


class PresenceTracker:
    def __init__(
        self,
        settings: PresenceSettings,
        bus: Bus,
        clock: Clock,
        max_subjects: int = 20_000,
        radio: BleSettings | None = None,
        progress: Progress | None = None,
        stall_after_s: float = 30.0,
        zones: Sequence[Zone] = (),
    ):
        self._cfg = settings
        self._bus = bus
        self._clock = clock
        self._max = max_subjects
        self._table: dict[tuple[str, str], _State] = {}
        self._zones: dict[str, set[str]] = {}  # subject key → the zones it is in: what one subject's news touches
        self._reported_states = 0  # states held by app reports alone: none, and a receiver's sighting skips them
        self.radio = RadioPlacer(radio or BleSettings(), max_subjects=max_subjects, zones=zones)
        self._sightings = bus.subscribe(Sighting, "presence", maxsize=10_000)
        self._consents = bus.subscribe(ConsentChanged, "presence", maxsize=1000)
        self._departures = bus.subscribe(Departed, "presence", maxsize=10_000)
        self.reports_deferred = 0  # reports of another zone than the one the store's receivers hold the phone in
        bus.on(Erased, "presence", self._on_erased)
        self._progress = progress
        if progress is not None:  # a vital part: sightings waiting and none handled for too long stalls the agent
            progress.watch("presence", max_silence_s=stall_after_s, pending=self.backlog)

    def backlog(self) -> int:
        return self._sightings.queue.qsize() + self._consents.queue.qsize() + self._departures.queue.qsize()

    def _beat(self) -> None:
        if self._progress is not None:
            self._progress.beat("presence")

    def reconfigure(self, settings: PresenceSettings, radio: BleSettings) -> None:
        """New timings and radio thresholds, from the next sighting and tick on; who is present stays."""
        self._cfg = settings
        self.radio.reconfigure(radio)

    def hold_for(self, channel: Channel) -> float:
        return self._cfg.checkin_hold_s if channel is Channel.CHECKIN else self._cfg.hold_down_s

    def present(self, zone: str) -> list[Subject]:
        return [st.subject for (_, z), st in self._table.items() if z == zone]

    def placed(self) -> set[tuple[str, str]]:
        """(subject key, zone) of everyone present now."""
        return set(self._table)

    def customers(self, now: float) -> list[tuple[str, str, float]]:
        """(customer_ref, zone, dwell seconds) of every identified shopper present."""
        return [
            (st.subject.customer_ref, st.zone, max(0.0, now - st.entered))
            for st in self._table.values()
            if isinstance(st.subject, Customer)
        ]

    def counts(self) -> dict[str, dict[str, int]]:
        """Per zone, how many people are present, identified or not: numbers only."""
        out: dict[str, dict[str, int]] = {}
        for st in self._table.values():
            zone = out.setdefault(st.zone, {"identified": 0, "anonymous": 0})
            zone["identified" if isinstance(st.subject, Customer) else "anonymous"] += 1
        return out

    def withdraw(self, customer_ref: str, channel: str, now: float, wall: WallTime) -> list[Presence]:
        """The shopper withdrew consent for a channel: forget what it told us; leave if nothing else did."""
        out = []
        if channel == Channel.BLE:
            self.radio.forget(Customer(customer_ref).key)
        for key, state in list(self._table.items()):
            if state.subject != Customer(customer_ref):
                continue
            state.channels.discard(Channel(channel))
            if not state.channels:
                self._remove(key)
                out.append(self._event(state, PresenceKind.EXIT, now, wall))
        return out

    def erase(self, customer_ref: str, now: float, wall: WallTime) -> list[Presence]:
        """Erasure: the customer leaves every zone now, and the radio filter forgets their phone."""
        subject = Customer(customer_ref)
        self.radio.forget(subject.key)
        gone = [(subject.key, zone) for zone in self._zones.get(subject.key, ())]
        return [self._event(self._pop(key), PresenceKind.EXIT, now, wall) for key in gone]

    def _on_erased(self, erased: Erased) -> None:
        for event in self.erase(erased.customer_ref, self._clock.mono(), erased.wall):
            self._bus.publish(event)

    def depart(self, d: Departed) -> list[Presence]:
        """The zones app reports alone hold this customer in end now."""
        held = [(d.subject.key, zone) for zone in self._zones.get(d.subject.key, ())]
        gone = [key for key in held if self._table[key].reported]
        return [self._event(self._pop(key), PresenceKind.EXIT, d.mono, d.wall) for key in gone]

    def observe(self, s: Sighting) -> list[Presence]:
        if s.hold_s is not None:
            return self._reported(s, s.hold_s)
        if s.receiver is None or s.rssi is None:
            return self._seen(s, s.zone, s.mono + self.hold_for(s.channel))
        verdict = self.radio.place(s)
        # the receivers hear the phone: they place it, not its reports
        out = self._moved_from_reports(s, None) if self._reported_states else []
        while self.radio.dropped:
            state = self._remove(self.radio.dropped.pop())
            if state is not None:
                out.append(self._event(state, PresenceKind.EXIT, s.mono, s.wall))
        if verdict is None:
            return out
        if verdict.left is not None:
            state = self._remove((s.subject.key, verdict.left))
            if state is not None:
                out.append(self._event(state, PresenceKind.EXIT, s.mono, s.wall))
        if verdict.zone is None:
            return out
        state = self._table.get((s.subject.key, verdict.zone))
        if verdict.inside:
            return out + self._seen(s, verdict.zone, s.mono + self._cfg.hold_down_s)
        if state is not None:  # readings say out of range: leave after the short hold-down, not the long one
            state.expires = min(state.expires, s.mono + self.radio.leave_s)
        return out

    def _reported(self, s: Sighting, hold_s: float) -> list[Presence]:
        """An app report's zone, unless the store's receivers place the phone elsewhere."""
        key = s.subject.key
        if self.radio.hears(key, s.mono) or any(self._table[(key, zone)].radio for zone in self._zones.get(key, ())):
            self.reports_deferred += 1  # the receivers place this phone: its reports neither move nor hold it
            return []
        return self._moved_from_reports(s, s.zone) + self._seen(s, s.zone, s.mono + hold_s, reported=True)

    def _moved_from_reports(self, s: Sighting, zone: str | None) -> list[Presence]:
        """BLE places a phone in one zone: the other zones reports held it in end as it enters `zone` (all of them
        when None)."""
        key = s.subject.key
        gone = [(key, z) for z in self._zones.get(key, ()) if z != zone and self._table[(key, z)].reported]
        return [self._event(self._pop(k), PresenceKind.EXIT, s.mono, s.wall) for k in gone]

    def _seen(self, s: Sighting, zone: str, expires: float, *, reported: bool = False) -> list[Presence]:
        key = (s.subject.key, zone)
        state = self._table.get(key)
        if state is not None:
            state.expires = max(state.expires, expires)
            if state.reported and not reported:
                state.reported = False
                self._reported_states -= 1
            state.radio = state.radio or (s.receiver is not None and s.hold_s is None)
            state.channels.add(s.channel)
            if s.touchpoint:
                state.touchpoint = s.touchpoint
            if s.explicit:
                return [self._event(state, PresenceKind.DWELL, s.mono, s.wall, explicit=True)]
            return []
        out = []
        if len(self._table) >= self._max:
            victim = self._pop(min(self._table, key=lambda k: self._table[k].expires))
            self.radio.left(victim.subject.key, victim.zone)
            out.append(self._event(victim, PresenceKind.EXIT, s.mono, s.wall))
        state = _State(
            s.subject,
            zone,
            entered=s.mono,
            expires=expires,
            last_dwell=s.mono,
            touchpoint=s.touchpoint,
            channels={s.channel},
            reported=reported,
            radio=s.receiver is not None and s.hold_s is None,
        )
        self._table[key] = state
        self._zones.setdefault(s.subject.key, set()).add(zone)
        self._reported_states += reported
        out.append(self._event(state, PresenceKind.ENTER, s.mono, s.wall, explicit=s.explicit))
        return out

    def tick(self, now: float, wall: WallTime) -> list[Presence]:
        out = []
        for key, state in list(self._table.items()):
            if now >= state.expires:
                self._remove(key)
                self.radio.left(state.subject.key, state.zone)
                out.append(self._event(state, PresenceKind.EXIT, now, wall))
            elif now - state.last_dwell >= self._cfg.dwell_interval_s:
                state.last_dwell = now
                out.append(self._event(state, PresenceKind.DWELL, now, wall))
        self.radio.prune(now)
        return out

    def _pop(self, key: tuple[str, str]) -> _State:
        """The state of (subject, zone), which is there, taken out."""
        state = self._remove(key)
        assert state is not None
        return state

    def _remove(self, key: tuple[str, str]) -> _State | None:
        """The state of (subject, zone) taken out of the table and the subject's index (None if there was none)."""
        state = self._table.pop(key, None)
        if state is not None and state.reported:
            self._reported_states -= 1
        zones = self._zones.get(key[0])
        if zones is not None:
            zones.discard(key[1])
            if not zones:
                del self._zones[key[0]]
        return state

    def _event(self, st: _State, kind: PresenceKind, now: float, wall: WallTime, *, explicit: bool = False) -> Presence:
        return Presence(
            subject=st.subject,
            zone=st.zone,
            kind=kind,
            dwell_s=max(0.0, now - st.entered),
            mono=now,
            wall=wall,
            touchpoint=st.touchpoint,
            explicit=explicit,
        )

    async def run(self, tick_s: float = 0.5) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._consume(), name="presence.sightings")
            tg.create_task(self._tick_forever(tick_s), name="presence.tick")
            tg.create_task(self._consent_changes(), name="presence.consent")
            tg.create_task(self._departed(), name="presence.departed")

    async def _departed(self) -> None:
        async for departure in self._departures:
            for event in self.depart(departure):
                self._bus.publish(event)
            self._beat()

    async def _consent_changes(self) -> None:
        identifying = {c.value for c in Channel}
        async for change in self._consents:
            if not change.granted and change.channel in identifying:
                for event in self.withdraw(change.customer_ref, change.channel, self._clock.mono(), change.wall):
                    self._bus.publish(event)
            self._beat()

    async def _consume(self) -> None:
        async for sighting in self._sightings:
            for event in self.observe(sighting):
                self._bus.publish(event)
            self._beat()

    async def _tick_forever(self, tick_s: float) -> None:
        while True:
            await asyncio.sleep(tick_s)
            for event in self.tick(self._clock.mono(), self._clock.wall()):
                self._bus.publish(event)
