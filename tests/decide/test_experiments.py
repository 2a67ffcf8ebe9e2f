"""Assignment matches GrowthBook's published reference cases; the holdout has its own seed."""

import json
from pathlib import Path

import growthbook
import pytest

from edge_agent.decide.experiments import assign, bucket_ranges, choose_variation, gb_hash, in_holdout
from edge_agent.store.offers import Experiment
from edge_agent.store.policy import Holdout

CASES = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "growthbook_cases.json").read_text())


@pytest.mark.parametrize(("seed", "value", "version", "expected"), CASES["hash"])
def test_hash_matches_growthbook(seed, value, version, expected):
    got = gb_hash(seed, value, version)
    assert got == (None if expected is None else pytest.approx(expected, abs=1e-9))


@pytest.mark.parametrize(
    ("name", "args", "expected"), CASES["getBucketRange"], ids=[c[0] for c in CASES["getBucketRange"]]
)
def test_bucket_ranges_match_growthbook(name, args, expected):
    got = bucket_ranges(*args)
    assert [tuple(round(x, 6) for x in r) for r in got] == [tuple(r) for r in expected]


@pytest.mark.parametrize("case", CASES["experiments"], ids=[c["name"] for c in CASES["experiments"]])
def test_assignment_matches_growthbook(case):
    bucket = gb_hash(case["seed"], case["id"], case["hash_version"])
    assert bucket == pytest.approx(case["bucket"], abs=1e-9)
    ranges = bucket_ranges(len(case["variations"]), case["coverage"], case["weights"])
    assert choose_variation(bucket, ranges) == case["variation"]
    experiment = Experiment(
        key=case["key"],
        seed=case["seed"],
        hash_version=case["hash_version"],
        variations=tuple(case["variations"]),
        weights=tuple(case["weights"]) if case["weights"] else None,
        coverage=case["coverage"],
    )
    assert assign(experiment, case["id"]) == case["variations"][case["variation"]]


@pytest.mark.parametrize(("name", "bucket", "ranges", "expected"), CASES["chooseVariation"], ids=lambda c: str(c))
def test_choose_variation_matches_growthbook(name, bucket, ranges, expected):
    assert choose_variation(bucket, [tuple(r) for r in ranges]) == expected


@pytest.mark.parametrize(("name", "context", "spec", "value", "in_experiment"), CASES["run"], ids=lambda c: str(c))
def test_growthbooks_published_run_cases_that_need_only_hashing_and_weights(name, context, spec, value, in_experiment):
    """GrowthBook's `run` cases: no hash version, seed or attribute but the id — everything at GrowthBook's
    defaults, as a bundle that names only its key, weights and coverage is."""
    names = tuple(f"v{i}" for i in spec["variations"])
    experiment = Experiment(
        key=spec["key"], variations=names, weights=tuple(spec["weights"]) if "weights" in spec else None,
        coverage=spec.get("coverage", 1.0),
    )  # fmt: skip
    assert assign(experiment, context["attributes"]["id"]) == (names[value] if in_experiment else None), name


GB_EXPERIMENTS = [
    {"key": "coffee-promo"},  # no hash version, seed, weights or coverage: everything at GrowthBook's defaults
    {"key": "bakery", "variations": ("control", "half", "double")},
    {"key": "pricing", "seed": "pricing-2026", "hash_version": 2, "weights": (0.2, 0.8)},
    {"key": "loyalty", "hash_version": 1, "coverage": 0.4, "weights": (0.5, 0.25, 0.25),
     "variations": ("control", "a", "b")},
    {"key": "tea", "seed": "s", "hash_version": 2, "coverage": 0.75},
]  # fmt: skip


@pytest.mark.parametrize("spec", GB_EXPERIMENTS, ids=[e["key"] for e in GB_EXPERIMENTS])
def test_assignment_matches_the_growthbook_sdk_run_unchanged(spec):
    """GrowthBook's own Python SDK (from PyPI, unchanged) runs the same experiment for 500 customers: every one is
    in the same variation here, or out of the experiment in both — the default hash version included."""
    ours = Experiment(**spec)
    theirs = growthbook.Experiment(
        key=ours.key,
        variations=list(ours.variations),
        weights=list(ours.weights) if ours.weights else None,
        coverage=ours.coverage,
        seed=spec.get("seed"),
        hashVersion=spec.get("hash_version"),
    )
    for i in range(500):
        ref = f"customer-{i:04d}"
        result = growthbook.GrowthBook(attributes={"id": ref}).run(theirs)
        assert assign(ours, ref) == (result.value if result.inExperiment else None), ref


def test_outside_coverage_nobody_is_assigned():
    experiment = Experiment(key="k", coverage=0.0)
    assert {assign(experiment, f"c{i}") for i in range(200)} == {None}


def test_holdout_takes_its_share_independently_of_experiments():
    refs = [f"customer-{i}" for i in range(20_000)]
    holdout = Holdout(fraction=0.1, seed="hold-2026")
    held = {r for r in refs if in_holdout(holdout, r)}
    assert 0.09 < len(held) / len(refs) < 0.11
    treated = {r for r in refs if assign(Experiment(key="coffee-promo"), r) == "treatment"}
    share_in_treated = len(held & treated) / len(treated)
    assert 0.085 < share_in_treated < 0.115  # a separate seed: the holdout does not lean on any one arm
    assert held == {r for r in refs if in_holdout(holdout, r)}  # deterministic
    assert not any(in_holdout(Holdout(fraction=0.0), r) for r in refs[:100])
