"""Offer bundles and rosters as the cloud sends them (inside a signed envelope), and applying them.

Applying is atomic: the catalogue or roster and its version change in one transaction, and a bundle older
than (or as old as) the one in force is refused, so a replayed message can never roll the store back.
Other rooms extend these models with their own sections (scoring policy, experiments, assets, day keys,
embeddings); unknown fields are refused.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from sqlite_utils import Database

from .assets import AssetIndex, AssetRef
from .offers import Cap, Offer, OfferCache
from .policy import DecisionPolicy, Holdout, PolicyStore, PricingBounds, ScoringPolicy, Sku
from .roster import CustomerRef, Roster, RosterEntry
from .screen_content import ScreenContent, ScreenContentStore

Version = Annotated[int, Field(ge=1)]
DeviceId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Sealed = Annotated[
    dict[DeviceId, Annotated[str, Field(max_length=512 * 1024 * 1024)]],
    Field(max_length=256, description="each agent's copy of the customers' secrets, sealed to it (cloud/sealed.py)"),
]


def _no_secrets_in_clear(entries: list[RosterEntry], where: str) -> None:
    """Day keys and face embeddings cross the broker sealed to each agent, never readable by anyone on the way."""
    for i, e in enumerate(entries):
        if e.day_keys or e.face_embeddings:
            raise ValueError(f"{where}[{i}]: day_keys and face_embeddings travel sealed (in `sealed`), never in clear")


class StaleBundle(Exception):
    """A bundle whose version is not newer than the one in force."""


class OfferBundle(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Version
    issued_at: AwareDatetime
    offers: list[Offer] = Field(max_length=100_000)
    assets: list[AssetRef] = Field(default_factory=list, max_length=10_000)
    # The decision sections (see store/policy.py); a bundle without them runs the built-in policy.
    policy: ScoringPolicy = ScoringPolicy()
    holdout: Holdout = Holdout()
    bought_together: dict[Sku, tuple[Sku, ...]] = Field(default_factory=dict, max_length=100_000)
    pricing_bounds: PricingBounds = PricingBounds()
    default_caps: tuple[Cap, ...] = Field(default=(), max_length=16)
    # what the screens play (store/screen_content.py); without it, the config's playlists
    screens: ScreenContent | None = None

    def decision_policy(self) -> DecisionPolicy:
        return DecisionPolicy(
            policy=self.policy,
            holdout=self.holdout,
            bought_together=self.bought_together,
            pricing_bounds=self.pricing_bounds,
            default_caps=self.default_caps,
        )


class RosterBundle(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Version
    issued_at: AwareDatetime
    customers: list[RosterEntry] = Field(max_length=1_000_000)
    sealed: Sealed = Field(default_factory=dict)

    @model_validator(mode="after")
    def _sealed_only(self) -> RosterBundle:
        _no_secrets_in_clear(self.customers, "customers")
        return self


class RosterDelta(BaseModel):
    """Changes to the roster in force: applies only on top of exactly `base_version`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Version
    base_version: Version
    issued_at: AwareDatetime
    upsert: list[RosterEntry] = Field(default_factory=list, max_length=1_000_000)
    remove: list[CustomerRef] = Field(default_factory=list, max_length=1_000_000)
    sealed: Sealed = Field(default_factory=dict)

    @model_validator(mode="after")
    def _sealed_only(self) -> RosterDelta:
        _no_secrets_in_clear(self.upsert, "upsert")
        return self


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
        PolicyStore(db).replace(bundle.decision_policy(), bundle.version)
        ScreenContentStore(db).replace(bundle.screens, bundle.version)


def apply_roster(db: Database, versions: BundleVersions, roster: Roster, bundle: RosterBundle, now: str) -> list[str]:
    """Replace the whole roster: whoever is not in the new one is no longer opted in, and their rows go.
    Returns who went, so the rooms can forget them too."""
    with db.atomic():
        versions.claim("roster", bundle.version, bundle.issued_at.isoformat(), now)
        keep = {c.customer_ref for c in bundle.customers}
        gone = [r[0] for r in db.execute("SELECT customer_ref FROM customers").fetchall() if r[0] not in keep]
        db.conn.executemany("DELETE FROM customers WHERE customer_ref = ?", [(ref,) for ref in gone])
        roster.upsert(bundle.customers, updated_at=now)
    return gone


def apply_roster_delta(
    db: Database, versions: BundleVersions, roster: Roster, delta: RosterDelta, now: str
) -> list[str]:
    """Apply a delta to the roster it was made for; any other base is refused (the full roster catches up).
    Returns who was removed."""
    with db.atomic():
        current = versions.current("roster")
        if delta.base_version != current:
            raise StaleBundle(f"roster delta is based on version {delta.base_version}, but {current} is in force")
        versions.claim("roster", delta.version, delta.issued_at.isoformat(), now)
        db.conn.executemany("DELETE FROM customers WHERE customer_ref = ?", [(ref,) for ref in delta.remove])
        roster.upsert(delta.upsert, updated_at=now)
    return list(delta.remove)
