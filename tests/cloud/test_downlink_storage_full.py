"""A full disk when the cloud sends something: a bundle or an erasure waits and goes through once there is room,
in the order it came, and is acknowledged to the broker only then; an erasure clears memory at once. Real
Mosquitto and the cloud simulator; the database is capped with `PRAGMA max_page_count` and its free space
filled, so SQLite refuses exactly as on a full disk (SQLITE_FULL)."""

from __future__ import annotations

import sqlite3

from edge_agent.cloud import downlink
from edge_agent.events import Erased
from simulators.cloud import offer_bundle, roster_bundle
from tests.factories import DEVICE, customer, mqtt_settings, offer

from .test_cloud_sync import _online


def fill(db) -> None:
    """No room left: the file may not grow, its free pages are taken, and so is every free byte of the outbox's
    pages (on a stream nothing drains), so any write that needs a page more is refused."""
    db.execute("CREATE TABLE filler (x BLOB)")
    db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")
    for sql in (
        "INSERT INTO filler VALUES (randomblob(?))",
        "INSERT INTO outbox (uuid, stream, kind, drop_class, payload, created_at)"
        " VALUES (hex(randomblob(16)), 'filler', 'filler', 0, hex(randomblob(?)), '')",
    ):
        for size in (2000, 200, 20, 1):
            while True:
                try:
                    db.execute(sql, [size])
                except sqlite3.OperationalError as exc:
                    assert "full" in str(exc)
                    break


def make_room(db) -> None:
    db.execute("PRAGMA max_page_count = 1073741823")
    db.execute("DELETE FROM outbox WHERE stream = 'filler'")
    db.execute("DROP TABLE filler")


def customers(agent) -> set[str]:
    return {r[0] for r in agent.store.db.execute("SELECT customer_ref FROM customers")}


async def test_an_erasure_and_bundles_refused_by_a_full_disk_go_through_in_order_once_there_is_room(
    tmp_path, issuer, broker, cloud, running, monkeypatch
):
    monkeypatch.setattr(downlink, "STORAGE_RETRY_S", 0.3)
    agent = await running(mqtt_settings(tmp_path, issuer, broker, cloud), seeded=False)
    await _online(agent, cloud)
    await cloud.publish_roster(roster_bundle(1, [customer("alice"), customer("bob")]))
    await cloud.wait_for(lambda: cloud.of_kind("bundle_result"))  # the roster's
    erased: list[str] = []
    agent.bus.on(Erased, "test", lambda e: erased.append(e.customer_ref))
    db = agent.store.db
    await cloud.wait_for(lambda: not db.execute("SELECT count(*) FROM outbox").fetchone()[0])  # sent: space it frees
    fill(db)

    await cloud.publish_offers(offer_bundle(1, [offer("welcome")]))
    await cloud.wait_for(lambda: agent.cloud.downlink.counts["storage_refused"] >= 1)
    erase = await cloud.command(DEVICE, "erase", customer_ref="alice", consent_epoch=2)
    delta = {"version": 2, "base_version": 1, "issued_at": "2026-11-24T10:00:00+00:00", "remove": ["bob"]}
    await cloud.publish_delta(delta)
    await cloud.wait_for(lambda: agent.cloud.downlink.counts["storage_refused"] >= 2)
    await cloud.wait_for(lambda: erased)
    assert erased == ["alice"], "her memory is cleared at once, though the erasure waits behind the offers"
    assert customers(agent) == {"alice", "bob"} and agent.store.bundle_versions.current("roster") == 1
    assert cloud.ack_for(erase) is None and len(cloud.of_kind("bundle_result")) == 1
    assert agent.health()["storage"]["failing"]
    assert all(state == "running" for state in agent.health()["components"].values())

    make_room(db)
    receipt = await cloud.wait_for(lambda: cloud.ack_for(erase))
    assert receipt["status"] == "done"
    results = await cloud.wait_for(lambda: len(cloud.of_kind("bundle_result")) == 3 and cloud.of_kind("bundle_result"))
    assert [(r["bundle"], r["version"], r["status"]) for r in results[1:]] == [
        ("offers", 1, "applied"),
        ("roster_delta", 2, "applied"),
    ]
    assert customers(agent) == set() and [o.offer_id for o in agent.store.offers.all()] == ["welcome"]
    counts = agent.cloud.downlink.counts
    assert counts["cmd:erase"] == 1 and counts["cmd:duplicate"] == 0 and counts["errors"] == 0
