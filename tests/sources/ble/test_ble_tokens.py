"""The rotating token against the published vectors (docs/protocols/ble-token.md) and an independent HKDF (RFC 5869)."""

import hashlib
import hmac
import subprocess
import sys
from datetime import UTC, datetime

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.sources.ble import frames, tokens
from simulators.phone import phone_for, vector

SECRET = bytes(range(32))
BATTERY_UUID = "0000180f-0000-1000-8000-00805f9b34fb"
# The published vectors (docs/protocols/ble-token.md); a phone app is correct when it reproduces these.
VECTORS = [
    (1_800_000_000, 3_000_000, "20270115", "8e35f672c338bef1061377e208ed2dd7", "1014ee4749260285ef0c1e5989d34ebe"),
    (1_800_057_599, 3_000_095, "20270115", "8e35f672c338bef1061377e208ed2dd7", "bcc890eab0c5fe1221e9307d589b5ddc"),
    (1_800_057_600, 3_000_096, "20270116", "5b8dd985859aadbe3837ab3218f46479", "19fe688f2a404da96a9d2ea48058ec00"),
]


RPIK = {"20270115": "70223154bd3d7542512a9d819276add1", "20270116": "8540468c97fa3ffa25d3067a6330d9cb"}


def rfc5869(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    prk = hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()[:16]


def test_the_published_vectors():
    for unix, interval, day, dk, token in VECTORS:
        v = vector(SECRET, "acme", unix, 0xFFFF)
        assert (v["interval"], v["day"], v["day_key"], v["token"]) == (interval, day, dk, token)
        assert v["manufacturer_data"] == {"company_id": "0xFFFF", "value": "5301" + token}


def test_the_vectors_follow_the_written_scheme_step_by_step():
    for _unix, interval, day, dk, token in VECTORS:
        day_key = rfc5869(SECRET, b"acme", b"SEA-DK" + day.encode())
        assert day_key.hex() == dk
        rpik = rfc5869(day_key, b"", b"SEA-RPIK")
        assert rpik.hex() == RPIK[day]
        enc = Cipher(algorithms.AES(rpik), modes.ECB()).encryptor()
        block = b"SEA-RPI" + bytes(5) + interval.to_bytes(4, "little")
        assert (enc.update(block) + enc.finalize()).hex() == token
        assert datetime.fromtimestamp(interval * 600, UTC).strftime("%Y%m%d") == day


def test_the_resolver_knows_two_intervals_either_side_and_nothing_else():
    phone = phone_for("alice", "acme")
    now = 1_800_000_000
    resolver = tokens.TokenResolver()
    keys = {"alice": {d: tokens.day_key(phone.secret, "acme", d) for d in tokens.days_around(now)}}
    resolver.rebuild(keys, now)
    assert len(resolver) == 5
    for minutes in (-20, -10, 0, 10, 20):
        assert resolver.resolve(phone.token(now + minutes * 60)) == "alice"
    assert resolver.resolve(phone.token(now - 30 * 60)) is None
    assert resolver.resolve(phone.token(now + 30 * 60)) is None
    assert resolver.resolve(phone_for("mallory", "acme").token(now)) is None
    assert resolver.resolve(phone_for("alice", "other-chain").token(now)) is None


def test_a_resolver_kept_running_resolves_exactly_what_a_fresh_one_does():
    """Tokens made for earlier windows are reused as the window moves on (one new block per interval), across
    midnight, forwards, backwards (a clock set back) and after a jump: always the tokens of the window now."""
    phones = {ref: phone_for(ref, "acme") for ref in ("alice", "bob")}
    midnight = 1_800_057_600
    running = tokens.TokenResolver()
    for minutes in (-40, -30, -20, -10, 0, 10, 20, 30, 40, 20, -20, 600, 610):
        now = midnight + minutes * 60
        days = tokens.TokenResolver.days_needed(now)
        keys = {ref: {d: tokens.day_key(p.secret, "acme", d) for d in days} for ref, p in phones.items()}
        running.rebuild(keys, now)
        fresh = tokens.TokenResolver()
        fresh.rebuild(keys, now)
        assert running._table == fresh._table, minutes
        assert {running.resolve(p.token(now + k * 600)) for p in phones.values() for k in (-2, 0, 2)} == set(phones)


MEMORY_PROBE = """
import gc, secrets
from edge_agent.sources.ble import tokens
def rss_kb():
    return int(open("/proc/self/statm").read().split()[1]) * 4
now = 1_800_000_000 - 1_800_000_000 % 86_400 + 43_200  # midday: one day key per customer
keys = {f"c{i:05d}": {d: secrets.token_bytes(16) for d in tokens.days_around(now, 0, 0)} for i in range(20_000)}
gc.collect()
before = rss_kb()
resolver = tokens.TokenResolver()
resolver.rebuild(keys, now)
resolver.rebuild(keys, now + 600)
gc.collect()
print((rss_kb() - before) / 20_000)
"""


def test_the_token_table_holds_about_a_kilobyte_per_customer():
    """docs/ble-presence.md: ~1.0–1.3 KB of memory per customer who consents to BLE, after a build and a new
    interval (a cipher object per day key made it ~1.8 KiB here). In a process of its own, so nothing else this run
    allocated counts."""
    done = subprocess.run([sys.executable, "-c", MEMORY_PROBE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) < 1.5  # KiB


def test_around_midnight_both_days_keys_are_used():
    phone = phone_for("alice", "acme")
    midnight = 1_800_057_600
    assert tokens.TokenResolver.days_needed(midnight) == ["20270115", "20270116"]
    resolver = tokens.TokenResolver()
    only_today = {"alice": {"20270116": tokens.day_key(phone.secret, "acme", "20270116")}}
    resolver.rebuild(only_today, midnight)
    assert resolver.resolve(phone.token(midnight)) == "alice"
    assert resolver.resolve(phone.token(midnight - 60)) is None  # yesterday's key was not given


def test_advert_payload_round_trip_and_foreign_payloads():
    token = bytes(range(16))
    payload = tokens.advert_payload(token)
    assert tokens.parse_payload(payload) == token
    assert frames.token_in({0xFFFF: payload}, 0xFFFF) == frames.TokenFrame(token)
    assert frames.token_in({0x1234: payload}, 0xFFFF) is None
    assert tokens.parse_payload(b"\x53\x02" + token) is None
    assert tokens.parse_payload(payload[:-1]) is None


def test_the_token_in_ibeacon_shape_and_only_with_its_marker():
    token = bytes(range(16))
    shaped = frames.ibeacon_payload(token, -61)
    assert shaped.hex() == "0215" + token.hex() + "534541" + "01" + "c3"
    assert frames.token_in({frames.APPLE: shaped}, 0xFFFF) == frames.TokenFrame(token, -61)
    store_beacon = bytes.fromhex("0215") + token + bytes.fromhex("53454102c3")  # another minor: a beacon
    assert frames.token_in({frames.APPLE: store_beacon}, 0xFFFF) is None
    phone = phone_for("alice", "acme")
    assert frames.token_in(phone.ibeacon_advert(1_796_000_000), 0xFFFF).token == phone.token(1_796_000_000)
    first_row = bytes.fromhex("1014ee4749260285ef0c1e5989d34ebe")  # docs/protocols/ble-token.md, iBeacon shape
    assert frames.ibeacon_payload(first_row, -59).hex() == "02151014ee4749260285ef0c1e5989d34ebe53454101c5"


def test_ibeacon_and_eddystone_frames():
    ibeacon = bytes.fromhex("0215") + bytes(range(16)) + bytes.fromhex("0001000ac5")
    beacon = frames.ibeacon_in({frames.APPLE: ibeacon})
    assert beacon is not None
    assert beacon.beacon_id == "ibeacon:00010203-0405-0607-0809-0a0b0c0d0e0f:1:10"
    assert beacon.measured_power == -59
    uid = bytes([0x00, 0xEE]) + bytes(range(10)) + bytes(range(6)) + bytes(2)
    eddy = frames.eddystone_in({frames.EDDYSTONE_UUID: uid})
    assert eddy is not None and eddy.beacon_id == "eddystone:00010203040506070809:000102030405"
    assert eddy.measured_power == -18 - 41
    url = bytes([0x10, 0xF0, 0x03]) + b"shop" + bytes([0x07])
    assert frames.eddystone_in({frames.EDDYSTONE_UUID: url}).beacon_id == "eddystone-url:https://shop.com"


@given(
    st.dictionaries(st.integers(0, 0xFFFF), st.binary(max_size=40), max_size=3),
    st.dictionaries(st.sampled_from([frames.EDDYSTONE_UUID, BATTERY_UUID]), st.binary(max_size=30)),
)
def test_malformed_or_truncated_adverts_never_raise(manufacturer, service):
    frames.token_in(manufacturer, 0xFFFF)
    frames.ibeacon_in(manufacturer)
    frames.eddystone_in(service)


@given(st.binary(min_size=0, max_size=40))
def test_every_truncation_of_real_frames_is_refused_not_raised(junk):
    token = tokens.advert_payload(bytes(16))
    for n in range(len(token)):
        assert tokens.parse_payload(token[:n]) is None
    assert frames.ibeacon_in({frames.APPLE: junk[:22]}) is None
