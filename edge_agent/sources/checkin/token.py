"""The app check-in token: issued and signed by the cloud, verified by the agent offline.

    token   = "SEA1." + b64url(payload) + "." + b64url(signature)
    payload = UTF-8 JSON {"sub": customer_ref, "tp": touchpoint, "store": store_id,
                          "iat": unix seconds, "exp": unix seconds, "jti": unique token id}
    signature = Ed25519(private key, b"SEA-CHECKIN-1." + b64url(payload))

b64url is unpadded URL-safe base64. This module is pure (no I/O) so the phone side, the cloud simulator and
the agent share one definition, and it can be fuzzed on its own.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ... import json_input
from ...errors import Refused

PREFIX = "SEA1"
CONTEXT = b"SEA-CHECKIN-1."
MAX_TOKEN_CHARS = 4096
_B64URL = re.compile(r"[A-Za-z0-9_-]+")


class TokenError(Refused):
    """A token that must be refused."""


@dataclass(frozen=True)
class CheckinClaims:
    customer_ref: str
    touchpoint: str
    store: str
    issued_at: int
    expires_at: int
    token_id: str


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not _B64URL.fullmatch(text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue(key: Ed25519PrivateKey, claims: CheckinClaims) -> str:
    payload = {
        "sub": claims.customer_ref,
        "tp": claims.touchpoint,
        "store": claims.store,
        "iat": claims.issued_at,
        "exp": claims.expires_at,
        "jti": claims.token_id,
    }
    body = _b64encode(json.dumps(payload, separators=(",", ":")).encode("utf-8"))
    signature = key.sign(CONTEXT + body.encode("ascii"))
    return f"{PREFIX}.{body}.{_b64encode(signature)}"


def verify(token: Any, keys: list[Ed25519PublicKey]) -> CheckinClaims:
    """Check format and signature and return the claims; time, store and replay are the caller's rules."""
    if not isinstance(token, str):
        raise TokenError("malformed", f"token must be a string, got {type(token).__name__}")
    if len(token) > MAX_TOKEN_CHARS:
        raise TokenError("malformed", f"token longer than {MAX_TOKEN_CHARS} characters")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise TokenError("malformed", f"token must be '{PREFIX}.<payload>.<signature>'")
    try:
        body = _b64decode(parts[1])
        signature = _b64decode(parts[2])
    except (binascii.Error, ValueError):
        raise TokenError("malformed", "token parts are not base64url") from None
    signed = CONTEXT + parts[1].encode("ascii", "replace")
    if not any(_valid(k, signature, signed) for k in keys):
        raise TokenError("bad_signature", "signature does not match any check-in key of this store")
    try:
        payload = json_input.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise TokenError("malformed", "payload is not JSON") from None
    return _claims(payload)


def _valid(key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def _claims(payload: Any) -> CheckinClaims:
    if not isinstance(payload, dict):
        raise TokenError("malformed", "payload must be a JSON object")
    strings = {"sub": 128, "tp": 64, "store": 64, "jti": 128}
    for name, limit in strings.items():
        value = payload.get(name)
        if not isinstance(value, str) or not 0 < len(value) <= limit:
            raise TokenError("malformed", f"payload field {name!r} must be a string of 1..{limit} characters")
    for name in ("iat", "exp"):
        value = payload.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise TokenError("malformed", f"payload field {name!r} must be a non-negative integer (unix seconds)")
    return CheckinClaims(
        customer_ref=payload["sub"],
        touchpoint=payload["tp"],
        store=payload["store"],
        issued_at=payload["iat"],
        expires_at=payload["exp"],
        token_id=payload["jti"],
    )
