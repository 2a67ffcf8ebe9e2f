"""The agent as a store runs it: its own process (`python -m edge_agent run --config FILE`), watched from outside.

`AgentProcess` starts it, waits for `/healthz`, asks `/healthz` with an ops token and stops it with SIGTERM as
systemd does. `ProcSampler` reads the process's resident memory and open file descriptors from `/proc` at a
fixed interval, so a benchmark can tell a leak (growth that keeps going) from warm-up (caches filling once):
`growth()` is the mean of the last quarter of the samples minus the mean of the first quarter after warm-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parent.parent
_IMPORT_COSTS = """
import importlib, json, sys
def rss():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS:")) / 1024
costs = {"python": rss()}
for name in sys.argv[1:]:
    before = rss()
    importlib.import_module(name)
    costs[name] = rss() - before
print(json.dumps(costs))
"""


def import_costs(modules: list[str]) -> dict[str, float]:
    """MB of resident memory a fresh interpreter gains importing each module in turn (after the ones before it):
    where an idle agent's memory goes before it does anything."""
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_COSTS, *modules],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=True,
    )
    return {name: round(mb, 1) for name, mb in json.loads(out.stdout).items()}


@dataclass(frozen=True)
class ProcSample:
    t: float  # seconds since sampling began
    rss_kb: int
    fds: int
    threads: int


def read_proc(pid: int) -> tuple[int, int, int]:
    """(VmRSS in kB, open file descriptors, threads) of a live process."""
    rss_kb = threads = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kb = int(line.split()[1])
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    return rss_kb, len(os.listdir(f"/proc/{pid}/fd")), threads


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, every thread) a live process has used so far, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: fields 14 and 15


def wakeups(pid: int) -> int:
    """Times any thread of a live process went to sleep of its own accord (voluntary context switches): each
    is a wake-up later, so their rate at rest says how often something in the process polls."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(FileNotFoundError):  # a thread that ended meanwhile
            for line in Path(f"/proc/{pid}/task/{task}/status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    total += int(line.split()[1])
    return total


def growth(values: list[float], warmup: int = 0) -> float:
    """Last-quarter mean minus first-quarter mean of the samples after `warmup`: what kept growing."""
    steady = values[warmup:]
    if len(steady) < 4:
        return 0.0
    quarter = len(steady) // 4
    return statistics.fmean(steady[-quarter:]) - statistics.fmean(steady[:quarter])


@dataclass
class ProcSampler:
    """Samples a process every `interval_s` until stopped; `mark()` names the sample index a phase starts at."""

    pid: int
    interval_s: float = 1.0
    samples: list[ProcSample] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    def start(self) -> ProcSampler:
        self._task = asyncio.create_task(self._run(), name="proc-sampler")
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    def mark(self) -> int:
        return len(self.samples)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        while True:
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                self.samples.append(ProcSample(loop.time() - start, *read_proc(self.pid)))
            await asyncio.sleep(self.interval_s)

    def summary(self, since: int = 0, warmup_s: float = 0.0) -> dict[str, Any]:
        """Peak, final and growth (after the first `warmup_s` of the samples from `since`) of RSS and fds, and
        RSS at ten evenly spaced moments (a leak climbs to the end, a cache levels off)."""
        part = self.samples[since:]
        if not part:
            return {"rss_mb": None, "rss_growth_mb": None, "fds_growth": None, "samples": 0}
        warm = sum(1 for s in part if s.t - part[0].t < warmup_s)
        rss = [s.rss_kb / 1024 for s in part]
        fds = [float(s.fds) for s in part]
        return {
            "rss_mb": {"peak": round(max(rss), 1), "final": round(rss[-1], 1), "first": round(rss[0], 1)},
            "rss_growth_mb": round(growth(rss, warm), 2),
            "fds": {"peak": max(s.fds for s in part), "final": part[-1].fds, "first": part[0].fds},
            "fds_growth": round(growth(fds, warm), 1),
            "threads_peak": max(s.threads for s in part),
            "rss_mb_trace": [round(rss[i * (len(rss) - 1) // 9], 1) for i in range(10)],
            "samples": len(part),
        }


AGENT = [sys.executable, "-m", "edge_agent"]


class AgentProcess:
    """`python -m edge_agent run --config CONFIG` from this repository, its log in `log`, restartable after a
    SIGKILL (`starts`, `kills`). `command` replaces `python -m edge_agent` (e.g. an interpreter with
    `-X tracemalloc` to find where memory goes)."""

    def __init__(
        self,
        config: Path,
        url: str,
        ops_token: str = "",
        *,
        log: Path,
        env: dict[str, str] | None = None,
        command: list[str] | None = None,
    ):
        self.config, self.url, self.ops_token, self.log = config, url, ops_token, log
        self.port = int(url.rsplit(":", 1)[1])
        self.env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        self.command = command or AGENT
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None, "the agent is not started"
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def spawn(self) -> None:
        """Start the process and return at once (`serving` waits for it)."""
        with self.log.open("ab") as out:
            out.write(f"--- start {self.starts + 1}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                [*self.command, "run", "--config", str(self.config)],
                cwd=REPO,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1

    async def start(self, timeout: float = 60.0) -> AgentProcess:
        """Start the agent and return once `/healthz` answers; raises with the log's tail if it does not."""
        self.spawn()
        try:
            async with asyncio.timeout(timeout):
                while True:
                    if not self.alive():
                        raise RuntimeError(f"the agent exited with {self.proc.returncode}:\n{self.log_tail()}")
                    with contextlib.suppress(aiohttp.ClientError, OSError):
                        await self.health()
                        return self
                    await asyncio.sleep(0.1)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"the agent did not answer /healthz within {timeout} s:\n{self.log_tail()}") from None

    def listening(self) -> bool:
        """Whether the agent's HTTP port accepts a connection."""
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    async def serving(self, timeout: float = 60.0) -> None:
        """Wait until the HTTP port answers; starts the agent again if it exited meanwhile (as systemd would)."""
        async with asyncio.timeout(timeout):
            while not self.listening():
                if not self.alive():
                    self.spawn()
                await asyncio.sleep(0.05)

    async def health(self) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.ops_token}"}
        async with aiohttp.ClientSession() as http, http.get(f"{self.url}/healthz", headers=headers) as resp:
            resp.raise_for_status()
            return await resp.json()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no last words; whatever was not committed is gone."""
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.kills += 1

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, as systemd stops it; SIGKILL if it does not exit within `timeout`. The exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""

    def log_count(self, needle: str) -> int:
        """Lines of the agent's log containing `needle` (e.g. crashes of supervised components)."""
        if not self.log.exists():
            return 0
        return sum(needle in line for line in self.log.read_text(errors="replace").splitlines())
