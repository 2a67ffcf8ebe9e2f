"""Opening the database: WAL, the pragmas the agent relies on, migrations, and the aggregates."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlite_utils import Database

from ..clock import Clock
from .assets import AssetIndex
from .bundles import BundleVersions
from .checkpoint import BACKSTOP_PAGES
from .claims import ClaimLedger
from .consents import ConsentLedger
from .conversions import ConversionLog
from .decisions import DecisionLog
from .enrolments import FaceEnrolments
from .faults import StorageFaults
from .impressions import ImpressionLog
from .migrate import migrate
from .nonces import NonceLedger
from .offers import OfferCache
from .outbox import Outbox
from .plays import PlayLog
from .policy import PolicyStore
from .purchases import PurchaseLedger
from .roster import Roster
from .screen_content import ScreenContentStore
from .screens import ScreenKeys


class Store:
    """The agent's one writing connection and the aggregates built on it; used from the event loop only."""

    def __init__(self, db: Database, clock_synced: Callable[[], bool]):
        self.db = db
        self.faults = StorageFaults()  # writes refused because the disk is full or failing
        self.outbox = Outbox(db, clock_synced=clock_synced, faults=self.faults)
        self.offers = OfferCache(db)
        self.roster = Roster(db)
        self.decisions = DecisionLog(db, self.outbox)
        self.impressions = ImpressionLog(db, self.outbox)
        self.plays = PlayLog(db, self.outbox)
        self.screen_content = ScreenContentStore(db)
        self.nonces = NonceLedger(db)
        self.command_ids = NonceLedger(db, "command_ids")
        self.screen_keys = ScreenKeys(db)
        self.bundle_versions = BundleVersions(db)
        self.enrolments = FaceEnrolments(db, self.outbox)
        self.consents = ConsentLedger(db, self.outbox, self.enrolments)
        self.claims = ClaimLedger(db, self.outbox)
        self.assets = AssetIndex(db)
        self.policy = PolicyStore(db)
        self.purchases = PurchaseLedger(db)
        self.conversions = ConversionLog(db, self.outbox)

    def close(self) -> None:
        self.db.close()

    def metrics(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("edge_outbox_depth", "Messages waiting to go up", value=self.outbox.depth())
        refused = CounterMetricFamily(
            "edge_storage_write_failures", "Writes refused: the database's disk full or failing", labels=["component"]
        )
        for component, n in self.faults.failures.items():
            refused.add_metric([component], n)
        yield refused
        yield GaugeMetricFamily(
            "edge_storage_failing", "1 while writes fail for lack of disk", int(self.faults.failing)
        )
        drops = CounterMetricFamily(
            "edge_outbox_dropped", "Messages the outbox bound dropped, by drop class and kind", labels=["class", "kind"]
        )
        for drop_class, kinds in self.outbox.drops().items():
            for kind, n in kinds.items():
                drops.add_metric([drop_class, kind], n)
        yield drops


def open_store(path: str | Path, clock_synced: Callable[[], bool] | None = None) -> Store:
    """The store at `path`; `clock_synced` says whether the wall clock is NTP-synchronised when a message is
    queued (default: ask the kernel)."""
    path = Path(path)
    if str(path) != ":memory:":
        path.parent.mkdir(parents=True, exist_ok=True)
    db = Database(path)
    db.enable_wal()
    db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable across crashes of the process
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("PRAGMA busy_timeout = 5000")
    db.execute("PRAGMA secure_delete = ON")  # erased rows are overwritten, not just unlinked
    db.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}")  # the agent checkpoints off the loop
    migrate(db)
    return Store(db, clock_synced or Clock().synced)
