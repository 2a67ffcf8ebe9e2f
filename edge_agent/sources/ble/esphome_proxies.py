"""Sightings from ESPHome Bluetooth proxies — ESP32s running ESPHome's `bluetooth_proxy`, unchanged — read over
their native API with aioesphomeapi (the optional extra `edge-agent[esphome]`), into the BLE source's queue.

Each receiver whose profile is an `esphome-proxy` gets a connection of its own to the profile's host and port,
encrypted with the key in the receiver's `api_key_file` (read owner-only, at each attempt) when the profile says
`encrypted`: hello, device info (the proxy must offer raw advertisements), then the raw advertisement
subscription. The proxy sends its adverts in batches (every 100 ms); each advert's data is read
(`ad_structures.py`), its RSSI kept and its device address dropped here, unread — it goes no further than this
callback — and the advert handed to the BLE source exactly as the local adapter's are.

A proxy that reboots or drops off the Wi-Fi is reconnected with jittered backoff (1 s doubling to 30 s; a dead
link is noticed by aioesphomeapi's keepalive within 45 s): one log line when it is lost, one when it is back.
A connection refused for a reason retrying cannot fix — a wrong key, a proxy without encryption where its
profile says encrypted or the other way round, a device without raw advertisements, an unreadable key file — is
logged once, in a line that says what to fix, and retried every 30 s in case someone fixes it. A proxy that is
connected but sends nothing for `ble.stall_s` is reported silent, as scanner nodes are (one line when it falls
silent and one when it is heard again, `/healthz`, `edge_ble_node_silent`): a proxy holds one advert subscription
at a time, so another client holding it (Home Assistant's Bluetooth integration) looks like that.

aioesphomeapi's debug lines print every advert with its device address: its loggers are kept at INFO or above.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import random
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ...clock import Clock
from ...config import Settings
from ...secret_files import SecretFileError, read_private
from . import ad_structures
from .profiles import EsphomeProxyProfile, load_receiver
from .scanner import Advert, BleSource

if TYPE_CHECKING:
    from aioesphomeapi.client import APIClient

log = logging.getLogger(__name__)

FIRST_RETRY_S = 1.0
MAX_RETRY_S = 30.0
CONNECT_TIMEOUT_S = 30.0
KEEPALIVE_S = 10.0  # aioesphomeapi pings this often and gives up after 4.5 times it without an answer
RATE_WINDOW_S = 10.0
INSTALL = "pip install 'edge-agent[esphome]'"
CLIENT_INFO = "edge-agent"

# what an operator must fix (logged once each, retried slowly) — anything else is an outage, retried with backoff
_FIX = {
    "wrong_key": "the proxy refused the API encryption key in api_key_file ({key_file}): it is not the key in the "
    "proxy's YAML (api: encryption: key:)",
    "proxy_not_encrypted": "the proxy's API has no encryption, but its profile says encrypted: set encrypted = "
    "false in the profile, or give the proxy an encryption key and the receiver that key in api_key_file",
    "proxy_encrypted": "the proxy's API is encrypted, but its profile says it is not: set encrypted = true in the "
    "profile and give the receiver the proxy's key in api_key_file",
    "password": "the proxy asks for an API password (api: password:, dropped by ESPHome 2026.1): the agent "
    "connects with the encryption key only; remove the password from the proxy's YAML",
    "no_raw_adverts": "the device offers no raw Bluetooth advertisements: is `bluetooth_proxy:` in its YAML, on a "
    "recent ESPHome?",
}


def proxy_receivers(settings: Settings) -> dict[str, tuple[EsphomeProxyProfile, Path | None]]:
    """The receivers behind an ESPHome Bluetooth proxy: id -> (its profile, its api_key_file)."""
    out: dict[str, tuple[EsphomeProxyProfile, Path | None]] = {}
    for rx in settings.ble.receivers:
        if rx.profile is not None:
            profile = load_receiver(rx.profile)
            if isinstance(profile, EsphomeProxyProfile):
                out[rx.id] = (profile, rx.api_key_file)
    return out


class _Problem(Exception):
    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(eq=False)
class _Proxy:
    """One proxy: how to reach it and what it did."""

    receiver: str
    profile: EsphomeProxyProfile
    key_file: Path | None
    connected: bool = False
    client: APIClient | None = None
    adverts: int = 0
    unread: int = 0  # adverts with neither manufacturer nor service data: nothing the agent reads
    reconnects: int = 0
    connections: int = 0
    connect_failures: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    problem: str | None = None  # why it is not connected, as a code
    reported: str | None = None  # what has been logged about the present outage
    since: float | None = None  # connected since, or lost since
    last_heard: float | None = None
    silent: bool = False
    malformed_logged: bool = False
    recent: deque[tuple[float, int]] = field(default_factory=deque)

    @property
    def where(self) -> str:
        return f"{self.receiver} ({self.profile.host}:{self.profile.port})"


class EsphomeProxies:
    def __init__(self, settings: Settings, source: BleSource, clock: Clock):
        self._source = source
        self._clock = clock
        self._silent_s = settings.ble.stall_s
        self._stopping = False
        self.proxies = {
            rid: _Proxy(rid, profile, key_file) for rid, (profile, key_file) in proxy_receivers(settings).items()
        }

    # --- the tasks ---

    async def run(self) -> None:
        try:
            import aioesphomeapi  # noqa: F401 - an optional extra: present only where a store has proxies
        except ImportError as exc:
            for proxy in self.proxies.values():
                proxy.problem = "aioesphomeapi_missing"
            log.error("ESPHome proxies %s not read: %s; install it with  %s", ", ".join(self.proxies), exc, INSTALL)
            return
        # its debug lines print each advert with the device's address: never in a log of ours
        library_log = logging.getLogger("aioesphomeapi")
        library_log.setLevel(max(library_log.getEffectiveLevel(), logging.INFO))
        self._stopping = False
        async with asyncio.TaskGroup() as tg:
            for proxy in self.proxies.values():
                tg.create_task(self._keep(proxy), name=f"ble.esphome.{proxy.receiver}")
            tg.create_task(self._watch(), name="ble.esphome.watch")

    async def stop(self) -> None:
        """Leave every proxy cleanly (a DisconnectRequest each), while the loop still runs."""
        self._stopping = True
        for proxy in self.proxies.values():
            if proxy.client is not None:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(2.0):
                        await proxy.client.disconnect()

    async def _keep(self, proxy: _Proxy) -> None:
        """Connect, take adverts until the connection ends, and again, with backoff; never raises."""
        delay = FIRST_RETRY_S
        while not self._stopping:
            code = await self._session(proxy)
            if self._stopping:
                return
            if code is None:  # it was up: the first retry soon
                delay = FIRST_RETRY_S
                wait = delay
            elif code in _FIX or code == "key_file":
                wait = MAX_RETRY_S
            else:
                wait, delay = delay, min(delay * 2, MAX_RETRY_S)
            await asyncio.sleep(wait * random.uniform(0.8, 1.2))

    async def _session(self, proxy: _Proxy) -> str | None:
        """One connection: the failure's code if it could not be made, None once it ended after being up."""
        from aioesphomeapi.client import APIClient
        from aioesphomeapi.core import APIConnectionError
        from aioesphomeapi.model import BluetoothProxyFeature

        try:
            key = self._key(proxy)
        except _Problem as problem:
            self._failed(proxy, problem.code, problem.detail)
            return problem.code
        client = APIClient(
            proxy.profile.host,
            proxy.profile.port,
            "",
            noise_psk=key,
            client_info=CLIENT_INFO,
            keepalive=KEEPALIVE_S,
        )
        lost = asyncio.Event()
        expected: list[bool] = []

        async def on_stop(expected_disconnect: bool) -> None:
            expected.append(expected_disconnect)
            lost.set()

        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                await client.connect(on_stop=on_stop, login=True, log_errors=False)
                info = await client.device_info()
            api_version = client.api_version
            assert api_version is not None  # connected
            if not info.bluetooth_proxy_feature_flags_compat(api_version) & BluetoothProxyFeature.RAW_ADVERTISEMENTS:
                raise _Problem("no_raw_adverts", "no raw advertisements")
            client.subscribe_bluetooth_le_raw_advertisements(partial(self._batch, proxy))
        except _Problem as problem:
            client.force_disconnect()
            self._failed(proxy, problem.code, problem.detail)
            return problem.code
        except (APIConnectionError, OSError, TimeoutError) as exc:
            client.force_disconnect()
            code = _code_of(exc)
            self._failed(proxy, code, _reason(exc))
            return code
        self._up(proxy, client)
        try:
            await lost.wait()
        finally:
            proxy.client = None
            if not lost.is_set():  # cancelled: the agent is going away
                client.force_disconnect()
        self._down(proxy, expected_disconnect=bool(expected and expected[-1]))
        return None

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(min(5.0, self._silent_s / 4))
            self.check_silence()

    # --- what happens to a proxy ---

    def _key(self, proxy: _Proxy) -> str | None:
        """The API key (base64, as ESPHome's YAML has it) if the profile says encrypted; _Problem if unusable."""
        if not proxy.profile.encrypted:
            return None
        if proxy.key_file is None:
            raise _Problem("key_file", "api_key_file: missing; its profile says the proxy's API is encrypted")
        try:
            text = read_private(proxy.key_file, "api_key_file").decode("ascii").strip()
            if len(base64.b64decode(text, validate=True)) == 32:
                return text
        except SecretFileError as exc:
            raise _Problem("key_file", str(exc)) from None
        except (UnicodeDecodeError, binascii.Error):
            pass
        raise _Problem(
            "key_file",
            f"api_key_file: {proxy.key_file}: expected the proxy's 32-byte key in base64, 44 characters as in its "
            "YAML (api: encryption: key:)",
        )

    def _failed(self, proxy: _Proxy, code: str, detail: str) -> None:
        """A connection not made: logged once per outage, and once per thing to fix."""
        proxy.connect_failures += 1
        proxy.problem = code
        if proxy.since is None:
            proxy.since = self._clock.mono()  # down from the start
        if code != "unreachable":
            proxy.refused[code] += 1
        if code == "unreachable":
            if proxy.reported is None:
                log.warning("ESPHome proxy %s: cannot connect (%s); retrying in the background", proxy.where, detail)
                proxy.reported = code
        elif proxy.reported != code:
            hint = _FIX[code].format(key_file=proxy.key_file) if code in _FIX else detail
            log.error("ESPHome proxy %s: %s; retrying every %.0f s", proxy.where, hint, MAX_RETRY_S)
            proxy.reported = code

    def _up(self, proxy: _Proxy, client: APIClient) -> None:
        now = self._clock.mono()
        if proxy.connections and proxy.reported is not None and proxy.since is not None:
            log.info("ESPHome proxy %s: connected again after %.0f s", proxy.where, now - proxy.since)
        elif proxy.reported is not None and proxy.since is not None:
            log.info("ESPHome proxy %s: connected after %.0f s, taking its adverts", proxy.where, now - proxy.since)
        else:
            log.info("ESPHome proxy %s: connected, taking its adverts", proxy.where)
        if proxy.connections:
            proxy.reconnects += 1
        proxy.connections += 1
        proxy.connected, proxy.client, proxy.since = True, client, now
        proxy.problem = proxy.reported = None
        proxy.silent = False
        proxy.malformed_logged = False

    def _down(self, proxy: _Proxy, *, expected_disconnect: bool) -> None:
        proxy.connected = False
        proxy.silent = False  # while it is away, the outage is the news
        proxy.since = self._clock.mono()
        proxy.problem = "lost"
        if self._stopping:
            return
        why = "the proxy closed it: restarting?" if expected_disconnect else "the link dropped"
        log.warning("ESPHome proxy %s: connection lost (%s); reconnecting in the background", proxy.where, why)
        proxy.reported = "lost"

    def _batch(self, proxy: _Proxy, message: Any) -> None:
        """A BluetoothLERawAdvertisementsResponse: each advert's data read, its address left behind; never raises."""
        now = self._clock.mono()
        receiver, enqueue, parse = proxy.receiver, self._source.enqueue, ad_structures.parse
        count = 0
        for raw in message.advertisements:
            count += 1
            fields = parse(raw.data)
            if not fields.intact:
                proxy.refused["malformed_ad"] += 1
                if not proxy.malformed_logged:
                    proxy.malformed_logged = True
                    log.warning(
                        "ESPHome proxy %s: an advert with malformed advertising data (what was whole is read; "
                        "more of them only counted)",
                        proxy.receiver,
                    )
            if not fields.manufacturer_data and not fields.service_data:
                proxy.unread += 1
                continue
            enqueue(
                Advert(receiver, now, float(raw.rssi), fields.manufacturer_data, fields.service_data, fields.tx_power)
            )
        proxy.adverts += count
        recent = proxy.recent
        recent.append((now, count))
        while recent[0][0] < now - RATE_WINDOW_S:
            recent.popleft()
        if proxy.silent:
            proxy.silent = False
            since = proxy.last_heard if proxy.last_heard is not None else proxy.since
            log.info(
                "ESPHome proxy %s heard again%s", proxy.receiver, "" if since is None else f" after {now - since:.0f} s"
            )
        proxy.last_heard = now

    def check_silence(self) -> None:
        """Flag, once each, the connected proxies that sent nothing for `stall_s` (while one is away, its outage is
        the news)."""
        now = self._clock.mono()
        for proxy in self.proxies.values():
            if not proxy.connected or proxy.since is None or proxy.silent:
                continue
            quiet_s = now - max(proxy.since, proxy.last_heard or proxy.since)
            if quiet_s >= self._silent_s:
                proxy.silent = True
                log.warning(
                    "ESPHome proxy %s: connected but nothing heard for %.0f s (no device near, its scanner stopped, "
                    "or another client such as Home Assistant holds its one advert subscription); presence goes on "
                    "with the other receivers",
                    proxy.receiver,
                    quiet_s,
                )

    # --- what it says ---

    def health(self) -> dict[str, Any]:
        """For /healthz: per proxy, whether it is connected, what it sent and how recently, what was refused."""
        now = self._clock.mono()
        out: dict[str, Any] = {}
        for rid, proxy in self.proxies.items():
            recent = sum(n for at, n in proxy.recent if at >= now - RATE_WINDOW_S)
            out[rid] = {
                "connected": proxy.connected,
                "adverts": proxy.adverts,
                "adverts_per_s": round(recent / RATE_WINDOW_S, 1),
                "unread": proxy.unread,
                "last_heard_s_ago": None if proxy.last_heard is None else round(now - proxy.last_heard, 1),
                "silent": proxy.silent,
                "reconnects": proxy.reconnects,
                "connect_failures": proxy.connect_failures,
                "problem": proxy.problem,
                "refused": dict(proxy.refused),
            }
        return out

    def metrics(self) -> Iterator[Metric]:
        connected = GaugeMetricFamily(
            "edge_ble_proxy_connected",
            "1 while the agent is connected to an ESPHome Bluetooth proxy",
            labels=["receiver"],
        )
        adverts = CounterMetricFamily(
            "edge_ble_proxy_adverts", "Adverts received from each ESPHome Bluetooth proxy", labels=["receiver"]
        )
        reconnects = CounterMetricFamily(
            "edge_ble_proxy_reconnects", "Connections to an ESPHome proxy made again after a loss", labels=["receiver"]
        )
        refused = CounterMetricFamily(
            "edge_ble_proxy_refused",
            "What an ESPHome proxy connection or advert was refused for (wrong_key, malformed_ad, …)",
            labels=["receiver", "reason"],
        )
        silent = GaugeMetricFamily(
            "edge_ble_node_silent", "1 while a scanner node has sent nothing for ble.stall_s", labels=["scanner"]
        )
        for rid, proxy in self.proxies.items():
            connected.add_metric([rid], int(proxy.connected))
            adverts.add_metric([rid], proxy.adverts)
            reconnects.add_metric([rid], proxy.reconnects)
            for reason, n in proxy.refused.items():
                refused.add_metric([rid, reason], n)
            silent.add_metric([rid], int(proxy.silent))
        yield from (connected, adverts, reconnects, refused, silent)


def _code_of(exc: BaseException) -> str:
    """A failed connection's exception, as a code: what to fix, or `unreachable`."""
    from aioesphomeapi.core import (
        EncryptionHelloAPIError,
        EncryptionPlaintextAPIError,
        InvalidAuthAPIError,
        InvalidEncryptionKeyAPIError,
        RequiresEncryptionAPIError,
    )

    if isinstance(exc, InvalidEncryptionKeyAPIError):
        return "wrong_key"
    if isinstance(exc, EncryptionPlaintextAPIError | EncryptionHelloAPIError):
        return "proxy_not_encrypted"
    if isinstance(exc, RequiresEncryptionAPIError):
        return "proxy_encrypted"
    if isinstance(exc, InvalidAuthAPIError):
        return "password"
    return "unreachable"


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "…"
