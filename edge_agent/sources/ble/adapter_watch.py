"""Watches BlueZ on the system D-Bus for the scanning adapter going away (a USB dongle pulled, bluetoothd
restarted or stopped, the adapter powered off or its discovery stopped) and coming back. The scanner then
starts again at once instead of waiting for its stall timer (which must stay long: an empty store at night
is quiet too) or for its retry back-off.

Without a system bus the watch stays silent and the stall timer is the only guard, as before.
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType

from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus

from .bluez_calls import add_match

log = logging.getLogger(__name__)

ADAPTER = "org.bluez.Adapter1"
RULES = (
    "type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged',arg0='org.bluez'",
    "type='signal',sender='org.bluez',interface='org.freedesktop.DBus.ObjectManager',member='InterfacesRemoved'",
    "type='signal',sender='org.bluez',interface='org.freedesktop.DBus.ObjectManager',member='InterfacesAdded'",
    "type='signal',sender='org.bluez',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged'",
)


class AdapterWatch:
    """`async with AdapterWatch("hci0") as watch: await watch.gone.wait()`; `reason` says what happened.
    `back` is set when the adapter appears (again) while watched."""

    def __init__(self, adapter: str):
        self.path = f"/org/bluez/{adapter}"
        self.gone = asyncio.Event()
        self.back = asyncio.Event()
        self.reason = ""
        self._bus: MessageBus | None = None

    async def __aenter__(self) -> AdapterWatch:
        try:
            async with asyncio.timeout(5.0):
                bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
        except Exception as exc:  # no system bus here: the stall timer still guards the scan
            log.debug("BLE: cannot watch BlueZ on D-Bus (%s: %s)", type(exc).__name__, exc)
            return self
        self._bus = bus
        bus.add_message_handler(self._on_message)
        try:
            async with asyncio.timeout(5.0):
                for rule in RULES:
                    await add_match(bus, rule)
        except Exception as exc:
            log.debug("BLE: cannot subscribe to BlueZ signals (%s: %s)", type(exc).__name__, exc)
            self._close()
        return self

    async def __aexit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._close()

    def _close(self) -> None:
        bus, self._bus = self._bus, None
        if bus is not None:
            bus.remove_message_handler(self._on_message)
            bus.disconnect()

    def _on_message(self, msg: Message) -> None:
        if msg.message_type != MessageType.SIGNAL:
            return
        if self._appeared(msg):
            self.back.set()
        reason = self._verdict(msg)
        if reason and not self.gone.is_set():
            self.reason = reason
            self.gone.set()

    def _appeared(self, msg: Message) -> bool:
        """bluetoothd joined the bus, the adapter was added, or it was powered on."""
        body = msg.body
        if msg.member == "NameOwnerChanged":
            return len(body) == 3 and body[0] == "org.bluez" and bool(body[2])
        if msg.member == "InterfacesAdded":
            return len(body) == 2 and body[0] == self.path and ADAPTER in body[1]
        if msg.member == "PropertiesChanged" and msg.path == self.path and len(body) >= 2 and body[0] == ADAPTER:
            return "Powered" in body[1] and body[1]["Powered"].value is True
        return False

    def _verdict(self, msg: Message) -> str:
        """Why this signal means the adapter cannot be scanning any more, or "" if it does not."""
        body = msg.body
        if msg.member == "NameOwnerChanged" and len(body) == 3 and body[0] == "org.bluez" and not body[2]:
            return "bluetoothd left the bus"
        if msg.member == "InterfacesRemoved" and len(body) == 2 and body[0] == self.path and ADAPTER in body[1]:
            return "the adapter was removed"
        if msg.member == "PropertiesChanged" and msg.path == self.path and len(body) >= 2 and body[0] == ADAPTER:
            changed = body[1]
            if "Powered" in changed and changed["Powered"].value is False:
                return "the adapter was powered off"
            if "Discovering" in changed and changed["Discovering"].value is False:
                return "discovery stopped"
        return ""
