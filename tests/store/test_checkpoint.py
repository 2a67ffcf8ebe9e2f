"""WAL checkpoints from a worker thread move the writer's pages into the database file."""

import asyncio

from edge_agent.store import open_store
from edge_agent.store.checkpoint import WalCheckpointer
from tests.factories import offer


async def test_the_checkpointer_moves_the_wal_into_the_database_off_the_loop(tmp_path):
    path = tmp_path / "a.db"
    store = open_store(path)
    store.offers.replace_all([offer(f"o{i}", body="x" * 500) for i in range(2_000)])
    before = path.stat().st_size
    assert before < 200_000  # below the writer's backstop threshold: still all in the WAL
    checkpointer = WalCheckpointer(path, interval_s=0.01)
    task = asyncio.create_task(checkpointer.run())
    try:
        async with asyncio.timeout(20):
            while checkpointer.runs == 0:
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
    assert path.stat().st_size > 1_000_000  # the ~1 MB of offers is in the database file now
    busy, log_frames, done = checkpointer.checkpoint()
    assert busy == 0 and done == log_frames
    store.close()
