"""Wall time for stored events, with whether the kernel believes the clock is NTP-synchronised.

A Pi has no real-time clock: after a power cut it may run on a wrong date until NTP answers. Every
stored event carries the flag so the cloud can tell a trustworthy timestamp from a guess.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from datetime import UTC, datetime

from .events import WallTime

_TIME_ERROR = 5
_STA_UNSYNC = 0x0040


class _Timex(ctypes.Structure):
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time_sec", ctypes.c_long),
        ("time_usec", ctypes.c_long),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("reserved", ctypes.c_int * 11),
    ]


def kernel_clock_synced() -> bool:
    """Ask the kernel (adjtimex, read-only) whether NTP has disciplined the clock; False if unknown."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        tx = _Timex()
        state = libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError):
        return False
    return state not in (-1, _TIME_ERROR) and not tx.status & _STA_UNSYNC


class Clock:
    """Monotonic and wall time in one place, so tests can control both and the sync check is cached."""

    def __init__(self, recheck_s: float = 60.0):
        self._recheck_s = recheck_s
        self._synced = False
        self._checked_at = float("-inf")

    def mono(self) -> float:
        return time.monotonic()

    def wall(self) -> WallTime:
        return WallTime(at=datetime.now(UTC), ntp_synced=self.synced())

    def synced(self) -> bool:
        """Whether NTP has disciplined the clock, asked of the kernel at most every `recheck_s`."""
        now = self.mono()
        if now - self._checked_at >= self._recheck_s:
            self._synced = kernel_clock_synced()
            self._checked_at = now
        return self._synced

    def unix(self) -> float:
        return time.time()


class SetClock(Clock):
    """Time that only moves when set: `t` seconds since `start_unix`, for a recording's or a simulation's clock
    (monotonic `t`, wall and unix time from `start_unix`, always taken as synced)."""

    def __init__(self, start_unix: float = 0.0):
        super().__init__()
        self.start_unix = start_unix
        self.t = 0.0

    def mono(self) -> float:
        return self.t

    def unix(self) -> float:
        return self.start_unix + self.t

    def wall(self) -> WallTime:
        return WallTime(datetime.fromtimestamp(self.start_unix + self.t, UTC), True)
