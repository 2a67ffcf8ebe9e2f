"""Ed25519 public keys as config files, envelopes and operators carry them: the raw 32 bytes in base64.

The config checks each key's form when it is read (`config._ed25519_keys`); these turn keys into objects
and back for whoever verifies or hands out signatures (check-in tokens, signed bundles, operator tools).
"""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def public_key_from_b64(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))


def public_keys(keys_b64: list[str]) -> list[Ed25519PublicKey]:
    return [public_key_from_b64(k) for k in keys_b64]


def public_key_b64(key: Ed25519PublicKey) -> str:
    return base64.b64encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode("ascii")
