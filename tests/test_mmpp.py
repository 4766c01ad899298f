"""MMPP arrivals: mean rate and burstiness against their closed forms (workbench.traces.mmpp)."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.errors import ConfigError
from workbench.traces import Synthetic
from workbench.traces.mmpp import MMPP, index_of_dispersion


def test_bursts_has_the_requested_mean_rate_and_share():
    m = MMPP.bursts(mean_rate=20.0, peak_ratio=4.0, burst_share=0.2, burst_s=10.0)
    assert m.mean_rate == pytest.approx(20.0)
    assert m.stationary == pytest.approx([0.8, 0.2])
    assert m.rates[1] / m.rates[0] == pytest.approx(4.0)


def test_long_run_rate_and_index_of_dispersion_match_the_closed_forms():
    m = MMPP(rates=(2.0, 30.0), mean_sojourn_s=(20.0, 5.0))
    t = m.sample(np.random.default_rng(7), duration_s=200_000.0)
    assert t.size / 200_000.0 == pytest.approx(m.mean_rate, rel=0.03)
    # counts in windows much longer than the sojourns: variance / mean -> the asymptotic IDC
    window = 500.0
    counts = np.bincount((t // window).astype(int), minlength=400)[:400]
    idc = counts.var(ddof=1) / counts.mean()
    assert idc == pytest.approx(index_of_dispersion(m), rel=0.25)
    assert index_of_dispersion(m) > 10  # far burstier than Poisson (1)


def test_three_states_with_jumps_and_stationary_law():
    m = MMPP(rates=(1.0, 5.0, 0.0), mean_sojourn_s=(1.0, 2.0, 4.0),
             jumps=((0, 1.0, 0), (0, 0, 1.0), (1.0, 0, 0)))  # fmt: skip
    # a cycle visits each state once: time shares proportional to the sojourns
    assert m.stationary == pytest.approx(np.array([1, 2, 4]) / 7)
    assert m.mean_rate == pytest.approx((1 + 10) / 7)
    t = m.sample(np.random.default_rng(1), n=5000)
    assert t.size == 5000 and np.all(np.diff(t) >= 0)


def test_same_seed_same_times_and_generator_integration():
    m = MMPP.bursts(5.0, 8.0, 0.1, 20.0)
    a = m.sample(np.random.default_rng(3), n=300)
    b = m.sample(np.random.default_rng(3), n=300)
    assert np.array_equal(a, b)
    trace = Synthetic(arrivals=m).generate(n=200, seed=4)
    assert len(trace) == 200


def test_bad_parameters_name_the_field():
    with pytest.raises(ConfigError, match="same length >= 2"):
        MMPP(rates=(1.0,), mean_sojourn_s=(1.0,))
    with pytest.raises(ConfigError, match=r"mean_sojourn_s\[1\]"):
        MMPP(rates=(1.0, 2.0), mean_sojourn_s=(1.0, 0.0))
    with pytest.raises(ConfigError, match="at least one state"):
        MMPP(rates=(0.0, 0.0), mean_sojourn_s=(1.0, 1.0))
    with pytest.raises(ConfigError, match="zero diagonal"):
        MMPP(rates=(1.0, 2.0), mean_sojourn_s=(1.0, 1.0), jumps=((0.5, 0.5), (1.0, 0.0)))
    with pytest.raises(ConfigError, match="burst_share"):
        MMPP.bursts(1.0, 2.0, 1.0, 1.0)
    with pytest.raises(ConfigError, match="exactly one of n"):
        MMPP.bursts(1.0, 2.0, 0.5, 1.0).sample(np.random.default_rng(0))
