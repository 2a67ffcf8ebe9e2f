"""Serial sign protocol profiles (`firmware_configs/signs/*.toml`): validated, then used to frame text.

Pure (no I/O besides reading the profile) so the agent's driver and the simulated sign share one
definition of the wire format.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

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


class DisplayText(_Part):
    encoding: Literal["ascii", "latin-1", "cp437", "cp850", "cp858"] = "cp437"
    columns: Annotated[int, Field(ge=4, le=80)] = 20
    lines: Annotated[int, Field(ge=1, le=4)] = 2
    code_table: Byte = Field(default=0, description="the character table (ESC t n) matching `encoding`")


class PoleDisplayProfile(_Part):
    """A customer (pole) display on the till — a vacuum fluorescent display of 2 × 20 characters — driven with the
    Epson ESC/POS customer-display commands: initialise (ESC @), the character table (ESC t n), clear (CLR, 0x0C),
    the cursor to column x of line y (US $ x y), then the text. It answers nothing: a frame written whole is shown.
    The schema of firmware_configs/signs/*.toml of this kind."""

    kind: Literal["pole-display"] = "pole-display"
    name: str
    serial: SerialPart = SerialPart()
    text: DisplayText = DisplayText()
    write_timeout_s: Annotated[float, Field(gt=0, le=30)] = 1.0

    def fit(self, lines: list[str]) -> list[str]:
        """The lines as the display can show them: each character its table has (an accent too), else its plain
        letter, else nothing; cut to its size, padded to its lines."""
        out = []
        for line in (lines + [""] * self.text.lines)[: self.text.lines]:
            text = unicodedata.normalize("NFC", " ".join(line.split()))
            if not (text.isprintable() and _encodes(text, self.text.encoding)):  # most lines are shown as they are
                text = "".join(self._showable(c) for c in text)
            out.append(text[: self.text.columns])
        return out

    def _showable(self, char: str) -> str:
        if not _encodes(char, self.text.encoding):
            plain = unicodedata.normalize("NFKD", char)
            return plain.encode(self.text.encoding, "ignore").decode(self.text.encoding)
        return char if char.isprintable() else ""

    def text_frame(self, lines: list[str]) -> bytes:
        frame = b"\x1b@" + bytes([0x1B, 0x74, self.text.code_table]) + b"\x0c"
        for y, line in enumerate(self.fit(lines), start=1):
            frame += bytes([0x1F, 0x24, 1, y]) + line.encode(self.text.encoding)
        return frame


def _encodes(text: str, encoding: str) -> bool:
    try:
        text.encode(encoding)
    except UnicodeEncodeError:
        return False
    return True


SignKind = SignProfile | PoleDisplayProfile
SIGN_MODELS: dict[str, type[SignProfile] | type[PoleDisplayProfile]] = {
    "sign": SignProfile,
    "pole-display": PoleDisplayProfile,
}


class SignKinds(RootModel[Annotated[SignKind, Field(discriminator="kind")]]):
    """The schema of firmware_configs/signs/*.toml: a framed sign or a pole display, by its `kind`."""


def load(name: str | Path) -> SignKind:
    """A profile of either kind by file path or by name in `firmware_configs/signs/`."""
    path = profiles.resolve(name, "signs")
    return parse(profiles.read(path), source=str(path))


def parse(data: dict[str, Any], source: str = "<profile>") -> SignKind:
    data = dict(data)
    if profiles.model_of_kind(data, SIGN_MODELS, "sign", source) is PoleDisplayProfile:
        return profiles.validate(data, PoleDisplayProfile, source)
    profile = profiles.validate(data, SignProfile, source)
    clash = profile.frame.address.encode("ascii")
    if profile.frame.start == profile.frame.end or any(b in profile.control_bytes() for b in clash):
        raise ProfileError(f"{source}: frame.start, frame.end and frame.address must be distinct bytes")
    return profile
