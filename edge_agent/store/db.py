"""Opening the database: WAL, the pragmas the agent relies on, migrations, and the aggregates."""

from __future__ import annotations

from pathlib import Path

from sqlite_utils import Database

from .assets import AssetIndex
from .bundles import BundleVersions
from .claims import ClaimLedger
from .consents import ConsentLedger
from .decisions import DecisionLog
from .impressions import ImpressionLog
from .migrate import migrate
from .nonces import NonceLedger
from .offers import OfferCache
from .outbox import Outbox
from .roster import Roster


class Store:
    """The agent's one writing connection and the aggregates built on it; used from the event loop only."""

    def __init__(self, db: Database):
        self.db = db
        self.outbox = Outbox(db)
        self.offers = OfferCache(db)
        self.roster = Roster(db)
        self.decisions = DecisionLog(db, self.outbox)
        self.impressions = ImpressionLog(db, self.outbox)
        self.nonces = NonceLedger(db)
        self.bundle_versions = BundleVersions(db)
        self.consents = ConsentLedger(db, self.outbox)
        self.claims = ClaimLedger(db, self.outbox)
        self.assets = AssetIndex(db)

    def close(self) -> None:
        self.db.close()


def open_store(path: str | Path) -> Store:
    path = Path(path)
    if str(path) != ":memory:":
        path.parent.mkdir(parents=True, exist_ok=True)
    db = Database(path)
    db.enable_wal()
    db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable across crashes of the process
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("PRAGMA busy_timeout = 5000")
    db.execute("PRAGMA secure_delete = ON")  # erased rows are overwritten, not just unlinked
    migrate(db)
    return Store(db)
