"""Serial sign protocol profiles (`firmware_configs/signs/*.toml`): validated, then used to frame text.

Pure (no I/O besides reading the profile) so the agent's driver and the simulated sign share one
definition of the wire format.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .. import profiles
from ..profiles import ProfileError

Byte = Annotated[int, Field(ge=0, le=255)]


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SerialPart(_Part):
    baudrate: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = 9600
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1


class FramePart(_Part):
    start: Byte = 0x02
    end: Byte = 0x03
    address: Annotated[str, Field(pattern=r"^[0-9A-Za-z]{1,4}$")] = "01"
    checksum: Literal["none", "xor8", "sum8"] = "xor8"
    ack: Byte = 0x06
    nak: Byte = 0x15
    timeout_s: Annotated[float, Field(gt=0, le=30)] = 1.0
    retries: Annotated[int, Field(ge=0, le=10)] = 3


class TextPart(_Part):
    encoding: Literal["ascii", "latin-1", "cp1252"] = "ascii"
    columns: Annotated[int, Field(ge=4, le=256)] = 20
    lines: Annotated[int, Field(ge=1, le=8)] = 2
    line_separator: Byte = 0x0D


class SignProfile(_Part):
    """A serial sign's wire format; the schema of firmware_configs/signs/*.toml."""

    kind: Literal["sign"] = "sign"
    name: str
    serial: SerialPart = SerialPart()
    frame: FramePart = FramePart()
    text: TextPart = TextPart()

    def control_bytes(self) -> set[int]:
        return {self.frame.start, self.frame.end, self.frame.ack, self.frame.nak, self.text.line_separator}

    def fit(self, lines: list[str]) -> list[str]:
        """The lines as the sign can show them: its character set only, cut to its size, padded to its lines."""
        out = []
        for line in (lines + [""] * self.text.lines)[: self.text.lines]:
            flat = unicodedata.normalize("NFKD", " ".join(line.split()))
            encoded = flat.encode(self.text.encoding, "ignore").decode(self.text.encoding)
            clean = "".join(c if 0x20 <= ord(c) < 0x7F or ord(c) >= 0xA0 else "" for c in encoded)
            out.append(clean[: self.text.columns])
        return out

    def checksum(self, body: bytes) -> bytes:
        if self.frame.checksum == "none":
            return b""
        value = 0
        for b in body:
            value = value ^ b if self.frame.checksum == "xor8" else (value + b) & 0xFF
        return f"{value:02X}".encode("ascii")

    def text_frame(self, lines: list[str]) -> bytes:
        sep = bytes([self.text.line_separator])
        payload = sep.join(line.encode(self.text.encoding) for line in self.fit(lines))
        return self._frame(b"T" + payload)

    def _frame(self, command: bytes) -> bytes:
        body = self.frame.address.encode("ascii") + command + bytes([self.frame.end])
        return bytes([self.frame.start]) + body + self.checksum(body)


def load(name: str | Path) -> SignProfile:
    """A profile by file path or by name in `firmware_configs/signs/`."""
    path = profiles.resolve(name, "signs")
    return parse(profiles.read(path), source=str(path))


def parse(data: dict[str, Any], source: str = "<profile>") -> SignProfile:
    profile = profiles.validate(data, SignProfile, source)
    clash = profile.frame.address.encode("ascii")
    if profile.frame.start == profile.frame.end or any(b in profile.control_bytes() for b in clash):
        raise ProfileError(f"{source}: frame.start, frame.end and frame.address must be distinct bytes")
    return profile
