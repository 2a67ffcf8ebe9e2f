import sqlite3

import pytest
from sqlite_utils import Database

from edge_agent.store import open_store
from edge_agent.store.impressions import ImpressionRecord
from edge_agent.store.migrate import available, migrate, version
from edge_agent.store.outbox import DropClass
from tests.factories import customer, decision, offer


def _impression(decision_id="d1", impression_id="i1"):
    return ImpressionRecord(
        impression_id,
        decision_id,
        "2026-11-24T10:00:01.000+00:00",
        True,
        "2026-11-24T10:00:01.000+00:00",
        "screen-a",
        "o1",
        "alice",
    )


def test_migrations_are_numbered_and_bring_an_empty_file_to_the_latest(tmp_path):
    migrations = available()
    assert [m.number for m in migrations] == list(range(1, len(migrations) + 1))
    store = open_store(tmp_path / "a.db")
    assert version(store.db) == migrations[-1].number
    assert {"offers", "customers", "consents", "decisions", "impressions", "outbox", "checkin_nonces"} <= set(
        store.db.table_names()
    )
    assert migrate(store.db) == []  # idempotent
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA secure_delete").fetchone()[0] == 1


def test_written_facts_survive_a_restart(tmp_path):
    store = open_store(tmp_path / "a.db")
    store.offers.replace_all([offer("o1")])
    store.roster.upsert([customer("alice")], updated_at="2026-11-24T10:00:00+00:00")
    store.decisions.record(decision())
    assert store.impressions.record(_impression())
    store.close()
    again = open_store(tmp_path / "a.db")
    assert [o.offer_id for o in again.offers.all()] == ["o1"]
    assert again.roster.get("alice").consents_to("personalisation")
    assert again.decisions.get("d1").offer_id == "o1"
    assert again.impressions.count() == 1
    kinds = [row.kind for row in again.outbox.peek("events")]
    assert kinds == ["decision", "impression"]


def test_impression_and_its_outbox_row_commit_together(tmp_path):
    store = open_store(tmp_path / "a.db")
    store.decisions.record(decision())
    before = store.outbox.depth()
    # Make the outbox insert fail: the impression must not stay behind without its outbox row.
    store.db.execute("CREATE TRIGGER no_outbox BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'disk says no'); END")
    with pytest.raises(sqlite3.IntegrityError):
        store.impressions.record(_impression())
    assert store.impressions.count() == 0
    assert store.outbox.depth() == before
    store.db.execute("DROP TRIGGER no_outbox")
    assert store.impressions.record(_impression())
    assert store.outbox.depth() == before + 1


def test_a_repeated_ack_is_recorded_once(tmp_path):
    store = open_store(tmp_path / "a.db")
    store.decisions.record(decision())
    assert store.impressions.record(_impression(impression_id="i1"))
    assert not store.impressions.record(_impression(impression_id="i2"))
    assert store.impressions.count() == 1
    assert [r.kind for r in store.outbox.peek("events")].count("impression") == 1


def test_outbox_keeps_order_uuid_and_removes_only_what_the_broker_has(tmp_path):
    store = open_store(tmp_path / "a.db")
    for n in range(5):
        store.outbox.add(stream="events", kind="test", payload={"n": n}, created_at="t", drop_class=DropClass.EVENT)
    rows = store.outbox.peek("events")
    assert [r.payload["n"] for r in rows] == [0, 1, 2, 3, 4]
    assert len({r.uuid for r in rows}) == 5 and all(r.payload["uuid"] == r.uuid for r in rows)
    store.outbox.acknowledge("events", rows[1].seq)
    assert store.outbox.remove_acknowledged("events") == 2
    assert [r.payload["n"] for r in store.outbox.peek("events")] == [2, 3, 4]


def test_replacing_offers_is_all_or_nothing(tmp_path):
    store = open_store(tmp_path / "a.db")
    store.offers.replace_all([offer("o1"), offer("o2")])
    with pytest.raises(sqlite3.IntegrityError):
        store.offers.replace_all([offer("o3"), offer("o3")])  # duplicate id fails half-way
    assert sorted(o.offer_id for o in store.offers.all()) == ["o1", "o2"]


def test_roster_upsert_replaces_the_consent_set(tmp_path):
    store = open_store(tmp_path / "a.db")
    store.roster.upsert([customer("alice")], updated_at="t1")
    store.roster.upsert([customer("alice", personalisation=False)], updated_at="t2")
    entry = store.roster.get("alice")
    assert entry.consents == {"checkin": True, "personalisation": False}
    assert store.roster.get("nobody") is None


def test_nonces_are_claimed_once_and_pruned_after_expiry(tmp_path):
    store = open_store(tmp_path / "a.db")
    assert store.nonces.claim("n1", expires_unix=100.0)
    assert not store.nonces.claim("n1", expires_unix=100.0)
    assert store.nonces.prune(now_unix=50.0) == 0
    assert store.nonces.prune(now_unix=150.0) == 1
    assert not store.nonces.seen("n1")


def test_bundles_apply_atomically_and_never_go_back(tmp_path):
    from datetime import UTC, datetime

    from edge_agent.store.bundles import OfferBundle, RosterBundle, StaleBundle, apply_offers, apply_roster

    store = open_store(tmp_path / "a.db")
    now = datetime.now(UTC)
    args = (store.db, store.bundle_versions)
    apply_offers(*args, store.offers, OfferBundle(version=2, issued_at=now, offers=[offer("o1")]), now.isoformat())
    with pytest.raises(StaleBundle):
        apply_offers(*args, store.offers, OfferBundle(version=2, issued_at=now, offers=[]), now.isoformat())
    assert [o.offer_id for o in store.offers.all()] == ["o1"]
    assert store.bundle_versions.current("offers") == 2

    roster = RosterBundle(version=1, issued_at=now, customers=[customer("alice"), customer("bob")])
    apply_roster(*args, store.roster, roster, now.isoformat())
    smaller = RosterBundle(version=2, issued_at=now, customers=[customer("bob")])
    apply_roster(*args, store.roster, smaller, now.isoformat())
    assert store.roster.get("alice") is None and store.roster.get("bob") is not None
    assert store.db.execute("SELECT count(*) FROM consents WHERE customer_ref = 'alice'").fetchone()[0] == 0


def test_every_message_up_says_whether_the_clock_was_synchronised(tmp_path):
    synced = [False]
    store = open_store(tmp_path / "a.db", clock_synced=lambda: synced[0])
    store.roster.upsert([customer("alice")], updated_at="t")
    with store.db.atomic():
        store.outbox.add(stream="events", kind="consent", payload={}, created_at="t1", drop_class=DropClass.NEVER)
    synced[0] = True
    with store.db.atomic():
        store.outbox.add(stream="events", kind="consent", payload={}, created_at="t2", drop_class=DropClass.NEVER)
    synced[0] = False
    store.decisions.record(decision())  # a decision carries its own flag (True), taken when it was made
    rows = store.outbox.peek("events")
    assert [r.payload["ntp_synced"] for r in rows] == [False, True, True]


def test_face_enrolment_requests_from_before_migration_16_end_as_not_taken_up(tmp_path):
    db = Database(tmp_path / "a.db")
    migrate(db, 15)
    db.execute("INSERT INTO customers (customer_ref, updated_at) VALUES ('alice', '2026-11-01T00:00:00+00:00')")
    db.execute(
        "INSERT INTO face_enrolment_requests (customer_ref, touchpoint, requested_at)"
        " VALUES ('alice', 'kiosk-a', '2026-11-02T10:00:00+00:00')"
    )
    db.conn.commit()
    db.close()
    store = open_store(tmp_path / "a.db")
    last = store.enrolments.last("alice")
    assert (last.touchpoint, last.started_at, last.outcome, last.reason) == (
        "kiosk-a",
        "2026-11-02T10:00:00+00:00",
        "failed",
        "not_taken_up",
    )
    assert "face_enrolment_requests" not in store.db.table_names()
