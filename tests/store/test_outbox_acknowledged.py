"""Rows the broker acknowledged: marked at once, never read or counted again, deleted later by seq range."""

from edge_agent.store import open_store
from edge_agent.store.outbox import DropClass


def _add(store, n, stream="events", kind="test", drop_class=DropClass.EVENT):
    for i in range(n):
        store.outbox.add(stream=stream, kind=kind, payload={"i": i}, created_at=f"t{i}", drop_class=drop_class)


def _rows(store):
    return [tuple(r) for r in store.db.execute("SELECT stream, seq FROM outbox ORDER BY seq")]


def test_a_batch_is_the_stored_texts_in_order_and_skips_what_is_acknowledged(tmp_path):
    store = open_store(tmp_path / "a.db")
    _add(store, 5)
    texts = [r[0].encode() for r in store.db.execute("SELECT payload FROM outbox ORDER BY seq")]
    first = store.outbox.batch("events", 3)
    assert (first.count, first.events) == (3, b",".join(texts[:3]))
    store.outbox.acknowledge("events", first.last)
    rest = store.outbox.batch("events", 3)  # from the start again, as after a link drop
    assert (rest.first, rest.count, rest.events) == (first.last + 1, 2, b",".join(texts[3:]))
    assert [r.payload["i"] for r in store.outbox.peek("events")] == [3, 4]
    store.outbox.acknowledge("events", rest.last)
    assert store.outbox.batch("events", 3) is None and store.outbox.peek("events") == []


def test_removing_by_range_never_deletes_a_row_not_acknowledged(tmp_path):
    store = open_store(tmp_path / "a.db")
    _add(store, 3)
    in_flight = store.outbox.batch("events", 10)
    _add(store, 1, stream="ack")  # other streams' rows interleave with the same seqs
    _add(store, 2)  # written while the batch is in flight
    assert store.outbox.remove_acknowledged("events") == 0  # nothing acknowledged yet
    store.outbox.acknowledge("events", in_flight.last)
    assert store.outbox.depths() == {"events": 2, "ack": 1} and store.outbox.depth() == 3
    assert len(_rows(store)) == 6  # acknowledged, but still there until removed
    assert store.outbox.remove_acknowledged("events") == 3
    assert _rows(store) == [("ack", 4), ("events", 5), ("events", 6)]
    assert store.outbox.acknowledged("events") == 0  # all removed: nothing left marked
    assert [r.payload["i"] for r in store.outbox.peek("events")] == [0, 1]


def test_acknowledged_rows_go_a_chunk_at_a_time_oldest_first(tmp_path):
    store = open_store(tmp_path / "a.db")
    _add(store, 7)
    store.outbox.acknowledge("events", store.outbox.batch("events", 5).last)
    assert store.outbox.remove_acknowledged("events", limit=2) == 2
    assert [seq for _, seq in _rows(store)] == [3, 4, 5, 6, 7]
    assert store.outbox.depth() == 2 and [r.seq for r in store.outbox.peek("events")] == [6, 7]
    assert store.outbox.remove_acknowledged("events", limit=2) == 2
    assert store.outbox.remove_acknowledged("events", limit=2) == 1
    assert store.outbox.remove_acknowledged("events", limit=2) == 0
    assert [seq for _, seq in _rows(store)] == [6, 7]


def test_waiting_counts_and_the_oldest_leave_out_what_is_acknowledged(tmp_path):
    store = open_store(tmp_path / "a.db")
    _add(store, 3)
    assert store.outbox.oldest() == "t0"
    store.outbox.acknowledge("events", store.outbox.batch("events", 2).last)
    assert store.outbox.oldest() == "t2" and store.outbox.depth() == 1
    store.outbox.acknowledge("events", store.outbox.batch("events", 2).last)
    assert store.outbox.oldest() is None and store.outbox.depths() == {}


def test_over_the_bound_acknowledged_rows_make_room_before_anything_is_dropped(tmp_path):
    store = open_store(tmp_path / "a.db")
    store.outbox.max_rows = 10
    _add(store, 8, drop_class=DropClass.TELEMETRY)
    store.outbox.acknowledge("events", store.outbox.batch("events", 6).last)
    _add(store, 3, kind="late", drop_class=DropClass.TELEMETRY)  # 11 rows: over the bound
    assert store.outbox.drops() == {}
    assert len(_rows(store)) == 5 and store.outbox.depth() == 5
