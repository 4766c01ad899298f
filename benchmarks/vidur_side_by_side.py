"""Run Vidur on the shared operator tables, offline, and store its per-request results in data/vidur_runs.csv.

What runs: Vidur's source at GitHub commit 7d47513 (microsoft/vidur, MIT; the commit the tables in
``../shared/data/profiles/vidur`` come from), in its own virtual environment (``benchmarks/_tmp/vidur-venv``,
Vidur's PyPI dependencies: numpy, pandas, scikit-learn, wandb, kaleido, ddsketch, plotly_express, matplotlib,
seaborn, fasteners; never dependencies of the workbench). Vidur reads ``data/profiling/...`` relative to its
working directory; the script lays that folder out with links to the shared tables, so nothing is downloaded.

Why not the PyPI release: ``vidur`` 0.0.26 downloads its profiles from the Hugging Face hub when it predicts,
and its predictor reads a newer table layout (attention keyed by the context *including* the chunk, chunk sizes
rounded to 32, Sarathi-style budgets) and its vLLM scheduler counts the sum of prompt tokens, not prompts x the
longest prompt: it cannot read the shipped tables faithfully. The GitHub source at 7d47513 can, and it is the
Vidur whose scheduler rule the workbench copies (:func:`workbench.validation.vidur.vidur_scheduler`).

Configuration (Vidur's defaults unless said): Llama-2-70B, TP 2, A100, pairwise-NVLink all-reduce, vLLM
scheduler (batch cap 128, 4,096 tokens per batch), arXiv-summarisation lengths (max 4,096 tokens), Poisson
arrivals at each ``--qps``, 1,000 requests, seed 42. Random forests: one hyper-parameter set (250 trees, depth
32, min split 2, 2-fold CV) instead of Vidur's 27-point grid search, to fit a 2-core machine.

Run: ``.venv/bin/python benchmarks/vidur_side_by_side.py --vidur-src PATH [--qps 0.3 0.5 0.7]`` where PATH is a
checkout of microsoft/vidur at 7d47513. Then ``workbench.validation.vidur.compare_with_vidur()`` compares.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import polars as pl

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV = HERE / "_tmp" / "vidur-venv"
VIDUR_PY = VENV / "bin" / "python"
CACHE = HERE / "_tmp" / "vidur-cache"  # Vidur's trained predictors, reused across runs
DEPS = ("numpy", "pandas", "scikit-learn", "wandb", "kaleido", "ddsketch", "plotly_express", "matplotlib",
        "seaborn", "fasteners")  # fmt: skip
PROFILES = ROOT.parent / "shared" / "data" / "profiles" / "vidur"
TRACES = ROOT.parent / "shared" / "data" / "traces"
_COMPUTE = "data/profiling/compute/a100/meta-llama/Llama-2-70b-hf"
LAYOUT = {
    f"{_COMPUTE}/mlp.csv": "a100_Llama-2-70b-hf_mlp.csv",
    f"{_COMPUTE}/attention.csv": "a100_Llama-2-70b-hf_tp2_attention.csv",
    "data/profiling/network/a100_pairwise_nvlink/all_reduce.csv": "a100_pairwise_nvlink_all_reduce.csv",
}

RUNNER = r"""
import json, sys
from vidur.config import SimulationConfig
from vidur.simulator import Simulator
from vidur.utils.random import set_seeds
qps, n, out, cache = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
sys.argv = [sys.argv[0],
 "--replica_config_device", "a100", "--replica_config_network_device", "a100_pairwise_nvlink",
 "--replica_config_model_name", "meta-llama/Llama-2-70b-hf", "--cluster_config_num_replicas", "1",
 "--replica_config_tensor_parallel_size", "2", "--replica_config_num_pipeline_stages", "1",
 "--request_generator_config_type", "synthetic", "--synthetic_request_generator_config_num_requests", n,
 "--length_generator_config_type", "trace", "--trace_request_length_generator_config_max_tokens", "4096",
 "--trace_request_length_generator_config_trace_file", "./data/processed_traces/arxiv.csv",
 "--interval_generator_config_type", "poisson", "--poisson_request_interval_generator_config_qps", qps,
 "--replica_scheduler_config_type", "vllm", "--vllm_scheduler_config_batch_size_cap", "128",
 "--vllm_scheduler_config_max_tokens_in_batch", "4096",
 "--random_forrest_execution_time_predictor_config_num_estimators", "250",
 "--random_forrest_execution_time_predictor_config_max_depth", "32",
 "--random_forrest_execution_time_predictor_config_min_samples_split", "2",
 "--random_forrest_execution_time_predictor_config_k_fold_cv_splits", "2",
 "--random_forrest_execution_time_predictor_config_prediction_max_prefill_chunk_size", "4096",
 "--random_forrest_execution_time_predictor_config_prediction_max_batch_size", "128",
 "--random_forrest_execution_time_predictor_config_prediction_max_tokens_per_request", "4096",
 "--metrics_config_output_dir", out, "--metrics_config_cache_dir", cache,
 "--no-metrics_config_store_plots", "--no-metrics_config_write_json_trace"]
config = SimulationConfig.create_from_cli_args()
set_seeds(config.seed)
sim = Simulator(config)
reqs = [e[1]._request for e in sim._event_queue]
original = {r.id: (r.arrived_at, r.num_prefill_tokens, r.num_decode_tokens) for r in reqs}
sim.run()
info = {"original": original, "output_dir": config.metrics_config.output_dir}
json.dump(info, open(out + "/requests.json", "w"))
"""


def ensure_venv() -> None:
    """Create Vidur's environment (once)."""
    if VIDUR_PY.exists():
        return
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([VIDUR_PY, "-m", "pip", "install", "-q", *DEPS], check=True)


def lay_out(workdir: Path, src: Path) -> dict[str, str]:
    """Vidur's data folder as links to the shared tables; its source made importable ahead of site-packages."""
    for target, name in LAYOUT.items():
        path = workdir / target
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(PROFILES / name)
    trace = workdir / "data" / "processed_traces" / "arxiv.csv"
    trace.parent.mkdir(parents=True, exist_ok=True)
    trace.symlink_to(Path(os.environ.get("WORKBENCH_DATA_DIR", TRACES)) /
                     "vidur_arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv")  # fmt: skip
    init = src / "vidur" / "__init__.py"
    if not init.exists():  # the upstream package has no __init__: make it win over any installed vidur
        init.touch()
    return {**os.environ, "PYTHONPATH": str(src)}


def run_vidur(qps: float, n: int, src: Path) -> pl.DataFrame:
    """One Vidur run; per request its original lengths and Vidur's latencies."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = lay_out(work, src)
        out = work / "out"
        out.mkdir()
        cmd = [VIDUR_PY, "-c", RUNNER, str(qps), str(n), str(out), str(CACHE)]
        done = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(done.stderr.strip()[-2000:])
        info = json.loads((out / "requests.json").read_text())
        metrics = pl.read_csv(next(Path(info["output_dir"]).glob("request_metrics.csv")))
    orig = pl.DataFrame(
        [(int(k), *v) for k, v in info["original"].items()],
        orient="row",
        schema=["request_id", "arrival_s", "prompt_tokens", "output_tokens"],
    )
    return (
        orig.join(
            metrics.select(
                pl.col("Request Id").alias("request_id"),
                pl.col("prefill_e2e_time").alias("ttft_s"),
                pl.col("decode_time_execution_plus_preemption_normalized").alias("tpot_s"),
                pl.col("request_e2e_time").alias("e2e_s"),
                pl.col("request_num_restarts").alias("restarts"),
            ),
            on="request_id",
        )
        .with_columns(pl.lit(qps).alias("load"))
        .sort("request_id")
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vidur-src", type=Path, required=True, help="checkout of microsoft/vidur at 7d47513")
    ap.add_argument("--qps", type=float, nargs="+", default=[0.3, 0.5, 0.7])
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=ROOT / "data" / "vidur_runs.csv")
    args = ap.parse_args()
    ensure_venv()
    runs = pl.concat([run_vidur(q, args.requests, args.vidur_src.resolve()) for q in args.qps])
    runs.write_csv(args.out, float_precision=6)
    print(f"wrote {args.out} ({runs.height} requests)")
    from workbench.validation.vidur import compare_with_vidur

    with pl.Config(tbl_rows=60):
        print(compare_with_vidur(runs))


if __name__ == "__main__":
    main()
