"""The store Wi-Fi's way in for app reports: a listener of its own that serves one route, rate-limited.

The agent's main HTTP listener serves screens, kiosks and the dashboard, and is kept on the host or a staff
network; phones on the store's guest Wi-Fi must reach only `POST /api/ble/report`, so that route gets a second
listener (`http.report_listen`) that knows nothing else. Each sending address may post
`http.report_rate_per_minute` reports a minute; beyond that it is told to wait (429, Retry-After), before a
byte of the report is read. The answer says whether the report was taken and, if not, the refusal's code only.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterator

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, Metric

from ...clock import Clock
from . import reports
from .report_intake import ReportIntake

log = logging.getLogger(__name__)

ROUTE = "/api/ble/report"
MAX_SENDERS = 10_000  # addresses whose minute is tracked; beyond that the oldest minute is forgotten
_STATUS = {
    "malformed": 400,
    "version": 400,
    "too_large": 413,
    "stale": 422,
    "stale_minor": 422,
    "unknown_token": 403,
    "no_consent": 403,
    "bad_tag": 403,
    "replay": 409,
    "stale_roster": 503,
    "overloaded": 503,
}


class RateLimit:
    """At most `per_minute` per address in each fixed minute; a bounded table of addresses."""

    def __init__(self, per_minute: int, clock: Clock):
        self._per_minute = per_minute
        self._clock = clock
        self._windows: dict[str, tuple[int, int]] = {}  # address → (minute, count)

    def wait_s(self, address: str) -> float:
        """0 when this address may send now (and counts it), else how long until it may."""
        now = self._clock.mono()
        minute = math.floor(now / 60)
        start, count = self._windows.get(address, (minute, 0))
        if start != minute:
            count = 0
        if count >= self._per_minute:
            return (minute + 1) * 60 - now
        if address not in self._windows and len(self._windows) >= MAX_SENDERS:
            self._windows = {a: w for a, w in self._windows.items() if w[0] == minute}
            if len(self._windows) >= MAX_SENDERS:
                del self._windows[next(iter(self._windows))]
        self._windows[address] = (minute, count + 1)
        return 0.0


class ReportListener:
    def __init__(self, intake: ReportIntake, listen: str, per_minute: int, clock: Clock):
        host, port = listen.rsplit(":", 1)
        self._host, self._port = host, int(port)
        self._intake = intake
        self._limit = RateLimit(per_minute, clock)
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.counts: Counter[str] = Counter()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=reports.MAX_BYTES)
        app.router.add_post(ROUTE, self._post)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), handle_signals=False, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
        log.info("taking app reports from the store Wi-Fi at %s%s", self.url, ROUTE)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _post(self, request: web.Request) -> web.Response:
        wait = self._limit.wait_s(request.remote or "")
        if wait:
            self.counts["rate_limited"] += 1
            return web.json_response(
                {"error": "rate_limited"}, status=429, headers={"Retry-After": str(math.ceil(wait))}
            )
        if request.content_length is not None and request.content_length > reports.MAX_BYTES:
            self.counts["too_large"] += 1
            return web.json_response({"error": "too_large"}, status=413)
        try:
            data = await request.read()
        except web.HTTPRequestEntityTooLarge:
            self.counts["too_large"] += 1
            return web.json_response({"error": "too_large"}, status=413)
        try:
            self._intake.take(data, "lan")
        except reports.ReportRefused as refused:
            return web.json_response({"error": refused.code}, status=_STATUS.get(refused.code, 400))
        return web.json_response({"taken": True}, status=202)

    def health(self) -> dict[str, object]:
        return {"url": f"{self.url}{ROUTE}" if self.url else None, "refused": dict(self.counts)}

    def metrics(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "edge_ble_report_listener_refused", "Requests the report listener turned away", labels=["reason"]
        )
        for reason, n in self.counts.items():
            family.add_metric([reason], n)
        yield family
