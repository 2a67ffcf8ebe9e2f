"""What a shopper's phone can do on its platform: advertise the token, or hear the store's zone beacons and report.

iPhones never advertise the token: iOS advertises no manufacturer data (`CBPeripheralManager` takes only a local
name and service UUIDs). The app instead monitors the chain's beacon region and ranges the zone beacons when
iOS lets it:

- **Region entry.** Usually within a second of the first beacon heard ("iPhone 5 and later trigger in the
  background within a second of seeing a beacon. But sometimes it takes longer. Much longer." — Radius Networks,
  *Background Monitoring of Beacon Regions on iOS*, 2018); in the background it can take "up to 15 minutes"
  (D. G. Young, Radius Networks, *iBeacon Monitoring in the Background and Foreground*, 2013). Modelled: 80 %
  within 0.2–1.5 s (uniform), 20 % late, log-uniform over 10 s – 15 min.
- **Ranging windows.** A region event gives a backgrounded app about 10 s of running time, in which it ranges
  once a second (Young 2013: "App ranging: 1 second"). With `notifyEntryStateOnDisplay` the app gets the region
  state, and such a window, within a second of the shopper waking the phone's screen (Young 2013: "Phone
  awakened, notifyEntryStateOnDisplay=YES: 1 second"). How often a shopper looks at their phone in a store is an
  assumption of this simulator: on average every 4 minutes (exponential gaps).
- **Region exit** comes after the last beacon has gone unheard for "up to 10 seconds … but this can also be up
  to 30 seconds" (C. Gilchrist, *Learning iBeacon*, Packt 2014, ch. 5): uniform 10–30 s after leaving.
- **App open.** With the app in the foreground it ranges every second for as long as it is open (30 % of
  shoppers open it once, for 30 s – 3 min: an assumption).

Android phones keep advertising in the background only under a foreground service: a share of them
(`advertising_share`, an assumption of this simulator, not a measured figure) advertises the token all visit;
the others report, ranging in Android's periodic background scan (by default a 10 s scan every 40 s — Estimote,
*How region Monitoring in the background works on Android*), and declare the region left at the first scans
that hear nothing (10–40 s after leaving). Ranging RSSI is the phone's one-second mean of a beacon's adverts; the
proximity class is what iOS derives from it (immediate within 0.5 m, near within 3 m, far beyond).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from edge_agent.radio.placer import distance_m

RANGING_WINDOW_S = 10.0
RANGING_PERIOD_S = 1.0
SCREEN_WAKE_MEAN_S = 240.0  # assumed: a shopper looks at their phone every 4 minutes on average
ANDROID_SCAN_S, ANDROID_SLEEP_S = 10.0, 30.0


@dataclass
class PhonePlatform:
    """One phone's behaviour for one visit; times are seconds from the simulation's start."""

    name: str  # "ios" | "android"
    advertises: bool  # the token, all visit (an Android app under a foreground service)
    entry_delay_s: float  # region entry (Android: its first background scan) after arriving
    exit_delay_s: float  # region exit after leaving
    windows: list[tuple[float, float]] = field(default_factory=list)  # background ranging: (from, to)
    app_open: list[tuple[float, float]] = field(default_factory=list)  # foreground: ranging every second

    def ranging_times(self, arrive: float, leave: float) -> list[float]:
        """When the app ranges and reports: each second of every window and of every time the app is open."""
        times: set[float] = set()
        for start, end in [*([] if self.advertises else self.windows), *self.app_open]:
            times.update(start + k * RANGING_PERIOD_S for k in range(1, int((end - start) / RANGING_PERIOD_S) + 1))
        return sorted(t for t in times if arrive < t <= leave)

    def first_chance(self, arrive: float, leave: float) -> float | None:
        """When the platform first lets the app range during the visit (what any report must wait for)."""
        times = self.ranging_times(arrive, leave)
        return times[0] - RANGING_PERIOD_S if times else None

    def region_entered(self, arrive: float, leave: float) -> bool:
        """Whether the platform noticed the store during the visit (and will report leaving it)."""
        return not self.advertises and arrive + self.entry_delay_s < leave


def draw(
    rng: random.Random, ios: bool, arrive: float, leave: float, advertising_share: float, app_always_open: bool = False
) -> PhonePlatform:
    """A platform behaviour for a visit from `arrive` to `leave`, from the distributions above; with
    `app_always_open`, every app is open the whole visit (to compare the two paths on equal terms)."""
    if ios:
        prompt = rng.random() < 0.8
        delay = rng.uniform(0.2, 1.5) if prompt else math.exp(rng.uniform(math.log(10.0), math.log(900.0)))
        platform = PhonePlatform("ios", False, delay, rng.uniform(10.0, 30.0))
        platform.windows.append((arrive + delay, arrive + delay + RANGING_WINDOW_S))
        wake = arrive + rng.expovariate(1 / SCREEN_WAKE_MEAN_S)
        while wake < leave:
            platform.windows.append((wake + rng.uniform(0.2, 1.0), wake + RANGING_WINDOW_S))
            wake += rng.expovariate(1 / SCREEN_WAKE_MEAN_S)
    else:
        advertises = rng.random() < advertising_share
        first = arrive + rng.uniform(0.0, ANDROID_SCAN_S + ANDROID_SLEEP_S)
        platform = PhonePlatform("android", advertises, first - arrive, rng.uniform(10.0, 40.0))
        scan = first
        while scan < leave:
            platform.windows.append((scan, scan + ANDROID_SCAN_S))
            scan += ANDROID_SCAN_S + ANDROID_SLEEP_S
    if app_always_open:
        platform.app_open.append((arrive, leave))
    elif rng.random() < 0.3:  # opens the app in the store for a while (a list, a coupon)
        start = rng.uniform(arrive, leave)
        platform.app_open.append((start, min(leave, start + rng.uniform(30.0, 180.0))))
    return platform


def proximity(rssi: float, measured_power: float) -> str:
    """The class iOS gives a ranged beacon, from its estimate of the distance."""
    distance = distance_m(rssi, measured_power, 2.0)  # iOS's estimate, as if in free space
    return "immediate" if distance < 0.5 else "near" if distance < 3.0 else "far"
