"""The MQTT link: paho-mqtt 2 driven by the agent's asyncio loop, never by a thread of its own.

paho's socket callbacks put its socket on the loop (reader, writer, a once-a-second keepalive tick), so
reads, writes and callbacks all happen on the loop. Only the blocking part of connecting (DNS, TCP and the
TLS handshake) runs in an executor thread. Every publish returns a future that the broker's PUBACK
resolves (QoS 1; for QoS 0, the write to the socket), so callers delete what they sent only once the
broker has it. The link reconnects by itself with exponential backoff and jitter; the session is
persistent (clean session off), the retained `status` says `online` on every connect and `stopped` after a
clean close, and the broker publishes the last will `offline` if the agent vanishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from .config import MqttSettings
from .secret_files import SecretFileError, read_private

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 24 * 3600  # MQTT 5: the broker keeps the session (and queued commands) this long


class LinkError(Exception):
    """Something the link could not do; the subclasses say what."""


class LinkDown(LinkError):
    """Not connected, or the connection dropped before the broker acknowledged."""


class PublishRefused(LinkError):
    """The broker answered the publish with a failure reason (MQTT 5), e.g. not authorised."""


class LinkConfigError(LinkError):
    """TLS or credential files that cannot be used; names the key."""


@dataclass(frozen=True)
class Incoming:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int
    session: int  # which connection brought it: an ack is only valid on that one


def backoff_delay(attempt: int, low: float, high: float, rng: random.Random) -> float:
    """Exponential backoff with 'equal jitter': between half and all of min(high, low * 2^attempt)."""
    ceiling: float = min(high, low * 2 ** min(attempt, 32))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


class MqttLink:
    def __init__(
        self,
        settings: MqttSettings,
        client_id: str,
        *,
        subscriptions: Sequence[str] = (),
        status_topic: str | None = None,
        persistent: bool = True,
        inbox_size: int = 1000,
        rng: random.Random | None = None,
    ):
        self._settings = settings
        self._subscriptions = list(subscriptions)
        self._status_topic = status_topic
        self._rng = rng or random.Random()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._pending: dict[int, asyncio.Future[None]] = {}
        self._misc: asyncio.Task[None] | None = None
        self._down = asyncio.Event()
        self._answered = asyncio.Event()  # CONNACK (either way) or the connection dropped
        self._closing = False
        self._reached_broker = False
        self.connected = asyncio.Event()
        self.inbox: asyncio.Queue[Incoming] = asyncio.Queue(maxsize=inbox_size)
        self.counts: Counter[str] = Counter()
        self.on_connected: Callable[[], None] | None = None
        self._client = self._make_client(client_id, persistent)

    def _make_client(self, client_id: str, persistent: bool) -> mqtt.Client:
        s = self._settings
        v5 = s.protocol == "5"
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=None if v5 else not persistent,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            manual_ack=True,  # a downlink message is acknowledged only once it has been handled
        )
        self._persistent = persistent
        client.connect_timeout = s.connect_timeout_s
        client.max_inflight_messages_set(max(20, 2 * s.inflight_batches))
        client.max_queued_messages_set(0)
        if s.tls_ca_file or s.tls_cert_file:
            try:
                if s.tls_key_file is not None:
                    read_private(s.tls_key_file, "mqtt.tls_key_file")
                client.tls_set(
                    ca_certs=str(s.tls_ca_file) if s.tls_ca_file else None,
                    certfile=str(s.tls_cert_file) if s.tls_cert_file else None,
                    keyfile=str(s.tls_key_file) if s.tls_key_file else None,
                    cert_reqs=ssl.CERT_REQUIRED,
                    tls_version=ssl.PROTOCOL_TLS_CLIENT,
                )
            except SecretFileError as exc:
                raise LinkConfigError(str(exc)) from None
            except (OSError, ssl.SSLError) as exc:
                raise LinkConfigError(f"mqtt.tls_*_file: cannot load the TLS files ({exc})") from None
        if s.username is not None:
            password = None
            if s.password_file is not None:
                try:
                    raw = read_private(s.password_file, "mqtt.password_file")
                    password = raw.decode("utf-8").rstrip("\r\n")
                except (SecretFileError, UnicodeDecodeError) as exc:
                    raise LinkConfigError(str(exc)) from None
            client.username_pw_set(s.username, password)
        if self._status_topic:
            client.will_set(self._status_topic, b"offline", qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        return client

    # --- running -------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Keep the link up until `close()`: connect, wait for the drop, back off, reconnect."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        attempt = 0
        try:
            while not self._closing:
                self._down.clear()
                self._reached_broker = False
                try:
                    await self._loop.run_in_executor(None, self._connect_blocking)
                except (OSError, ssl.SSLError, ssl.CertificateError, ValueError) as exc:
                    self.counts["connect_failures"] += 1
                    log.warning("cannot reach the MQTT broker %s:%s: %s", self._settings.host, self._settings.port, exc)
                else:
                    await self._await_connack()
                    await self._down.wait()
                    if not self._reached_broker and not self._closing:
                        self.counts["connect_failures"] += 1
                        log.warning(
                            "the connection ended before the MQTT broker accepted it (certificate, credentials?)"
                        )
                if self._closing:
                    return
                attempt = 0 if self._reached_broker else attempt + 1
                delay = backoff_delay(
                    attempt, self._settings.reconnect_min_s, self._settings.reconnect_max_s, self._rng
                )
                log.info("MQTT link down; reconnecting in %.1f s", delay)
                await asyncio.sleep(delay)
        finally:
            self._drop_socket()

    async def _await_connack(self) -> None:
        """A broker that takes the connection but never answers CONNECT is given up on after connect_timeout_s."""
        self._answered.clear()
        try:
            await asyncio.wait_for(self._answered.wait(), self._settings.connect_timeout_s)
        except TimeoutError:
            log.warning("no CONNACK from the MQTT broker within %.0f s", self._settings.connect_timeout_s)
            self._client.disconnect()

    def _connect_blocking(self) -> None:
        """DNS, TCP, TLS and sending CONNECT: the only part that may block, so it runs in a thread."""
        s = self._settings
        if s.protocol == "5":
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho leaves it unannotated
            props.SessionExpiryInterval = SESSION_EXPIRY_S if self._persistent else 0
            self._client.connect(s.host, s.port, s.keepalive_s, clean_start=not self._persistent, properties=props)
        else:
            self._client.connect(s.host, s.port, s.keepalive_s)

    async def close(self, timeout: float = 5.0) -> None:
        """A clean exit: retained status `stopped`, then DISCONNECT (so the broker does not send the will)."""
        self._closing = True
        if self.connected.is_set():
            if self._status_topic:
                with contextlib.suppress(LinkError, TimeoutError):
                    await asyncio.wait_for(self.publish(self._status_topic, b"stopped", qos=1, retain=True), timeout)
            self._client.disconnect()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._down.wait(), timeout)
        self._down.set()
        self._drop_socket()

    def _drop_socket(self) -> None:
        sock = self._client.socket()
        if sock is not None and self._loop is not None:
            self._loop.remove_reader(sock)
            self._loop.remove_writer(sock)
        if self._misc is not None:
            self._misc.cancel()
            self._misc = None
        self._fail_pending("link closed")

    # --- publishing and acknowledging ----------------------------------------------------------------

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> asyncio.Future[None]:
        """Send one message; the future completes when the broker has it (PUBACK) or fails with LinkError."""
        loop = self._loop or asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        if not self.connected.is_set():
            future.set_exception(LinkDown("not connected to the broker"))
            return future
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            future.set_exception(LinkDown(mqtt.error_string(info.rc)))
            return future
        self._pending[info.mid] = future
        self.counts["published"] += 1
        return future

    def ack(self, message: Incoming) -> None:
        """Tell the broker a downlink message was handled (QoS 1: it will not send it again)."""
        if message.qos > 0 and self.connected.is_set() and message.session == self.counts["connects"]:
            self._client.ack(message.mid, message.qos)

    async def deliver(self, handle: Callable[[str, bytes], None]) -> None:
        """Hand every incoming message to `handle` (which must not raise), acknowledging each once handled."""
        while True:
            message = await self.inbox.get()
            try:
                handle(message.topic, message.payload)
            finally:
                self.ack(message)

    def _fail_pending(self, why: str) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(LinkDown(why))

    # --- paho callbacks (on the loop, except socket open/register during a connect) ------------------

    def _on_connect(self, client: mqtt.Client, _u: Any, flags: Any, reason: ReasonCode, _p: Any) -> None:
        self._answered.set()
        if reason.is_failure:
            self.counts["refused"] += 1
            log.error("the MQTT broker refused the connection: %s", reason)
            return
        self._reached_broker = True
        self.counts["connects"] += 1
        log.info("MQTT link up (%s:%s, session present: %s)", self._settings.host, self._settings.port, flags)
        if self._subscriptions:
            client.subscribe([(topic, 1) for topic in self._subscriptions])
        self.connected.set()
        if self._status_topic:
            self.publish(self._status_topic, b"online", qos=1, retain=True).add_done_callback(retrieve)
        if self.on_connected is not None:
            self.on_connected()

    def _on_disconnect(self, client: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        was_up = self.connected.is_set()
        self.connected.clear()
        if was_up:
            self.counts["disconnects"] += 1
            (log.info if self._closing else log.warning)("MQTT link closed: %s", reason)
        # What was not acknowledged stays in the outbox and is sent again from there; paho must not also
        # resend its own copies after the reconnect.
        client.drop_out_messages()
        self._fail_pending(f"disconnected ({reason})")
        self._answered.set()
        self._down.set()

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        future = self._pending.pop(mid, None)
        if future is None or future.done():
            return
        if reason.is_failure:
            self.counts["publish_refused"] += 1
            future.set_exception(PublishRefused(str(reason)))
        else:
            self.counts["acked"] += 1
            future.set_result(None)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.counts["received"] += 1
        try:
            self.inbox.put_nowait(
                Incoming(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain), msg.mid, self.counts["connects"])
            )
        except asyncio.QueueFull:
            # Not acknowledged, so the broker sends it again after the next reconnect.
            self.counts["inbox_full"] += 1

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, reasons: list[ReasonCode], _p: Any) -> None:
        refused = [t for t, r in zip(self._subscriptions, reasons, strict=False) if r.is_failure]
        if refused:
            self.counts["subscribe_refused"] += len(refused)
            log.error("the broker refused these subscriptions (check its ACL): %s", ", ".join(refused))

    def _on_loop(self, fn: Callable[[], object]) -> None:
        assert self._loop is not None
        if threading.get_ident() == self._loop_thread:
            fn()
        else:
            self._loop.call_soon_threadsafe(fn)

    def _on_socket_open(self, client: mqtt.Client, _u: Any, sock: Any) -> None:
        def register() -> None:
            assert self._loop is not None
            self._loop.add_reader(sock, self._read, client, sock)
            if self._misc is None or self._misc.done():
                self._misc = self._loop.create_task(self._tick(client), name="mqtt.keepalive")

        self._on_loop(register)

    def _on_socket_close(self, _c: mqtt.Client, _u: Any, sock: Any) -> None:
        # By the number it has now: called from another thread, the socket is closed (fileno -1) by the time
        # the loop runs this, and the loop must still forget it.
        fd = sock.fileno()

        def unregister() -> None:
            assert self._loop is not None
            if fd < 0:
                return
            self._loop.remove_reader(fd)
            self._loop.remove_writer(fd)

        self._on_loop(unregister)

    def _on_register_write(self, client: mqtt.Client, _u: Any, sock: Any) -> None:
        self._on_loop(lambda: self._loop.add_writer(sock, client.loop_write) if self._loop else None)

    def _on_unregister_write(self, _c: mqtt.Client, _u: Any, sock: Any) -> None:
        self._on_loop(lambda: self._loop.remove_writer(sock) if self._loop else None)

    @staticmethod
    def _read(client: mqtt.Client, sock: Any) -> None:
        client.loop_read()
        # TLS may hold decrypted bytes the selector cannot see; read them now rather than after a stall.
        while client.socket() is sock and getattr(sock, "pending", lambda: 0)() > 0:
            client.loop_read()

    async def _tick(self, client: mqtt.Client) -> None:
        while True:
            await asyncio.sleep(1.0)
            client.loop_misc()


def retrieve(future: asyncio.Future[None]) -> None:
    """A done-callback for futures nobody awaits, so a failure is not reported as never retrieved."""
    if not future.cancelled():
        future.exception()
