"""The roster's secrets sealed to each of the store's agents, so the broker, a bridge and any other client on
the store LAN see ciphertext only. Pure code (no I/O): the agent opens, the cloud simulator seals.

    sealed  = {DEVICE: b64(HPKE-Seal(device's X25519 key, info=I, S)), ...}        one entry per agent
    S       = UTF-8 JSON {customer_ref: {"day_keys": {yyyymmdd: b64(16 bytes)}, "face_embeddings": [b64, ...]}, ...}
    I       = ASCII "SEA-SEALED-1." + STORE + "." + KIND + "." + VERSION + "." + DEVICE
    HPKE    = keys.SEAL_SUITE (RFC 9180 base mode, X25519, HKDF-SHA256, AES-128-GCM); the output is the
              encapsulated key (32 bytes) followed by the ciphertext and its tag

The info binds each copy to its store, bundle kind and version and device: a copy cannot be moved to another
roster or another host. A device's key is the X25519 half of its device key (keys.DeviceKey).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from pydantic import ValidationError

from .. import json_input
from ..keys import open_sealed, seal_to
from ..store.roster import RosterEntry
from .envelope import BundleRejected, describe

SECRET_FIELDS = ("day_keys", "face_embeddings")


def info(store: str, kind: str, version: int, device: str) -> bytes:
    return f"SEA-SEALED-1.{store}.{kind}.{version}.{device}".encode("ascii")


def seal(
    secrets: Mapping[str, Mapping[str, Any]],
    recipients: Mapping[str, X25519PublicKey],
    *,
    store: str,
    kind: str,
    version: int,
) -> dict[str, str]:
    """Each recipient's copy of the customers' secrets (customer_ref → {day_keys, face_embeddings})."""
    plain = json.dumps(secrets, separators=(",", ":")).encode("utf-8")
    return {
        device: base64.b64encode(seal_to(key, plain, info(store, kind, version, device))).decode("ascii")
        for device, key in recipients.items()
    }


def open_secrets(
    sealed_b64: str, key: X25519PrivateKey, *, store: str, kind: str, version: int, device: str
) -> dict[str, RosterEntry]:
    """This device's copy opened: customer_ref → an entry holding only that customer's (validated) secrets.
    BundleRejected("unsealable") if it does not open with this key for this store, kind, version and device."""
    try:
        plain = open_sealed(key, base64.b64decode(sealed_b64, validate=True), info(store, kind, version, device))
    except (binascii.Error, ValueError) as exc:
        raise BundleRejected("unsealable", f"sealed.{device} is not base64 ({exc})", version) from None
    except Exception:  # cryptography's InvalidTag and friends: the same verdict, never the bytes
        raise BundleRejected(
            "unsealable", f"sealed.{device} does not open with this host's device key for this roster", version
        ) from None
    try:
        data = json_input.loads(plain)
        if not isinstance(data, dict):
            raise ValueError("not an object of customers")
        return {ref: RosterEntry.model_validate({"customer_ref": ref, **fields}) for ref, fields in data.items()}
    except ValidationError as exc:
        raise BundleRejected("invalid", f"sealed.{device}: {describe(exc)}", version) from None
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise BundleRejected("invalid", f"sealed.{device}: not the sealed secrets' JSON ({exc})", version) from None


def with_secrets(entries: list[RosterEntry], secrets: Mapping[str, RosterEntry]) -> list[RosterEntry]:
    """The entries with their customers' opened secrets in place (consent still decides what is kept)."""
    return [
        e.model_copy(update={f: getattr(secrets[e.customer_ref], f) for f in SECRET_FIELDS})
        if e.customer_ref in secrets
        else e
        for e in entries
    ]


def split(entries: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Entries as JSON without their secrets, and the secrets by customer_ref: what the cloud seals."""
    public, secrets = [], {}
    for entry in entries:
        kept = {k: v for k, v in entry.items() if k not in SECRET_FIELDS}
        held = {k: entry[k] for k in SECRET_FIELDS if entry.get(k)}
        if held:
            secrets[entry["customer_ref"]] = held
        public.append(kept)
    return public, secrets
