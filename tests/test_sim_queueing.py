"""Queueing mode vs Erlang-C (M/M/c) and the distributions' moments."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from workbench.errors import ConfigError
from workbench.sim import Deterministic, Empirical, Exponential, Lognormal, service_distribution, simulate_queue


def erlang_c(c: int, offered: float) -> tuple[float, float]:
    """P(wait > 0) and mean wait of M/M/c with unit service rate and ``offered`` = lambda / mu."""
    term = 1.0
    total = 0.0
    for k in range(c):
        total += term
        term *= offered / (k + 1)
    top = term * c / (c - offered)
    p_wait = top / (total + top)
    return p_wait, p_wait / (c - offered)


# (rho, customers) of M/M/4 with seed 11 and a 2 % warm-up: sized so that the 95 % batch-means half-width of
# the mean wait is <= ~2 % of it (measured 1.9 %, 1.5 %, 1.7 %; P(wait > 0) is resolved to <= 0.9 %). The
# half-width grows like (1 - rho)^-2 per customer: rho = 0.95 needs 18 M customers (~12 s at ~1.5 M
# customers/s), the other two 4 M together. ``benchmarks/bench_sim.py --erlang`` prints the same runs.
CASES = [
    (0.5, 1_500_000),
    (0.8, 2_500_000),
    pytest.param(0.95, 18_000_000, marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("rho", "customers"), CASES)
def test_mmc_matches_erlang_c(rho, customers):
    c = 4
    lam = rho * c
    res = simulate_queue(lam, Exponential(1.0), c, customers, seed=11, warmup=0.02, table=False)
    p_wait, mean_wait = erlang_c(c, lam)
    assert res.rho == pytest.approx(rho)
    for name, got, half_width, exact in (
        ("P(wait > 0)", res.p_wait, res.p_wait_ci, p_wait),
        ("mean wait", res.mean_wait, res.mean_wait_ci, mean_wait),
    ):
        assert half_width <= 0.021 * exact, (name, "the run does not resolve 2 %", half_width / exact)
        assert abs(got / exact - 1) <= 0.02, (name, "error above 2 %", got / exact - 1)
        assert abs(got - exact) <= half_width, (name, "Erlang-C outside the 95 % CI", got, exact, half_width)


def test_queue_mode_catches_a_wrong_arrival_rate():
    # the 2 % check is informative: 3 % more arrivals at rho = 0.8 raise the Erlang-C mean wait by 22 %
    res = simulate_queue(0.8 * 4 * 1.03, Exponential(1.0), 4, 1_000_000, seed=11, warmup=0.02, table=False)
    _, mean_wait = erlang_c(4, 3.2)
    assert res.mean_wait / mean_wait - 1 > 0.1


def test_deterministic_single_server_no_wait_below_capacity():
    # D/D/1 would never wait; with Poisson arrivals and deterministic service the M/D/1 mean wait is
    # rho / (2 mu (1 - rho)) (Pollaczek-Khinchine)
    rho = 0.7
    res = simulate_queue(rho, Deterministic(1.0), 1, 400_000, seed=4)
    pk = rho / (2 * (1 - rho))
    assert abs(res.mean_wait - pk) <= max(0.03 * pk, 3 * res.mean_wait_ci)
    assert abs(res.p_wait - rho) < 0.01


def test_fcfs_table_is_consistent():
    res = simulate_queue(3.0, Lognormal(1.0, 2.0), 4, 5_000, seed=1, warmup=0.0)
    assert simulate_queue(3.0, Lognormal(1.0, 2.0), 4, 5_000, seed=1, table=False).customers is None
    t = res.customers
    assert t.height == 5_000
    assert (t["wait_s"] >= 0).all()
    assert (t["start_s"] >= t["arrival_s"]).all()
    # FCFS: service starts in arrival order
    assert t["start_s"].is_sorted()
    # no server serves two customers at once
    for _, grp in t.sort("start_s").group_by("server"):
        assert (grp["start_s"].shift(-1) >= grp["finish_s"] - 1e-12).fill_null(True).all()


def test_same_seed_same_table_and_other_seed_differs():
    a = simulate_queue(2.0, Exponential(1.0), 3, 2_000, seed=5).customers
    b = simulate_queue(2.0, Exponential(1.0), 3, 2_000, seed=5).customers
    c = simulate_queue(2.0, Exponential(1.0), 3, 2_000, seed=6).customers
    assert a.equals(b)
    assert not a.equals(c)


@pytest.mark.parametrize(
    "dist",
    [Exponential(2.0), Deterministic(0.5), Lognormal(1.5, 0.7), Empirical(np.array([0.5, 1.0, 3.0]))],
)
def test_distribution_moments(dist):
    x = dist.sample(np.random.default_rng(0), 400_000)
    assert x.mean() == pytest.approx(dist.mean, rel=0.01)
    assert x.var() == pytest.approx(dist.var, rel=0.03, abs=1e-12)


def test_bad_input():
    with pytest.raises(ConfigError, match="service distribution"):
        service_distribution("pareto")
    with pytest.raises(ConfigError, match="servers"):
        simulate_queue(1.0, Exponential(1.0), 0, 10)
    with pytest.raises(ConfigError, match="mean"):
        Exponential(-1.0)
    with pytest.raises(ConfigError, match="values"):
        Empirical(np.array([]))
    assert isinstance(service_distribution("lognormal", mean=1.0, cv=0.5), Lognormal)
    assert math.isclose(Lognormal(2.0, 0.5).var, 1.0)
    assert isinstance(simulate_queue(1.0, Exponential(1.0), 2, 100).customers, pl.DataFrame)


class _Fixed:
    """A user service distribution returning given times (cycled)."""

    def __init__(self, times):
        self.times = np.asarray(times, dtype=float)
        self.mean = 1.0

    def sample(self, rng, n):
        return np.resize(self.times, n)


@pytest.mark.parametrize(
    ("times", "message"),
    [
        ([1.0, -0.5], r"_Fixed.sample must give finite service times >= 0 s; customer 1 got -0.5 \(5 of 10"),
        ([1.0, 1.0, math.nan], r"customer 2 got nan \(3 of 10 bad\)"),
        ([math.inf], r"customer 0 got inf \(10 of 10 bad\)"),
    ],
)
def test_bad_service_times_are_one_clear_error(times, message):
    with pytest.raises(ConfigError, match=message):
        simulate_queue(0.5, _Fixed(times), 2, 10)
    wrong = _Fixed([1.0])
    wrong.sample = lambda rng, n: np.ones((n, 2))
    with pytest.raises(ConfigError, match=r"_Fixed.sample gave an array of shape \(10, 2\), not 10"):
        simulate_queue(0.5, wrong, 2, 10)
    assert simulate_queue(0.5, _Fixed([0.0, 2.0]), 2, 10).customers.height == 9  # 0 s is a valid time
