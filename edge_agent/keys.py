"""Keys as config files, envelopes and operators carry them, and this host's own device key.

Public keys travel as the raw 32 bytes in base64. The config checks each key's form when it is read
(`config._ed25519_keys`); these turn keys into objects and back for whoever verifies or hands out signatures
(check-in tokens, signed bundles, operator tools). The device key is a host's own secret: what the cloud seals
the roster's secrets to, and what the host signs its messages to the store's other hosts with.

Sealing is RFC 9180 HPKE in base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, one suite both
ways: the cloud seals the roster's secrets to a host's X25519 key, a host seals a face enrolment to the cloud's.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import NamedTuple

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .secret_files import SecretFileError, read_private


def public_key_from_b64(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))


def public_keys(keys_b64: list[str]) -> list[Ed25519PublicKey]:
    return [public_key_from_b64(k) for k in keys_b64]


def public_key_b64(key: Ed25519PublicKey) -> str:
    return base64.b64encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode("ascii")


def x25519_public_from_b64(text: str) -> X25519PublicKey:
    return X25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))


SEAL_SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_128_GCM)


def seal_to(key: X25519PublicKey, plain: bytes, info: bytes) -> bytes:
    """The encapsulated key (32 bytes) followed by the ciphertext and its tag; only `key`'s owner opens it."""
    return SEAL_SUITE.encrypt(plain, key, info=info)


def open_sealed(key: X25519PrivateKey, sealed: bytes, info: bytes) -> bytes:
    """The plaintext; raises (cryptography's InvalidTag and friends) if it was not sealed to `key` with `info`."""
    return SEAL_SUITE.decrypt(sealed, key, info=info)


class DeviceKeyError(Exception):
    """A device key file that cannot be used; says which file and why."""


class DevicePublic(NamedTuple):
    """What the cloud and the store's other hosts know of a host: where to seal to, what it signs with."""

    seal: X25519PublicKey
    sign: Ed25519PublicKey

    def as_json(self) -> dict[str, str]:
        seal = self.seal.public_bytes(Encoding.Raw, PublicFormat.Raw)
        return {"seal": base64.b64encode(seal).decode("ascii"), "sign": public_key_b64(self.sign)}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> DevicePublic:
        seal = X25519PublicKey.from_public_bytes(base64.b64decode(data["seal"], validate=True))
        return cls(seal, public_key_from_b64(data["sign"]))


class DeviceKey:
    """This host's own secret: 32 random bytes from which its X25519 key (the roster's secrets are sealed to it)
    and its Ed25519 key (what it tells the store's other hosts is signed with it) are derived, each by HKDF
    with its own label, so one file provisions both and neither key can be computed from the other."""

    HEADER, FOOTER = "-----BEGIN SEA DEVICE KEY-----", "-----END SEA DEVICE KEY-----"

    def __init__(self, seed: bytes):
        if len(seed) != 32:
            raise DeviceKeyError(f"a device key is 32 bytes, got {len(seed)}")
        self.seal_key = X25519PrivateKey.from_private_bytes(_derive(seed, b"SEA-DEVICE-SEAL-1"))
        self.sign_key = Ed25519PrivateKey.from_private_bytes(_derive(seed, b"SEA-DEVICE-SIGN-1"))
        self._seed = seed

    @classmethod
    def generate(cls) -> DeviceKey:
        return cls(os.urandom(32))

    @classmethod
    def load(cls, path: Path, what: str) -> DeviceKey:
        """From a file written by `edge-agent keys new --device` (owner-only, like every secret file)."""
        try:
            text = read_private(path, what).decode("ascii")
        except (SecretFileError, UnicodeDecodeError) as exc:
            raise DeviceKeyError(str(exc)) from None
        lines = [line.strip() for line in text.strip().splitlines()]
        try:
            if len(lines) != 3 or lines[0] != cls.HEADER or lines[2] != cls.FOOTER:
                raise ValueError("expected the three lines `edge-agent keys new --device` writes")
            return cls(base64.b64decode(lines[1], validate=True))
        except (ValueError, DeviceKeyError) as exc:
            raise DeviceKeyError(f"{what}: {path}: not a device key ({exc})") from None

    def write(self, path: Path) -> None:
        """A new file, owner-only; an existing one is never overwritten (FileExistsError)."""
        write_new_secret(path, f"{self.HEADER}\n{base64.b64encode(self._seed).decode('ascii')}\n{self.FOOTER}\n")

    def public(self) -> DevicePublic:
        return DevicePublic(self.seal_key.public_key(), self.sign_key.public_key())


def _derive(seed: bytes, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(seed)


def write_new_secret(path: Path, text: str) -> None:
    """A new owner-only file holding `text`; an existing one is never overwritten (FileExistsError)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(text)


def new_zone_beacon_key(path: Path) -> None:
    """The store's zone-beacon key: 32 random bytes as 64 hex digits; copy the file to every host of the store."""
    write_new_secret(path, os.urandom(32).hex() + "\n")


def zone_beacon_key(path: Path, what: str = "ble.zone_beacon.key_file") -> bytes:
    """The store's zone-beacon key: 64 hex digits (the same file on every host of the store), owner-only."""
    try:
        text = read_private(path, what).decode("ascii").strip()
        key = bytes.fromhex(text)
    except (SecretFileError, UnicodeDecodeError, ValueError) as exc:
        raise DeviceKeyError(f"{what}: {exc}" if not isinstance(exc, SecretFileError) else str(exc)) from None
    if len(key) != 32:
        raise DeviceKeyError(f"{what}: {path} holds {len(key)} bytes; expected 32 (64 hex digits)")
    return key
