"""A simulated BlueZ on a private D-Bus, for the real bleak scanner in tests and the demo.

`PrivateBus` starts its own `dbus-daemon` (never the machine's); `SimulatedBlueZ` owns `org.bluez` on it,
built on dbus-fast (a bleak dependency): an object manager, one adapter (`Adapter1`: SetDiscoveryFilter,
StartDiscovery, StopDiscovery, RemoveDevice), and devices whose adverts arrive as `InterfacesAdded` and then
`PropertiesChanged` of `org.bluez.Device1` — exactly what bluetoothd emits while discovering. Like bluetoothd
(`TemporaryTimeout` in main.conf, 30 s), a device not heard for `temporary_timeout_s` is removed
(`InterfacesRemoved`), so a long day of passing phones does not pile up in the scanner. `restart()` drops the
name and comes back like a restarted bluetoothd; `unplug_adapter()` / `plug_adapter()` take the adapter away
and bring it back, as pulling out a USB dongle does.

Point the agent at it with `DBUS_SYSTEM_BUS_ADDRESS=<bus.address>` (bleak talks to BlueZ on the system bus).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus

OBJECT_MANAGER = "org.freedesktop.DBus.ObjectManager"
PROPERTIES = "org.freedesktop.DBus.Properties"
ADAPTER = "org.bluez.Adapter1"
DEVICE = "org.bluez.Device1"


def dbus_available() -> bool:
    return shutil.which("dbus-daemon") is not None


class PrivateBus:
    """A dbus-daemon of our own, killed by its pid when done."""

    def __init__(self) -> None:
        self.address = ""
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        self._proc = subprocess.Popen(
            ["dbus-daemon", "--session", "--nofork", "--nopidfile", "--print-address=1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().decode().strip()
        if not line:
            self.stop()
            raise RuntimeError("dbus-daemon did not print its address")
        self.address = line
        return line

    def pause(self) -> None:
        """Stop the daemon reading and routing (SIGSTOP), as a starved process on a busy machine does."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def __enter__(self) -> PrivateBus:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


class _PatientSocket:
    """A socket whose `send` says "nothing written" when the kernel's buffer is full, instead of raising."""

    def __init__(self, sock: socket.socket):
        self._sock = sock

    def send(self, data: bytes | memoryview) -> int:
        try:
            return self._sock.send(data)
        except BlockingIOError:
            return 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _wait_when_full(bus: MessageBus) -> None:
    """dbus-fast (5.2) writes a new message at once when its queue is empty, even while the previous one still
    waits for room in the socket; on a full socket that write raises EAGAIN and dbus-fast drops the connection.
    Told "nothing written" instead, it waits for the socket as after any partial write."""
    writer = bus._writer  # the writer holds the socket it sends on
    if writer is not None and writer.sock is not None:
        # a stand-in, not a socket: the writer only calls send/sendmsg, and the rest goes to the real socket
        writer.sock = _PatientSocket(writer.sock)  # type: ignore[assignment]


def fake_address(device_id: str) -> str:
    """A random-static-looking address for a simulated phone (what a real one would rotate)."""
    raw = bytearray(hashlib.sha256(device_id.encode()).digest()[:6])
    raw[0] |= 0xC0
    return ":".join(f"{b:02X}" for b in raw)


class SimulatedBlueZ:
    def __init__(self, bus_address: str, adapter: str = "hci0", temporary_timeout_s: float = 30.0):
        self._address = bus_address
        self.adapter_path = f"/org/bluez/{adapter}"
        self._bus: MessageBus | None = None
        self.discovering = False
        self.filters: dict[str, Any] = {}
        self._devices: dict[str, dict[str, Any]] = {}  # object path → Device1 properties
        self.adapter_present = True
        self._heard: dict[str, float] = {}  # object path → when last heard (monotonic), oldest first
        self.temporary_timeout_s = temporary_timeout_s
        self.counts: Counter[str] = Counter()

    # --- lifecycle ---

    async def start(self) -> None:
        bus = MessageBus(bus_address=self._address, bus_type=BusType.SYSTEM)
        await bus.connect()
        _wait_when_full(bus)
        bus.add_message_handler(self._on_message)
        await bus.request_name("org.bluez")
        self._bus = bus

    @property
    def connected(self) -> bool:
        return self._bus is not None and self._bus.connected

    async def stop(self) -> None:
        bus, self._bus = self._bus, None
        self.discovering = False
        self._devices.clear()
        self._heard.clear()
        if bus is not None:
            bus.remove_message_handler(self._on_message)  # no replies on a connection being closed
            bus.disconnect()
            with contextlib.suppress(Exception):
                # dbus-fast leaves wait_for_disconnect unannotated (it returns None)
                await asyncio.wait_for(bus.wait_for_disconnect(), 5)  # type: ignore[no-untyped-call]

    async def restart(self, down_s: float = 0.5) -> None:
        """Like `systemctl restart bluetooth`: the name goes away, devices are forgotten, the adapter is back."""
        self._emit_removed(self.adapter_path, [ADAPTER])
        await self.stop()
        await asyncio.sleep(down_s)
        await self.start()
        self._emit_added(self.adapter_path, {ADAPTER: self._adapter_props()})

    def unplug_adapter(self) -> None:
        """Like pulling a USB dongle: bluetoothd stays, the adapter and its devices vanish, calls to it fail."""
        self.adapter_present = False
        self.discovering = False
        for path in list(self._devices):
            self._emit_removed(path, [DEVICE])
        self._devices.clear()
        self._heard.clear()
        self._emit_removed(self.adapter_path, [ADAPTER])

    def plug_adapter(self) -> None:
        """The dongle is back: the adapter appears again, not discovering until someone asks."""
        self.adapter_present = True
        self._emit_added(self.adapter_path, {ADAPTER: self._adapter_props()})

    # --- adverts ---

    def advertise(
        self,
        device_id: str,
        rssi: int,
        manufacturer_data: Mapping[int, bytes] | None = None,
        service_data: Mapping[str, bytes] | None = None,
        tx_power: int | None = None,
    ) -> bool:
        """Deliver one advert as bluetoothd would; False (and counted) when nobody is discovering."""
        if self._bus is None or not self.discovering:
            self.counts["not_discovering"] += 1
            return False
        address = fake_address(device_id)
        path = f"{self.adapter_path}/dev_{address.replace(':', '_')}"
        changed: dict[str, Variant] = {"RSSI": Variant("n", int(rssi))}
        if manufacturer_data is not None:
            changed["ManufacturerData"] = Variant(
                "a{qv}", {k: Variant("ay", bytes(v)) for k, v in manufacturer_data.items()}
            )
        if service_data is not None:
            changed["ServiceData"] = Variant("a{sv}", {k: Variant("ay", bytes(v)) for k, v in service_data.items()})
        if tx_power is not None:
            changed["TxPower"] = Variant("n", int(tx_power))
        self._expire(time.monotonic())
        props = self._devices.get(path)
        if props is None:
            props = {
                "Address": Variant("s", address),
                "AddressType": Variant("s", "random"),
                "Alias": Variant("s", address.replace(":", "-")),
                "Adapter": Variant("o", self.adapter_path),
                "Paired": Variant("b", False),
                "Connected": Variant("b", False),
                "Trusted": Variant("b", False),
                "Blocked": Variant("b", False),
                "LegacyPairing": Variant("b", False),
                "UUIDs": Variant("as", []),
                "ManufacturerData": Variant("a{qv}", {}),
                "ServiceData": Variant("a{sv}", {}),
                **changed,
            }
            self._devices[path] = props
            self._emit_added(path, {DEVICE: props})
        else:
            props.update(changed)
            self._send(Message.new_signal(path, PROPERTIES, "PropertiesChanged", "sa{sv}as", [DEVICE, changed, []]))
        self._heard.pop(path, None)
        self._heard[path] = time.monotonic()
        self.counts["adverts"] += 1
        return True

    def _expire(self, now: float) -> None:
        """Remove the devices not heard for `temporary_timeout_s`, as bluetoothd does with temporary devices."""
        while self._heard:
            path, heard = next(iter(self._heard.items()))
            if now - heard < self.temporary_timeout_s:
                return
            del self._heard[path]
            self._devices.pop(path, None)
            self._emit_removed(path, [DEVICE])
            self.counts["expired"] += 1

    # --- D-Bus plumbing ---

    def _adapter_props(self) -> dict[str, Variant]:
        return {
            "Address": Variant("s", "00:1A:7D:DA:71:13"),
            "AddressType": Variant("s", "public"),
            "Name": Variant("s", "edge-sim"),
            "Alias": Variant("s", "edge-sim"),
            "Class": Variant("u", 0),
            "Powered": Variant("b", True),
            "Discoverable": Variant("b", False),
            "Pairable": Variant("b", False),
            "Discovering": Variant("b", self.discovering),
            "UUIDs": Variant("as", []),
            "Roles": Variant("as", ["central", "peripheral"]),
        }

    def _objects(self) -> dict[str, dict[str, dict[str, Variant]]]:
        if not self.adapter_present:
            return {}
        objects: dict[str, dict[str, dict[str, Variant]]] = {self.adapter_path: {ADAPTER: self._adapter_props()}}
        for path, props in self._devices.items():
            objects[path] = {DEVICE: props}
        return objects

    def _send(self, msg: Message) -> None:
        if self._bus is not None and self._bus.connected:
            self._bus.send(msg)

    def _emit_added(self, path: str, interfaces: dict[str, dict[str, Variant]]) -> None:
        self._send(Message.new_signal("/", OBJECT_MANAGER, "InterfacesAdded", "oa{sa{sv}}", [path, interfaces]))

    def _emit_removed(self, path: str, interfaces: list[str]) -> None:
        self._send(Message.new_signal("/", OBJECT_MANAGER, "InterfacesRemoved", "oas", [path, interfaces]))

    def _set_discovering(self, on: bool) -> None:
        self.discovering = on
        changed = {"Discovering": Variant("b", on)}
        self._send(
            Message.new_signal(self.adapter_path, PROPERTIES, "PropertiesChanged", "sa{sv}as", [ADAPTER, changed, []])
        )

    def _on_message(self, msg: Message) -> Message | bool | None:
        if msg.message_type != MessageType.METHOD_CALL or msg.destination != "org.bluez":
            return None
        self.counts[f"call:{msg.member}"] += 1
        if msg.interface == OBJECT_MANAGER and msg.member == "GetManagedObjects":
            return Message.new_method_return(msg, "a{oa{sa{sv}}}", [self._objects()])
        if msg.path == self.adapter_path and msg.interface == ADAPTER and self.adapter_present:
            if msg.member == "SetDiscoveryFilter":
                self.filters = {k: v.value for k, v in msg.body[0].items()}
                return Message.new_method_return(msg)
            if msg.member in ("StartDiscovery", "StopDiscovery"):
                self._set_discovering(msg.member == "StartDiscovery")
                return Message.new_method_return(msg)
            if msg.member == "RemoveDevice":
                self._devices.pop(msg.body[0], None)
                self._heard.pop(msg.body[0], None)
                self._emit_removed(msg.body[0], [DEVICE])
                return Message.new_method_return(msg)
        if (
            msg.interface == PROPERTIES
            and msg.member == "GetAll"
            and msg.path == self.adapter_path
            and self.adapter_present
        ):
            return Message.new_method_return(msg, "a{sv}", [self._adapter_props()])
        return Message.new_error(msg, "org.freedesktop.DBus.Error.UnknownObject", f"no {msg.member} on {msg.path}")
