"""ESC/POS as a till sends it to its receipt printer, read from a copy of the stream: the printed text, line by
line, and the paper cut that ends a receipt.

Every control sequence is skipped by its length as Epson's ESC/POS command reference defines it — a raster image
(GS v 0), a barcode (GS k), a QR code (GS ( k) or a bit image (ESC *) carries arbitrary bytes, line feeds among
them, that must never read as text. A sequence split across reads waits for the rest. An unknown command skips
its prefix and one byte. Pure: bytes in, lines and cuts out.
"""

from __future__ import annotations

from dataclasses import dataclass

ESC, GS, FS, DLE, LF, CR, HT = 0x1B, 0x1D, 0x1C, 0x10, 0x0A, 0x0D, 0x09

# ESC x followed by this many bytes (fixed-length commands); the rest are worked out below
_ESC_ARGS = {
    0x40: 0, 0x32: 0, 0x3C: 0,  # @ initialise, 2 default line spacing, < return home
    0x21: 1, 0x2D: 1, 0x45: 1, 0x47: 1, 0x4D: 1, 0x61: 1, 0x64: 1, 0x4A: 1, 0x74: 1, 0x52: 1,  # ! - E G M a d J t R
    0x7B: 1, 0x56: 1, 0x33: 1, 0x72: 1, 0x65: 1, 0x55: 1, 0x20: 1, 0x53: 0, 0x4C: 0, 0x69: 0, 0x6D: 0,
    0x70: 3,  # p m t1 t2: open the cash drawer
    0x24: 2, 0x5C: 2,  # $ \\ : positions
    0x63: 2,  # c 3 n / c 4 n / c 5 n
}  # fmt: skip
_GS_ARGS = {
    0x21: 1, 0x42: 1, 0x68: 1, 0x77: 1, 0x48: 1, 0x66: 1,  # ! B h w H f
    0x61: 1, 0x62: 1, 0x49: 1, 0x72: 1, 0x2F: 1,  # a b I r /
    0x4C: 2, 0x57: 2, 0x24: 2, 0x5C: 2, 0x50: 2,  # L W $ \\ P
}  # fmt: skip


@dataclass(frozen=True)
class Cut:
    """The paper was cut: a receipt ended."""


Event = str | Cut


class EscPosStream:
    def __init__(self, encoding: str = "cp437", max_line_bytes: int = 512):
        self._encoding = encoding
        self._max = max_line_bytes
        self._pending = b""
        self._line = bytearray()
        self.skipped = 0  # control sequences skipped

    def feed(self, data: bytes) -> list[Event]:
        """Bytes in (any split); the text lines they completed and the cuts among them, in order."""
        buf = self._pending + data
        out: list[Event] = []
        i = 0
        while i < len(buf):
            b = buf[i]
            if b in (ESC, GS, FS, DLE):
                n = _length(buf, i)
                if n is None or i + n > len(buf):
                    break  # the rest of the sequence (its image, its barcode) has not arrived yet
                if b == GS and i + 1 < len(buf) and buf[i + 1] == 0x56:  # GS V: cut the paper
                    self._flush(out)
                    out.append(Cut())
                self.skipped += 1
                i += n
                continue
            if b == LF:
                self._flush(out, always=True)
            elif b == HT:
                self._line.append(0x20)
            elif b >= 0x20 and len(self._line) < self._max:
                self._line.append(b)
            i += 1  # CR and other C0 bytes print nothing
        self._pending = buf[i:]
        return out

    def _flush(self, out: list[Event], *, always: bool = False) -> None:
        if self._line or always:
            out.append(self._line.decode(self._encoding, errors="replace").rstrip())
            self._line.clear()


def _length(buf: bytes, i: int) -> int | None:
    """The whole length of the control sequence at `i` (prefix included), or None when more bytes are needed."""

    def at(k: int) -> int | None:
        return buf[i + k] if i + k < len(buf) else None

    prefix, cmd = buf[i], at(1)
    if cmd is None:
        return None
    if prefix == ESC:
        if cmd == 0x2A:  # ESC * m nL nH d1…dk: a bit image
            m, lo, hi = at(2), at(3), at(4)
            if m is None or lo is None or hi is None:
                return None
            return 5 + (lo + 256 * hi) * (1 if m in (0, 1) else 3)
        if cmd == 0x44:  # ESC D n1 … NUL: tab positions
            end = buf.find(b"\x00", i + 2)
            return None if end < 0 else end - i + 1
        return 2 + _ESC_ARGS.get(cmd, 0)
    if prefix == GS:
        if cmd == 0x56:  # GS V m [n]: cut, with a feed for m 65, 66, 97, 98, 103, 104
            m = at(2)
            return None if m is None else (4 if m >= 65 else 3)
        if cmd == 0x6B:  # GS k m …: a barcode, NUL-terminated (m ≤ 6) or with its length (m ≥ 65)
            m = at(2)
            if m is None:
                return None
            if m <= 6:
                end = buf.find(b"\x00", i + 3)
                return None if end < 0 else end - i + 1
            n = at(3)
            return None if n is None else 4 + n
        if cmd == 0x76:  # GS v 0 m xL xH yL yH d…: a raster image, xL + 256 xH bytes a row
            head = [at(k) for k in range(3, 8)]
            if None in head:
                return None
            _, xl, xh, yl, yh = (int(v) for v in head if v is not None)
            return 8 + (xl + 256 * xh) * (yl + 256 * yh)
        if cmd == 0x28:  # GS ( fn pL pH …: QR codes, graphics, …
            lo, hi = at(3), at(4)
            return None if lo is None or hi is None else 5 + lo + 256 * hi
        if cmd == 0x38:  # GS 8 L p1 p2 p3 p4 …: large graphics
            size = [at(k) for k in range(3, 7)]
            if None in size:
                return None
            p1, p2, p3, p4 = (int(v) for v in size if v is not None)
            return 7 + p1 + (p2 << 8) + (p3 << 16) + (p4 << 24)
        if cmd == 0x2A:  # GS * x y d…: a downloaded bit image, x × y × 8 bytes
            x, y = at(2), at(3)
            return None if x is None or y is None else 4 + x * y * 8
        return 2 + _GS_ARGS.get(cmd, 0)
    if prefix == FS:
        return 4 if cmd == 0x70 else 3 if cmd == 0x43 else 2  # FS p n m: a stored image; FS C n: a code system
    return 5 if cmd == 0x14 else 3  # DLE DC4 fn m t; DLE EOT n, DLE ENQ n
