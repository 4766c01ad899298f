"""workbench.stats: intervals that cover, MSER-5 that finds a transient, paired comparisons."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from scipy import stats as sps
from scipy.signal import lfilter

from workbench import stats
from workbench.errors import WorkbenchError


def test_t_interval_matches_the_textbook_formula():
    x = np.array([1.0, 2.0, 4.0, 7.0])
    est = stats.t_interval(x)
    half = sps.t.ppf(0.975, 3) * x.std(ddof=1) / 2.0
    assert est.value == pytest.approx(3.5)
    assert est.low == pytest.approx(3.5 - half)
    assert est.high == pytest.approx(3.5 + half)
    assert est.n == 4
    assert est.side_of(10.0) == -1 and est.side_of(-10.0) == 1 and est.side_of(3.0) == 0


def test_too_little_data_is_a_clear_error_not_nan():
    with pytest.raises(WorkbenchError, match="at least 2 replications"):
        stats.t_interval([1.0])
    with pytest.raises(WorkbenchError, match="not finite"):
        stats.t_interval([1.0, math.nan])
    with pytest.raises(WorkbenchError, match="too few"):
        stats.quantile_interval(np.arange(100.0), 0.99)


def test_quantile_interval_covers_the_true_quantile_of_iid_exponentials():
    # 60 seeds, P99 of Exp(1) = ln(100); a 95 % interval must cover in the large majority
    truth = math.log(100.0)
    covered = 0
    for seed in range(60):
        x = np.random.default_rng(seed).exponential(1.0, 20_000)
        covered += stats.quantile_interval(x, 0.99).side_of(truth) == 0
    assert covered >= 51


def test_quantile_interval_covers_under_dependence():
    # AR(1) with strong positive correlation: sectioning over long batches still covers the stationary P90
    rho, n = 0.9, 100_000
    truth = sps.norm.ppf(0.9) / math.sqrt(1 - rho**2)
    covered = 0
    for seed in range(40):
        e = np.random.default_rng(seed).standard_normal(n)
        e[0] /= math.sqrt(1 - rho**2)  # start in the stationary distribution
        x = lfilter([1.0], [1.0, -rho], e)
        covered += stats.quantile_interval(x, 0.9).side_of(truth) == 0
    assert covered >= 34


def test_mean_interval_is_wider_than_the_iid_one_for_correlated_output():
    rng = np.random.default_rng(1)
    x = np.repeat(rng.standard_normal(2_000), 50)  # runs of 50 equal values
    iid_half = 1.96 * x.std() / math.sqrt(len(x))
    assert stats.mean_interval(x).half_width > 3 * iid_half


def test_mser_finds_an_initial_transient():
    rng = np.random.default_rng(2)
    warm = np.linspace(20.0, 1.0, 2_000)  # a decaying start-up bias
    x = np.concatenate([warm + rng.standard_normal(2_000), 1.0 + rng.standard_normal(18_000)])
    cut, inside = stats.mser_truncation(x)
    assert inside
    assert 1_000 <= cut <= 3_000


def test_mser_keeps_a_stationary_series_almost_whole():
    x = np.random.default_rng(3).standard_normal(10_000)
    cut, inside = stats.mser_truncation(x)
    assert inside and cut < 2_500


def test_mser_flags_a_series_that_never_settles():
    x = np.linspace(0.0, 100.0, 5_000)  # keeps growing: no steady state
    _, inside = stats.mser_truncation(x)
    assert not inside


def test_trend_detects_a_growing_backlog_and_not_a_stable_one():
    rng = np.random.default_rng(4)
    t = np.arange(10_000.0)
    slope, p = stats.trend(t, 0.01 * t + rng.standard_normal(10_000))
    assert slope == pytest.approx(0.01, rel=0.1) and p < 1e-6
    _, p_flat = stats.trend(t, rng.standard_normal(10_000))
    assert p_flat > 0.01


def test_paired_difference_uses_the_pairing():
    rng = np.random.default_rng(5)
    common = rng.normal(10.0, 5.0, 10)  # large seed-to-seed noise shared by both policies
    a, b = common + 0.3, common + rng.normal(0.0, 0.05, 10)
    diff = stats.paired_difference(a, b)
    assert diff.significant and diff.p_value < 1e-3
    unpaired = stats.t_interval(a).side_of(stats.t_interval(b).value)
    assert unpaired == 0  # unpaired intervals could not tell them apart
    same = stats.paired_difference(common, common + rng.normal(0.0, 0.05, 10))
    assert not same.significant


def test_summarize_and_compare_tables():
    table = pl.DataFrame(
        {
            "policy": ["rr"] * 3 + ["jsq"] * 3,
            "seed": [0, 1, 2] * 2,
            "p99": [3.0, 3.2, 3.1, 2.0, 2.1, 2.05],
        }
    )
    summary = stats.summarize(table, "policy", ["p99"])
    assert summary["policy"].to_list() == ["rr", "jsq"]
    assert summary["replications"].to_list() == [3, 3]
    assert summary["p99"].to_list() == pytest.approx([3.1, 2.05])
    assert (summary["p99_lo"] < summary["p99"]).all() and (summary["p99_hi"] > summary["p99"]).all()
    diff = stats.compare(table, "policy", "rr", ["p99"])
    assert diff.height == 1 and diff["policy"][0] == "jsq"
    assert diff["difference"][0] == pytest.approx(-1.05)
    assert diff["significant"][0]
    with pytest.raises(WorkbenchError, match="pair"):
        unpaired = table.filter(~((pl.col("policy") == "jsq") & (pl.col("seed") == 2)))
        stats.compare(unpaired, "policy", "rr", ["p99"])


def test_fill_truncation_ends_at_the_first_reach_of_the_steady_level():
    """An empty start that fills for 100 observations; a burst later does not move the cut (MSER-5 on the
    output would cut up to the burst's end)."""
    rng = np.random.default_rng(3)
    level = np.concatenate([np.linspace(0.0, 20.0, 100), 20.0 + rng.normal(0.0, 1.0, 2000)])
    level[1200:1300] += 60.0  # a burst in the first half
    cut = stats.fill_truncation(level)
    assert 90 <= cut <= 101
    assert stats.fill_truncation(np.zeros(50)) == 0
    with pytest.raises(stats.StatisticsError):
        stats.fill_truncation([1.0])
