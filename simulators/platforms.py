"""What a shopper's phone can do on its platform: advertise the token, or hear the store's zone beacons and report.

iPhones never advertise the token: iOS advertises no manufacturer data (`CBPeripheralManager` takes only a local
name and service UUIDs). The app instead monitors the chain's beacon region, and iOS wakes it on entry:

- **Region entry delay.** Usually within a second of the first beacon heard ("iPhone 5 and later trigger in the
  background within a second of seeing a beacon. But sometimes it takes longer. Much longer." — Radius Networks,
  *Background Monitoring of Beacon Regions on iOS*, 2018); in the background it can take "up to 15 minutes"
  (D. G. Young, Radius Networks, *iBeacon Monitoring in the Background and Foreground*, 2013). Modelled: 80 %
  prompt, uniform 0.2–1.5 s; 20 % late, log-uniform 10 s – 15 min.
- **Ranging window.** A region event gives a backgrounded app about 10 s of running time, in which it ranges
  once a second (Young 2013: ranging updates every 1 s) and reports.
- **Region exit** comes after the last beacon has gone unheard for "up to 10 seconds … but this can also be up
  to 30 seconds" (C. Gilchrist, *Learning iBeacon*, Packt 2014, ch. 5): uniform 10–30 s after leaving.
- **App open.** With the app in the foreground it ranges every second for as long as it is open.

Android phones keep advertising in the background only under a foreground service: a share of them
(`advertising_share`, an assumption of this simulator, not a measured figure) advertises the token all visit;
the rest report like iPhones, with Android's background beacon scan in place of iOS's region monitoring (scan
10 s, sleep 30 s by default: entry within 0–40 s — Estimote, *How region Monitoring in the background works on
Android*). Ranging RSSI is the phone's one-second mean of the beacon's adverts; the proximity class is what
iOS derives from it (immediate within 0.5 m, near within 3 m, far beyond).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

RANGING_WINDOW_S = 10.0
RANGING_PERIOD_S = 1.0


@dataclass
class PhonePlatform:
    """One phone's behaviour for one visit; times are seconds from the simulation's start."""

    name: str  # "ios" | "android"
    advertises: bool  # the token, all visit (an Android app under a foreground service)
    entry_delay_s: float  # region entry (or Android background scan) after arriving
    exit_delay_s: float  # region exit after leaving
    app_open: list[tuple[float, float]] = field(default_factory=list)  # foreground periods: ranging every second

    def ranging_times(self, arrive: float, leave: float) -> list[float]:
        """When the app ranges and reports: the window after region entry, and every second the app is open."""
        if self.advertises and not self.app_open:
            return []
        times: set[float] = set()
        entry = arrive + self.entry_delay_s
        if not self.advertises and entry < leave:
            times.update(entry + k * RANGING_PERIOD_S for k in range(1, int(RANGING_WINDOW_S) + 1))
        for start, end in self.app_open:
            times.update(start + k * RANGING_PERIOD_S for k in range(1, int((end - start) / RANGING_PERIOD_S) + 1))
        return sorted(t for t in times if arrive < t <= leave)

    def region_entered(self, arrive: float, leave: float) -> bool:
        return not self.advertises and arrive + self.entry_delay_s < leave


def draw(rng: random.Random, ios: bool, arrive: float, leave: float, advertising_share: float) -> PhonePlatform:
    """A platform behaviour for a visit from `arrive` to `leave`, from the distributions above."""
    if ios:
        prompt = rng.random() < 0.8
        delay = rng.uniform(0.2, 1.5) if prompt else math.exp(rng.uniform(math.log(10.0), math.log(900.0)))
        platform = PhonePlatform("ios", False, delay, rng.uniform(10.0, 30.0))
    else:
        advertises = rng.random() < advertising_share
        platform = PhonePlatform("android", advertises, rng.uniform(0.0, 40.0), rng.uniform(10.0, 40.0))
    if rng.random() < 0.3:  # opens the app in the store for a while (a list, a coupon)
        start = rng.uniform(arrive, leave)
        platform.app_open.append((start, min(leave, start + rng.uniform(30.0, 180.0))))
    return platform


def proximity(rssi: float, measured_power: float) -> str:
    """The class iOS gives a ranged beacon, from its estimate of the distance."""
    distance = 10 ** ((measured_power - rssi) / 20.0)
    return "immediate" if distance < 0.5 else "near" if distance < 3.0 else "far"
