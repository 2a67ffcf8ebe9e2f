"""Bad input on the till's serial line: any bytes, and near misses of the records, are each a receipt part or a
rejection with a code and a reason, counted; a receipt is only reported whole. Then garbage over a real pty."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.bus import Bus
from edge_agent.clock import Clock
from edge_agent.config import PosSettings
from edge_agent.events import Purchase
from edge_agent.sources.pos.protocol import LineRejected, ReceiptParser, load_profile
from edge_agent.sources.pos.source import PosSource
from edge_agent.store import open_store
from simulators.till import SimulatedTill
from tests.factories import running_task
from tests.sources.pos.test_pos import PROFILE, wait_for

from .strategies import examples

FIELDS = ["1001", "1002", "alice", "coffee", "2", "350", "", " ", "AB3DE7FK", "-1", "1e3", "bad id!", "x" * 70, "٣"]
near_records = st.builds(
    lambda tag, fields: "|".join([tag, *fields]).encode("utf-8"),
    st.sampled_from(["TXN", "ITM", "END", "txn", "", "X"]),
    st.lists(st.sampled_from(FIELDS) | st.text(max_size=12), max_size=6),
)
lines = st.one_of(near_records, st.binary(max_size=80), st.binary(min_size=500, max_size=700))


@given(st.one_of(lines, st.binary(max_size=2000)))
def test_any_line_is_a_receipt_part_or_a_rejection_with_a_code_and_reason(line):
    try:
        ReceiptParser(load_profile(PROFILE)).feed(line)
    except LineRejected as exc:
        assert exc.code and exc.reason


@pytest.fixture
def store(tmp_path):
    store = open_store(tmp_path / "pos.db")
    yield store
    store.close()


def source(store, port: str = "unused", bus: Bus | None = None) -> PosSource:
    settings = PosSettings(port=port, profile=PROFILE, till_id="till-7", reconnect_s=0.1)
    return PosSource(settings, load_profile(PROFILE), store, bus or Bus(), Clock())


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(lines, max_size=40))
def test_every_line_is_counted_and_receipts_are_only_reported_whole(store, fed):
    pos = source(store)
    open_items: list[str] | None = None
    for n, line in enumerate(fed, 1):
        rejected = sum(pos.rejected.values())
        purchase = pos.on_line(line)
        assert pos.counts["lines"] == n
        if sum(pos.rejected.values()) == rejected + 1:
            assert purchase is None
            continue
        assert sum(pos.rejected.values()) == rejected  # accepted: then it is a record of a receipt, or blank
        tag, *fields = line.decode("ascii").strip().split("|")
        if tag == "TXN":
            open_items = []
        elif tag == "ITM":
            assert open_items is not None
            open_items.append(fields[0].strip())
        elif tag == "END":
            assert purchase is not None and open_items is not None
            assert [item.sku for item in purchase.lines] == open_items  # whole: every item since its begin
            open_items = None
        else:
            assert not tag and purchase is None


@settings(max_examples=examples(3), suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(lines.map(lambda b: b.replace(b"\n", b"").replace(b"\r", b"")), min_size=1, max_size=30))
async def test_garbage_over_a_real_pty_is_counted_line_by_line_and_the_next_receipt_goes_through(tmp_path, fed):
    run = uuid.uuid4().hex  # one store and port per example: tmp_path is the test's, shared by its examples
    store = open_store(tmp_path / f"pty-{run}.db")
    till = SimulatedTill(tmp_path / f"ttyTILL-{run}")
    bus = Bus()
    purchases = bus.subscribe(Purchase, "test")
    pos = source(store, str(till.path), bus)
    async with running_task(pos.run(), till.close, store.close):
        await wait_for(pos.connected.is_set)
        for line in fed:
            till.write_line(line)
        till.receipt("G1", [("coffee", 1, 350, None)])
        purchase = await asyncio.wait_for(purchases.get(), 20)
        while purchase.txn_id != "till-7:G1":  # a garbage line may happen to close a receipt of its own
            purchase = await asyncio.wait_for(purchases.get(), 20)
        assert pos.counts["lines"] == len(fed) + 3
        replay = ReceiptParser(load_profile(PROFILE))
        expected: Counter[str] = Counter()
        for line in fed:
            try:
                replay.feed(line)
            except LineRejected as exc:
                expected[exc.code] += 1
        assert pos.rejected == expected  # the pty delivered every line, each rejected for the same reason
