"""What one host of a store publishes for the others, signed with its device key. Pure, no I/O.

    message = UTF-8 JSON {"device": D, "payload": b64url(P), "signature": b64url(S)}
    S       = Ed25519(D's device key, ASCII "SEA-HOST-1." + KIND + "." + STORE + "." + D + "." + b64url(P))
    KIND    = "presence" (message.py) | "notices" (notices.py)

A receiver takes it only from a host it knows (`[[fleet.hosts]]`, device and `sign` key), on that host's own
topic, for its own store and kind, with a signature that holds.
"""

from __future__ import annotations

import base64
import binascii
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ... import json_input
from ...errors import Refused
from ...keys import DeviceKey

KINDS = ("presence", "notices")


def _signed(kind: str, store: str, device: str, payload_b64: str) -> bytes:
    return f"SEA-HOST-1.{kind}.{store}.{device}.{payload_b64}".encode("ascii")


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def seal(key: DeviceKey, kind: str, store: str, device: str, payload: bytes) -> bytes:
    payload_b64 = _b64url(payload)
    signature = key.sign_key.sign(_signed(kind, store, device, payload_b64))
    return json.dumps({"device": device, "payload": payload_b64, "signature": _b64url(signature)}).encode()


def open_signed(
    data: bytes,
    *,
    kind: str,
    store: str,
    topic_device: str | None,
    hosts: dict[str, Ed25519PublicKey],
    max_bytes: int,
    refuse: type[Refused],
) -> tuple[str, bytes]:
    """The sender and the payload it signed; `refuse(code, reason)` naming what was wrong otherwise."""
    keys = ("device", "payload", "signature")
    message = json_input.exact_object(data, keys, max_bytes=max_bytes, refuse=refuse, what="a host's signed message")
    device, payload_b64, signature_b64 = message["device"], message["payload"], message["signature"]
    if not all(isinstance(f, str) for f in (device, payload_b64, signature_b64)):
        raise refuse("malformed", "device, payload and signature must be strings")
    if device != topic_device:
        raise refuse("wrong_topic", f"from {device[:64]!r} on the topic of {topic_device!r}")
    key = hosts.get(device)
    if key is None:
        raise refuse("unknown_host", f"{device[:64]!r} is not among [[fleet.hosts]]")
    try:
        payload = base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4))
        key.verify(
            base64.urlsafe_b64decode(signature_b64 + "=" * (-len(signature_b64) % 4)),
            _signed(kind, store, device, payload_b64),
        )
    except (binascii.Error, ValueError):
        raise refuse("malformed", "payload and signature must be base64url") from None
    except InvalidSignature:
        raise refuse("bad_signature", f"not signed by {device!r}'s device key for this store") from None
    return device, payload
