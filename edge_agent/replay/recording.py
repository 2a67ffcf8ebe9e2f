"""A recording: BLE readings and the ground truth, as CSV files, checked line by line. Pure, no state.

    READINGS.csv   t_s,receiver,subject,rssi_dbm[,tx_dbm]   seconds from any origin, ascending; a receiver of
                                                            [[ble.receivers]]; any label; dBm; the advert's TX power
    TRUTH.csv      t_s,subject,zone                          from t_s on, subject is in zone (empty: in none),
                                                            until its next row

A row that is not of this form — an unknown receiver or zone, a clock going backwards, a field that is not a
number — is refused with its line number and what was wrong; nothing is guessed.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import Refused

READINGS_HEADER = ("t_s", "receiver", "subject", "rssi_dbm")
TRUTH_HEADER = ("t_s", "subject", "zone")


class RecordingError(Refused):
    """A recording that cannot be replayed as it is; `reason` names the file, the line and what was wrong."""


@dataclass(frozen=True, slots=True)
class Reading:
    t_s: float
    receiver: str
    subject: str
    rssi_dbm: float
    tx_dbm: int | None = None


@dataclass(frozen=True, slots=True)
class TruthRow:
    t_s: float
    subject: str
    zone: str | None


def readings(path: Path, receivers: Iterable[str]) -> Iterator[Reading]:
    """The readings of READINGS.csv, in order; RecordingError at the first bad line."""
    known = set(receivers)
    rows = _rows(path, READINGS_HEADER, optional=("tx_dbm",))
    last = -math.inf
    for line, row in rows:
        t = _number(row["t_s"], "t_s", path, line)
        if t < last:
            raise RecordingError("clock", f"{path.name} line {line}: t_s {t} is before {last}: the clock went back")
        last = t
        if row["receiver"] not in known:
            raise RecordingError(
                "receiver", f"{path.name} line {line}: receiver {row['receiver']!r} is not in ble.receivers"
            )
        if not row["subject"]:
            raise RecordingError("malformed", f"{path.name} line {line}: subject is empty")
        rssi = _number(row["rssi_dbm"], "rssi_dbm", path, line)
        if not -127 <= rssi <= 20:
            raise RecordingError("malformed", f"{path.name} line {line}: rssi_dbm {rssi} is not in -127..20")
        tx = row.get("tx_dbm") or None
        tx_dbm = None if tx is None else int(_number(tx, "tx_dbm", path, line))
        yield Reading(t, row["receiver"], row["subject"], rssi, tx_dbm)


def truth(path: Path, zones: Iterable[str]) -> list[TruthRow]:
    """The rows of TRUTH.csv; RecordingError at the first bad line."""
    known = set(zones)
    out: list[TruthRow] = []
    last = -math.inf
    for line, row in _rows(path, TRUTH_HEADER):
        t = _number(row["t_s"], "t_s", path, line)
        if t < last:
            raise RecordingError("clock", f"{path.name} line {line}: t_s {t} is before {last}: the clock went back")
        last = t
        zone = row["zone"] or None
        if zone is not None and zone not in known:
            raise RecordingError("zone", f"{path.name} line {line}: zone {zone!r} is not in [[zones]]")
        if not row["subject"]:
            raise RecordingError("malformed", f"{path.name} line {line}: subject is empty")
        out.append(TruthRow(t, row["subject"], zone))
    return out


def _rows(path: Path, header: tuple[str, ...], optional: tuple[str, ...] = ()) -> Iterator[tuple[int, dict[str, str]]]:
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise RecordingError("file", f"{path}: cannot read it ({exc.strerror})") from None
    with handle:
        reader = csv.reader(handle)
        try:
            first = next(reader, None)
            names = tuple(c.strip() for c in first) if first else ()
            if names[: len(header)] != header or not set(names[len(header) :]) <= set(optional):
                want = ",".join(header) + "".join(f"[,{o}]" for o in optional)
                raise RecordingError("header", f"{path.name} line 1: header must be {want}, got {','.join(names)}")
            for row in reader:
                if not row or all(not c.strip() for c in row):
                    continue
                if len(row) != len(names):
                    raise RecordingError(
                        "malformed", f"{path.name} line {reader.line_num}: {len(row)} fields, expected {len(names)}"
                    )
                yield reader.line_num, {n: c.strip() for n, c in zip(names, row, strict=True)}
        except (csv.Error, UnicodeDecodeError) as exc:
            raise RecordingError("malformed", f"{path.name} line {reader.line_num}: {exc}") from None


def _number(text: str, name: str, path: Path, line: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise RecordingError("malformed", f"{path.name} line {line}: {name} {text[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise RecordingError("malformed", f"{path.name} line {line}: {name} must be finite")
    return value
