"""Sightings → presence: enter, dwell and exit per subject and zone.

A subject leaves a zone only after a hold-down with no sighting, so a phone that skips a few adverts or
a shopper who checked in and keeps browsing does not flap in and out. The table is bounded: when full,
the subject closest to expiry is let go (with its exit event) before a new one is admitted.

Radio sightings (a receiver and an RSSI) first go through `radio.RadioPlacer`, which filters the signal and
decides which zone, if any, the phone is in; only its verdicts reach the table.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from .bus import Bus
from .clock import Clock
from .config import BleSettings, PresenceSettings
from .events import Channel, Presence, PresenceKind, Sighting, Subject, WallTime
from .radio import RadioPlacer


@dataclass
class _State:
    subject: Subject
    zone: str
    entered: float
    expires: float
    last_dwell: float
    touchpoint: str | None


class PresenceTracker:
    def __init__(
        self,
        settings: PresenceSettings,
        bus: Bus,
        clock: Clock,
        max_subjects: int = 20_000,
        radio: BleSettings | None = None,
    ):
        self._cfg = settings
        self._bus = bus
        self._clock = clock
        self._max = max_subjects
        self._table: dict[tuple[str, str], _State] = {}
        self.radio = RadioPlacer(radio or BleSettings(), max_subjects=max_subjects)
        self._sightings = bus.subscribe(Sighting, "presence", maxsize=10_000)

    def hold_for(self, channel: Channel) -> float:
        return self._cfg.checkin_hold_s if channel is Channel.CHECKIN else self._cfg.hold_down_s

    def present(self, zone: str) -> list[Subject]:
        return [st.subject for (_, z), st in self._table.items() if z == zone]

    def placed(self) -> set[tuple[str, str]]:
        """(subject key, zone) of everyone present now."""
        return set(self._table)

    def observe(self, s: Sighting) -> list[Presence]:
        if s.receiver is None or s.rssi is None:
            return self._seen(s, s.zone, s.mono + self.hold_for(s.channel))
        verdict = self.radio.place(s)
        if verdict is None:
            return []
        out = []
        if verdict.left is not None:
            state = self._table.pop((s.subject.key, verdict.left), None)
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

    def _seen(self, s: Sighting, zone: str, expires: float) -> list[Presence]:
        key = (s.subject.key, zone)
        state = self._table.get(key)
        if state is not None:
            state.expires = max(state.expires, expires)
            if s.touchpoint:
                state.touchpoint = s.touchpoint
            if s.explicit:
                return [self._event(state, PresenceKind.DWELL, s.mono, s.wall, explicit=True)]
            return []
        out = []
        if len(self._table) >= self._max:
            victim = self._table.pop(min(self._table, key=lambda k: self._table[k].expires))
            self.radio.left(victim.subject.key, victim.zone)
            out.append(self._event(victim, PresenceKind.EXIT, s.mono, s.wall))
        state = _State(s.subject, zone, entered=s.mono, expires=expires, last_dwell=s.mono, touchpoint=s.touchpoint)
        self._table[key] = state
        out.append(self._event(state, PresenceKind.ENTER, s.mono, s.wall, explicit=s.explicit))
        return out

    def tick(self, now: float, wall: WallTime) -> list[Presence]:
        out = []
        for key, state in list(self._table.items()):
            if now >= state.expires:
                del self._table[key]
                self.radio.left(state.subject.key, state.zone)
                out.append(self._event(state, PresenceKind.EXIT, now, wall))
            elif now - state.last_dwell >= self._cfg.dwell_interval_s:
                state.last_dwell = now
                out.append(self._event(state, PresenceKind.DWELL, now, wall))
        self.radio.prune(now)
        return out

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

    async def _consume(self) -> None:
        async for sighting in self._sightings:
            for event in self.observe(sighting):
                self._bus.publish(event)

    async def _tick_forever(self, tick_s: float) -> None:
        while True:
            await asyncio.sleep(tick_s)
            for event in self.tick(self._clock.mono(), self._clock.wall()):
                self._bus.publish(event)
