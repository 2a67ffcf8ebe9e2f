"""`edge-agent report`: per offer and arm, decisions, impressions, conversions, rate and uplift with its
interval; and the engine listening to context and crowd on the bus of a running agent."""

import asyncio
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w

from edge_agent.bus import Bus
from edge_agent.decide import report
from edge_agent.decide.experiments import in_holdout
from edge_agent.events import ContextUpdate, Crowd, Customer, Presence, PresenceKind
from edge_agent.signage.proof import ProofOfPlay
from edge_agent.store.policy import Holdout
from tests.factories import config_dict, customer, offer, seed

from .test_attribution import buy, setup
from .test_decide_rules import enter, last

ROOT = Path(__file__).resolve().parents[2]


def test_uplift_is_the_difference_of_rates_with_a_wald_interval():
    diff, (lo, hi) = report.uplift(30, 100, 10, 100)
    se = math.sqrt(0.3 * 0.7 / 100 + 0.1 * 0.9 / 100)
    assert diff == pytest.approx(20.0)
    assert (lo, hi) == (
        pytest.approx(100 * (0.2 - 1.959964 * se), abs=1e-3),
        pytest.approx(100 * (0.2 + 1.959964 * se), abs=1e-3),
    )
    assert report.uplift(1, 0, 1, 10) is None
    _, (lo, hi) = report.uplift(1, 2, 0, 2)  # tiny samples: the interval stays within what rates allow
    assert lo >= -100 and hi == 100


def _store_with_results(settings):
    holdout = Holdout(fraction=0.5, seed="report")
    engine, store, shows, clock, attribution, _ = setup(settings, holdout=holdout)
    refs = [f"c{i}" for i in range(24)]
    store.roster.upsert([customer(r) for r in refs], updated_at="t")
    proof = ProofOfPlay(store, Bus(), clock)
    expected = {"holdout": [0, 0, 0], "default": [0, 0, 0]}
    for n, ref in enumerate(refs):
        enter(engine, clock, ref)
        d = last(store, shows)
        arm = "holdout" if in_holdout(holdout, ref) else "default"
        assert d.arm == arm
        expected[arm][0] += 2  # screen-a and kiosk-a
        proof.acknowledge("screen-a", {"show_id": d.decision_id})
        expected[arm][1] += 1
        if n % 3 == 0 or (arm == "default" and n % 2 == 0):
            attribution.on_purchase(buy(clock, f"t{n}", ref, ("coffee", 1, 300), offset_s=30))
            expected[arm][2] += 1
    return store, expected


def test_report_counts_each_arm_and_compares_with_the_holdout(settings):
    store, expected = _store_with_results(settings)
    rows = {(r.offer_id, r.arm): r for r in report.build(store)}
    for arm, (decisions, impressions, conversions) in expected.items():
        r = rows[("coffee", arm)]
        assert (r.decisions, r.impressions, r.conversions) == (decisions, impressions, conversions)
        assert r.conversion_rate == pytest.approx(conversions / decisions)
    treated, held = rows[("coffee", "default")], rows[("coffee", "holdout")]
    diff, ci = report.uplift(treated.conversions, treated.decisions, held.conversions, held.decisions)
    assert (treated.baseline_arm, treated.uplift_pp, treated.uplift_ci95_pp) == ("holdout", diff, ci)
    assert held.uplift_pp is None
    assert "coffee" in report.as_text(list(rows.values()))


def test_the_report_command_prints_json(settings, tmp_path, issuer):
    store, expected = _store_with_results(settings)
    store.close()
    config = tmp_path / "edge-agent.toml"
    data = config_dict(tmp_path, issuer)
    config.write_text(tomli_w.dumps(data))
    done = subprocess.run(
        [sys.executable, "-m", "edge_agent", "report", "--config", str(config), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    rows = {(r["offer_id"], r["arm"]): r for r in json.loads(done.stdout)["rows"]}
    assert rows[("coffee", "default")]["conversions"] == expected["default"][2]
    assert rows[("coffee", "default")]["uplift_ci95_pp"] is not None
    table = subprocess.run(
        [sys.executable, "-m", "edge_agent", "report", "--config", str(config), "--since", "2999-01-01T00:00:00Z"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert table.returncode == 0 and "no decisions yet" in table.stdout


async def test_the_running_engine_takes_context_and_crowd_from_the_bus(running):
    agent = await running(seeded=False)
    seed(agent, offers=[offer("umbrella", context_tags=("weather:rain", "crowd:busy"))], roster=[customer("alice")])
    wall = agent.clock.wall()
    agent.bus.publish(ContextUpdate({"condition": "rain"}, (), wall))
    agent.bus.publish(Crowd("entrance", 40, agent.clock.mono(), wall))
    async with asyncio.timeout(20):
        while not {"weather:rain", "crowd:busy"} <= agent.engine.context.tags("entrance", wall.at, agent.clock.mono()):
            await asyncio.sleep(0.02)
    agent.engine.on_presence(
        Presence(Customer("alice"), "entrance", PresenceKind.ENTER, 0.0, agent.clock.mono(), wall, explicit=True)
    )
    row = agent.store.db.execute("SELECT features FROM decisions WHERE customer_ref = 'alice'").fetchone()
    features = json.loads(row[0])
    assert {"weather:rain", "crowd:busy"} <= set(features["context"])
    assert features["candidates"]["umbrella"]["context_match"] == 2.0
