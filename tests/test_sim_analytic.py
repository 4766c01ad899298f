"""Cross-checks of the simulator against the analytic models of :mod:`workbench.analytic`."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from workbench.analytic import erlang_c, instance_latency, instance_service_model, mgc_mean_wait, mmc_mean_wait
from workbench.hardware import RooflineModel
from workbench.sim import (
    Deterministic,
    Exponential,
    InstanceConfig,
    Lognormal,
    SchedulerConfig,
    simulate,
    simulate_queue,
)


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_queueing_mode_agrees_with_analytic_erlang_c(rho):
    c = 4
    res = simulate_queue(rho * c / 2.0, Exponential(2.0), c, 300_000, seed=21)
    p = float(erlang_c(c, rho))
    w = float(mmc_mean_wait(c, rho, 2.0))
    assert abs(res.p_wait - p) <= max(0.02 * p, 3 * res.p_wait_ci)
    assert abs(res.mean_wait - w) <= max(0.02 * w, 3 * res.mean_wait_ci)


@pytest.mark.parametrize(
    ("service", "method", "tol"),
    [
        (Deterministic(1.0), "kimura", 0.06),
        (Lognormal(1.0, 0.5), "kimura", 0.08),
        (Lognormal(1.0, 2.0), "allen-cunneen", 0.15),
    ],
)
def test_queueing_mode_near_mgc_approximations(service, method, tol):
    c, rho = 4, 0.7
    res = simulate_queue(rho * c / service.mean, service, c, 300_000, seed=5)
    w = float(mgc_mean_wait(c, rho, service.mean, service.var / service.mean**2, 1.0, method))
    assert abs(res.mean_wait / w - 1) <= tol + 3 * res.mean_wait_ci / w, (res.mean_wait, w)


def test_instance_simulation_near_analytic_service_model():
    # one instance, 16 batch slots, fixed prompts and geometric outputs at 60 % of the analytic capacity
    perf = RooflineModel("H100", "Llama-3.1-8B")
    prompt, output, slots = 1000, 200, 16
    svc = instance_service_model(perf, prompt, output, batch_size=slots)
    lam = 0.6 * float(svc.capacity_rps[0])
    rng = np.random.default_rng(8)
    n = 6_000
    reqs = pl.DataFrame(
        {
            "request_id": pl.Series(np.arange(n), dtype=pl.UInt64),
            "arrival_s": np.cumsum(rng.exponential(1 / lam, n)),
            "prompt_tokens": pl.Series(np.full(n, prompt), dtype=pl.Int32),
            "output_tokens": pl.Series(rng.geometric(1 / output, n), dtype=pl.Int32),
        }
    )
    res = simulate(
        reqs,
        InstanceConfig(perf=perf, kv_capacity_tokens=400_000, scheduler=SchedulerConfig(max_num_seqs=slots)),
    )
    r = res.requests.slice(n // 10)  # drop the warm-up
    lat = instance_latency(svc, lam).row(0, named=True)
    # the analytic model charges every token at a full batch: an upper bound on TPOT, close at this load
    assert r["tpot_s"].mean() <= lat["tpot_s"] * 1.02
    assert r["e2e_s"].mean() == pytest.approx(lat["e2e_mean_s"], rel=0.2)
    assert r["ttft_s"].mean() == pytest.approx(lat["ttft_mean_s"], rel=0.3)
    # and a 2x error in either direction would be caught
    assert not (0.5 * lat["e2e_mean_s"] == pytest.approx(r["e2e_s"].mean(), rel=0.2))
