"""Erasure reaches every table with a customer_ref (including tables added later) and leaves no copy on disk."""

from edge_agent.store import open_store
from edge_agent.store.decisions import DecisionRecord
from edge_agent.store.erasure import customer_tables, erase_customer
from edge_agent.store.impressions import ImpressionRecord
from edge_agent.store.outbox import DropClass
from tests.factories import customer

MARK = "zq-erase-me-7731"  # a customer_ref that appears nowhere else, to search the raw files for


def _facts(store, ref, n):
    store.roster.upsert([customer(ref)], updated_at="t")
    store.decisions.record(
        DecisionRecord(f"d-{ref}-{n}", "t", True, "screen-a", "entrance", ref, "o1", ["o1"], {"o1": 1.0}, "p")
    )
    store.impressions.record(ImpressionRecord(f"i-{ref}-{n}", f"d-{ref}-{n}", "t", True, "t", "screen-a", "o1", ref))


def _count(store, table, ref):
    return store.db.execute(f"SELECT count(*) FROM {table} WHERE customer_ref = ?", [ref]).fetchone()[0]


def test_erasure_removes_every_row_of_the_customer_and_queues_a_receipt(tmp_path):
    store = open_store(tmp_path / "a.db")
    # Tables other rooms add later: one with the foreign key the brief asks for, one without.
    store.db.execute(
        "CREATE TABLE later_vectors (customer_ref TEXT NOT NULL REFERENCES customers (customer_ref)"
        " ON DELETE CASCADE, vector BLOB)"
    )
    store.db.execute("CREATE TABLE loyalty_scans (scan_id INTEGER PRIMARY KEY, customer_ref TEXT, at TEXT)")
    for ref in (MARK, "bob"):
        _facts(store, ref, 1)
        _facts(store, ref, 2)
        store.db.execute("INSERT INTO later_vectors VALUES (?, ?)", [ref, b"\x01" * 64])
        store.db.execute("INSERT INTO loyalty_scans (customer_ref, at) VALUES (?, 't')", [ref])
        with store.db.atomic():
            store.outbox.add(
                stream="events",
                kind="conversion",
                payload={"c": ref},
                created_at="t",
                drop_class=DropClass.NEVER,
                customer_ref=ref,
            )
    tables = customer_tables(store.db)
    filled = {"customers", "consents", "decisions", "impressions", "outbox", "later_vectors", "loyalty_scans"}
    assert filled <= set(tables)  # and every customer table the other rooms' migrations add

    deleted = erase_customer(store.db, store.outbox, MARK, {"command_id": "c1", "consent_epoch": 7}, now="now")

    assert deleted["decisions"] == 2 and deleted["impressions"] == 2 and deleted["loyalty_scans"] == 1
    assert deleted["outbox"] == 5  # 2 decisions, 2 impressions, 1 conversion not yet sent
    assert deleted["customers"] == 1
    for table in tables:
        assert _count(store, table, MARK) == 0, table
    for table in filled:
        assert _count(store, table, "bob") > 0, table  # everyone else is untouched
    receipt = [r for r in store.outbox.peek("ack") if r.kind == "erasure_receipt"]
    assert len(receipt) == 1
    body = receipt[0].payload
    assert body["customer_ref"] == MARK and body["consent_epoch"] == 7 and body["command_id"] == "c1"
    assert body["deleted"] == deleted
    drop_class = store.db.execute("SELECT drop_class FROM outbox WHERE kind = 'erasure_receipt'").fetchone()[0]
    assert drop_class == DropClass.NEVER
    # The receipt is the only place the ref is left, as the cloud must learn it; nothing else on disk has it.
    store.db.execute("DELETE FROM outbox WHERE kind = 'erasure_receipt'")
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    for path in tmp_path.iterdir():
        assert MARK.encode() not in path.read_bytes(), path.name


def test_erasing_someone_unknown_still_sends_a_receipt(tmp_path):
    store = open_store(tmp_path / "a.db")
    deleted = erase_customer(store.db, store.outbox, "nobody", {"command_id": "c2", "consent_epoch": 1}, now="now")
    assert set(deleted.values()) == {0}
    assert [r.kind for r in store.outbox.peek("ack")] == ["erasure_receipt"]
