"""BLE adverts through parse → resolve → filter → zone on one core, against bare parsing of the same adverts.

The adverts come from the shopper simulator (opted-in phones, phones that never opted in, every receiver),
so the mix of resolved and unknown tokens is a store's. `ratio` = agent rate / bare rate, where bare is the
least any scanner must do with an advert: find our company id and slice the token out.
"""

from __future__ import annotations

import base64
import random
import time
from typing import Any

from edge_agent.bus import Bus
from edge_agent.presence import PresenceTracker
from edge_agent.sources.ble import Advert, AdvertResolver
from edge_agent.sources.tokens import TEST_COMPANY_ID
from simulators.shoppers import SCENARIOS, START_UNIX, Radio, _SimClock, agent_settings, make_shoppers


def _adverts(n_shoppers: int, minutes: float) -> tuple[list[Advert], dict[str, dict[str, bytes]], dict[str, str]]:
    plan = SCENARIOS["default"]
    rng = random.Random(11)
    shoppers = make_shoppers(plan, rng, n_shoppers, minutes)
    adverts = [
        Advert(h.receiver, h.t, h.rssi, h.manufacturer_data, {}, h.tx_power)
        for h in Radio(plan, shoppers, rng).adverts(minutes * 60)
    ]
    keys = {
        s.phone.customer_ref: {d: base64.b64decode(k) for d, k in s.phone.day_keys(START_UNIX, 0, 1).items()}
        for s in shoppers
        if s.opted_in
    }
    models = {s.phone.customer_ref: s.model.name for s in shoppers}
    return adverts, keys, models


def _bare(adverts: list[Advert]) -> float:
    start = time.perf_counter()
    found = 0
    for a in adverts:
        data = a.manufacturer_data.get(TEST_COMPANY_ID)
        if data is not None and len(data) == 18 and data[0] == 0x53 and data[1] == 0x01:
            found += data[2:] is not None
    return time.perf_counter() - start


def _agent(adverts: list[Advert], keys: dict[str, dict[str, bytes]], models: dict[str, str]) -> tuple[float, Any]:
    settings = agent_settings(SCENARIOS["default"])
    clock = _SimClock()
    resolver = AdvertResolver(settings, clock)
    resolver.rebuild(keys, models, START_UNIX)
    tracker = PresenceTracker(settings.presence, Bus(), clock, radio=settings.ble)
    handle, observe, tick = resolver.handle, tracker.observe, tracker.tick
    next_tick = 0.0
    start = time.perf_counter()
    for a in adverts:
        sighting = handle(a)
        if sighting is not None:
            observe(sighting)
        if a.mono >= next_tick:  # the tracker's 0.5 s tick, on simulated time
            clock.t = a.mono
            tick(a.mono, clock.wall())
            next_tick = a.mono + 0.5
    return time.perf_counter() - start, (resolver, tracker)


async def run(quick: bool) -> dict[str, Any]:
    adverts, keys, models = _adverts(60 if quick else 200, 10 if quick else 30)
    n = len(adverts)
    bare = min(_bare(adverts) for _ in range(3))
    agent, (resolver, tracker) = min((_agent(adverts, keys, models) for _ in range(3)), key=lambda r: r[0])
    return {
        "adverts": n,
        "resolved_share": round(resolver.counts["resolved"] / n, 3),
        "adverts_per_s": round(n / agent),
        "bare_parse_per_s": round(n / bare),
        "ratio": round(bare / agent, 4),
        "phones_tracked_at_end": len(tracker.radio),
    }
