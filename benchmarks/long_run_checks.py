"""Issue 13's cases on runs ten times longer than the verdicts, on seeds the verdicts never saw.

A verdict of the measurement kernel must hold when the same fleet is simulated much longer from another seed.
For each case this script prints the workbench's answer and then the P99 of long independent runs (the first
60 s dropped) at the answer and next to it:

* ``sizing``: inference-fleet-sim's LMSYS CDF read as prompt lengths (log-normal outputs, median 500), Poisson
  200 req/s, Llama-3.1-8B TP 2 on A100, P99 TTFT <= 0.5 s (the row of ``bench_screen_panel.py``);
* ``total``: the same CDF read as total tokens (80 % to the prompt, as inference-fleet-sim does);
* ``gridflex``: 4 x H100 at 40 req/s (log-normal lengths), P99 TTFT <= 0.5 s and TPOT <= 50 ms.

Run: ``.venv/bin/python benchmarks/long_run_checks.py [sizing|total|gridflex ...]`` (a few minutes of CPU).
README "How far to trust the models" quotes its numbers.
"""

from __future__ import annotations

import sys
import time
import warnings

import polars as pl

from workbench.planning import SLO, Candidate, size_fleet, workload
from workbench.sim import fleet
from workbench.sim.topology import monolithic
from workbench.studies.fleets import cdf_workload
from workbench.traces import LogNormal, Poisson, Synthetic, TotalTokenCdf
from workbench.whatif import grid_flex
from workbench.whatif._common import simulate_fleet

LONG_SEEDS = (4242, 9001)
DROP_S = 60.0


def _p99(requests: pl.DataFrame, column: str = "ttft_s") -> float:
    return float(requests.filter(pl.col("arrival_s") > DROP_S)[column].quantile(0.99))


def _sizing(gen, slo: SLO, n_long: int) -> None:
    t = time.perf_counter()
    res = size_fleet(gen, slo, [Candidate("A100", tp=2)], progress=False)
    best = res.best or {}
    k = int(best["sim_instances"])
    print(f"size_fleet ({time.perf_counter() - t:.0f} s): {k} instances, P99 TTFT "
          f"{best['sim_ttft_p99_s']:.3f} s [{best['sim_ttft_p99_lo']:.3f}, {best['sim_ttft_p99_hi']:.3f}]; "
          f"{k - 1}: {best['sim_below']}")
    for seed in LONG_SEEDS:
        trace = gen.generate(n=n_long, seed=seed)
        for n in (k - 1, k, k + 1):
            fl = monolithic(n, gpu="A100", tp=2)
            r = fleet.simulate(trace, fl, seed=1, record_segments=False, progress=False)
            print(f"  seed {seed}, {n_long:,} requests, {n} instances: P99 TTFT {_p99(r.requests):.3f} s")


def sizing() -> None:
    """The LMSYS CDF as prompt lengths."""
    _sizing(cdf_workload("ifs_lmsys_cdf", 200.0, output_median=500.0), SLO(0.5, None), 200_000)


def total() -> None:
    """The LMSYS CDF as total tokens."""
    lengths = TotalTokenCdf.from_json("ifs_lmsys_cdf", allow_download=False)
    _sizing(Synthetic(arrivals=Poisson(200.0), lengths=lengths, name="lmsys-total"), SLO(0.5, None), 60_000)


def gridflex() -> None:
    """The deepest power cut of 4 x H100 at 40 req/s."""
    gen = Synthetic(arrivals=Poisson(40.0), lengths=LogNormal(6.5, 0.8, 5.0, 0.7))
    slo = SLO(ttft_s=0.5, tpot_s=0.05)
    t = time.perf_counter()
    best = grid_flex(workload(gen, 40.0, seed=1, n_requests=600), slo, "H100", 4).best
    cap, clock = best["max_num_seqs"], best["clock"]
    print(f"grid_flex ({time.perf_counter() - t:.0f} s): cap {cap}, clock {clock}, {best['sim_verdict']}: "
          f"P99 TTFT {best['sim_ttft_p99_s']:.3f} s [{best['sim_ttft_p99_lo']:.3f}, "
          f"{best['sim_ttft_p99_hi']:.3f}] ({best['sim_requests']:,} requests)")
    for seed in LONG_SEEDS:
        trace = gen.generate(n=40_000, seed=seed)
        r = simulate_fleet(trace, "H100-SXM", "Llama-3.1-8B", 1, 4, max_num_seqs=cap, clock=clock, seed=1,
                           progress=False)  # fmt: skip
        req = r.requests.filter(pl.col("arrival_s") > DROP_S)
        good = float(((req["ttft_s"] <= slo.ttft_s) & (req["tpot_s"] <= slo.tpot_s)).mean())
        print(f"  seed {seed}, 40,000 requests: P99 TTFT {_p99(r.requests):.3f} s, P99 TPOT "
              f"{_p99(r.requests, 'tpot_s') * 1e3:.1f} ms, both targets met by {good:.1%}")


CASES = {"sizing": sizing, "total": total, "gridflex": gridflex}


def main() -> None:
    warnings.simplefilter("ignore")
    for name in sys.argv[1:] or list(CASES):
        print(f"[{name}]")
        CASES[name]()


if __name__ == "__main__":
    main()
