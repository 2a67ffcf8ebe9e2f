"""The signed envelope around everything the cloud sends a store: verified before a byte of it is parsed.

    envelope  = UTF-8 JSON {"format": "SEA-BUNDLE-2", "kind": KIND, "store": STORE, "payload": b64url(P),
                            "signature": b64url(S)}
    P         = the message as UTF-8 JSON (any formatting: the exact bytes are what is signed)
    S         = Ed25519(cloud key, b"SEA-BUNDLE-2." + KIND + b"." + STORE + b"." + b64url(P))
    KIND      = "offers" | "roster" | "roster_delta" | "config" | "command" | "context" | "ble_report"

b64url is unpadded URL-safe base64. The kind and the store id are inside the signed bytes, so a roster can
never be passed off as an offer bundle, nor one store's message (from a bridge, a shared broker or a
recording) as another's. Pure code (no I/O): the agent, the CLI and the cloud simulator share it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ValidationError

from .. import json_input
from ..errors import Refused

FORMAT = "SEA-BUNDLE-2"
KINDS = ("offers", "roster", "roster_delta", "config", "command", "context", "ble_report")
_STORE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # config.Ident: a store id
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
M = TypeVar("M", bound=BaseModel)


class BundleRejected(Refused):
    """A bundle that must not be applied; `code` is stable for counters and acks, `reason` is for people."""

    def __init__(self, code: str, reason: str, version: int | None = None):
        super().__init__(code, reason)
        self.version = version  # what a verified but invalid bundle claims to be, for the ack


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64url(text: str, what: str) -> bytes:
    if not _B64URL.fullmatch(text):
        raise BundleRejected("malformed", f"{what} is not unpadded base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise BundleRejected("malformed", f"{what} does not decode ({exc})") from None


def _signed_bytes(kind: str, store: str, payload_b64: str) -> bytes:
    return f"{FORMAT}.{kind}.{store}.{payload_b64}".encode("ascii")


def seal(key: Ed25519PrivateKey, kind: str, store: str, payload: bytes) -> bytes:
    """Wrap payload bytes (a bundle's or a message's JSON) in an envelope signed for one store."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if not _STORE.fullmatch(store):
        raise ValueError(f"store must be a store id (letters, digits, _ . -), got {store!r}")
    payload_b64 = b64url(payload)
    signature = key.sign(_signed_bytes(kind, store, payload_b64))
    envelope = {"format": FORMAT, "kind": kind, "store": store, "payload": payload_b64, "signature": b64url(signature)}
    return json.dumps(envelope, separators=(",", ":")).encode("utf-8")


def open_envelope(data: bytes, kind: str, store: str, keys: list[Ed25519PublicKey], max_bytes: int) -> bytes:
    """The verified payload bytes of an envelope of `kind` for `store`; raises BundleRejected with the reason
    otherwise (`other_store` for a genuine message meant for another store)."""
    names = ("format", "kind", "store", "payload", "signature")
    envelope = json_input.exact_object(data, names, max_bytes=max_bytes, refuse=BundleRejected, what="envelope")
    fields = [envelope[f] for f in names]
    if not all(isinstance(f, str) for f in fields):
        raise BundleRejected("malformed", "envelope fields must be strings")
    fmt, got_kind, got_store, payload_b64, signature_b64 = fields
    if fmt != FORMAT:
        raise BundleRejected("malformed", f"format {fmt[:40]!r} is not {FORMAT}")
    if got_kind != kind:
        raise BundleRejected("wrong_kind", f"a {got_kind[:40]!r} envelope sent where {kind!r} was expected")
    if got_store != store:
        raise BundleRejected("other_store", f"signed for store {got_store[:64]!r}, not this store {store!r}")
    payload = _unb64url(payload_b64, "payload")
    signature = _unb64url(signature_b64, "signature")
    signed = _signed_bytes(kind, store, payload_b64)
    for key in keys:
        try:
            key.verify(signature, signed)
        except InvalidSignature:
            continue
        return payload
    raise BundleRejected("bad_signature", "not signed by any of this store's bundle keys (forged or altered)")


def parse_payload(payload: bytes, model: type[M]) -> M:
    """Validate verified payload bytes against the bundle's model; every problem names its field."""
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        raise BundleRejected("invalid", describe(exc), version=_claimed_version(payload)) from None


def describe(exc: ValidationError, limit: int = 3) -> str:
    parts = []
    for err in exc.errors()[:limit]:
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        parts.append(f"{where}: {err['msg']}")
    more = exc.error_count() - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _claimed_version(payload: bytes) -> int | None:
    try:
        version = json_input.loads(payload).get("version")
    except (ValueError, AttributeError, UnicodeDecodeError):
        return None
    return version if isinstance(version, int) else None
