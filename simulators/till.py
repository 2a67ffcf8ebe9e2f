"""A simulated till on a pty pair: the agent opens a stable path (a symlink to the pty's slave side) with
pyserial, the till writes receipts (and garbage) to the master side. `unplug()` closes the pty and removes
the path, as a USB till being pulled out does; `plug_in()` brings it back on a new pty behind the same path.
"""

from __future__ import annotations

import os
import tty
from collections.abc import Iterable
from pathlib import Path


class SimulatedTill:
    def __init__(self, path: Path, *, separator: str = "|", line_ending: bytes = b"\r\n"):
        self.path = path
        self._sep = separator
        self._eol = line_ending
        self._master: int | None = None
        self._slave: int | None = None
        self.plug_in()

    def plug_in(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line discipline: bytes arrive as written
        self._master, self._slave = master, slave
        if self.path.is_symlink():
            self.path.unlink()
        self.path.symlink_to(os.ttyname(slave))

    def unplug(self) -> None:
        if self.path.is_symlink():
            self.path.unlink()
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None

    def write_line(self, line: str | bytes) -> None:
        data = line.encode("ascii") if isinstance(line, str) else line
        assert self._master is not None, "the till is unplugged"
        os.write(self._master, data + self._eol)

    def receipt(
        self, txn_id: str, items: Iterable[tuple[str, int, int | None, str | None]], loyalty_id: str | None = None
    ) -> None:
        """items: (sku, qty, price_cents, claim_code)."""
        sep = self._sep
        self.write_line(f"TXN{sep}{txn_id}{sep}{loyalty_id or ''}")
        for sku, qty, price, claim in items:
            self.write_line(f"ITM{sep}{sku}{sep}{qty}{sep}{'' if price is None else price}{sep}{claim or ''}")
        self.write_line(f"END{sep}{txn_id}")

    def close(self) -> None:
        self.unplug()
