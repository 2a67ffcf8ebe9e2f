"""The outbox bound and its written drop policy: telemetry goes first, never-drop rows stay, all counted."""

from edge_agent.store import open_store
from edge_agent.store.outbox import DropClass


def _fill(store, drop_class, n, kind):
    with store.db.atomic():
        for i in range(n):
            store.outbox.add(stream="events", kind=kind, payload={"i": i}, created_at="t", drop_class=drop_class)


def _kinds(store):
    return [r[0] for r in store.db.execute("SELECT kind FROM outbox ORDER BY seq")]


def test_over_the_bound_the_oldest_of_the_most_expendable_class_goes_first(tmp_path):
    store = open_store(tmp_path / "a.db")
    store.outbox.max_rows = 100
    _fill(store, DropClass.NEVER, 30, "conversion")
    _fill(store, DropClass.EVENT, 40, "impression")
    _fill(store, DropClass.AGGREGATE, 20, "presence")
    _fill(store, DropClass.TELEMETRY, 10, "telemetry")
    assert store.outbox.depth() == 100 and store.outbox.drops() == {}
    _fill(store, DropClass.EVENT, 1, "late-impression")  # 101 rows: make room down to 95
    kinds = _kinds(store)
    assert len(kinds) == 95
    assert kinds.count("telemetry") == 4 and kinds.count("presence") == 20  # 6 telemetry rows were enough
    assert kinds[-1] == "late-impression"
    assert store.outbox.drops() == {"telemetry": {"telemetry": 6}}
    remaining_telemetry = [r.payload["i"] for r in store.outbox.peek("events", 200) if r.kind == "telemetry"]
    assert remaining_telemetry == [6, 7, 8, 9]  # the oldest went


def test_never_drop_rows_survive_whatever_the_pressure_and_drops_are_kept_across_restarts(tmp_path):
    store = open_store(tmp_path / "a.db")
    store.outbox.max_rows = 100
    _fill(store, DropClass.EVENT, 60, "impression")
    _fill(store, DropClass.AGGREGATE, 30, "presence")
    _fill(store, DropClass.NEVER, 150, "erasure_receipt")
    kinds = _kinds(store)
    assert kinds.count("erasure_receipt") == 150  # over the bound, but never dropped
    assert "impression" not in kinds and "presence" not in kinds
    assert store.outbox.drops() == {"aggregate": {"presence": 30}, "event": {"impression": 60}}
    store.close()
    again = open_store(tmp_path / "a.db")
    assert again.outbox.drops() == {"aggregate": {"presence": 30}, "event": {"impression": 60}}


def test_the_bound_is_kept_on_a_steady_stream_of_adds(tmp_path):
    store = open_store(tmp_path / "a.db")
    store.outbox.max_rows = 200
    for _ in range(10):
        _fill(store, DropClass.TELEMETRY, 100, "telemetry")
        assert store.outbox.depth() <= 200
    assert store.outbox.drops()["telemetry"]["telemetry"] == 1000 - store.outbox.depth()


def test_telemetry_reports_the_drops_and_goes_first_itself(tmp_path):
    from edge_agent.clock import Clock
    from edge_agent.cloud.telemetry import Telemetry

    store = open_store(tmp_path / "a.db")
    store.outbox.max_rows = 100
    _fill(store, DropClass.AGGREGATE, 101, "presence")
    telemetry = Telemetry(30, store, Clock(), {"drain": lambda: {"events:events": 7}})
    telemetry.record()
    [row] = store.outbox.peek("telemetry")
    assert row.payload["outbox"]["dropped"] == {"aggregate": {"presence": 6}}
    assert row.payload["outbox"]["max_rows"] == 100 and row.payload["drain"] == {"events:events": 7}
    _fill(store, DropClass.EVENT, 10, "impression")  # over the bound again: the snapshot is the first to go
    assert store.outbox.peek("telemetry") == []
    assert store.outbox.drops()["telemetry"] == {"telemetry": 1}
