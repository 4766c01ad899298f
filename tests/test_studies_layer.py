"""workbench.studies: replications with common random numbers, claims, and the seed-paper studies (small)."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from workbench import stats
from workbench.carbon import allocate, hourly_intensity
from workbench.errors import ConfigError, WorkbenchError
from workbench.studies import Claim, claims_table, replicate, replication_seed
from workbench.studies import server_allocation as sa


def _noisy(arm, seed):
    x = np.random.default_rng(seed).normal(0.0, 1.0, 500)
    return {"mean": float(x.mean() + arm["shift"]), "first": float(x[0])}


def test_replications_share_random_numbers_across_arms():
    rep = replicate(_noisy, [{"arm": "a", "shift": 0.0}, {"arm": "b", "shift": 0.05}], replications=6, seed=3)
    assert rep.runs.columns == ["arm", "shift", "replication", "mean", "first", "rejected"]
    assert rep.metrics == ("mean", "first") and (rep.runs["rejected"] == 0).all()
    assert rep.arms == ["a", "b"] and rep.replications == 6
    # common random numbers: the same draws in both arms of a replication
    assert rep.values("a", "first").to_list() == rep.values("b", "first").to_list()
    diff = rep.difference("b", "a", "mean")
    assert diff.estimate.value == pytest.approx(0.05) and diff.estimate.half_width < 1e-9
    # each arm alone is as noisy as 500 normals make it (sd of a mean ~0.045): pairing removes that noise
    assert rep.estimate("b", "mean").half_width > 0.01
    summary = rep.summary(["mean"])
    assert summary.columns == ["arm", "replications", "mean", "mean_lo", "mean_hi"]
    assert rep.versus("a", ["mean"])["significant"].to_list() == [True]


def test_replication_seeds_depend_on_root_and_index_only():
    assert replication_seed(0, 1) == replication_seed(0, 1) != replication_seed(0, 2) != replication_seed(1, 1)
    again = replicate(_noisy, [{"arm": "b", "shift": 0.05}], replications=3, seed=3)
    first = replicate(_noisy, [{"arm": "a", "shift": 0.0}, {"arm": "b", "shift": 0.05}], replications=3, seed=3)
    assert again.values("b", "mean").to_list() == first.values("b", "mean").to_list()


def test_replicate_refuses_bad_input():
    with pytest.raises(ConfigError, match="replications"):
        replicate(_noisy, [{"arm": "a", "shift": 0.0}], replications=1)
    with pytest.raises(ConfigError, match="distinct labels"):
        replicate(_noisy, [{"arm": "a", "shift": 0.0}, {"arm": "a", "shift": 1.0}], replications=2)
    rep = replicate(_noisy, [{"arm": "a", "shift": 0.0}], replications=2)
    with pytest.raises(ConfigError, match="arm 'z'"):
        rep.estimate("z", "mean")


def test_relative_change_is_paired_and_refuses_zero_baseline():
    est = stats.relative_change([2.0, 4.0, 6.0], [4.0, 8.0, 12.0])
    assert est.value == pytest.approx(-0.5) and est.half_width == pytest.approx(0.0)
    with pytest.raises(stats.StatisticsError, match="non-zero"):
        stats.relative_change([1.0, 2.0], [1.0, 0.0])


def test_claims_table_and_verdicts():
    c = Claim("P", "claim", "setup", "result", "reproduced", "why", stats.Estimate(0.1, 0.0, 0.2, 5))
    table = claims_table([c, Claim("Q", "c", "s", "-", "not testable here", "no data")])
    assert table["verdict"].to_list() == ["reproduced", "not testable here"]
    assert table["ci_low"].to_list() == [0.0, None]
    with pytest.raises(ConfigError, match="verdict"):
        Claim("P", "c", "s", "r", "sort of", "why")


# ------------------------------------------------------------------------------------- server allocation
def _mmk_cost(model: sa.Model, k: int) -> float:
    """Average cost of k servers always on: M/M/k with a finite queue (birth-death chain), by hand."""
    lam, mu, cap = model.arrival_rate, model.service_rate, model.queue_cap
    p = [1.0]
    for q in range(1, cap + 1):
        p.append(p[-1] * lam / (min(q, k) * mu))
    p = np.array(p) / sum(p)
    q = np.arange(cap + 1)
    return k * model.server_cost + model.delay_cost * float(p @ q) + lam * model.loss_cost * float(p[-1])


def test_policy_evaluation_matches_the_birth_death_chain():
    model = sa.Model(servers=4, arrival_rate=2.0, queue_cap=20)
    for k in (3, 4):
        assert sa.evaluate(model, sa.simple_policy(model, "static", k)) == pytest.approx(
            _mmk_cost(model, k), rel=1e-9
        )


def test_optimal_policy_is_no_worse_than_any_simple_policy():
    model = sa.Model(servers=4, arrival_rate=1.0, queue_cap=20, server_cost=3.0, setup_s=2.0)
    best, policy = sa.optimal(model)
    assert sa.evaluate(model, policy) == pytest.approx(best, rel=1e-9)
    for name in sa.SIMPLE:
        cost, _ = sa.best_simple(model, name)
        assert cost >= best - 1e-9
    # here switching servers off pays: the optimum beats every static count by a clear margin
    assert sa.best_simple(model, "static")[0] > 1.05 * best


def test_simulated_sample_paths_estimate_the_exact_cost():
    model = sa.Model(servers=4, arrival_rate=2.0, queue_cap=20)
    arm = sa.AllocationArm("x", "static", model=model, steps=30_000)
    values = [sa.run(arm, seed)["cost"] for seed in range(5)]
    exact = sa.run(arm, 0)["exact_cost"]
    assert stats.t_interval(values).side_of(exact) == 0
    assert abs(np.mean(values) / exact - 1) < 0.05


# ------------------------------------------------------------------------------------------- carbon LP
def test_allocate_is_lexicographic():
    # two sites, one hour, 10 kWh: equal prices, site 1 is cleaner but farther
    cap = np.array([[10.0], [10.0]])
    price = np.array([[0.1], [0.1]])
    ci = np.array([[400.0], [100.0]])
    delay = np.array([[10.0], [50.0]])
    blind = allocate(np.array([10.0]), cap, price, ci, delay, order=("cost", "delay"))
    green = allocate(np.array([10.0]), cap, price, ci, delay, order=("cost", "carbon", "delay"))
    assert blind["real_time"][:, 0] == pytest.approx([10.0, 0.0], abs=1e-6)
    assert green["real_time"][:, 0] == pytest.approx([0.0, 10.0], abs=1e-6)
    assert green["cost"] == pytest.approx(blind["cost"]) and green["carbon"] == pytest.approx(1000.0)
    # a dearer clean site is used only within the cost tolerance
    price2 = np.array([[0.1], [0.2]])
    tol = allocate(np.array([10.0]), cap, price2, ci, delay, order=("cost", "carbon"), tolerances=(0.5,))
    assert tol["cost"] == pytest.approx(1.5) and tol["real_time"][1, 0] == pytest.approx(5.0)
    with pytest.raises(ConfigError, match="infeasible"):
        allocate(np.array([30.0]), cap, price, ci, delay)


def test_hourly_intensity_keeps_gaps():
    table = hourly_intensity()
    assert table.height == 8760 and table.columns[0] == "timestamp"
    assert table.select(pl.all().exclude("timestamp").null_count()).row(0) == (0, 0, 3, 0, 3, 0, 23, 0, 0)
    assert 50 < table["BPAT"].mean() < 60 and 550 < table["AZPS"].mean() < 600


def test_linear_weights_router_follows_the_published_rule():
    from workbench.seeds import rng
    from workbench.sim.routing import ArrayCandidates, Request, get_router

    router = get_router("linear_weights", rng=rng(0, "router"), sample=False)
    view = ArrayCandidates(
        3, outstanding=[4, 0, 2], kv_blocks_used=[10, 50, 0], cached_hashes=[set(), {1, 2}, {1}],
        prefix_block_tokens=256,
    )  # fmt: skip
    request = Request(prompt_tokens=1024, prefix_hashes=[1, 2, 3, 4])
    # scores: hit 0/1/0.5 x 0.7, fewest requests 0/1/0.5 x 0.15, fewest tokens 0.8/0/1 x 0.15
    assert router.choose(request, view, 0.0) == 1
    sampled = get_router("linear_weights", rng=rng(0, "router"))
    picks = [sampled.choose(request, view, 0.0) for _ in range(400)]
    share = np.bincount(picks, minlength=3) / 400
    assert share[1] > share[2] > share[0]


def test_pack_router_fills_the_first_instance_up_to_its_limit():
    from workbench.sim.routing import ArrayCandidates, Request, get_router

    router = get_router("pack", limit=3)
    assert router.choose(Request(), ArrayCandidates(3, outstanding=[3, 1, 0]), 0.0) == 1
    assert router.choose(Request(), ArrayCandidates(2, outstanding=[3, 3]), 0.0) == 0
    with pytest.raises(WorkbenchError):
        get_router("pack", limit=0)


def test_estimates_never_hide_nan():
    with pytest.raises(stats.StatisticsError):
        stats.t_interval([1.0, math.nan])


def test_replicate_resumes_from_the_sweep_cache(tmp_path):
    arms = [{"arm": "a", "shift": 0.0}, {"arm": "b", "shift": 1.0}]
    first = replicate(_noisy, arms, replications=3, seed=5, cache_dir=str(tmp_path))
    assert len(list(tmp_path.glob("*.parquet"))) == 6
    again = replicate(_noisy, arms, replications=3, seed=5, cache_dir=str(tmp_path))
    assert again.runs.equals(first.runs)
    parallel = replicate(_noisy, arms, replications=3, seed=5, n_jobs=2)
    assert parallel.runs.equals(first.runs)


# ------------------------------------------------------------------------------- notebook 07's chart recipes
def test_study_chart_recipes_draw_the_gaps_and_the_gains():
    """viz.studies.allocation_gaps (simple policies only, one row per scenario and policy) and kv_loading
    (attainment per arm beside the gain per condition), checked through to_dict()."""
    import json
    from types import SimpleNamespace

    from workbench.viz import studies as vs

    model = sa.Model(servers=3, arrival_rate=1.0, queue_cap=10)
    spec = vs.allocation_gaps(sa.study({"tiny": model}, replications=2, steps=2_000)).to_dict()
    rows = [r for values in spec["datasets"].values() for r in values]
    assert {r["arm"] for r in rows} == {f"tiny: {p}" for p in sa.SIMPLE}
    summary = pl.DataFrame({"arm": ["a", "b"], "slo_attainment": [0.9, 0.8], "slo_attainment_lo": [0.85, 0.7],
                            "slo_attainment_hi": [0.95, 0.9]})  # fmt: skip
    gains = pl.DataFrame({"rate": [4.0], "nic": ["100G"], "loaded_share": [0.42], "gain": [0.1],
                          "gain_lo": [0.05], "gain_hi": [0.15]})  # fmt: skip
    spec = vs.kv_loading(SimpleNamespace(summary=lambda: summary), gains).to_dict()
    left, right = spec["hconcat"]
    arms = [r["arm"] for values in spec["datasets"].values() for r in values]
    assert "4.0/s burst, 100G: 42 % loaded" in arms and {"a", "b"} <= set(arms)
    assert "SLO attainment (TTFT" in json.dumps(left) and "overlap vs blocking" in json.dumps(right)
