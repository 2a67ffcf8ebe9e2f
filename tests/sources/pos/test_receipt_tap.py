"""A receipt tap: receipts printed by python-escpos itself (unchanged, its serial printer) into a pty, read by
the agent's till source from the other end as a copy of the printer stream — text, barcodes, a QR code and a
logo in between — and turned into purchases; a receipt that does not add up is refused with the reason."""

import asyncio
import os
import threading
import tty

from escpos.printer import Serial

from edge_agent.bus import Bus
from edge_agent.clock import Clock
from edge_agent.config import PosSettings
from edge_agent.events import Purchase
from edge_agent.sources.pos.escpos import Cut, EscPosStream
from edge_agent.sources.pos.source import PosSource
from edge_agent.sources.pos.tills import load_till
from edge_agent.store import open_store
from tests.factories import customer, wait_for

PROFILE = load_till("escpos-receipt-tap")


class PrinterLine:
    """Two ptys joined: python-escpos prints into one (as into a printer's serial port), and whatever it sends
    comes out of the other, where the agent reads its copy."""

    def __init__(self, folder):
        self._in_master, in_slave = os.openpty()
        self._out_master, out_slave = os.openpty()
        for fd in (in_slave, out_slave):
            tty.setraw(fd)
        self.printer_port, self.tap_port = os.ttyname(in_slave), os.ttyname(out_slave)
        self._keep = (in_slave, out_slave)
        self._stop = threading.Event()
        threading.Thread(target=self._relay, daemon=True).start()

    def _relay(self):
        while not self._stop.is_set():
            try:
                data = os.read(self._in_master, 4096)
            except OSError:
                return
            os.write(self._out_master, data)

    def close(self):
        self._stop.set()
        for fd in (self._in_master, self._out_master, *self._keep):
            os.close(fd)


def _print_receipt(printer, txn, items, *, loyalty=None, coupon=None, total=None):
    printer.set(align="center", bold=True, double_height=True)
    printer.text("CORNER BAKERY\n")
    printer.set(align="left", normal_textsize=True)
    printer.text(f"Receipt {txn}\n")
    for ean, name, qty, price in items:
        printer.text(f"{ean}  {name:<14} {qty} x {price / 100:.2f}   {qty * price / 100:.2f}\n")
        if coupon is not None and ean == items[0][0]:
            printer.text(f"Coupon {coupon}\n")
    if loyalty is not None:
        printer.text(f"Loyalty {loyalty}\n")
    printer.text(f"TOTAL  {(total if total is not None else sum(q * p for _, _, q, p in items)) / 100:.2f}\n")
    printer.barcode(items[0][0], "EAN13")
    printer.qr(f"https://store.example/r/{txn}")
    printer.text("Thank you, see you soon!\n")
    printer.cut()


def test_printed_text_comes_through_whatever_the_printer_sends_in_between():
    stream = EscPosStream()
    image = b"\x1dv0\x00\x02\x00\x03\x00" + b"\n\n\x1b\n\x0a\x0a"  # GS v 0: 2 bytes a row, 3 rows
    data = b"\x1b@\x1b!\x10Shop\n" + image + b"Receipt 1\n\x1dk\x02123\x00\x1dVA\x10"  # a barcode, a cut
    events = [e for k in range(len(data)) for e in stream.feed(data[k : k + 1])]  # a byte at a time
    assert events == ["Shop", "Receipt 1", Cut()]  # the raster image's bytes (line feeds among them) are no text


async def test_receipts_printed_by_python_escpos_become_purchases(tmp_path):
    line = PrinterLine(tmp_path)
    store = open_store(tmp_path / "edge.db")
    store.roster.upsert([customer("alice").model_copy(update={"loyalty_id": "40012345"})], updated_at="t")
    bus = Bus()
    purchases = bus.subscribe(Purchase, "test")
    settings = PosSettings(port=line.tap_port, profile="escpos-receipt-tap", till_id="till-2", reconnect_s=0.1)
    source = PosSource(settings, PROFILE, store, bus, Clock())
    task = asyncio.create_task(source.run())
    printer = Serial(devfile=line.printer_port, baudrate=9600, dsrdtr=False)
    try:
        await wait_for(source.connected.is_set)
        croissant, coffee = ("4006381333931", "Croissant", 2, 120), ("4000417025005", "Filter coffee", 1, 250)
        first = [croissant, coffee]
        await asyncio.to_thread(_print_receipt, printer, "000123", first, loyalty="40012345", coupon="ABCD-EFGH")
        await asyncio.to_thread(_print_receipt, printer, "000124", [coffee], total=999)  # does not add up
        await asyncio.to_thread(_print_receipt, printer, "000125", [croissant])
        got = [await asyncio.wait_for(purchases.queue.get(), 20) for _ in range(2)]
        assert [(p.txn_id, p.customer_ref) for p in got] == [("till-2:000123", "alice"), ("till-2:000125", None)]
        assert [(x.sku, x.qty, x.price_cents, x.claim_code) for x in got[0].lines] == [
            ("4006381333931", 2, 120, "ABCD-EFGH"),
            ("4000417025005", 1, 250, None),
        ]
        assert source.rejected == {"total_mismatch": 1} and source.counts["receipts"] == 2
    finally:
        printer.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        line.close()
        store.close()


async def test_a_barcode_scanner_at_the_till_redeems_claims_and_names_the_next_receipts_shopper(tmp_path):
    """A scanner in serial mode on its own port: a kiosk's claim code is redeemed (once), a loyalty card names the
    shopper of the till's next receipt, a product's barcode is nobody's business."""
    line = PrinterLine(tmp_path)
    scanner_master, scanner_slave = os.openpty()
    tty.setraw(scanner_slave)
    store = open_store(tmp_path / "edge.db")
    store.roster.upsert([customer("alice").model_copy(update={"loyalty_id": "40012345"})], updated_at="t")
    now, later = "2026-12-05T10:00:00.000+00:00", "2099-01-01T00:00:00.000+00:00"
    code = store.claims.claim("alice", "croissant", touchpoint="kiosk-a", at=now, expires_at=later).code
    bus = Bus()
    purchases = bus.subscribe(Purchase, "test")
    settings = PosSettings(
        port=line.tap_port, profile="escpos-receipt-tap", scanner_port=os.ttyname(scanner_slave), reconnect_s=0.1
    )
    source = PosSource(settings, PROFILE, store, bus, Clock())
    task = asyncio.create_task(source.run())
    printer = Serial(devfile=line.printer_port, baudrate=9600, dsrdtr=False)
    try:
        await wait_for(source.scanner_connected.is_set)
        for scan in (code.lower().replace("-", "") + "\r", code + "\r\n", "4006381333931\r", "40012345\r"):
            os.write(scanner_master, scan.encode())
        await wait_for(lambda: sum(source.scanner.counts.values()) == 4)
        assert source.scanner.counts == {"redeemed": 1, "claim_already_redeemed": 1, "not_ours": 1, "loyalty": 1}
        assert store.claims.get(code).redeemed_at is not None
        await asyncio.to_thread(_print_receipt, printer, "000200", [("4006381333931", "Croissant", 1, 120)])
        got = await asyncio.wait_for(purchases.queue.get(), 20)
        assert (got.txn_id, got.customer_ref) == ("till-1:000200", "alice")  # the card scanned just before
    finally:
        printer.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        line.close()
        os.close(scanner_master)
        os.close(scanner_slave)
        store.close()
