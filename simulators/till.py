"""A simulated till on a pty pair: the agent opens a stable path (a symlink to the pty's slave side) with pyserial, the
till writes receipts (and garbage) to the master side — as pipe-separated records, or with `escpos` as the ESC/POS
stream a till prints its receipts with (what the demo's receipt tap reads). `unplug()` closes the pty and removes
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
    def __init__(self, path: Path, *, separator: str = "|", line_ending: bytes = b"\r\n", escpos: bool = False):
        self.path = path
        self._escpos = escpos
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
        if self._escpos:
            self._print(txn_id, list(items), loyalty_id)
            return
        sep = self._sep
        self.write_line(f"TXN{sep}{txn_id}{sep}{loyalty_id or ''}")
        for sku, qty, price, claim in items:
            self.write_line(f"ITM{sep}{sku}{sep}{qty}{sep}{'' if price is None else price}{sep}{claim or ''}")
        self.write_line(f"END{sep}{txn_id}")

    def _print(self, txn_id: str, items: list[tuple[str, int, int | None, str | None]], loyalty: str | None) -> None:
        """The receipt as an ESC/POS printer is sent it: initialise, the shop's name centred and bold, the lines,
        a barcode of the transaction, the paper cut (ESCPOS_PROFILE's patterns read it back)."""
        lines = [f"Receipt {txn_id}"]
        for sku, qty, price, claim in items:
            cents = price or 0
            lines.append(f"{sku:<14} {qty} x {cents / 100:.2f}   {qty * cents / 100:.2f}")
            if claim:
                lines.append(f"Coupon {claim}")
        if loyalty:
            lines.append(f"Loyalty {loyalty}")
        lines.append(f"TOTAL  {sum(q * (p or 0) for _, q, p, _ in items) / 100:.2f}")
        body = "".join(f"{line}\n" for line in lines).encode("cp437")
        barcode = b"\x1dk\x04" + txn_id.encode("ascii")[:20] + b"\x00"  # CODE39, NUL-terminated
        data = b"\x1b@\x1ba\x01\x1bE\x01DEMO STORE\n\x1bE\x00\x1ba\x00" + body + barcode + b"\n\x1dVB\x00"
        assert self._master is not None, "the till is unplugged"
        os.write(self._master, data)

    def close(self) -> None:
        self.unplug()


# The receipts this till prints with `escpos`, as a receipt-tap profile (the demo's till).
ESCPOS_PROFILE: dict[str, Any] = {
    "kind": "escpos-receipt",
    "name": "demo-escpos-receipts",
    "description": "The demo till's ESC/POS receipts: items by sku, coupons, loyalty, total",
    "codepage": "cp437",
    "patterns": {
        "transaction": r"Receipt\s+(?P<txn_id>[A-Za-z0-9_.:-]{1,64})",
        "item": r"(?P<sku>[A-Za-z0-9_.-]{1,64})\s+(?P<qty>\d{1,4})\s*x\s*(?P<price>\d+\.\d{2})\s+\d+\.\d{2}",
        "loyalty": r"Loyalty\s+(?P<loyalty_id>[A-Za-z0-9_.:-]{1,64})",
        "claim": r"Coupon\s+(?P<claim_code>[A-Z0-9]{4}-[A-Z0-9]{4})",
        "total": r"TOTAL\s+(?P<total>\d+\.\d{2})",
    },
}

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
