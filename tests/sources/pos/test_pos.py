"""The till's line protocol (unit) and the POS reader over a real pty pair with a simulated till:
receipts, garbage lines, a port that disappears and comes back, and purchases converting end to end."""

import asyncio
import json
from pathlib import Path

import pytest

from edge_agent.bus import Bus
from edge_agent.clock import Clock
from edge_agent.config import PosSettings, from_dict
from edge_agent.events import Customer, Presence, PresenceKind, Purchase
from edge_agent.sources.pos.protocol import LineRejected, PosProfile, ProfileError, ReceiptParser, load_profile
from edge_agent.sources.pos.source import PosSource
from edge_agent.sources.pos.tills import TillKinds
from edge_agent.store import open_store
from simulators.till import PROFILE as TILL_PROFILE
from simulators.till import SimulatedTill
from tests.factories import config_dict, customer, offer, running_task, seed

ROOT = Path(__file__).resolve().parents[3]
PROFILE = ROOT / "firmware_configs" / "pos" / "generic-pipe.toml"


def parser():
    return ReceiptParser(load_profile(PROFILE))


def test_a_receipt_is_parsed_from_its_records():
    p = parser()
    assert p.feed(b"TXN|1001|alice") is None
    assert p.feed(b"ITM|coffee|2|350|") is None
    assert p.feed(b"ITM|rice-5kg||899|AB3DE7FK") is None
    receipt = p.feed(b"END|1001")
    assert receipt.txn_id == "1001" and receipt.loyalty_id == "alice"
    assert [(i.sku, i.qty, i.price_cents, i.claim_code) for i in receipt.items] == [
        ("coffee", 2, 350, None),
        ("rice-5kg", 1, 899, "AB3DE7FK"),
    ]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"\xff\xfe\x00garbage", "bad_encoding"),
        (b"HELLO|world", "unknown_record"),
        (b"TXN|1002", "field_count"),
        (b"TXN|bad id!|", "bad_txn_id"),
        (b"x" * 600, "too_long"),
        (b"TXN|1\x07|", "control_characters"),
    ],
)
def test_garbage_lines_are_rejected_with_a_reason(line, reason):
    with pytest.raises(LineRejected) as info:
        parser().feed(line)
    assert info.value.code == reason and info.value.reason


def test_items_are_checked_and_receipts_must_be_whole():
    p = parser()
    with pytest.raises(LineRejected, check=lambda e: e.code == "item_outside_receipt"):
        p.feed(b"ITM|coffee|1|100|")
    p.feed(b"TXN|1|")
    for bad, reason in [
        (b"ITM|coffee|-1|100|", "bad_qty"),
        (b"ITM|coffee|one|100|", "bad_qty"),
        (b"ITM|cof fee|1|100|", "bad_sku"),
        (b"ITM|coffee|1|100|a!", "bad_claim_code"),
    ]:
        with pytest.raises(LineRejected) as info:
            p.feed(bad)
        assert info.value.code == reason and info.value.reason
    p.feed(b"ITM|coffee|1|100|")
    p.feed(b"TXN|2|")  # a new receipt before END: the first is abandoned, never reported half
    assert p.abandoned == 1
    with pytest.raises(LineRejected, check=lambda e: e.code == "txn_mismatch"):
        p.feed(b"END|1")
    with pytest.raises(LineRejected, check=lambda e: e.code == "end_outside_receipt"):
        p.feed(b"END|2")


def test_profiles_are_validated_with_the_key_named(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'name = "x"\n[serial]\nbaudrate = 12\n[records.begin]\ntag = "H"\nfields = ["txn_id"]\n'
        '[records.item]\ntag = "I"\nfields = ["sku", "colour"]\n[records.end]\ntag = "T"\nfields = ["txn_id"]\n'
    )
    with pytest.raises(ProfileError) as err:
        load_profile(bad)
    assert "serial.baudrate" in str(err.value) and "colour" in str(err.value)
    bad.write_text('name = "x"\nbogus = 1\n')
    with pytest.raises(ProfileError, match="bogus"):
        load_profile(bad)


def test_the_simulated_till_speaks_the_published_profile():
    assert load_profile(PROFILE) == PosProfile.model_validate(TILL_PROFILE)


def test_the_published_schema_matches_the_profile_models():
    published = json.loads((ROOT / "firmware_configs" / "pos" / "profile.schema.json").read_text())
    assert published == TillKinds.model_json_schema()  # a line protocol or a receipt tap, by `kind`


async def wait_for(condition, timeout=20.0):
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def test_the_reader_on_a_pty_survives_garbage_and_a_vanishing_port(tmp_path):
    store = open_store(tmp_path / "a.db")
    card_holder = customer("carl").model_copy(update={"loyalty_id": "40000077"})
    store.roster.upsert([customer("alice"), customer("bob", personalisation=False), card_holder], updated_at="t")
    till = SimulatedTill(tmp_path / "ttyTILL")
    bus = Bus()
    purchases = bus.subscribe(Purchase, "test")
    source = PosSource(
        PosSettings(port=str(till.path), profile=PROFILE, till_id="till-7", reconnect_s=0.1),
        load_profile(PROFILE),
        store,
        bus,
        Clock(),
    )
    async with running_task(source.run(), till.close, store.close):
        await wait_for(source.connected.is_set)
        till.write_line(b"\x00\xff\xfenoise")
        till.write_line("ITM|orphan|1|1|")
        till.receipt("5001", [("coffee", 1, 350, None)], loyalty_id="alice")
        till.write_line(b"#" * 2000)  # an over-long line: one rejection, the next line is fine
        till.receipt("5002", [("tea", 3, 120, None)], loyalty_id="bob")
        till.receipt("5004", [("milk", 1, 99, None)], loyalty_id="40000077")  # a loyalty card number
        got = [await asyncio.wait_for(purchases.get(), 20) for _ in range(3)]
        assert [(p.txn_id, p.customer_ref) for p in got] == [
            ("till-7:5001", "alice"),
            ("till-7:5002", None),
            ("till-7:5004", "carl"),
        ]
        assert got[1].lines[0].sku == "tea" and got[1].lines[0].qty == 3
        assert source.rejected["bad_encoding"] == 1
        assert source.rejected["item_outside_receipt"] == 1
        assert source.rejected["too_long"] == 1
        assert sum(source.rejected.values()) == 3

        till.unplug()
        await wait_for(lambda: source.counts["port_lost"] >= 1)
        await wait_for(lambda: source.counts["open_failures"] >= 1)  # keeps retrying while it is gone
        till.plug_in()
        await wait_for(lambda: source.counts["opened"] >= 2)
        await wait_for(source.connected.is_set)
        till.receipt("5003", [("bread", 1, 200, None)], loyalty_id="alice")
        after = await asyncio.wait_for(purchases.get(), 20)
        assert after.txn_id == "till-7:5003"


async def test_a_till_purchase_converts_a_shown_offer_in_the_running_agent(tmp_path, issuer, running):
    till = SimulatedTill(tmp_path / "ttyTILL")
    settings = from_dict(
        config_dict(
            tmp_path,
            issuer,
            sources={"checkin": True, "pos": True},
            pos={"port": str(till.path), "profile": str(PROFILE), "reconnect_s": 0.1},
        )
    )
    agent = await running(settings, seeded=False)
    seed(agent, offers=[offer("coffee", sku="coffee", priority=2), offer("other")], roster=[customer("alice")])
    try:
        await wait_for(agent.pos.connected.is_set)
        clock = agent.clock
        agent.engine.on_presence(
            Presence(Customer("alice"), "entrance", PresenceKind.ENTER, 0.0, clock.mono(), clock.wall(), explicit=True)
        )
        till.receipt("9001", [("coffee", 1, 350, None), ("milk", 1, 99, None)], loyalty_id="alice")
        till.receipt("9001", [("coffee", 1, 350, None)], loyalty_id="alice")  # printed twice: counted once
        await wait_for(lambda: agent.attribution.counts["duplicate_transactions"] == 1)
        assert agent.store.conversions.count() == 1
        row = agent.store.db.execute("SELECT offer_id, arm, customer_ref FROM conversions").fetchone()
        assert row == ("coffee", "default", "alice")
        health = agent.health()
        assert health["pos"]["connected"] and health["pos"]["receipts"] == 2
        assert health["decide"]["attribution"]["conversions_window"] == 1
    finally:
        till.close()
