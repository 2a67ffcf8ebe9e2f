"""The rotating BLE token of the retailer's phone app, and resolving it back to a consenting customer.

    DK_d   = HKDF-SHA256(secret, salt=chain_id, info=b"SEA-DK" + yyyymmdd, 16)        (cloud only)
    RPIK_d = HKDF-SHA256(DK_d, salt=none, info=b"SEA-RPIK", 16)
    token  = AES-128-ECB(RPIK_d, b"SEA-RPI" + 5 zero bytes + uint32_le(j)),  j = floor(unix_seconds / 600)
    advert = manufacturer-specific data: company id, then 0x53 0x01, then the 16-byte token

The day d of interval j is the UTC date of the interval's start. This module is pure (no I/O), so the phone
side (`simulators/phone.py`), the cloud simulator and the agent share one definition.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from datetime import UTC, date, datetime

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

INTERVAL_S = 600
KEY_BYTES = 16
TOKEN_BYTES = 16
SCHEME = 0x53
VERSION = 0x01
HEADER = bytes((SCHEME, VERSION))
PAYLOAD_BYTES = len(HEADER) + TOKEN_BYTES
TEST_COMPANY_ID = 0xFFFF
WINDOW = 2  # intervals either side of now that resolve: phone clocks drift, adverts straddle a change
_RPI_PREFIX = b"SEA-RPI" + bytes(5)


def hkdf16(secret: bytes, salt: bytes | None, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, info=info).derive(secret)


def day_of(interval: int) -> str:
    """The UTC day (yyyymmdd) whose key makes the token of this 10-minute interval."""
    return datetime.fromtimestamp(interval * INTERVAL_S, UTC).strftime("%Y%m%d")


def interval_of(unix_seconds: float) -> int:
    return int(unix_seconds // INTERVAL_S)


def day_key(secret: bytes, chain_id: str, day: str | date) -> bytes:
    """The cloud's derivation: the only per-customer key a store ever receives, valid for one day."""
    yyyymmdd = day.strftime("%Y%m%d") if isinstance(day, date) else day
    return hkdf16(secret, chain_id.encode("utf-8"), b"SEA-DK" + yyyymmdd.encode("ascii"))


def rpik(day_key_: bytes) -> bytes:
    return hkdf16(day_key_, None, b"SEA-RPIK")


class _Encryptor:
    """The tokens of one day key for the intervals around now, kept per day key so a refresh at a new interval
    costs one block per customer and a roster change none. Only the RPIK and those few tokens are kept, not a
    cipher object (~0.35 KB more per consenting customer)."""

    __slots__ = ("_first", "_made", "_rpik")

    def __init__(self, dk: bytes):
        self._rpik = rpik(dk)
        self._first = 0  # the interval of _made[0]
        self._made: list[bytes] = []

    def tokens(self, intervals: list[int]) -> list[bytes]:
        """The tokens of these consecutive intervals (kept until the next call); one cipher makes the new ones."""
        start, end, first = intervals[0], intervals[-1] + 1, self._first
        lo, hi = max(start, first), min(end, first + len(self._made))
        if lo >= hi:
            lo = hi = start  # nothing in common: all made afresh
        kept = self._made[lo - first : hi - first]
        if start < lo or hi < end:
            cipher = Cipher(algorithms.AES(self._rpik), modes.ECB())
            kept = [_block(cipher, i) for i in range(start, lo)] + kept + [_block(cipher, i) for i in range(hi, end)]
        self._first, self._made = start, kept
        return kept


def _block(cipher: Cipher[modes.ECB], interval: int) -> bytes:
    enc = cipher.encryptor()
    return enc.update(_RPI_PREFIX + struct.pack("<I", interval)) + enc.finalize()


def token(day_key_: bytes, interval: int) -> bytes:
    """The 16-byte token a phone advertises during `interval` with the day key of `day_of(interval)`."""
    if not 0 <= interval <= 0xFFFFFFFF:
        raise ValueError(f"interval must fit in uint32, got {interval}")
    return _Encryptor(day_key_).tokens([interval])[0]


def advert_payload(token_: bytes) -> bytes:
    """The manufacturer data value (after the company id) that carries a token."""
    if len(token_) != TOKEN_BYTES:
        raise ValueError(f"a token is {TOKEN_BYTES} bytes, got {len(token_)}")
    return HEADER + token_


def parse_payload(data: bytes) -> bytes | None:
    """The token inside a manufacturer data value, or None when it is not our scheme and version."""
    if len(data) != PAYLOAD_BYTES or data[0] != SCHEME or data[1] != VERSION:
        return None
    return bytes(data[2:])


class TokenResolver:
    """Token → customer_ref for intervals j−2…j+2 of every consenting customer: one dict lookup per advert.

    `rebuild` takes the day keys of the customers whose consent covers BLE (nobody else's keys may be
    given), so a token of anyone else can never resolve; an unknown token simply is not in the dict.
    `rebuild` may run in a worker thread: it swaps the finished table in with one assignment.
    """

    def __init__(self) -> None:
        self._table: dict[bytes, str] = {}
        self._keys: Mapping[str, Mapping[str, bytes]] = {}  # customer_ref → {yyyymmdd: day key}, as given
        self._encryptors: dict[bytes, _Encryptor] = {}
        self.interval: int | None = None
        self.customers = 0

    def __len__(self) -> int:
        return len(self._table)

    def resolve(self, token_: bytes) -> str | None:
        return self._table.get(token_)

    def day_key(self, customer_ref: str, day: str) -> bytes | None:
        """The day key of a resolvable customer (what an app report's tag is checked with)."""
        return self._keys.get(customer_ref, {}).get(day)

    def forget(self, customer_ref: str) -> None:
        """Erasure or a BLE withdrawal: their tokens stop resolving now (a new table, swapped in whole)."""
        table = {t: ref for t, ref in self._table.items() if ref != customer_ref}
        if len(table) != len(self._table):
            self._table = table
            self.customers = len(set(table.values()))
        if customer_ref in self._keys:
            self._keys = {ref: by_day for ref, by_day in self._keys.items() if ref != customer_ref}

    def rebuild(self, keys: Mapping[str, Mapping[str, bytes]], unix_seconds: float) -> None:
        """`keys` is customer_ref → {yyyymmdd: day key}; a day without a key makes no tokens."""
        j = interval_of(unix_seconds)
        spans: dict[str, list[int]] = {}  # day → its intervals of the window (two days around midnight)
        for i in range(j - WINDOW, j + WINDOW + 1):
            spans.setdefault(day_of(i), []).append(i)
        table: dict[bytes, str] = {}
        encryptors: dict[bytes, _Encryptor] = {}
        for customer_ref, by_day in keys.items():
            for day, intervals in spans.items():
                dk = by_day.get(day)
                if dk is None:
                    continue
                enc = encryptors[dk] = self._encryptors.get(dk) or _Encryptor(dk)
                for made in enc.tokens(intervals):
                    table[made] = customer_ref
        self._table = table
        self._keys = keys
        self._encryptors = encryptors
        self.interval = j
        self.customers = len(keys)

    @staticmethod
    def days_needed(unix_seconds: float) -> list[str]:
        """The days whose keys the intervals around now need (two around midnight, else one)."""
        j = interval_of(unix_seconds)
        return sorted({day_of(i) for i in range(j - WINDOW, j + WINDOW + 1)})


def days_around(unix_seconds: float, before: int = 1, after: int = 1) -> list[str]:
    """yyyymmdd of the days from `before` days ago to `after` days ahead (which day keys to keep)."""
    j = interval_of(unix_seconds)
    per_day = 86_400 // INTERVAL_S
    return [day_of(j + k * per_day) for k in range(-before, after + 1)]
