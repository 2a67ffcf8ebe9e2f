"""An app's report of the beacons it heard: the published vector, checked with an independent HKDF and HMAC;
any bytes are parsed or refused with a code, never raised; a tag holds only for the report as sent, with the
day key of its customer."""

from __future__ import annotations

import hashlib
import hmac
import json
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.sources.ble import reports, tokens
from simulators.phone import Phone

SECRET = bytes(range(32))
AT = 1_800_000_000  # the first row of the token vectors (docs/protocols/ble-token.md)
TOKEN = bytes.fromhex("1014ee4749260285ef0c1e5989d34ebe")
NONCE = bytes.fromhex("0001020304050607")
HEARD = (reports.HeardBeacon(42, 4660, -63, "near"), reports.HeardBeacon(42, 22136, -77, "far"))
VECTOR = (
    b'{"v":1,"token":"1014ee4749260285ef0c1e5989d34ebe","at":1800000000,"nonce":"0001020304050607",'
    b'"beacons":[{"major":42,"minor":4660,"rssi":-63,"proximity":"near"},'
    b'{"major":42,"minor":22136,"rssi":-77,"proximity":"far"}],"tag":"ddc86e95a5864dd4d6bb14b3736262f3"}'
)
EXIT_VECTOR = (
    b'{"v":1,"token":"1014ee4749260285ef0c1e5989d34ebe","at":1800000000,"nonce":"0001020304050607",'
    b'"beacons":[],"tag":"972e41b965e0dd29d36b85922d7ba22b"}'
)


def _rfc5869(ikm: bytes, info: bytes, length: int = 16) -> bytes:
    prk = hmac.new(bytes(32), ikm, hashlib.sha256).digest()  # salt=none: 32 zero bytes
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()[:length]


def test_the_published_vector_with_an_independent_hkdf_and_hmac():
    day_key = tokens.day_key(SECRET, "acme", "20270115")
    rk = _rfc5869(day_key, b"SEA-RK")
    assert rk.hex() == "e4d398879be6ef5758663dbc29141cd3" == reports.report_key(day_key).hex()
    message = b"SEA-RPT-1" + TOKEN + struct.pack(">I", AT) + NONCE + b"\x02"
    message += struct.pack(">HHbB", 42, 4660, -63, 2) + struct.pack(">HHbB", 42, 22136, -77, 3)
    assert hmac.new(rk, message, hashlib.sha256).digest()[:16].hex() == "ddc86e95a5864dd4d6bb14b3736262f3"
    assert reports.make(day_key, TOKEN, AT, NONCE, HEARD) == VECTOR
    phone = Phone("alice", SECRET, "acme")
    assert phone.report(AT, HEARD, NONCE) == VECTOR  # the phone side
    report = reports.parse(VECTOR)
    assert report.token == TOKEN and report.beacons == HEARD and reports.verify(report, day_key)


def test_the_exit_vector_a_report_of_no_beacons():
    day_key = tokens.day_key(SECRET, "acme", "20270115")
    message = b"SEA-RPT-1" + TOKEN + struct.pack(">I", AT) + NONCE + b"\x00"
    assert (
        hmac.new(reports.report_key(day_key), message, hashlib.sha256).digest()[:16].hex()
        == "972e41b965e0dd29d36b85922d7ba22b"
    )
    assert Phone("alice", SECRET, "acme").report(AT, (), NONCE) == EXIT_VECTOR
    report = reports.parse(EXIT_VECTOR)
    assert report.beacons == () and reports.verify(report, day_key)


def test_a_tag_holds_only_for_the_report_as_sent_and_its_customers_day_key():
    day_key = tokens.day_key(SECRET, "acme", "20270115")
    sent = json.loads(VECTOR)
    for change in ({"at": AT + 1}, {"nonce": "0001020304050608"}, {"beacons": [sent["beacons"][0]]}):
        altered = reports.parse(json.dumps(sent | change).encode())
        assert not reports.verify(altered, day_key)
    other = tokens.day_key(bytes(32), "acme", "20270115")
    assert not reports.verify(reports.parse(VECTOR), other)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"v": 2}, "version"),
        ({"token": "zz"}, "malformed"),
        ({"at": -1}, "malformed"),
        ({"at": True}, "malformed"),
        ({"beacons": {}}, "malformed"),
        ({"beacons": [{"major": 1, "minor": 1, "rssi": -60, "proximity": "near"}] * 9}, "malformed"),
        ({"beacons": [{"major": 70000, "minor": 1, "rssi": -60, "proximity": "near"}]}, "malformed"),
        ({"beacons": [{"major": 1, "minor": 1, "rssi": -60.5, "proximity": "near"}]}, "malformed"),
        ({"beacons": [{"major": 1, "minor": 1, "rssi": 5, "proximity": "near"}]}, "malformed"),
        ({"beacons": [{"major": 1, "minor": 1, "rssi": -60, "proximity": "close"}]}, "malformed"),
        ({"beacons": [{"major": 1, "minor": 1, "rssi": -60}]}, "malformed"),
        ({"extra": 1}, "malformed"),
    ],
)
def test_a_malformed_report_is_refused_naming_the_field(change, code):
    with pytest.raises(reports.ReportRefused) as refused:
        reports.parse(json.dumps(json.loads(VECTOR) | change).encode())
    assert refused.value.code == code and refused.value.reason


@given(
    st.binary(max_size=300)
    | st.dictionaries(st.sampled_from(sorted(reports._KEYS)), st.integers()).map(lambda d: json.dumps(d).encode())
)
def test_any_bytes_are_parsed_or_refused_never_raised(data):
    try:
        reports.parse(data)
    except reports.ReportRefused as exc:
        assert exc.code in {"malformed", "version", "too_large"}
