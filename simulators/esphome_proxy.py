"""A simulated ESPHome Bluetooth proxy: an ESP32 running ESPHome with `bluetooth_proxy:` (passive), as a client
meets it on the native API port — for the agent's tests.

It speaks the API as the firmware does (esphome/components/api: api_frame_helper_plaintext.cpp,
api_frame_helper_noise.cpp, api_connection.cpp, api_pb2_service.cpp; bluetooth_proxy/bluetooth_proxy.cpp),
with aioesphomeapi's own protobuf messages (`aioesphomeapi.api_pb2`, each message's type id read from its
`(id)` option, as the firmware's generated code has it):

- Framing. Plaintext: 0x00, the payload's length and the message type as varints, the protobuf bytes; a frame
  starting with anything else is answered with `0x00 "Bad indicator byte"` and the connection closed (a client
  speaking Noise reads that as "the device is using plaintext"). With a key, Noise_NNpsk0_25519_ChaChaPoly_SHA256
  (the `noiseprotocol` package, as responder): every frame is 0x01 and a 16-bit big-endian length; the client's
  first frame (its hello, empty today) goes into the prologue after `NoiseAPIInit` and its 16-bit length; the
  server hello is 0x01 (the protocol chosen), the node name and the MAC address (12 lower-case hex digits), each
  ended by a zero byte; then the handshake (0x00 and the Noise message, each way); after it each frame holds the
  encrypted type (16 bits), data length (16 bits) and data. A bad handshake is refused with an explicit reject
  frame, 0x01 and the reason — "Handshake MAC failure" for a wrong key, "Bad indicator byte" for a client
  speaking plaintext — and the connection closed. Handshake frames are limited to 128 bytes.
- Messages. Before a HelloRequest only Hello, Ping and Disconnect are taken; anything else closes the
  connection, as the firmware does. HelloResponse (API 1.14, the node name) authenticates at once: ESPHome
  2026.1 removed API passwords, so an AuthenticationRequest is ignored. DeviceInfoRequest → DeviceInfoResponse
  with the passive proxy's `bluetooth_proxy_feature_flags` (passive scan, raw advertisements, scanner state)
  and its `bluetooth_mac_address`; ListEntitiesRequest → ListEntitiesDoneResponse (no entities); Ping ↔ Ping;
  DisconnectRequest → DisconnectResponse and close. SubscribeBluetoothLEAdvertisementsRequest subscribes the
  connection (the firmware always sends raw adverts now, whatever the flags) and is answered with the scanner's
  state; only one connection may hold the subscription — a second is ignored, as the firmware logs "Only one
  API subscription is allowed at a time" and sends it nothing. UnsubscribeBluetoothLEAdvertisementsRequest
  and closing the connection release it.
- Adverts. `advertise()` queues one advert (its address, RSSI, address type and up to 62 bytes: advertising
  data and scan response back to back); queued adverts go out as one BluetoothLERawAdvertisementsResponse every
  100 ms, or at once when 16 are waiting (BLUETOOTH_PROXY_ADVERTISEMENT_BATCH_SIZE). With no subscriber an advert
  is dropped, as the firmware does not scan for nobody.
- Keepalive. With no traffic from a client for `keepalive_s` (60 s on the firmware) it sends a PingRequest, and
  it closes the connection when nothing came for 2.5 times that.

`reboot(down_s)` drops every connection (with `graceful=True` each client first gets a DisconnectRequest, as on
a restart from the firmware; without, the connections just die, as on a power cut), stops listening and comes
back on the same port after `down_s`; queued adverts are lost. `counts` says what happened.

`ad_bytes()` builds advertising data for `advertise()`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any

from aioesphomeapi import api_options_pb2, api_pb2
from aioesphomeapi.model import BluetoothProxyFeature
from cryptography.exceptions import InvalidTag
from noise.connection import NoiseConnection  # type: ignore[import-untyped]

log = logging.getLogger(__name__)

PB: Any = api_pb2  # generated at import: mypy sees none of its message classes
_OPTIONS: Any = api_options_pb2
NOISE_PROTOCOL = b"Noise_NNpsk0_25519_ChaChaPoly_SHA256"
PROLOGUE_INIT = b"NoiseAPIInit"
MAX_HANDSHAKE_FRAME = 128
ESPHOME_VERSION = "2026.1.0"
API_VERSION = (1, 14)
BATCH_SIZE = 16  # BLUETOOTH_PROXY_ADVERTISEMENT_BATCH_SIZE
FLUSH_S = 0.1
MAX_AD_BYTES = 62  # 31 of advertising data + 31 of scan response, the firmware's array
PASSIVE_FEATURES = (
    BluetoothProxyFeature.PASSIVE_SCAN
    | BluetoothProxyFeature.RAW_ADVERTISEMENTS
    | BluetoothProxyFeature.FEATURE_STATE_AND_MODE
)


def _message_types() -> dict[int, Any]:
    """Message type id -> protobuf class, from each message's `(id)` option in api.proto."""
    out = {}
    for name, descriptor in PB.DESCRIPTOR.message_types_by_name.items():
        options = descriptor.GetOptions()
        if options.HasExtension(_OPTIONS.id):
            out[options.Extensions[_OPTIONS.id]] = getattr(PB, name)
    return out


MESSAGES = _message_types()
TYPE_ID = {cls: type_id for type_id, cls in MESSAGES.items()}
OPEN_BEFORE_HELLO = {TYPE_ID[PB.HelloRequest], TYPE_ID[PB.PingRequest], TYPE_ID[PB.DisconnectRequest]}


class _Closed(Exception):
    """The session ends (the firmware's fatal error or a closed socket)."""


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _mac(seed: str, add: int = 0) -> bytes:
    raw = bytearray(hashlib.sha256(seed.encode()).digest()[:6])
    raw[0] = (raw[0] | 0x02) & 0xFE  # locally administered, unicast
    value = int.from_bytes(raw, "big") + add
    return (value & 0xFFFFFFFFFFFF).to_bytes(6, "big")


def _pretty(mac: bytes) -> str:
    return ":".join(f"{b:02X}" for b in mac)


class _Session:
    """One client connection, with the firmware's frame helper and connection state."""

    def __init__(self, sim: EsphomeProxySim, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.sim = sim
        self.reader = reader
        self.writer = writer
        self.noise: Any = None  # the NoiseConnection once the handshake is done
        self.hello = False
        self.client = ""
        self.last_traffic = asyncio.get_running_loop().time()
        self.sent_ping = False

    # --- frames ---

    async def _read_varint(self) -> int:
        value = 0
        for shift in (0, 7, 14, 21):
            byte = (await self.reader.readexactly(1))[0]
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
        raise _Closed("varint too long")

    async def _read_plain(self) -> tuple[int, bytes]:
        indicator = (await self.reader.readexactly(1))[0]
        if indicator != 0x00:
            self.writer.write(b"\x00Bad indicator byte")  # the firmware tells a Noise client it speaks plaintext
            raise _Closed("bad indicator byte")
        size = await self._read_varint()
        kind = await self._read_varint()
        return kind, await self.reader.readexactly(size)

    async def _read_noise_frame(self, handshake: bool) -> bytes:
        header = await self.reader.readexactly(3)
        if header[0] != 0x01:
            if handshake:
                self._reject("Bad indicator byte")
            raise _Closed("bad indicator byte")
        size = header[1] << 8 | header[2]
        if handshake and size > MAX_HANDSHAKE_FRAME:
            self._reject("Bad handshake packet len")
            raise _Closed("handshake frame too long")
        return await self.reader.readexactly(size)

    def _write_noise_frame(self, data: bytes) -> None:
        self.writer.write(bytes((0x01, len(data) >> 8, len(data) & 0xFF)) + data)

    def _reject(self, reason: str) -> None:
        self.sim.counts[f"handshake_refused:{reason}"] += 1
        self._write_noise_frame(b"\x01" + reason.encode())

    async def _handshake(self, key: bytes) -> None:
        client_hello = await self._read_noise_frame(handshake=True)  # its content is ignored (future flags)
        prologue = PROLOGUE_INIT + len(client_hello).to_bytes(2, "big") + client_hello
        self._write_noise_frame(b"\x01" + self.sim.name.encode() + b"\x00" + self.sim.mac.hex().encode() + b"\x00")
        noise = NoiseConnection.from_name(NOISE_PROTOCOL)
        noise.set_as_responder()
        noise.set_psks(psk=key)
        noise.set_prologue(prologue)
        noise.start_handshake()
        frame = await self._read_noise_frame(handshake=True)
        if not frame:
            self._reject("Empty handshake message")
            raise _Closed("empty handshake message")
        if frame[0] != 0x00:
            self._reject("Bad handshake error byte")
            raise _Closed("bad handshake error byte")
        try:
            noise.read_message(frame[1:])
        except InvalidTag:
            self._reject("Handshake MAC failure")
            raise _Closed("wrong key") from None
        except Exception as exc:  # whatever the Noise library refuses, the firmware refuses too
            self._reject("Handshake error")
            raise _Closed(f"handshake error: {exc}") from None
        self._write_noise_frame(b"\x00" + bytes(noise.write_message()))
        self.noise = noise
        self.sim.counts["handshakes"] += 1

    async def _read_message(self) -> tuple[int, bytes]:
        if self.noise is None:
            return await self._read_plain()
        frame = await self._read_noise_frame(handshake=False)
        try:
            plain = bytes(self.noise.decrypt(frame))
        except Exception:  # a frame that does not decrypt ends the session, as on the firmware
            raise _Closed("frame does not decrypt") from None
        if len(plain) < 4:
            raise _Closed("data frame too short")
        kind, size = plain[0] << 8 | plain[1], plain[2] << 8 | plain[3]
        if size > len(plain) - 4:
            raise _Closed("data length beyond the frame")
        return kind, plain[4 : 4 + size]

    def send(self, message: Any) -> None:
        """Encode, frame (encrypt) and write one message now: writes stay in nonce order."""
        if self.writer.is_closing():
            return
        kind, payload = TYPE_ID[type(message)], message.SerializeToString()
        if self.noise is None:
            self.writer.write(b"\x00" + _varint(len(payload)) + _varint(kind) + payload)
        else:
            body = bytes((kind >> 8, kind & 0xFF, len(payload) >> 8, len(payload) & 0xFF)) + payload
            self._write_noise_frame(bytes(self.noise.encrypt(body)))

    # --- the connection ---

    async def run(self) -> None:
        try:
            if self.sim.key is not None:
                await self._handshake(self.sim.key)
            while True:
                kind, payload = await self._read_message()
                self.last_traffic = asyncio.get_running_loop().time()
                self.sent_ping = False
                self._handle(kind, payload)
        except (_Closed, asyncio.IncompleteReadError, ConnectionError) as exc:
            log.debug("proxy %s: connection closed: %s", self.sim.name, exc)
        finally:
            self.sim.gone(self)
            self.writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self.writer.wait_closed()

    def _handle(self, kind: int, payload: bytes) -> None:
        if kind not in OPEN_BEFORE_HELLO and not self.hello:
            self.sim.counts["unauthenticated_access"] += 1
            raise _Closed("a request before HelloRequest")
        cls = MESSAGES.get(kind)
        if cls is None:
            return  # not a message this firmware knows: skipped
        message = cls()
        try:
            message.ParseFromString(payload)
        except Exception:  # undecodable protobuf: the firmware drops the connection
            raise _Closed("undecodable message") from None
        name = cls.DESCRIPTOR.name
        self.sim.counts[f"received:{name}"] += 1
        if name == "HelloRequest":
            self.hello = True
            self.client = message.client_info
            self.sim.clients.append(message.client_info)
            major, minor = API_VERSION
            self.send(
                PB.HelloResponse(
                    api_version_major=major,
                    api_version_minor=minor,
                    server_info=ESPHOME_VERSION,
                    name=self.sim.name,
                )
            )
        elif name == "PingRequest":
            self.send(PB.PingResponse())
        elif name == "DisconnectRequest":
            self.send(PB.DisconnectResponse())
            raise _Closed("the client disconnected")
        elif name == "DisconnectResponse":
            raise _Closed("disconnect acknowledged")
        elif name == "DeviceInfoRequest":
            self.send(self.sim.device_info())
        elif name == "ListEntitiesRequest":
            self.send(PB.ListEntitiesDoneResponse())
        elif name == "SubscribeBluetoothLEAdvertisementsRequest":
            self.sim.subscribe(self)
        elif name == "UnsubscribeBluetoothLEAdvertisementsRequest":
            self.sim.unsubscribe(self)

    async def keepalive(self, keepalive_s: float) -> None:
        loop = asyncio.get_running_loop()
        while not self.writer.is_closing():
            await asyncio.sleep(min(1.0, keepalive_s / 4))
            quiet = loop.time() - self.last_traffic
            if self.sent_ping and quiet > keepalive_s * 2.5:
                self.sim.counts["keepalive_timeouts"] += 1
                self.writer.transport.abort()
                return
            if not self.sent_ping and quiet > keepalive_s and self.hello:
                self.sent_ping = True
                self.sim.counts["pings_sent"] += 1
                self.send(PB.PingRequest())


class EsphomeProxySim:
    """An ESPHome Bluetooth proxy on 127.0.0.1: `key` (32 bytes) turns on the API encryption, `name` is its node
    name. `await start()` returns the port."""

    def __init__(self, key: bytes | None = None, name: str = "proxy-sim", *, keepalive_s: float = 60.0):
        if key is not None and len(key) != 32:
            raise ValueError("an ESPHome API key is 32 bytes")
        self.key = key
        self.name = name
        self.mac = _mac(name)
        self.bluetooth_mac = _mac(name, 2)  # the ESP32's Bluetooth MAC: its base MAC + 2
        self.keepalive_s = keepalive_s
        self.port = 0
        self.counts: Counter[str] = Counter()
        self.clients: list[str] = []  # client_info of every HelloRequest, in order
        self._server: asyncio.Server | None = None
        self._sessions: dict[_Session, asyncio.Task[None]] = {}
        self._subscriber: _Session | None = None
        self._pending: list[Any] = []
        self._flusher: asyncio.Task[None] | None = None

    @property
    def key_b64(self) -> str:
        """The key as ESPHome's YAML (`api: encryption: key:`) and the agent's api_key_file hold it."""
        if self.key is None:
            raise ValueError("this proxy's API is not encrypted")
        return base64.b64encode(self.key).decode("ascii")

    @property
    def connections(self) -> int:
        return len(self._sessions)

    @property
    def subscribed(self) -> bool:
        return self._subscriber is not None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_forever(), name=f"proxy-sim {self.name} flush")
        return self.port

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        await self._go_down(graceful=False)

    async def reboot(self, down_s: float, *, graceful: bool = False) -> None:
        """Drop every connection, stop listening, come back on the same port after `down_s`."""
        self.counts["reboots"] += 1
        await self._go_down(graceful)
        await asyncio.sleep(down_s)
        await self.start()

    async def _go_down(self, graceful: bool) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        self._pending.clear()
        sessions = dict(self._sessions)
        if graceful:  # APIServer::on_shutdown: a DisconnectRequest to each client, then wait for them to go
            for session in sessions:
                session.send(PB.DisconnectRequest())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await asyncio.gather(*sessions.values(), return_exceptions=True)
        for session, task in sessions.items():
            session.writer.transport.abort()
            task.cancel()
        await asyncio.gather(*sessions.values(), return_exceptions=True)
        self._sessions.clear()
        self._subscriber = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.counts["connections"] += 1
        session = _Session(self, reader, writer)
        task = asyncio.current_task()
        assert task is not None
        self._sessions[session] = task
        keepalive = asyncio.create_task(session.keepalive(self.keepalive_s), name=f"proxy-sim {self.name} keepalive")
        try:
            await session.run()
        finally:
            keepalive.cancel()

    def gone(self, session: _Session) -> None:
        self._sessions.pop(session, None)
        if self._subscriber is session:
            self._subscriber = None
            self._pending.clear()

    # --- the Bluetooth proxy ---

    def device_info(self) -> Any:
        return PB.DeviceInfoResponse(
            name=self.name,
            friendly_name=self.name,
            mac_address=_pretty(self.mac),
            esphome_version=ESPHOME_VERSION,
            compilation_time="Jan 14 2026, 09:00:00",
            manufacturer="Espressif",
            model="esp32dev",
            bluetooth_proxy_feature_flags=int(PASSIVE_FEATURES),
            bluetooth_mac_address=_pretty(self.bluetooth_mac),
            api_encryption_supported=self.key is not None,
        )

    def subscribe(self, session: _Session) -> None:
        if self._subscriber is not None:  # "Only one API subscription is allowed at a time"
            self.counts["subscriptions_refused"] += 1
            return
        self._subscriber = session
        self.counts["subscriptions"] += 1
        session.send(
            PB.BluetoothScannerStateResponse(
                state=PB.BLUETOOTH_SCANNER_STATE_RUNNING,
                mode=PB.BLUETOOTH_SCANNER_MODE_PASSIVE,
                configured_mode=PB.BLUETOOTH_SCANNER_MODE_PASSIVE,
            )
        )

    def unsubscribe(self, session: _Session) -> None:
        if self._subscriber is session:
            self._subscriber = None
            self._pending.clear()

    def advertise(self, rssi: int, ad_bytes: bytes, *, address: int | None = None, address_type: int = 1) -> None:
        """One advert heard: sent in the next batch to the subscribed client (dropped with none). `address`
        defaults to one derived from the data, like a device that keeps its address."""
        if len(ad_bytes) > MAX_AD_BYTES:
            raise ValueError(f"{len(ad_bytes)} bytes: a proxy forwards at most {MAX_AD_BYTES}")
        if self._subscriber is None:
            self.counts["adverts_unheard"] += 1
            return
        if address is None:
            address = int.from_bytes(_mac(ad_bytes.hex()), "big")
        self._pending.append(
            PB.BluetoothLERawAdvertisement(address=address, rssi=rssi, address_type=address_type, data=ad_bytes)
        )
        if len(self._pending) >= BATCH_SIZE:
            self._flush()

    def _flush(self) -> None:
        if not self._pending or self._subscriber is None:
            return
        batch, self._pending = self._pending, []
        self._subscriber.send(PB.BluetoothLERawAdvertisementsResponse(advertisements=batch))
        self.counts["batches"] += 1
        self.counts["adverts_sent"] += len(batch)

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            self._flush()


def ad_bytes(
    *,
    flags: int | None = 0x06,
    manufacturer: Mapping[int, bytes] | None = None,
    service: Mapping[str, bytes] | None = None,
    tx_power: int | None = None,
    name: str | None = None,
) -> bytes:
    """Advertising data as a phone or beacon sends it: AD structures for the flags (LE general discoverable, no
    BR/EDR by default), manufacturer data by company id, service data by UUID (sent as 16, 32 or 128 bits,
    whichever is shortest), the TX power level and the complete local name."""
    out = bytearray()

    def structure(kind: int, data: bytes) -> None:
        out.extend(bytes((len(data) + 1, kind)) + data)

    if flags is not None:
        structure(0x01, bytes((flags,)))
    if name is not None:
        structure(0x09, name.encode())
    if tx_power is not None:
        structure(0x0A, (tx_power & 0xFF).to_bytes(1, "little"))
    for company, data in (manufacturer or {}).items():
        structure(0xFF, company.to_bytes(2, "little") + data)
    for uuid, data in (service or {}).items():
        raw = bytes.fromhex(uuid.replace("-", ""))
        if uuid.endswith("-0000-1000-8000-00805f9b34fb") and raw[:2] == b"\x00\x00":
            structure(0x16, raw[2:4][::-1] + data)
        elif uuid.endswith("-0000-1000-8000-00805f9b34fb"):
            structure(0x20, raw[:4][::-1] + data)
        else:
            structure(0x21, raw[::-1] + data)
    return bytes(out)
