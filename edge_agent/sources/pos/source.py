"""Purchases from a till over a serial line (pyserial): its line protocol, or a copy of the ESC/POS stream it
prints receipts with (a receipt tap).

Blocking reads run in one thread, which hands each complete line to the event loop (waiting if the loop is
behind, so nothing is dropped); parsing, identity and publishing happen on the loop. A port that vanishes
(USB unplugged, till rebooted) is reopened every `pos.reconnect_s` until it is back. Garbage lines are
counted by reason and skipped.

Identity: the loyalty id on the receipt is the loyalty card number the roster carries for the customer
(`loyalty_id`), or the customer's `customer_ref` itself (an app that prints it). It names a customer only if
they are in the roster and consent to personalisation; otherwise the purchase is anonymous and the loyalty
id goes no further than this module.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import serial

from ...bus import Bus
from ...clock import Clock
from ...config import PosSettings
from ...events import Purchase, PurchaseLine
from ...store import Store
from .protocol import LineRejected, PosProfile, Receipt, ReceiptParser, SerialLine
from .receipt_tap import ReceiptTap
from .scanner import TillScanner
from .tills import TillProfile

log = logging.getLogger(__name__)

PURCHASE_CONSENT = "personalisation"  # the consent that lets purchases build a profile and count as conversions

_PARITY = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD, "M": serial.PARITY_MARK}
_PARITY["S"] = serial.PARITY_SPACE


class PosSource:
    def __init__(
        self,
        settings: PosSettings,
        profile: TillProfile,
        store: Store,
        bus: Bus,
        clock: Clock,
        open_port: Callable[..., Any] = serial.serial_for_url,
    ):
        self._settings = settings
        self._profile = profile
        self._store = store
        self._bus = bus
        self._clock = clock
        self._open_port = open_port
        self._parser = ReceiptParser(profile) if isinstance(profile, PosProfile) else None
        self._tap = ReceiptTap(profile) if not isinstance(profile, PosProfile) else None
        self.scanner = TillScanner(store, clock) if settings.scanner_port is not None else None
        self.counts: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.connected = threading.Event()
        self.scanner_connected = threading.Event()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[tuple[bool, bytes]] = asyncio.Queue(maxsize=1_000)  # (from the scanner, bytes)
        stop = threading.Event()

        def hand_over(scanned: bool) -> Callable[[bytes], None]:
            return lambda data: asyncio.run_coroutine_threadsafe(lines.put((scanned, data)), loop).result()

        till = _Port("till", self._settings.port, self._profile.serial, self._read_port, self.connected)
        ports = [(till, hand_over(False))]
        if self._settings.scanner_port is not None:
            scanner = _Port("scanner", self._settings.scanner_port, SerialLine(), _read_scans, self.scanner_connected)
            ports.append((scanner, hand_over(True)))
        readers = [
            threading.Thread(target=self._read_forever, args=(p, h, stop), name=f"pos.{p.label}", daemon=True)
            for p, h in ports
        ]
        for reader in readers:
            reader.start()
        handle = self.on_line if self._tap is None else self.on_bytes
        try:
            while True:
                scanned, data = await lines.get()
                if scanned and self.scanner is not None:
                    self.scanner.scan(data)
                else:
                    handle(data)
        finally:
            stop.set()
            for reader in readers:
                await asyncio.to_thread(reader.join, 5.0)

    def on_bytes(self, raw: bytes) -> list[Purchase]:
        """A receipt tap's bytes: publish and return a purchase for each receipt they complete."""
        assert self._tap is not None
        self.counts["bytes"] += len(raw)
        purchases = [self._publish(receipt) for receipt in self._tap.feed(raw)]
        for refused in self._tap.refused:
            self.rejected[refused.code] += 1
            log.warning("till receipt skipped (%s)", refused.code)  # its lines may hold a loyalty id: not logged
        return purchases

    def on_line(self, raw: bytes) -> Purchase | None:
        """Parse one line; publish and return the purchase when it completes a receipt."""
        assert self._parser is not None
        self.counts["lines"] += 1
        try:
            receipt = self._parser.feed(raw)
        except LineRejected as exc:
            self.rejected[exc.code] += 1
            log.warning("till line skipped (%s)", exc.code)  # the line itself may hold a loyalty id: not logged
            return None
        self.counts["abandoned_receipts"] = self._parser.abandoned
        return None if receipt is None else self._publish(receipt)

    def _publish(self, receipt: Receipt) -> Purchase:
        purchase = self._purchase(receipt)
        self.counts["receipts"] += 1
        self._bus.publish(purchase)
        return purchase

    def _purchase(self, receipt: Receipt) -> Purchase:
        ref = None
        card = self.scanner.card_for_receipt() if self.scanner is not None else None
        loyalty_id = receipt.loyalty_id or card  # the receipt's own, else a card scanned at the till just before
        if loyalty_id is not None:
            roster = self._store.roster
            entry = roster.get(roster.find(loyalty_id=loyalty_id) or loyalty_id)
            if entry is not None and entry.consents_to(PURCHASE_CONSENT):
                ref = entry.customer_ref
            else:
                self.counts["loyalty_not_consented"] += 1
        return Purchase(
            txn_id=f"{self._settings.till_id}:{receipt.txn_id}",
            register=self._settings.till_id,
            customer_ref=ref,
            lines=tuple(PurchaseLine(i.sku, i.qty, i.price_cents, i.claim_code) for i in receipt.items),
            wall=self._clock.wall(),
        )

    def _read_forever(self, device: _Port, hand_over: Callable[[bytes], None], stop: threading.Event) -> None:
        """A reader thread: open, read, and on any port error close, wait and reopen."""
        line, prefix = device.line, "" if device.label == "till" else f"{device.label}_"
        while not stop.is_set():
            try:
                port = self._open_port(
                    device.port,
                    baudrate=line.baudrate,
                    bytesize=line.bytesize,
                    parity=_PARITY[line.parity],
                    stopbits=line.stopbits,
                    timeout=0.2,
                )
            except (serial.SerialException, OSError) as exc:
                self.counts[f"{prefix}open_failures"] += 1
                log.warning("cannot open %s port %s (%s); retrying", device.label, device.port, exc)
                stop.wait(self._settings.reconnect_s)
                continue
            self.counts[f"{prefix}opened"] += 1
            device.connected.set()
            try:
                device.read(port, hand_over, stop)
            except (serial.SerialException, OSError) as exc:
                self.counts[f"{prefix}port_lost"] += 1
                log.warning("%s port %s lost (%s); reopening", device.label, device.port, exc)
            finally:
                device.connected.clear()
                port.close()
            stop.wait(self._settings.reconnect_s)

    def _read_port(self, port: Any, hand_over: Callable[[bytes], None], stop: threading.Event) -> None:
        if self._tap is not None:  # a printer stream: bytes as they come, the tap finds the lines and cuts
            while not stop.is_set():
                chunk = port.read(4096)
                if chunk:
                    hand_over(chunk)
            return
        limit = self._profile.serial.max_line_bytes
        pending = b""
        skipping = False  # inside an over-long line, whose rejection has been handed over already
        while not stop.is_set():
            chunk = port.read_until(b"\n", limit + 2)
            if not chunk:
                continue
            if skipping:
                skipping = not chunk.endswith(b"\n")
                continue
            pending += chunk
            if pending.endswith(b"\n"):
                hand_over(pending.rstrip(b"\r\n"))
                pending = b""
            elif len(pending) > limit + 2:
                hand_over(pending)  # the parser rejects it as too long
                pending, skipping = b"", True


@dataclass(frozen=True)
class _Port:
    """A serial device this source reads: the till (or its printer stream), or the barcode scanner at it."""

    label: str
    port: str
    line: SerialLine
    read: Callable[[Any, Callable[[bytes], None], threading.Event], None]
    connected: threading.Event


def _read_scans(port: Any, hand_over: Callable[[bytes], None], stop: threading.Event) -> None:
    """A scanner in serial mode: each code ends with CR, LF or both."""
    pending = b""
    while not stop.is_set():
        pending += port.read(256)
        *scans, pending = re.split(rb"[\r\n]+", pending)
        for scan in scans:
            if scan:
                hand_over(scan)
        if len(pending) > 256:  # no line ending in sight: not a scanner in serial mode; its bytes go
            hand_over(pending)
            pending = b""
