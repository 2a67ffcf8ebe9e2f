"""A simulated serial LED sign on the master side of a pty: parses frames by its profile, checks the
checksum, shows the text and answers ACK, or NAK for a bad frame. Tests and the demo use it.

    master, slave = os.openpty(); sign = SimulatedSign(profile, master); sign.start()
    # the agent opens os.ttyname(slave) with pyserial
"""

from __future__ import annotations

import os
import select
import threading
from collections import Counter
from collections.abc import Callable

from edge_agent.signage.sign_profile import SignProfile


class SimulatedSign:
    def __init__(self, profile: SignProfile, fd: int, *, nak_first: int = 0, silent: bool = False):
        self.profile = profile
        self.fd = fd
        self.nak_first = nak_first  # answer NAK to this many good frames first (a sign busy scrolling)
        self.silent = silent  # a sign switched off: reads, never answers
        self.lines: list[str] = []
        self.history: list[list[str]] = []
        self.counts: Counter[str] = Counter()
        self.changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="simulated-sign", daemon=True)

    def start(self) -> SimulatedSign:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def wait_for(self, predicate: Callable[[SimulatedSign], bool], timeout: float = 10.0) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: predicate(self), timeout)

    def _run(self) -> None:
        buffer = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if not ready:
                continue
            try:
                buffer += os.read(self.fd, 1024)
            except OSError:
                return
            buffer = self._consume(buffer)

    def _consume(self, buffer: bytes) -> bytes:
        f = self.profile.frame
        width = 0 if f.checksum == "none" else 2
        while True:
            start = buffer.find(bytes([f.start]))
            if start < 0:
                return b""
            end = buffer.find(bytes([f.end]), start + 1)
            if end < 0 or len(buffer) < end + 1 + width:
                return buffer[start:]
            body, check = buffer[start + 1 : end + 1], buffer[end + 1 : end + 1 + width]
            buffer = buffer[end + 1 + width :]
            self._frame(body, check)

    def _frame(self, body: bytes, check: bytes) -> None:
        f = self.profile.frame
        address = f.address.encode("ascii")
        good = check == self.profile.checksum(body) and body.startswith(address)
        if self.silent:
            self.counts["ignored"] += 1
            return
        if not good:
            self.counts["bad_frames"] += 1
            os.write(self.fd, bytes([f.nak]))
            return
        if self.nak_first > 0:
            self.nak_first -= 1
            self.counts["busy"] += 1
            os.write(self.fd, bytes([f.nak]))
            return
        command, payload = body[len(address) : len(address) + 1], body[len(address) + 1 : -1]
        with self.changed:
            if command == b"T":
                sep = bytes([self.profile.text.line_separator])
                self.lines = [p.decode(self.profile.text.encoding) for p in payload.split(sep)]
            elif command == b"C":
                self.lines = []
            self.history.append(list(self.lines))
            self.counts["frames"] += 1
            self.changed.notify_all()
        os.write(self.fd, bytes([f.ack]))
