"""A customer pole display on a pty: it reads what the agent writes and does what Epson's ESC/POS
customer-display commands say — ESC @ (initialise: clear, cursor home), ESC t n (character table), CLR 0x0C
(clear), US $ x y (the cursor to column x of line y), CR and LF, text written at the cursor — into the characters a
shopper would see (`lines()`). Commands it does not know are skipped with their arguments where the command set
gives them, counted in `unknown`."""

from __future__ import annotations

import os
import threading

_TABLES = {0: "cp437", 2: "cp850", 16: "cp1252", 19: "cp858"}


class SimulatedPoleDisplay:
    def __init__(self, fd: int, columns: int = 20, rows: int = 2):
        self._fd = fd
        self.columns, self.rows = columns, rows
        self._grid = [[" "] * columns for _ in range(rows)]
        self._x = self._y = 0
        self._table = "cp437"
        self._pending = b""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.frames = 0  # times the display was cleared: one per frame the agent sends
        self.unknown = 0

    def start(self) -> SimulatedPoleDisplay:
        threading.Thread(target=self._read, daemon=True, name="pole-display").start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def lines(self) -> list[str]:
        with self._lock:
            return ["".join(row).rstrip() for row in self._grid]

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = os.read(self._fd, 1024)
            except OSError:
                return
            with self._lock:
                self._pending = self._interpret(self._pending + data)

    def _interpret(self, buf: bytes) -> bytes:
        i = 0
        while i < len(buf):
            b = buf[i]
            if b == 0x1B:  # ESC
                if i + 1 >= len(buf):
                    break
                cmd = buf[i + 1]
                if cmd == 0x40:  # ESC @
                    self._clear()
                    i += 2
                elif cmd == 0x74:  # ESC t n
                    if i + 2 >= len(buf):
                        break
                    self._table = _TABLES.get(buf[i + 2], "cp437")
                    i += 3
                else:
                    self.unknown += 1
                    i += 2
            elif b == 0x1F:  # US
                if i + 1 >= len(buf):
                    break
                if buf[i + 1] == 0x24:  # US $ x y
                    if i + 3 >= len(buf):
                        break
                    self._x = min(max(buf[i + 2], 1), self.columns) - 1
                    self._y = min(max(buf[i + 3], 1), self.rows) - 1
                    i += 4
                else:
                    self.unknown += 1
                    i += 2
            elif b == 0x0C:  # CLR
                self._clear()
                i += 1
            elif b == 0x0D:
                self._x = 0
                i += 1
            elif b == 0x0A:
                self._y = min(self._y + 1, self.rows - 1)
                i += 1
            elif b >= 0x20:
                if self._x < self.columns:
                    self._grid[self._y][self._x] = bytes([b]).decode(self._table, errors="replace")
                    self._x += 1
                i += 1
            else:
                i += 1
        return buf[i:]

    def _clear(self) -> None:
        self._grid = [[" "] * self.columns for _ in range(self.rows)]
        self._x = self._y = 0
        self.frames += 1
