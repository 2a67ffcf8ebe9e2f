"""The signed envelope around offer bundles and rosters: verified before a byte of the payload is parsed.

    envelope  = UTF-8 JSON {"format": "SEA-BUNDLE-1", "kind": KIND, "payload": b64url(P), "signature": b64url(S)}
    P         = the bundle as UTF-8 JSON (any formatting: the exact bytes are what is signed)
    S         = Ed25519(cloud key, b"SEA-BUNDLE-1." + KIND + b"." + b64url(P))
    KIND      = "offers" | "roster" | "roster_delta" | "config"

b64url is unpadded URL-safe base64. The kind is inside the signed bytes, so a roster can never be passed
off as an offer bundle. Pure code (no I/O): the agent, the CLI and the cloud simulator share it.
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

FORMAT = "SEA-BUNDLE-1"
KINDS = ("offers", "roster", "roster_delta", "config")
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


def _signed_bytes(kind: str, payload_b64: str) -> bytes:
    return f"{FORMAT}.{kind}.{payload_b64}".encode("ascii")


def seal(key: Ed25519PrivateKey, kind: str, payload: bytes) -> bytes:
    """Wrap payload bytes (a bundle's JSON) in a signed envelope."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    payload_b64 = b64url(payload)
    signature = key.sign(_signed_bytes(kind, payload_b64))
    envelope = {"format": FORMAT, "kind": kind, "payload": payload_b64, "signature": b64url(signature)}
    return json.dumps(envelope, separators=(",", ":")).encode("utf-8")


def open_envelope(data: bytes, kind: str, keys: list[Ed25519PublicKey], max_bytes: int) -> bytes:
    """The verified payload bytes of an envelope of `kind`; raises BundleRejected with the reason otherwise."""
    if len(data) > max_bytes:
        raise BundleRejected("too_large", f"{len(data)} bytes, more than the {max_bytes} allowed")
    try:
        envelope = json_input.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BundleRejected("malformed", f"envelope is not UTF-8 JSON ({exc})") from None
    if not isinstance(envelope, dict) or set(envelope) != {"format", "kind", "payload", "signature"}:
        raise BundleRejected("malformed", "envelope must be an object with exactly format, kind, payload, signature")
    fields = [envelope[f] for f in ("format", "kind", "payload", "signature")]
    if not all(isinstance(f, str) for f in fields):
        raise BundleRejected("malformed", "envelope fields must be strings")
    fmt, got_kind, payload_b64, signature_b64 = fields
    if fmt != FORMAT:
        raise BundleRejected("malformed", f"format {fmt[:40]!r} is not {FORMAT}")
    if got_kind != kind:
        raise BundleRejected("wrong_kind", f"a {got_kind[:40]!r} envelope sent where {kind!r} was expected")
    payload = _unb64url(payload_b64, "payload")
    signature = _unb64url(signature_b64, "signature")
    signed = _signed_bytes(kind, payload_b64)
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
