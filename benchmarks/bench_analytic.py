"""Speed of the analytic screen: 10,000 fleet configurations through the service model and M/G/c.

Run: ``.venv/bin/python benchmarks/bench_analytic.py``. Configurations: 5 GPUs x 4 models x 4 TP degrees x
5 batch caps (service model, fitting ones only) x instance counts x arrival rates, cut to 10,000. Prints the
time of each step and the ratio against a scalar per-configuration loop (the baseline) on the same rows.
"""

from __future__ import annotations

import time

import numpy as np

from workbench.analytic import erlang_c, instance_service_model, mgc_mean_wait, mgc_wait_quantile
from workbench.errors import HardwareError
from workbench.hardware import RooflineModel, kv_capacity_tokens

N = 10_000


def main() -> None:
    t0 = time.perf_counter()
    slots, mean, scv = [], [], []
    for g in ("A100", "H100", "H200", "B200", "L40S"):
        for m in ("Llama-3.1-8B", "Qwen2.5-32B", "Llama-3.1-70B", "Mixtral-8x7B"):
            for tp in (1, 2, 4, 8):
                try:
                    kv = kv_capacity_tokens(g, m, tp)
                except HardwareError:
                    continue
                svc = instance_service_model(
                    RooflineModel(g, m, tp), 1500, 250, [16, 32, 64, 128, 256], kv_capacity_tokens=kv
                )
                slots.append(svc.slots)
                mean.append(svc.mean_s)
                scv.append(svc.scv)
    slots, mean, scv = (np.concatenate(x) for x in (slots, mean, scv))
    t_service = time.perf_counter() - t0
    rng = np.random.default_rng(np.random.SeedSequence(0))
    idx = rng.integers(0, len(slots), N)
    instances = rng.integers(1, 64, N)
    qps = rng.uniform(1, 200, N)
    c, s, v = slots[idx], mean[idx], scv[idx]
    rho = qps / instances * s / c

    t0 = time.perf_counter()
    p_wait = erlang_c(c, np.minimum(rho, 1.0))
    wait = mgc_mean_wait(c, np.minimum(rho, 1.0), s, v)
    p99 = mgc_wait_quantile(0.99, c, np.minimum(rho, 1.0), s, v)
    t_queue = time.perf_counter() - t0

    t0 = time.perf_counter()
    loop = [float(mgc_mean_wait(int(c[i]), min(rho[i], 1.0), s[i], v[i])) for i in range(N)]
    t_loop = time.perf_counter() - t0
    assert np.allclose(np.array(loop), wait, equal_nan=True)
    print(f"service model: {len(slots)} (GPU, model, TP, batch) rows in {t_service * 1e3:.1f} ms")
    print(f"M/G/c screen of {N} configurations (P(wait), mean wait, P99 wait): {t_queue * 1e3:.2f} ms")
    print(
        f"scalar loop baseline (mean wait only): {t_loop * 1e3:.0f} ms -> vectorised speed-up "
        f"{t_loop / t_queue:.0f}x"
    )
    print(
        f"total screen: {(t_service + t_queue) * 1e3:.1f} ms; stable configs {np.mean(rho < 1):.0%}, "
        f"median P(wait) {np.median(p_wait[rho < 1]):.3f}, median P99 wait {np.median(p99[rho < 1]):.3f} s"
    )


if __name__ == "__main__":
    main()
