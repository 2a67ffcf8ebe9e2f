"""The signed envelope: only bytes signed by a trusted key, for the right kind and store, ever get parsed."""

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.cloud.envelope import BundleRejected, b64url, open_envelope, parse_payload, seal
from edge_agent.keys import public_key_b64, public_keys
from edge_agent.store.bundles import OfferBundle
from simulators.cloud import offer_bundle
from tests.factories import STORE, offer

KEY = Ed25519PrivateKey.generate()
KEYS = public_keys([public_key_b64(KEY.public_key())])
MAX = 1 << 20


def _bundle_bytes(version=3):
    return json.dumps(offer_bundle(version, [offer("o1"), offer("o2")])).encode()


def _rejected(data, kind="offers", keys=KEYS, max_bytes=MAX) -> BundleRejected:
    with pytest.raises(BundleRejected) as info:
        parse_payload(open_envelope(data, kind, STORE, keys, max_bytes), OfferBundle)
    return info.value


def test_a_signed_bundle_opens_and_parses():
    envelope = seal(KEY, "offers", STORE, _bundle_bytes())
    bundle = parse_payload(open_envelope(envelope, "offers", STORE, KEYS, MAX), OfferBundle)
    assert bundle.version == 3 and [o.offer_id for o in bundle.offers] == ["o1", "o2"]


def test_a_second_trusted_key_is_accepted_for_rotation():
    new_key = Ed25519PrivateKey.generate()
    keys = [*KEYS, *public_keys([public_key_b64(new_key.public_key())])]
    assert open_envelope(seal(new_key, "offers", STORE, b"{}"), "offers", STORE, keys, MAX) == b"{}"


def test_a_forged_signature_is_refused():
    forged = seal(Ed25519PrivateKey.generate(), "offers", STORE, _bundle_bytes())
    assert _rejected(forged).code == "bad_signature"


def test_an_altered_payload_is_refused():
    envelope = json.loads(seal(KEY, "offers", STORE, _bundle_bytes(3)))
    envelope["payload"] = b64url(_bundle_bytes(99))  # same signature, other bytes
    assert _rejected(json.dumps(envelope).encode()).code == "bad_signature"


def test_a_roster_cannot_pass_as_an_offer_bundle():
    rejected = _rejected(seal(KEY, "roster", STORE, _bundle_bytes()))
    assert rejected.code == "wrong_kind" and "'roster'" in rejected.reason


def test_another_stores_message_is_refused_however_genuine():
    rejected = _rejected(seal(KEY, "offers", "store-other", _bundle_bytes()))
    assert rejected.code == "other_store" and "'store-other'" in rejected.reason


def test_a_relabelled_store_breaks_the_signature():
    envelope = json.loads(seal(KEY, "offers", "store-other", _bundle_bytes()))
    envelope["store"] = STORE
    assert _rejected(json.dumps(envelope).encode()).code == "bad_signature"


def test_a_relabelled_kind_breaks_the_signature():
    envelope = json.loads(seal(KEY, "roster", STORE, _bundle_bytes()))
    envelope["kind"] = "offers"
    assert _rejected(json.dumps(envelope).encode()).code == "bad_signature"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\xff\xfe", "UTF-8 JSON"),
        (b"[1, 2]", "exactly format, kind, store, payload, signature"),
        (b'{"format": "SEA-BUNDLE-2", "kind": "offers", "store": "s", "payload": "e30", "signature": 5}', "strings"),
        (
            b'{"format": "X", "kind": "offers", "store": "s", "payload": "e30", "signature": "AA"}',
            "is not SEA-BUNDLE-2",
        ),
        (
            b'{"format": "SEA-BUNDLE-2", "kind": "offers", "store": "store-test", "payload": "e3+=", "signature": ""}',
            "base64url",
        ),
        (b'{"format": "SEA-BUNDLE-1", "kind": "offers", "payload": "e30", "signature": "AA"}', "exactly format"),
    ],
)
def test_malformed_envelopes_say_what_is_wrong(data, words):
    rejected = _rejected(data)
    assert rejected.code == "malformed" and words in rejected.reason


def test_an_oversized_envelope_is_refused_before_parsing():
    assert _rejected(b"x" * 2000, max_bytes=1024).code == "too_large"


def test_a_signed_but_invalid_bundle_names_the_field_and_its_version():
    bad = offer_bundle(4, [offer("o1")])
    bad["offers"][0]["valid_to"] = bad["offers"][0]["valid_from"]
    del bad["issued_at"]
    rejected = _rejected(seal(KEY, "offers", STORE, json.dumps(bad).encode()))
    assert rejected.code == "invalid" and rejected.version == 4
    assert "issued_at" in rejected.reason and "valid_to must be after valid_from" in rejected.reason


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=5)))
def test_garbage_is_always_a_clean_rejection(garbage):
    data = garbage if isinstance(garbage, bytes) else json.dumps(garbage).encode()
    assert _rejected(data).code in {"malformed", "wrong_kind", "other_store", "bad_signature"}
