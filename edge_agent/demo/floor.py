"""BLE shoppers on the demo floor, heard by the real bleak scanner through a simulated BlueZ."""

from __future__ import annotations

import contextlib
import os
import random
import time
from typing import Any

from ..store.roster import RosterEntry


def ble_roster(shoppers: list[Any], unix: float) -> list[RosterEntry]:
    """The BLE shoppers who opted in: consent to BLE and personalisation, day keys, phone model."""
    segments = [("coffee-lover",), ("family", "healthy"), ("bread",)]
    return [
        s.phone.roster_entry(
            unix, {"ble": True, "personalisation": True}, segments=segments[i % 3], phone_model=s.model.name
        )
        for i, s in enumerate(shoppers)
        if s.opted_in
    ]


@contextlib.asynccontextmanager
async def ble_floor(seconds: float | None, seed: int | None = None) -> Any:
    """A private D-Bus, a simulated BlueZ on it that bleak will find, and BLE shoppers on the demo floor (the same
    ones for the same `seed`)."""
    from simulators.bluez import PrivateBus, SimulatedBlueZ
    from simulators.shoppers import SCENARIOS, Radio, make_shoppers

    span_min = (seconds or 8 * 3600) / 60
    plan = SCENARIOS["demo"]
    rng = random.Random(seed)
    people = make_shoppers(plan, rng, max(6, int(span_min)), span_min, chain_id="demo-chain", prefix="ble")
    previous = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
    with PrivateBus() as bus:
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = bus.address
        bluez = SimulatedBlueZ(bus.address)
        await bluez.start()
        try:
            yield (bluez, Radio(plan, people, rng, start_unix=time.time()), people)
        finally:
            await bluez.stop()
            if previous is None:
                os.environ.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
            else:
                os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = previous
