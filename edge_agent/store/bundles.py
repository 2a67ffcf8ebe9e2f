"""Offer bundles and rosters as the cloud sends them (inside a signed envelope), and applying them.

Applying is atomic: the catalogue or roster and its version change in one transaction, and a bundle older
than (or as old as) the one in force is refused, so a replayed message can never roll the store back.
Other rooms extend these models with their own sections (scoring policy, experiments, assets, day keys,
embeddings); unknown fields are refused.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlite_utils import Database

from .assets import AssetIndex, AssetRef
from .offers import Offer, OfferCache
from .roster import Roster, RosterEntry

Version = Annotated[int, Field(ge=1)]


class StaleBundle(Exception):
    """A bundle whose version is not newer than the one in force."""


class OfferBundle(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Version
    issued_at: AwareDatetime
    offers: list[Offer] = Field(max_length=100_000)
    assets: list[AssetRef] = Field(default_factory=list, max_length=10_000)


class RosterBundle(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Version
    issued_at: AwareDatetime
    customers: list[RosterEntry] = Field(max_length=1_000_000)


class BundleVersions:
    def __init__(self, db: Database):
        self._db = db

    def current(self, kind: str) -> int:
        row = self._db.execute("SELECT version FROM bundle_versions WHERE kind = ?", [kind]).fetchone()
        return row[0] if row else 0

    def claim(self, kind: str, version: int, issued_at: str, applied_at: str) -> None:
        """Record the new version; call inside the transaction that applies the bundle."""
        current = self.current(kind)
        if version <= current:
            raise StaleBundle(f"{kind} bundle version {version} is not newer than {current}, the one in force")
        self._db.execute(
            "INSERT INTO bundle_versions (kind, version, issued_at, applied_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (kind) DO UPDATE SET version = excluded.version, issued_at = excluded.issued_at,"
            " applied_at = excluded.applied_at",
            [kind, version, issued_at, applied_at],
        )


def apply_offers(db: Database, versions: BundleVersions, offers: OfferCache, bundle: OfferBundle, now: str) -> None:
    with db.atomic():
        versions.claim("offers", bundle.version, bundle.issued_at.isoformat(), now)
        offers.replace_all(bundle.offers)
        AssetIndex(db).replace_all(bundle.assets)  # the images are fetched afterwards, by signage.assets


def apply_roster(db: Database, versions: BundleVersions, roster: Roster, bundle: RosterBundle, now: str) -> None:
    """Replace the whole roster: whoever is not in the new one is no longer opted in, and their rows go."""
    with db.atomic():
        versions.claim("roster", bundle.version, bundle.issued_at.isoformat(), now)
        keep = {c.customer_ref for c in bundle.customers}
        gone = [r[0] for r in db.execute("SELECT customer_ref FROM customers").fetchall() if r[0] not in keep]
        db.conn.executemany("DELETE FROM customers WHERE customer_ref = ?", [(ref,) for ref in gone])
        roster.upsert(bundle.customers, updated_at=now)
