"""A simulated till on a pty pair: the agent opens a stable path (a symlink to the pty's slave side) with
pyserial, the till writes receipts (and garbage) to the master side. `unplug()` closes the pty and removes
the path, as a USB till being pulled out does; `plug_in()` brings it back on a new pty behind the same path.
"""

from __future__ import annotations

import asyncio
import os
import random
import tty
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


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


# The protocol this till speaks, as a profile (firmware_configs/pos/generic-pipe.toml is the same, in TOML).
PROFILE: dict[str, Any] = {
    "name": "generic-pipe",
    "description": "Pipe-separated receipt records (TXN / ITM / END), 9600 8N1, ASCII",
    "serial": {
        "baudrate": 9600,
        "bytesize": 8,
        "parity": "N",
        "stopbits": 1,
        "encoding": "ascii",
        "max_line_bytes": 512,
    },
    "records": {
        "separator": "|",
        "max_items": 500,
        "begin": {"tag": "TXN", "fields": ["txn_id", "loyalty_id"]},
        "item": {"tag": "ITM", "fields": ["sku", "qty", "price_cents", "claim_code"]},
        "end": {"tag": "END", "fields": ["txn_id"]},
    },
}


class Buyers:
    """Shoppers at the till: after an offer decision for a customer, they buy the intended product with
    `p_shown` if the screen showed it to them and `p_not_shown` if not (holdout, control), plus a random
    basket — ground truth with a known uplift, for the demo and `edge-agent report`."""

    def __init__(
        self,
        till: SimulatedTill,
        decisions: Callable[[int], list[tuple[int, str, str, str]]],
        skus: dict[str, str],
        *,
        p_shown: float = 0.5,
        p_not_shown: float = 0.15,
        seed: int = 11,
    ):
        self._till = till
        self._decisions = decisions  # (rowid, customer_ref, intended offer, shown offer) after a rowid
        self._skus = skus  # offer_id → sku
        self._p = (p_shown, p_not_shown)
        self._rng = random.Random(seed)
        self._after = 0
        self.receipts = 0

    def step(self) -> None:
        basket_skus = sorted(set(self._skus.values()))
        for rowid, ref, intended, shown in self._decisions(self._after):
            self._after = max(self._after, rowid)
            p = self._p[0] if intended == shown else self._p[1]
            items = [(self._rng.choice(basket_skus), 1, 199, None)] if basket_skus else []
            sku = self._skus.get(intended)
            if sku is not None and self._rng.random() < p:
                items.append((sku, 1, 249, None))
            self.receipts += 1
            self._till.receipt(f"demo-{rowid}", items, loyalty_id=ref)

    async def run(self, interval_s: float = 1.0) -> None:
        while True:
            self.step()
            await asyncio.sleep(interval_s)
