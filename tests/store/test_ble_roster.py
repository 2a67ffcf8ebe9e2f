"""Day keys travel with the roster, are kept only under BLE consent, and go with the customer on erasure."""

import base64
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from edge_agent.store import open_store
from edge_agent.store.roster import RosterEntry
from simulators.phone import phone_for

NOW = 1_800_000_000
ALICE = phone_for("alice", "chain-test")


def test_keys_are_stored_only_under_ble_consent_and_read_back(tmp_path):
    store = open_store(tmp_path / "a.db")
    alice = ALICE.roster_entry(NOW, {"ble": True}, phone_model="iphone")
    bob = phone_for("bob", "chain-test").roster_entry(NOW, {"checkin": True}, phone_model="pixel")
    store.roster.upsert([alice, bob], updated_at="t1")
    assert store.roster.get("alice") == alice
    assert store.roster.get("bob").day_keys == {} and store.roster.get("bob").phone_model is None
    keys = store.roster.ble_day_keys(["20270115"])
    assert list(keys) == ["alice"] and keys["alice"]["20270115"] == base64.b64decode(alice.day_keys["20270115"])
    assert store.roster.ble_phone_models() == {"alice": "iphone"}


def test_withdrawal_and_erasure_remove_every_key(tmp_path):
    store = open_store(tmp_path / "a.db")
    store.roster.upsert([ALICE.roster_entry(NOW, {"ble": True}, phone_model="iphone")], updated_at="t1")
    before = store.roster.fingerprint()
    store.roster.upsert([ALICE.roster_entry(NOW, {"ble": False})], updated_at="t2")
    assert store.roster.fingerprint() != before
    assert store.db.execute("SELECT count(*) FROM ble_day_keys").fetchone()[0] == 0
    store.roster.upsert([ALICE.roster_entry(NOW, {"ble": True}, phone_model="iphone")], updated_at="t3")
    store.db.execute("DELETE FROM customers WHERE customer_ref = 'alice'")  # erasure deletes the customer row
    for table in ("ble_day_keys", "ble_phones"):
        assert store.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0


def test_old_day_keys_are_pruned(tmp_path):
    store = open_store(tmp_path / "a.db")
    store.roster.upsert([ALICE.roster_entry(NOW, {"ble": True})], updated_at=datetime.now(UTC).isoformat())
    assert store.roster.prune_day_keys("20270115") == 1  # the day before is gone, today and tomorrow stay
    assert sorted(store.roster.get("alice").day_keys) == ["20270115", "20270116"]


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"2027-01-15": base64.b64encode(bytes(16)).decode()}, "yyyymmdd"),
        ({"20270115": "not base64!"}, "base64"),
        ({"20270115": base64.b64encode(bytes(15)).decode()}, "16 bytes"),
        ({f"202701{d:02d}": base64.b64encode(bytes(16)).decode() for d in range(1, 20)}, "at most 14"),
    ],
)
def test_bad_day_keys_are_refused_with_a_reason(keys, message):
    with pytest.raises(ValidationError) as info:
        RosterEntry(customer_ref="alice", consents={"ble": True}, day_keys=keys)
    assert message in str(info.value)
