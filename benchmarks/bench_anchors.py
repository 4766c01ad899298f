"""The workbench side by side with the field's anchors, on the same workload, in one run.

Anchors (installed from PyPI into their own environment, ``benchmarks/_tmp/anchors-venv``; never dependencies of
the workbench):

* ``vllm-sr-sim`` (inference-fleet-sim's discrete-event simulator): one pool of 64 H100 replicas behind its
  least-queue balancer (JSQ), Poisson arrivals with lengths drawn from its own Azure CDF. The workbench runs
  the very same requests (arrival, prompt, output written by the anchor) on 64 H100 instances of
  Llama-3.1-8B behind ``jsq``.
* ``vidur`` (Microsoft's LLM-inference simulator): one replica of Llama-2-70B TP2 on A100 with arXiv
  summarisation lengths (Vidur's own workload). The PyPI release's execution-time predictor downloads its
  profiling data from the Hugging Face hub when it runs; without network the script says so and compares
  with the published ~420 simulated requests per second instead of a run here.

Each run prints simulated requests per second, the ratio workbench / anchor, and the workbench's ratio to the
reference loop (``../shared/bench/ref_loop.py``) measured in this process. Times are CPU seconds of the
simulation calls only (workload generation and imports excluded, on both sides).

Run: ``make bench-anchors`` or ``.venv/bin/python benchmarks/bench_anchors.py [--requests N] [--skip-install]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
from _ref import core, ref_speed

HERE = Path(__file__).resolve().parent
VENV = HERE / "_tmp" / "anchors-venv"
ANCHOR_PY = VENV / "bin" / "python"
PACKAGES = ("vidur", "vllm-sr-sim")
TRACES = HERE.parents[0].parent / "shared" / "data" / "traces"
#: Vidur's published speed (simulated requests per second, its own workload), used when it cannot run here.
VIDUR_PUBLISHED_RPS = 420.0

FLEET_SIM = r"""
import json, sys, time
import polars as pl
from fleet_sim.core.fleet import Fleet, FleetConfig, PoolConfig
from fleet_sim.gpu_profiles.profiles import H100_80GB
from fleet_sim.workload.synthetic import CdfWorkload, PoissonWorkload
from run_sim import load_cdf
import fleet_sim, os
n, lam, instances, out = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
data = os.path.join(os.path.dirname(fleet_sim.__file__), "data", "azure_cdf.json")
arrivals = PoissonWorkload(lam, CdfWorkload(load_cdf(data), seed=0), n_requests=n, seed=0).generate()
pl.DataFrame({"arrival_s": [t for t, _ in arrivals], "prompt_tokens": [r.l_in for _, r in arrivals],
              "output_tokens": [r.l_out for _, r in arrivals]}).write_parquet(out)
cfg = FleetConfig(pools=[PoolConfig("main", H100_80GB, instances, 8192, lb_strategy="least_queue")],
                  router_type="LengthRouter", router_kwargs={"threshold": 8192})
fleet = Fleet(cfg)
t = time.process_time(); fleet.run(list(arrivals)); dt = time.process_time() - t
print(json.dumps({"requests": n, "seconds": dt}))
"""

VIDUR_PROBE = r"""
import json
from vidur.execution_time_predictor.sklearn_execution_time_predictor import SklearnExecutionTimePredictor
print(json.dumps({"importable": True}))
"""


def ensure_anchors(skip_install: bool) -> bool:
    """Create the anchors' environment and install them (once); ``False`` when that is impossible."""
    ready = ANCHOR_PY.exists() and subprocess.run([ANCHOR_PY, "-c", "import fleet_sim"], capture_output=True)
    if ready and ready.returncode == 0:
        return True
    if skip_install:
        return False
    print(f"installing {', '.join(PACKAGES)} into {VENV} (once) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    done = subprocess.run([ANCHOR_PY, "-m", "pip", "install", "-q", *PACKAGES])
    return done.returncode == 0


def anchor_python(script: str, *args: str) -> dict:
    """Run ``script`` with the anchors' interpreter (cwd: its site-packages, where run_sim.py lives)."""
    site = next((VENV / "lib").glob("python3*/site-packages"))
    out = subprocess.run([ANCHOR_PY, "-c", script, *map(str, args)], cwd=site, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


def fleet_side_by_side(n: int, instances: int) -> None:
    from workbench.sim.fleet import simulate
    from workbench.sim.topology import monolithic

    lam = 8.0 * instances
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "arrivals.parquet"
        anchor = anchor_python(FLEET_SIM, n, lam, instances, path)
        reqs = pl.read_parquet(path).sort("arrival_s", maintain_order=True)
    reqs = reqs.with_row_index("request_id").with_columns(pl.col("request_id").cast(pl.UInt64))
    fleet = monolithic(instances, gpu="H100-SXM", model="Llama-3.1-8B", router="jsq")
    ref = ref_speed()
    t = time.process_time()
    res = simulate(reqs, fleet, record_segments=False, progress=False)
    dt = time.process_time() - t
    ref = max(ref, ref_speed())
    wb, other = n / dt, anchor["requests"] / anchor["seconds"]
    served = int((~res.requests["rejected"]).sum())
    print(
        f"[fleet] {instances} instances, JSQ, {n:,} requests (fleet-sim's Azure CDF at {lam:.0f} req/s; "
        f"workbench served {served:,}): workbench {wb:,.0f} req/s ({dt:.2f} s, {wb / ref:.3f} x reference "
        f"loop), inference-fleet-sim {other:,.0f} req/s ({anchor['seconds']:.2f} s) -> {wb / other:.1f}x"
    )


def vidur_side_by_side(n: int) -> None:
    from workbench.sim import InstanceConfig, simulate
    from workbench.traces import Empirical, Poisson, Synthetic, load

    data = Path(os.environ.get("WORKBENCH_DATA_DIR", TRACES))
    arxiv = data / "vidur_arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv"
    lengths = Empirical.from_trace(load(arxiv))
    cfg = InstanceConfig(gpu="A100-80GB", model="Llama-2-70B", tp=2)
    trace = Synthetic(Poisson(1.0), lengths).generate(n=n, seed=0)
    ref = ref_speed()
    t = time.process_time()
    simulate(trace, cfg, progress=False)
    dt = time.process_time() - t
    ref = max(ref, ref_speed())
    wb = n / dt
    try:
        anchor_python(VIDUR_PROBE)
        note = "vidur installed; its predictor needs profiling data from the Hugging Face hub (offline here)"
    except RuntimeError as err:
        note = f"vidur not runnable here ({err})"
    print(
        f"[instance] Llama-2-70B TP2 A100, arXiv lengths, {n:,} requests: workbench {wb:,.0f} req/s "
        f"({dt:.2f} s, {wb / ref:.3f} x reference loop); {note}: against Vidur's published "
        f"{VIDUR_PUBLISHED_RPS:.0f} req/s "
        f"-> {wb / VIDUR_PUBLISHED_RPS:.0f}x"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=100_000, help="fleet requests (default 100,000)")
    ap.add_argument("--instances", type=int, default=64)
    ap.add_argument("--vidur-requests", type=int, default=10_000)
    ap.add_argument("--skip-install", action="store_true", help="never install the anchors")
    args = ap.parse_args()
    load1, _, _ = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, load average {load1:.1f}; simulator core: {core()}; "
          f"reference loop {ref_speed():,.0f} customers/s")  # fmt: skip
    if not ensure_anchors(args.skip_install):
        print("anchors not installed (no network or --skip-install): nothing to compare")
        return
    fleet_side_by_side(args.requests, args.instances)
    vidur_side_by_side(args.vidur_requests)


if __name__ == "__main__":
    main()
