"""Sightings from the store's other scanner nodes, over the store's MQTT broker, into the BLE source's queue.

paho-mqtt 2 is driven from the event loop (socket reader/writer callbacks, `loop_misc` once a second), not
from a thread of its own. Each message is parsed (`remote_adverts`) and its adverts enqueued exactly like
the local adapter's; a refused message or advert is counted by reason and logged without its content.
A lost broker is retried with backoff while everything else keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import Counter
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ..clock import Clock
from ..config import Settings
from .ble import BleSource
from .remote_adverts import RemoteAdvertError, parse, scanner_of, topic_filter

log = logging.getLogger(__name__)


class RemoteScanners:
    def __init__(self, settings: Settings, source: BleSource, clock: Clock):
        assert settings.mqtt is not None
        self._mqtt = settings.mqtt
        self._topic = topic_filter(settings.store.id, settings.mqtt.topic_prefix)
        self._client_id = f"{settings.store.device_id}-scanners"
        self._known = {r.id for r in settings.ble.receivers}
        self._source = source
        self._clock = clock
        self.counts: Counter[str] = Counter()
        self.connected = False
        self._lost: asyncio.Event | None = None

    def handle(self, topic: str, payload: bytes) -> None:
        """One message: parse, check the scanner is ours, enqueue; never raises."""
        try:
            batch = parse(payload, scanner_of(topic), self._clock.mono())
        except RemoteAdvertError as exc:
            self._refuse(exc.code, exc.reason, topic)
            return
        if batch.scanner not in self._known:
            self._refuse("unknown_scanner", f"scanner {batch.scanner!r} is not in ble.receivers", topic)
            return
        for reason in batch.refused:
            self._refuse("bad_advert", reason, topic)
        for advert in batch.adverts:
            self._source.enqueue(advert)
        self.counts["adverts"] += len(batch.adverts)
        self.counts["messages"] += 1

    def _refuse(self, code: str, reason: str, topic: str) -> None:
        self.counts[f"refused:{code}"] += 1
        log.warning("remote scanner message on %s refused (%s): %s", topic, code, reason)

    async def run(self) -> None:
        delay = 0.5
        while True:
            try:
                await self._session()
                delay = 0.5
            except (OSError, mqtt.WebsocketConnectionError) as exc:
                log.warning(
                    "remote scanners: broker %s:%d unreachable (%s); retrying in %.1f s",
                    self._mqtt.host,
                    self._mqtt.port,
                    exc,
                    delay,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def _session(self) -> None:
        loop = asyncio.get_running_loop()
        lost = asyncio.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self._client_id, clean_session=True)

        def soon(fn: Any, *args: Any) -> None:  # paho may call these from connect's executor thread
            loop.call_soon_threadsafe(fn, *args)

        client.on_socket_open = lambda c, _u, sock: soon(loop.add_reader, sock, c.loop_read)
        client.on_socket_close = lambda _c, _u, sock: soon(loop.remove_reader, sock)
        client.on_socket_register_write = lambda c, _u, sock: soon(loop.add_writer, sock, c.loop_write)
        client.on_socket_unregister_write = lambda _c, _u, sock: soon(loop.remove_writer, sock)
        client.on_connect = self._on_connect
        client.on_disconnect = lambda *_a: soon(lost.set)
        client.on_message = lambda _c, _u, msg: self.handle(msg.topic, msg.payload)
        await loop.run_in_executor(None, client.connect, self._mqtt.host, self._mqtt.port, self._mqtt.keepalive_s)
        try:
            while not lost.is_set():
                if client.loop_misc() != mqtt.MQTT_ERR_SUCCESS:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), 1.0)
        finally:
            self.connected = False
            sock = client.socket()
            client.disconnect()
            if isinstance(sock, socket.socket) and sock.fileno() >= 0:
                loop.remove_reader(sock)
                loop.remove_writer(sock)
        log.warning("remote scanners: lost the broker %s:%d; reconnecting", self._mqtt.host, self._mqtt.port)

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.warning("remote scanners: broker refused the connection: %s", reason)
            return
        self.connected = True
        client.subscribe(self._topic, qos=0)
        log.info("remote scanners: subscribed to %s", self._topic)
