import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.sources.checkin.token import CheckinClaims, TokenError, issue, verify

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
CLAIMS = CheckinClaims("alice", "kiosk-a", "store-test", 1_800_000_000, 1_800_000_300, "jti-1")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_round_trip():
    assert verify(issue(KEY, CLAIMS), [KEY.public_key()]) == CLAIMS


def test_any_of_several_keys_may_have_signed_it():
    other = Ed25519PrivateKey.generate()
    assert verify(issue(KEY, CLAIMS), [other.public_key(), KEY.public_key()]) == CLAIMS


def test_a_token_signed_by_another_key_is_forged():
    forged = issue(Ed25519PrivateKey.generate(), CLAIMS)
    with pytest.raises(TokenError) as info:
        verify(forged, [KEY.public_key()])
    assert info.value.code == "bad_signature"


def test_a_changed_payload_breaks_the_signature():
    prefix, _, sig = issue(KEY, CLAIMS).split(".")
    payload = {"sub": "mallory", "tp": "kiosk-a", "store": "store-test", "iat": 1, "exp": 2, "jti": "x"}
    tampered = f"{prefix}.{_b64(json.dumps(payload).encode())}.{sig}"
    with pytest.raises(TokenError) as info:
        verify(tampered, [KEY.public_key()])
    assert info.value.code == "bad_signature"


def _signed(payload_bytes: bytes) -> str:
    body = _b64(payload_bytes)
    return f"SEA1.{body}.{_b64(KEY.sign(b'SEA-CHECKIN-1.' + body.encode()))}"


@pytest.mark.parametrize(
    "token",
    [
        None,
        42,
        "",
        "SEA1.onlytwo",
        "JWT.a.b",
        "SEA1.***.***",
        "SEA1." + "A" * 5000 + ".x",
        _signed(b"not json"),
        _signed(b"[1, 2]"),
        _signed(json.dumps({"sub": "a", "tp": "k", "store": "s", "iat": 1, "exp": "2", "jti": "j"}).encode()),
        _signed(json.dumps({"sub": "", "tp": "k", "store": "s", "iat": 1, "exp": 2, "jti": "j"}).encode()),
        _signed(json.dumps({"sub": "a", "tp": "k", "store": "s", "iat": True, "exp": 2, "jti": "j"}).encode()),
        _signed(json.dumps({"tp": "k", "store": "s", "iat": 1, "exp": 2, "jti": "j"}).encode()),
    ],
)
def test_malformed_tokens_are_refused_with_a_reason(token):
    with pytest.raises(TokenError) as info:
        verify(token, [KEY.public_key()])
    assert info.value.code == "malformed"
    assert info.value.reason
