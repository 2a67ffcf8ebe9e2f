"""Results for marketing: per offer and arm, decisions, impressions, conversions, conversion rate, and
uplift against the global holdout (and against an experiment's control) with a 95 % confidence interval.

Rows are keyed by the offer the policy intended, so holdout and control decisions (which showed something
else) count for the offer they were held back from; `impressions` counts those decisions that a screen
confirmed it displayed. The rate is conversions per decision; uplift is the difference in rates (Wald
interval for two proportions), in percentage points.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ..store import Store

Z95 = 1.959964


@dataclass
class Row:
    offer_id: str
    arm: str
    decisions: int
    impressions: int
    conversions: int
    conversion_rate: float | None
    baseline_arm: str | None = None
    uplift_pp: float | None = None
    uplift_ci95_pp: tuple[float, float] | None = None


def rate(conversions: int, decisions: int) -> float | None:
    return conversions / decisions if decisions else None


def uplift(c1: int, n1: int, c0: int, n0: int) -> tuple[float, tuple[float, float]] | None:
    """Difference of two conversion rates and its 95 % interval, in percentage points."""
    if n1 == 0 or n0 == 0:
        return None
    p1, p0 = c1 / n1, c0 / n0
    se = math.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    diff = p1 - p0
    lo, hi = max(-1.0, diff - Z95 * se), min(1.0, diff + Z95 * se)  # a difference of rates lies in [-1, 1]
    return round(100 * diff, 3), (round(100 * lo, 3), round(100 * hi, 3))


def build(store: Store, since: str | None = None, until: str | None = None) -> list[Row]:
    rows = store.db.execute(
        "SELECT d.intended_offer_id, d.arm, count(*), count(i.impression_id), count(c.conversion_id)"
        " FROM decisions d"
        " LEFT JOIN impressions i ON i.decision_id = d.decision_id"
        " LEFT JOIN conversions c ON c.decision_id = d.decision_id"
        " WHERE d.intended_offer_id IS NOT NULL AND d.at >= ? AND d.at < ?"
        " GROUP BY d.intended_offer_id, d.arm ORDER BY d.intended_offer_id, d.arm",
        [since or "", until or "9999"],
    ).fetchall()
    out = [Row(o, a, n, imp, conv, rate(conv, n)) for o, a, n, imp, conv in rows]
    by_key = {(r.offer_id, r.arm): r for r in out}
    for r in out:
        baseline = _baseline(store, r)
        base = by_key.get((r.offer_id, baseline)) if baseline else None
        if base is None:
            continue
        result = uplift(r.conversions, r.decisions, base.conversions, base.decisions)
        if result is not None:
            r.baseline_arm = baseline
            r.uplift_pp, r.uplift_ci95_pp = result
    return out


def _baseline(store: Store, row: Row) -> str | None:
    """Variations compare with their experiment's control; the other personalised arms with the holdout."""
    if row.arm in ("holdout", "anonymous", "capped"):
        return None
    offer = store.offers.get(row.offer_id)
    if offer is not None and offer.experiment is not None and row.arm in offer.experiment.variations:
        control = offer.experiment.variations[0]
        return control if row.arm != control else "holdout"
    return "holdout"


def plays(store: Store, since: str | None = None, until: str | None = None) -> list[dict[str, Any]]:
    """Proof of play of the playlist items, per hour (UTC), campaign and screen: plays, completed, seconds on
    screen, people reached (`store/plays.py`)."""
    return store.plays.hourly(since or "", until)


def as_json(rows: list[Row], played: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"rows": [asdict(r) for r in rows], "plays": played or []}


def as_text(rows: list[Row], played: list[dict[str, Any]] | None = None) -> str:
    header = f"{'offer':<24} {'arm':<12} {'decisions':>9} {'impr.':>7} {'conv.':>6} {'rate':>7}  uplift (95% CI)"
    lines = [header, "-" * len(header)]
    for r in rows:
        pct = "-" if r.conversion_rate is None else f"{100 * r.conversion_rate:.1f}%"
        up = ""
        if r.uplift_pp is not None and r.uplift_ci95_pp is not None:
            lo, hi = r.uplift_ci95_pp
            up = f"{r.uplift_pp:+.1f} pp [{lo:+.1f}, {hi:+.1f}] vs {r.baseline_arm}"
        counts = f"{r.decisions:>9} {r.impressions:>7} {r.conversions:>6} {pct:>7}"
        lines.append(f"{r.offer_id[:24]:<24} {r.arm[:12]:<12} {counts}  {up}")
    if not rows:
        lines.append("no decisions yet")
    if played:
        header = (
            f"{'hour (UTC)':<18} {'campaign':<20} {'screen':<20} {'plays':>6} {'done':>6} {'seconds':>9} {'people':>7}"
        )
        lines += ["", header, "-" * len(header)]
        for p in played:
            people = "-" if p["people_reached"] is None else str(p["people_reached"])
            lines.append(
                f"{p['hour']:<18} {(p['campaign'] or '-')[:20]:<20} {p['touchpoint'][:20]:<20} {p['plays']:>6}"
                f" {p['completed']:>6} {p['seconds']:>9} {people:>7}"
            )
    return "\n".join(lines)
