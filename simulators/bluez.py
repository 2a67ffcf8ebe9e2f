"""A simulated BlueZ on a private D-Bus, for the real bleak scanner in tests and the demo.

`PrivateBus` starts its own `dbus-daemon` (never the machine's); `SimulatedBlueZ` owns `org.bluez` on it,
built on dbus-fast (a bleak dependency): an object manager, one adapter (`Adapter1`: SetDiscoveryFilter,
StartDiscovery, StopDiscovery, RemoveDevice), and devices whose adverts arrive as `InterfacesAdded` and then
`PropertiesChanged` of `org.bluez.Device1` — exactly what bluetoothd emits while discovering. Like bluetoothd
(`TemporaryTimeout` in main.conf, 30 s), a device not heard for `temporary_timeout_s` is removed
(`InterfacesRemoved`), so a long day of passing phones does not pile up in the scanner. `restart()` drops the
name and comes back like a restarted bluetoothd; `unplug_adapter()` / `plug_adapter()` take the adapter away
and bring it back, as pulling out a USB dongle does.

The adapter also advertises, as bluetoothd's `LEAdvertisingManager1` (src/advertising.c) does: a
`RegisterAdvertisement` is answered only after the simulator has read the caller's `org.bluez.LEAdvertisement1`
object back (`Properties.GetAll` on the caller's path) and checked it the way bluetoothd parses it (Type,
ManufacturerData, ServiceData, MinInterval/MaxInterval, TxPower, 31 bytes of legacy advertising data); a
registration lives until it is unregistered, its owner leaves the bus, the adapter is unplugged (bluetoothd
calls `Release` on each advert first) or bluetoothd restarts (the process dies, nothing is released).
`advertisements` holds what is registered now, `advertised` every registration in order, and `on_air()` the
bytes a controller would send for one.

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
from dataclasses import dataclass
from typing import Any

from dbus_fast import BusType, Message, MessageFlag, MessageType, Variant
from dbus_fast.aio import MessageBus

from edge_agent.sources.ble.bluez_calls import add_match

OBJECT_MANAGER = "org.freedesktop.DBus.ObjectManager"
PROPERTIES = "org.freedesktop.DBus.Properties"
ADAPTER = "org.bluez.Adapter1"
DEVICE = "org.bluez.Device1"
ADVERTISING_MANAGER = "org.bluez.LEAdvertisingManager1"
ADVERTISEMENT = "org.bluez.LEAdvertisement1"
LEGACY_ADV_BYTES = 31  # what one legacy advertising PDU carries; bluetoothd refuses more without extended adverts
_OWNER_CHANGES = "type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged'"


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


@dataclass(frozen=True, slots=True)
class Advertisement:
    """One registration as bluetoothd keeps it: who registered it (unique bus name), where the object is, and
    the properties read from it, unwrapped (`ManufacturerData` as {company id: bytes})."""

    owner: str
    path: str
    properties: dict[str, Any]

    @property
    def manufacturer_data(self) -> dict[int, bytes]:
        return dict(self.properties.get("ManufacturerData", {}))


class _Refused(Exception):
    """A registration bluetoothd would answer with an error."""

    def __init__(self, name: str, text: str):
        super().__init__(text)
        self.name = name
        self.text = text


def fake_address(device_id: str) -> str:
    """A random-static-looking address for a simulated phone (what a real one would rotate)."""
    raw = bytearray(hashlib.sha256(device_id.encode()).digest()[:6])
    raw[0] |= 0xC0
    return ":".join(f"{b:02X}" for b in raw)


class SimulatedBlueZ:
    def __init__(
        self,
        bus_address: str,
        adapter: str = "hci0",
        temporary_timeout_s: float = 30.0,
        supported_instances: int = 5,
        bredr: bool = True,
    ):
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
        self.supported_instances = supported_instances  # the controller's advertising sets (kernel: 5 in software)
        self.bredr = bredr  # BR/EDR enabled, as on a Pi; an LE-only adapter adds the "no BR/EDR" flag on air
        self._registered: dict[tuple[str, str], Advertisement] = {}  # (owner, path) → advert, in order
        self._pending: set[tuple[str, str]] = set()  # registrations waiting for the advert's properties
        self._tasks: set[asyncio.Task[None]] = set()
        self.advertised: list[Advertisement] = []  # every registration that succeeded, in order

    # --- lifecycle ---

    async def start(self) -> None:
        bus = MessageBus(bus_address=self._address, bus_type=BusType.SYSTEM)
        await bus.connect()
        _wait_when_full(bus)
        self._bus = bus  # before the name is ours: a client may register the moment it sees bluetoothd
        bus.add_message_handler(self._on_message)
        # bluetoothd drops the adverts of a client that leaves the bus (a disconnect watch per registration)
        await add_match(bus, _OWNER_CHANGES)
        await bus.request_name("org.bluez")

    @property
    def connected(self) -> bool:
        return self._bus is not None and self._bus.connected

    @property
    def advertisements(self) -> list[Advertisement]:
        """The adverts registered now, oldest first."""
        return list(self._registered.values())

    async def stop(self) -> None:
        bus, self._bus = self._bus, None
        self.discovering = False
        self._devices.clear()
        self._heard.clear()
        self._registered.clear()  # the process is gone: its adverts with it, nobody is told
        self._pending.clear()
        for task in list(self._tasks):
            task.cancel()
        if bus is not None:
            bus.remove_message_handler(self._on_message)  # no replies on a connection being closed
            bus.disconnect()
            with contextlib.suppress(Exception):
                # dbus-fast leaves wait_for_disconnect unannotated (it returns None)
                await asyncio.wait_for(bus.wait_for_disconnect(), 5)  # type: ignore[no-untyped-call]

    async def restart(self, down_s: float = 0.5) -> None:
        """Like `systemctl restart bluetooth`: the name goes away, devices and adverts are forgotten, the adapter
        is back (with no advert registered: each client must register again)."""
        self._emit_removed(self.adapter_path, [ADAPTER, ADVERTISING_MANAGER])
        await self.stop()
        await asyncio.sleep(down_s)
        await self.start()
        self._emit_added(self.adapter_path, self._adapter_interfaces())

    def unplug_adapter(self) -> None:
        """Like pulling a USB dongle: bluetoothd stays, the adapter and its devices vanish, calls to it fail.
        Each registered advert is released first (`Release` on its object), as bluetoothd's manager does."""
        self.adapter_present = False
        self.discovering = False
        for path in list(self._devices):
            self._emit_removed(path, [DEVICE])
        self._devices.clear()
        self._heard.clear()
        for advert in self._registered.values():
            release = Message(
                destination=advert.owner,
                path=advert.path,
                interface=ADVERTISEMENT,
                member="Release",
                flags=MessageFlag.NO_REPLY_EXPECTED,
            )
            self._send(release)
            self.counts["released"] += 1
        self._registered.clear()
        self._pending.clear()  # a registration still reading its advert fails ("Failed to complete registration")
        self._emit_removed(self.adapter_path, [ADAPTER, ADVERTISING_MANAGER])

    def plug_adapter(self) -> None:
        """The dongle is back: the adapter appears again, not discovering until someone asks, advertising nothing."""
        self.adapter_present = True
        self._emit_added(self.adapter_path, self._adapter_interfaces())

    def on_air(self, advert: Advertisement) -> bytes:
        """The advertising data a controller sends for this advert: AD structures (length, type, data).

        Flags as the kernel adds them to an advert that sets none itself (net/bluetooth/eir.c): none for a
        broadcast advert on an adapter with BR/EDR enabled; "LE General Discoverable" for a peripheral advert
        while the adapter is discoverable; "BR/EDR not supported" on an LE-only adapter. Then, in bluetoothd's
        order (src/shared/ad.c), each manufacturer's data: `len, 0xFF, company id little-endian, value`. Only
        these are simulated: an advert with other content raises ValueError."""
        unsupported = set(advert.properties) - {"Type", "ManufacturerData", "MinInterval", "MaxInterval", "TxPower"}
        if unsupported:
            raise ValueError(f"not simulated on air: {', '.join(sorted(unsupported))}")
        flags = 0
        if advert.properties.get("Type", "broadcast") == "peripheral" and self._adapter_props()["Discoverable"].value:
            flags |= 0x02
        if not self.bredr:
            flags |= 0x04
        data = bytes([2, 0x01, flags]) if flags else b""
        for company, value in advert.manufacturer_data.items():
            data += bytes([len(value) + 3, 0xFF]) + company.to_bytes(2, "little") + value
        return data

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

    def _advertising_props(self) -> dict[str, Variant]:
        active = len(self._registered) + len(self._pending)
        return {
            "ActiveInstances": Variant("y", active),
            "SupportedInstances": Variant("y", max(self.supported_instances - active, 0)),  # what is left
            "SupportedIncludes": Variant("as", ["tx-power", "appearance", "local-name"]),
        }

    def _adapter_interfaces(self) -> dict[str, dict[str, Variant]]:
        return {ADAPTER: self._adapter_props(), ADVERTISING_MANAGER: self._advertising_props()}

    def _objects(self) -> dict[str, dict[str, dict[str, Variant]]]:
        if not self.adapter_present:
            return {}
        objects: dict[str, dict[str, dict[str, Variant]]] = {self.adapter_path: self._adapter_interfaces()}
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
        if msg.message_type == MessageType.SIGNAL and msg.member == "NameOwnerChanged":
            self._owner_changed(msg)
            return None
        if msg.message_type != MessageType.METHOD_CALL or msg.destination != "org.bluez":
            return None
        self.counts[f"call:{msg.member}"] += 1
        if msg.interface == OBJECT_MANAGER and msg.member == "GetManagedObjects":
            return Message.new_method_return(msg, "a{oa{sa{sv}}}", [self._objects()])
        if msg.path == self.adapter_path and msg.interface == ADVERTISING_MANAGER and self.adapter_present:
            return self._advertising_call(msg)
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
            interfaces = self._adapter_interfaces()
            asked = msg.body[0] if msg.signature == "s" else ADAPTER
            if asked not in interfaces:
                return Message.new_error(msg, "org.freedesktop.DBus.Error.InvalidArgs", f"no interface {asked}")
            return Message.new_method_return(msg, "a{sv}", [interfaces[asked]])
        # libdbus's answer for a path with no object (the adapter unplugged): UnknownObject
        return Message.new_error(msg, "org.freedesktop.DBus.Error.UnknownObject", f"no {msg.member} on {msg.path}")

    # --- advertising (bluetoothd's src/advertising.c) ---

    def _advertising_call(self, msg: Message) -> Message | bool:
        if msg.member == "RegisterAdvertisement" and msg.signature == "oa{sv}":
            key = (msg.sender or "", msg.body[0])
            if key in self._registered or key in self._pending:
                return Message.new_error(msg, "org.bluez.Error.AlreadyExists", "Already Exists")
            if len(self._registered) + len(self._pending) >= self.supported_instances:
                return Message.new_error(msg, "org.bluez.Error.NotPermitted", "Maximum advertisements reached")
            self._pending.add(key)
            task = asyncio.get_running_loop().create_task(self._register(msg, key), name="bluez.register")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return True  # answered by the task, once the advert has been read
        if msg.member == "UnregisterAdvertisement" and msg.signature == "o":
            if self._registered.pop((msg.sender or "", msg.body[0]), None) is None:
                return Message.new_error(msg, "org.bluez.Error.DoesNotExist", "Does Not Exist")
            self._instances_changed()
            return Message.new_method_return(msg)
        if msg.member in ("RegisterAdvertisement", "UnregisterAdvertisement"):
            return Message.new_error(msg, "org.bluez.Error.InvalidArguments", "Invalid arguments in method call")
        return Message.new_error(msg, "org.freedesktop.DBus.Error.UnknownMethod", f"no {msg.member}")

    async def _register(self, msg: Message, key: tuple[str, str]) -> None:
        """Read the caller's advert back, check it as bluetoothd parses it, then answer the registration."""
        owner, path = key
        try:
            advert = Advertisement(owner, path, _parse_advertisement(await self._read_advert(owner, path)))
            if key not in self._pending:  # unplugged while reading: bluetoothd's client_free answers so
                raise _Refused("org.bluez.Error.Failed", "Failed to complete registration")
            if not self._fits(advert):
                raise _Refused("org.bluez.Error.Failed", "Failed to parse advertisement.")
        except _Refused as refused:
            self._pending.discard(key)
            self._send(Message.new_error(msg, refused.name, refused.text))
            return
        self._pending.discard(key)
        self._registered[key] = advert
        self.advertised.append(advert)
        self.counts["registered"] += 1
        self._instances_changed()
        self._send(Message.new_method_return(msg))

    async def _read_advert(self, owner: str, path: str) -> dict[str, Variant]:
        """`Properties.GetAll("org.bluez.LEAdvertisement1")` on the caller's object. (bluetoothd would leave the
        registration waiting for an object that cannot be read; refused here, so a test sees why.)"""
        get_all = Message(
            destination=owner, path=path, interface=PROPERTIES, member="GetAll", signature="s", body=[ADVERTISEMENT]
        )
        bus = self._bus
        if bus is None:
            raise _Refused("org.bluez.Error.Failed", "Failed to complete registration")
        try:
            async with asyncio.timeout(5.0):
                reply = await bus.call(get_all)
        except (TimeoutError, OSError, EOFError) as exc:
            raise _Refused("org.bluez.Error.Failed", f"Failed to register advertisement ({exc!r})") from exc
        if reply.message_type != MessageType.METHOD_RETURN or reply.signature != "a{sv}":
            raise _Refused("org.bluez.Error.Failed", "Failed to register advertisement")
        props: dict[str, Variant] = reply.body[0]
        return props

    def _fits(self, advert: Advertisement) -> bool:
        """Whether its advertising data fits one legacy advert (content not simulated on air is not checked)."""
        try:
            return len(self.on_air(advert)) <= LEGACY_ADV_BYTES
        except ValueError:
            return True

    def _instances_changed(self) -> None:
        props = self._advertising_props()
        changed = {k: props[k] for k in ("ActiveInstances", "SupportedInstances")}
        self._send(
            Message.new_signal(
                self.adapter_path, PROPERTIES, "PropertiesChanged", "sa{sv}as", [ADVERTISING_MANAGER, changed, []]
            )
        )

    def _owner_changed(self, msg: Message) -> None:
        """A client left the bus: bluetoothd's disconnect watch removes its adverts (no Release: it is gone)."""
        body = msg.body
        if msg.sender != "org.freedesktop.DBus" or len(body) != 3 or not str(body[0]).startswith(":") or body[2]:
            return
        gone = [key for key in self._registered if key[0] == body[0]]
        for key in gone:
            del self._registered[key]
        if gone:
            self.counts["owner_left"] += len(gone)
            self._instances_changed()


def _parse_advertisement(props: dict[str, Variant]) -> dict[str, Any]:
    """The properties bluetoothd reads from an advert, checked as its parsers do (src/advertising.c); the ones
    this simulator does not model are kept unchecked. Refused as bluetoothd does: "Failed to parse advertisement."
    """
    parsed: dict[str, Any] = {}
    for name, variant in props.items():
        parsed[name] = _check(name, variant)
    if parsed.get("MinInterval", 0) > parsed.get("MaxInterval", 0):  # so MinInterval alone is refused too
        raise _Refused("org.bluez.Error.Failed", "Failed to parse advertisement.")
    return parsed


def _check(name: str, variant: Variant) -> Any:
    bad = _Refused("org.bluez.Error.Failed", "Failed to parse advertisement.")
    sig, value = variant.signature, variant.value
    if name == "Type":
        if sig != "s" or value not in ("broadcast", "peripheral"):
            raise bad
        return value
    if name == "ManufacturerData":
        if sig != "a{qv}" or any(v.signature != "ay" for v in value.values()):
            raise bad
        return {int(k): bytes(v.value) for k, v in value.items()}
    if name == "ServiceData":
        if sig != "a{sv}" or any(v.signature != "ay" for v in value.values()):
            raise bad
        return {str(k): bytes(v.value) for k, v in value.items()}
    if name in ("MinInterval", "MaxInterval"):
        # milliseconds, turned into 0.625 ms slots that must lie in 0x20…0xFFFFFF (Core 5.2, Vol 4, Part E)
        if sig != "u" or not 0x20 <= int(value / 0.625) <= 0xFFFFFF:
            raise bad
        return value
    if name == "TxPower":
        if sig != "n" or not -127 <= value <= 20:
            raise bad
        return value
    return _plain(variant)


def _plain(value: Any) -> Any:
    if isinstance(value, Variant):
        return _plain(value.value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
