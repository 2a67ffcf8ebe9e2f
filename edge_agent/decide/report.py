"""Results for marketing, by customer: experiments and the holdout assign customers, not decisions, so the unit
of every figure is the customer — one who saw an offer fifty times weighs as much as one who saw it once.

Per offer and arm (the offer the policy intended, so holdout and control customers count for the offer they were
held back from): customers assigned, the decisions and impressions made for them, customers who converted and
their revenue; the conversion rate per customer and the revenue per customer; and against the baseline arm (an
experiment's control, else the global holdout) the difference in conversion rate (Wald interval for two
proportions of customers, in percentage points) and in revenue per customer (Welch's interval for two means).
With customers as independent units these intervals are right (`tests/decide/test_report.py` checks their
coverage over 200 simulated experiments). A sample-ratio-mismatch check compares each experiment's customers
per variation, and the holdout's, with the configured split (chi-square; flagged at p < 0.001, as GrowthBook
does). Offers shown to anyone (the `anonymous` and `capped` arms) are reported apart: decisions and impressions,
no per-customer uplift.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from ..store import Store

Z95 = 1.959964
SRM_P = 0.001  # GrowthBook's threshold: a split this unlikely under the configured weights is broken
ANONYMOUS_ARMS = ("anonymous", "capped")


@dataclass
class Row:
    offer_id: str
    arm: str
    customers: int  # customers assigned to this arm for this offer
    decisions: int
    impressions: int
    people_reached: int | None  # people in front of the screens at those impressions, where cameras watch
    converted: int  # customers with at least one conversion
    conversion_rate: float | None  # converted / customers
    revenue_cents: int
    revenue_per_customer: float | None  # cents
    baseline_arm: str | None = None
    uplift_pp: float | None = None
    uplift_ci95_pp: tuple[float, float] | None = None
    revenue_uplift_cents: float | None = None
    revenue_uplift_ci95_cents: tuple[float, float] | None = None
    revenues: list[int] = field(default_factory=list, repr=False)  # each customer's, for the interval


@dataclass(frozen=True)
class Anonymous:
    """An offer shown to anyone: how often, no uplift (nobody is assigned)."""

    offer_id: str
    arm: str
    decisions: int
    impressions: int
    people_reached: int | None  # the "customers contacted" of an offer for anyone, where cameras watch


@dataclass(frozen=True)
class Split:
    """A sample-ratio-mismatch check: customers per arm against the configured shares."""

    name: str  # the experiment's key, or "holdout"
    observed: dict[str, int]
    expected_shares: dict[str, float]
    p_value: float | None
    mismatch: bool


def rate(conversions: int, decisions: int) -> float | None:
    return conversions / decisions if decisions else None


def uplift(c1: int, n1: int, c0: int, n0: int) -> tuple[float, tuple[float, float]] | None:
    """Difference of two conversion rates (c of n independent units each) and its 95 % interval, in percentage
    points."""
    if n1 == 0 or n0 == 0:
        return None
    p1, p0 = c1 / n1, c0 / n0
    se = math.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    diff = p1 - p0
    lo, hi = max(-1.0, diff - Z95 * se), min(1.0, diff + Z95 * se)  # a difference of rates lies in [-1, 1]
    return round(100 * diff, 3), (round(100 * lo, 3), round(100 * hi, 3))


def mean_difference(a: list[int], b: list[int]) -> tuple[float, tuple[float, float]] | None:
    """Difference of two means (a − b) and its 95 % interval (Welch: each sample's own variance)."""
    if len(a) < 2 or len(b) < 2:
        return None
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    va = sum((x - ma) ** 2 for x in a) / (len(a) - 1)
    vb = sum((x - mb) ** 2 for x in b) / (len(b) - 1)
    se = math.sqrt(va / len(a) + vb / len(b))
    diff = ma - mb
    return round(diff, 2), (round(diff - Z95 * se, 2), round(diff + Z95 * se, 2))


def chi_square_p(observed: list[int], shares: list[float]) -> float | None:
    """P-value of the observed counts under the expected shares (Pearson's chi-square, k − 1 degrees of freedom)."""
    total = sum(observed)
    cells = [(o, total * s) for o, s in zip(observed, shares, strict=True) if s > 0]
    if total == 0 or len(cells) < 2:
        return None
    x = sum((o - e) ** 2 / e for o, e in cells)
    return _chi2_sf(x, len(cells) - 1)


def _chi2_sf(x: float, dof: int) -> float:
    """P(X ≥ x) for a chi-square of integer `dof`: Q(dof/2, x/2), built up by
    Q(s + 1) = Q(s) + (x/2)^s e^(−x/2) / Γ(s + 1) from Q(1/2) = erfc(√(x/2)) or Q(1) = e^(−x/2)."""
    half = x / 2
    s = 0.5 if dof % 2 else 1.0
    q = math.erfc(math.sqrt(half)) if dof % 2 else math.exp(-half)
    while s < dof / 2:
        q += math.exp(s * math.log(half) - half - math.lgamma(s + 1)) if half > 0 else 0.0
        s += 1
    return min(1.0, max(0.0, q))


def build(store: Store, since: str | None = None, until: str | None = None) -> list[Row]:
    """Per offer and arm of personal decisions, by customer; the uplift rows against their baseline."""
    window = [since or "", until or "9999"]
    counts = store.db.execute(
        "SELECT d.intended_offer_id, d.arm, count(DISTINCT d.customer_ref), count(*), count(i.impression_id),"
        " sum(i.people) FROM decisions d LEFT JOIN impressions i ON i.decision_id = d.decision_id"
        " WHERE d.intended_offer_id IS NOT NULL AND d.customer_ref IS NOT NULL AND d.at >= ? AND d.at < ?"
        " GROUP BY d.intended_offer_id, d.arm ORDER BY d.intended_offer_id, d.arm",
        window,
    ).fetchall()
    # each assigned customer's revenue from the conversions of these decisions (0 for one who did not convert)
    revenue: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for offer_id, arm, ref, cents in store.db.execute(
        "SELECT d.intended_offer_id, d.arm, d.customer_ref, coalesce(sum(p.qty * p.price_cents), 0)"
        " FROM decisions d"
        " LEFT JOIN conversions c ON c.decision_id = d.decision_id"
        " LEFT JOIN purchases p ON p.customer_ref = c.customer_ref AND p.txn_id = c.txn_id AND p.sku = c.sku"
        " WHERE d.intended_offer_id IS NOT NULL AND d.customer_ref IS NOT NULL AND d.at >= ? AND d.at < ?"
        " GROUP BY d.intended_offer_id, d.arm, d.customer_ref",
        window,
    ).fetchall():
        revenue[(offer_id, arm)][ref] = int(cents)
    converted = dict(
        ((o, a), n)
        for o, a, n in store.db.execute(
            "SELECT d.intended_offer_id, d.arm, count(DISTINCT c.customer_ref) FROM conversions c"
            " JOIN decisions d ON d.decision_id = c.decision_id"
            " WHERE d.intended_offer_id IS NOT NULL AND d.customer_ref IS NOT NULL AND d.at >= ? AND d.at < ?"
            " GROUP BY d.intended_offer_id, d.arm",
            window,
        ).fetchall()
    )
    out = []
    for offer_id, arm, customers, decisions, impressions, people in counts:
        spend = list(revenue[(offer_id, arm)].values())
        won = converted.get((offer_id, arm), 0)
        per_customer = sum(spend) / customers if customers else None
        row = Row(
            offer_id,
            arm,
            customers,
            decisions,
            impressions,
            people,
            won,
            rate(won, customers),
            sum(spend),
            per_customer,
        )
        row.revenues = spend
        out.append(row)
    by_key = {(r.offer_id, r.arm): r for r in out}
    for r in out:
        baseline = _baseline(store, r)
        base = by_key.get((r.offer_id, baseline)) if baseline else None
        if base is None:
            continue
        r.baseline_arm = baseline
        result = uplift(r.converted, r.customers, base.converted, base.customers)
        if result is not None:
            r.uplift_pp, r.uplift_ci95_pp = result
        spent = mean_difference(r.revenues, base.revenues)
        if spent is not None:
            r.revenue_uplift_cents, r.revenue_uplift_ci95_cents = spent
    return out


def anonymous(store: Store, since: str | None = None, until: str | None = None) -> list[Anonymous]:
    """Offers shown to anyone, apart: decisions and impressions; nobody was assigned, so no uplift."""
    rows = store.db.execute(
        "SELECT d.intended_offer_id, d.arm, count(*), count(i.impression_id), sum(i.people) FROM decisions d"
        " LEFT JOIN impressions i ON i.decision_id = d.decision_id"
        " WHERE d.intended_offer_id IS NOT NULL AND d.customer_ref IS NULL AND d.at >= ? AND d.at < ?"
        " GROUP BY d.intended_offer_id, d.arm ORDER BY d.intended_offer_id, d.arm",
        [since or "", until or "9999"],
    ).fetchall()
    return [Anonymous(*row) for row in rows]


def splits(store: Store, rows: list[Row]) -> list[Split]:
    """The sample-ratio-mismatch checks: each experiment's customers per variation, and the holdout's."""
    out = []
    for offer_id in sorted({r.offer_id for r in rows}):
        offer = store.offers.get(offer_id)
        experiment = offer.experiment if offer is not None else None
        if experiment is None:
            continue
        n = len(experiment.variations)
        weights = list(experiment.weights) if experiment.weights else [1 / n] * n
        observed = {v: 0 for v in experiment.variations}
        for r in rows:
            if r.offer_id == offer_id and r.arm in observed:
                observed[r.arm] = r.customers
        out.append(_split(experiment.key, observed, dict(zip(experiment.variations, weights, strict=True))))
    fraction = store.policy.get().holdout.fraction
    if fraction > 0:
        held = store.db.execute(
            "SELECT count(DISTINCT customer_ref) FILTER (WHERE arm = 'holdout'),"
            " count(DISTINCT customer_ref) FILTER (WHERE arm != 'holdout') FROM decisions"
            " WHERE customer_ref IS NOT NULL AND arm NOT IN ('anonymous', 'capped')"
        ).fetchone()
        out.append(
            _split("holdout", {"holdout": held[0], "rest": held[1]}, {"holdout": fraction, "rest": 1 - fraction})
        )
    return out


def _split(name: str, observed: dict[str, int], shares: dict[str, float]) -> Split:
    p = chi_square_p(list(observed.values()), list(shares.values()))
    return Split(name, observed, shares, None if p is None else round(p, 6), p is not None and p < SRM_P)


def _baseline(store: Store, row: Row) -> str | None:
    """Variations compare with their experiment's control; the other personalised arms with the holdout."""
    if row.arm in ("holdout", *ANONYMOUS_ARMS):
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


@dataclass
class Report:
    rows: list[Row]
    anonymous: list[Anonymous]
    splits: list[Split]
    plays: list[dict[str, Any]]


def report(store: Store, since: str | None = None, until: str | None = None) -> Report:
    rows = build(store, since, until)
    return Report(rows, anonymous(store, since, until), splits(store, rows), plays(store, since, until))


def as_json(r: Report) -> dict[str, Any]:
    def row(x: Row) -> dict[str, Any]:
        out = asdict(x)
        del out["revenues"]
        return out

    return {
        "rows": [row(x) for x in r.rows],
        "anonymous": [asdict(a) for a in r.anonymous],
        "srm": [asdict(s) for s in r.splits],
        "plays": r.plays,
    }


def as_text(r: Report) -> str:
    rows, played = r.rows, r.plays
    header = (
        f"{'offer':<22} {'arm':<10} {'customers':>9} {'conv.':>6} {'rate':>7} {'rev./cust.':>10}"
        "  uplift per customer (95% CI)"
    )
    lines = [header, "-" * len(header)]
    for x in rows:
        pct = "-" if x.conversion_rate is None else f"{100 * x.conversion_rate:.1f}%"
        spend = "-" if x.revenue_per_customer is None else f"{x.revenue_per_customer / 100:.2f}"
        up = ""
        if x.uplift_pp is not None and x.uplift_ci95_pp is not None:
            lo, hi = x.uplift_ci95_pp
            up = f"{x.uplift_pp:+.1f} pp [{lo:+.1f}, {hi:+.1f}] vs {x.baseline_arm}"
        lines.append(
            f"{x.offer_id[:22]:<22} {x.arm[:10]:<10} {x.customers:>9} {x.converted:>6} {pct:>7} {spend:>10}  {up}"
        )
    if not rows:
        lines.append("no decisions yet")
    for s in r.splits:
        verdict = "MISMATCH: the split is broken" if s.mismatch else "ok"
        counts = ", ".join(f"{k} {v}" for k, v in s.observed.items())
        lines.append(f"split {s.name}: {counts} (p = {s.p_value}) {verdict}")
    for a in r.anonymous:
        reached = "" if a.people_reached is None else f", {a.people_reached} people reached"
        lines.append(
            f"for anyone: {a.offer_id} ({a.arm}): {a.decisions} decisions, {a.impressions} impressions{reached}"
        )
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
