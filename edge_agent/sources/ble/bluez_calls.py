"""Talking to BlueZ on D-Bus without losing the agent's stop: shared by the scanner, its adapter watch and the
zone-beacon advertiser (and the simulated BlueZ, which watches its clients the same way)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # dbus-fast loads with the BLE scanner, not with every agent (it holds ~3 MB)
    from dbus_fast import Message
    from dbus_fast.aio import MessageBus


async def add_match(bus: MessageBus, rule: str) -> Message | None:
    """Ask the bus daemon for the signals a match rule names; the daemon's reply (an error reply if refused)."""
    from dbus_fast import Message

    return await bus.call(
        Message(
            destination="org.freedesktop.DBus",
            path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus",
            member="AddMatch",
            signature="s",
            body=[rule],
        )
    )


def raise_if_cancelled() -> None:
    """D-Bus calls of bleak and dbus-fast can swallow a cancellation that lands as their reply arrives; the
    scan loop must still end when the agent stops."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    """Whether `event` was set within `timeout_s`. (`asyncio.timeout`, not `wait_for`: on Python 3.11
    `wait_for` in a loop can swallow the task's cancellation, and the agent could not stop.)"""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            await event.wait()
    return event.is_set()
