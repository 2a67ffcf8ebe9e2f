"""Decision latency with 10 000 offers cached and 100 000 customers in the roster.

Each sample is one full decision as the engine makes it when a customer enters: roster and consent
lookup, profile (purchase history) on a cache miss, eligibility and caps, scoring, exploration, the
decision and its outbox row written to SQLite (the agent's WAL checkpointer runs in its thread meanwhile).
`bare_insert` is the same two rows written with the sqlite3 module alone (the least a logged decision can
cost); `ratio_p50` compares the two. Two layouts: every offer on one screen's slate (`all_on_one_screen`,
the worst case, whose figures are the headline `p50_ms`/`p99_ms`) and offers spread over 20 zones with a
tenth of them store-wide (`zoned`).
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.harness import percentiles
from edge_agent.bus import Bus
from edge_agent.clock import Clock
from edge_agent.config import Settings, from_dict
from edge_agent.decide.catalog import OfferCatalog
from edge_agent.decide.engine import OfferEngine
from edge_agent.events import Purchase, PurchaseLine, Show, WallTime
from edge_agent.store import Store, open_store
from edge_agent.store.bundles import OfferBundle, apply_offers
from edge_agent.store.checkpoint import WalCheckpointer
from edge_agent.store.offers import Cap, Experiment, Offer
from edge_agent.store.policy import Exploration, Holdout, ScoringPolicy
from edge_agent.store.roster import RosterEntry

OFFERS = 10_000
CUSTOMERS = 100_000
ZONES = 20
SEGMENTS = [f"seg{i}" for i in range(50)]
CATEGORIES = [f"cat{i}" for i in range(40)]
TAGS = ["weather:rain", "temp:hot", "daypart:morning", "daypart:evening", "weekend", "crowd:busy", "event:football"]


def _offers(rng: random.Random, zoned: bool) -> list[Offer]:
    now = datetime.now(UTC)
    out = []
    for i in range(OFFERS):
        zones: tuple[str, ...] = ()
        if zoned and i % 10:
            zones = (f"z{i % ZONES}",)
        out.append(
            Offer(
                offer_id=f"offer-{i:05d}",
                title=f"Offer {i}",
                price_cents=rng.randint(100, 5000),
                currency="EUR",
                valid_from=now - timedelta(days=1),
                valid_to=now + timedelta(days=rng.randint(1, 30)),
                zones=zones,
                audience="personalised" if i % 3 == 0 else "anyone",
                segments=tuple(rng.sample(SEGMENTS, 2)),
                priority=rng.random(),
                sku=f"sku-{i % 3000}",
                category=rng.choice(CATEGORIES),
                context_tags=tuple(rng.sample(TAGS, 1)),
                stock=rng.randint(0, 500),
                caps=(Cap(scope="customer_offer", max=3, window_s=86_400),) if i % 5 == 0 else (),
                replenish_days=rng.choice([7.0, 14.0, 56.0]) if i % 4 == 0 else None,
                experiment=Experiment(key=f"exp-{i}") if i % 500 == 0 else None,
                pricing=({"kind": "overstock", "stock_above": 300, "percent_off": 10},),
            )
        )
    return out


def _settings(workdir: Path) -> Settings:
    return from_dict(
        {
            "store": {"id": "bench", "chain_id": "bench", "device_id": "bench"},
            "zones": [{"id": f"z{i}"} for i in range(ZONES)],
            "touchpoints": [{"id": f"screen-{i}", "kind": "screen", "zone": f"z{i}"} for i in range(ZONES)],
            "database": {"path": str(workdir / "bench.db")},
            "sources": {"checkin": False},
        }
    )


def _roster(store: Store, rng: random.Random) -> list[str]:
    """100 000 opted-in customers; a fifth with five purchases each, so profiles have something to read."""
    now = datetime.now(UTC)
    refs = [f"cust-{i:06d}" for i in range(CUSTOMERS)]
    entries = [
        RosterEntry(
            customer_ref=r,
            consents={"checkin": True, "personalisation": i % 10 != 0},
            segments=tuple(rng.sample(SEGMENTS, 3)),
        )
        for i, r in enumerate(refs)
    ]
    store.roster.upsert(entries, updated_at=now.isoformat())
    with store.db.atomic():
        for i, r in enumerate(refs[: CUSTOMERS // 5]):
            for k in range(5):
                at = now - timedelta(days=rng.uniform(1, 90))
                lines = (PurchaseLine(f"sku-{rng.randrange(3000)}", 1, 199),)
                store.purchases.record(Purchase(f"t{i}-{k}", "till-1", r, lines, WallTime(at, True)))
    return refs


def _engine(settings: Settings, store: Store, version: int, zoned: bool, rng: random.Random) -> OfferEngine:
    now = datetime.now(UTC)
    bundle = OfferBundle(
        version=version,
        issued_at=now,
        offers=_offers(rng, zoned),
        policy=ScoringPolicy(version="bench", exploration=Exploration(kind="epsilon_greedy", epsilon=0.1, floor=0.01)),
        holdout=Holdout(fraction=0.1),
        bought_together={f"sku-{i}": (f"sku-{(i + 1) % 3000}",) for i in range(0, 3000, 3)},
        default_caps=(Cap(scope="customer", max=50, window_s=86_400),),
    )
    apply_offers(store.db, store.bundle_versions, store.offers, bundle, now.isoformat())
    bus = Bus()
    bus.subscribe(Show, "bench", maxsize=10)
    return OfferEngine(settings, store, OfferCatalog(store), bus, Clock(), rng=random.Random(1))


async def _measure(
    engine: OfferEngine,
    checkpointer: WalCheckpointer,
    refs: list[str],
    touchpoints: list[Any],
    n: int,
    rng: random.Random,
) -> list[float]:
    """Decisions on the loop, as the agent makes them, with its WAL checkpointer running in the background."""
    for tp in touchpoints:
        engine._decide(tp, refs[0], 0.0)  # builds the slates: done once per bundle, not per decision
    task = asyncio.create_task(checkpointer.run())
    samples = []
    try:
        for k in range(n):
            tp = rng.choice(touchpoints)
            ref = rng.choice(refs)
            start = time.perf_counter()
            engine._decide(tp, ref, 0.0)
            samples.append(time.perf_counter() - start)
            if k % 20 == 0:
                await asyncio.sleep(0.001)  # give the loop a turn, as between presence events
    finally:
        task.cancel()
    return samples


def _bare_insert(workdir: Path, n: int) -> list[float]:
    conn = sqlite3.connect(workdir / "bare.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE d (id TEXT PRIMARY KEY, body TEXT)")
    conn.execute("CREATE TABLE o (seq INTEGER PRIMARY KEY, body TEXT)")
    body = json.dumps({"offer_id": "offer-00001", "scores": {f"offer-{i}": 0.5 for i in range(10)}})
    samples = []
    for i in range(n):
        start = time.perf_counter()
        conn.execute("BEGIN")
        conn.execute("INSERT INTO d VALUES (?, ?)", [str(i), body])
        conn.execute("INSERT INTO o (body) VALUES (?)", [body])
        conn.execute("COMMIT")
        samples.append(time.perf_counter() - start)
    conn.close()
    return samples


async def run(quick: bool) -> dict:
    n = 2_000 if quick else 20_000
    rng = random.Random(42)
    out: dict[str, Any] = {"offers": OFFERS, "customers": CUSTOMERS, "decisions": n}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        bare = percentiles(_bare_insert(workdir, n))
        out["bare_insert"] = bare
        settings = _settings(workdir)
        store = open_store(settings.database.path)
        refs = _roster(store, rng)
        for version, (name, zoned) in enumerate((("all_on_one_screen", False), ("zoned", True)), start=1):
            engine = _engine(settings, store, version, zoned, rng)
            touchpoints = settings.touchpoints if zoned else settings.touchpoints[:1]
            checkpointer = WalCheckpointer(settings.database.path, interval_s=0.5)
            figures = percentiles(await _measure(engine, checkpointer, refs, touchpoints, n, rng))
            figures["ratio_p50"] = round(figures["p50_ms"] / bare["p50_ms"], 2)
            out[name] = figures
        store.close()
    worst = out["all_on_one_screen"]
    out["p50_ms"], out["p99_ms"] = worst["p50_ms"], worst["p99_ms"]
    return out
