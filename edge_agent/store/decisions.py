"""The decision log: what was eligible, how it scored, the probabilities, the choice, the arm and the model
version; reported up so the cloud can evaluate policies off-line."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any

from sqlite_utils import Database

from .outbox import DropClass, Outbox


@dataclass(frozen=True)
class DecisionRecord:
    decision_id: str
    at: str
    ntp_synced: bool
    touchpoint: str
    zone: str
    customer_ref: str | None
    offer_id: str | None
    eligible: list[str]  # the best eligible offers in ranked order (at most LOGGED_RANKING)
    scores: dict[str, float]
    policy: str  # the scoring model's version
    arm: str = ""
    intended_offer_id: str | None = None  # the policy's choice; differs from offer_id in holdout and control
    experiment: str | None = None
    probabilities: dict[str, float] = field(default_factory=dict)
    propensity: float | None = None  # probability of the intended offer under the logging policy
    features: dict[str, Any] = field(default_factory=dict)
    price_cents: int | None = None
    eligible_count: int = 0
    eligible_set: str = ""  # the whole eligible set: "v{bundle}:" + base64 bitmap over the bundle's offers by id
    sku: str | None = None  # the intended offer's product and attribution window, for attributing purchases
    attribution_window_h: float | None = None


_COLUMNS = (
    "decision_id, at, ntp_synced, touchpoint, zone, customer_ref, offer_id, eligible, scores, policy, arm,"
    " intended_offer_id, experiment, probabilities, propensity, features, price_cents, eligible_count, eligible_set,"
    " sku, attribution_window_h"
)
_JSON = {"eligible", "scores", "probabilities", "features"}


class DecisionLog:
    def __init__(self, db: Database, outbox: Outbox):
        self._db = db
        self._outbox = outbox

    def record(self, d: DecisionRecord) -> None:
        values = {f.name: getattr(d, f.name) for f in fields(d)}  # shallow: asdict would deep-copy the lists
        row = [json.dumps(v) if k in _JSON else v for k, v in values.items()]
        row[2] = int(d.ntp_synced)
        with self._db.atomic():
            self._db.execute(
                f"INSERT INTO decisions ({_COLUMNS}) VALUES ({', '.join('?' * len(row))})",
                row,
            )
            self._outbox.add(
                stream="events",
                kind="decision",
                payload=values,
                created_at=d.at,
                drop_class=DropClass.EVENT,
                customer_ref=d.customer_ref,
            )

    def get(self, decision_id: str) -> DecisionRecord | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM decisions WHERE decision_id = ?", [decision_id]).fetchone()
        return _record(row) if row else None

    def shown_since(self, at: str) -> list[tuple[str, str | None, str, str]]:
        """(touchpoint, customer_ref, offer_id, at) of decisions that showed an offer at or after `at` (ISO,
        UTC), oldest first: just what rebuilds the frequency caps after a restart (a kiosk's list counts none)."""
        return self._db.execute(
            "SELECT touchpoint, customer_ref, offer_id, at FROM decisions WHERE at >= ? AND offer_id IS NOT NULL"
            " AND json_extract(features, '$.listing') IS NULL ORDER BY at",
            [at],
        ).fetchall()

    def latest_unconverted(self, customer_ref: str, sku: str, at: str) -> DecisionRecord | None:
        """The decision a purchase of `sku` at `at` is attributed to: the customer's latest that intended an
        offer for it, within that decision's own attribution window, not converted yet — preferring one a
        screen confirmed it displayed. Windows travel with the decision, so a newer bundle changes nothing."""
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM decisions WHERE customer_ref = ? AND sku = ? AND at <= ?"
            " AND julianday(?) - julianday(at) <= attribution_window_h / 24.0"
            " AND NOT EXISTS (SELECT 1 FROM conversions c WHERE c.decision_id = decisions.decision_id)"
            " ORDER BY EXISTS (SELECT 1 FROM impressions i WHERE i.decision_id = decisions.decision_id) DESC,"
            " at DESC LIMIT 1",
            [customer_ref, sku, at, at],
        ).fetchone()
        return _record(row) if row else None

    def count(self) -> int:
        n: int = self._db.execute("SELECT count(*) FROM decisions").fetchone()[0]
        return n


def _record(row: tuple[Any, ...]) -> DecisionRecord:
    names = list(DecisionRecord.__dataclass_fields__)
    values = dict(zip(names, row, strict=True))
    for key in _JSON:
        values[key] = json.loads(values[key])
    values["ntp_synced"] = bool(values["ntp_synced"])
    return DecisionRecord(**values)
