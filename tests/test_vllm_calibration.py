"""Calibration of a named performance model from a vLLM benchmark result (validation.vllm_bench)."""

from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest

from workbench.errors import ConfigError, DatasetError, HardwareError
from workbench.hardware.calibrated import CalibratedModel, calibrated_model
from workbench.hardware.perf import Batch
from workbench.hardware.roofline import RooflineModel
from workbench.validation.vllm_bench import (
    VllmBenchmark,
    benchmark_metrics,
    calibrate_vllm,
    read_vllm_benchmark,
    simulate_benchmark,
    write_vllm_benchmark,
)

GPU, MODEL = "H100", "Llama-3.1-8B"
TRUTH = {"mfu": 0.35, "mbu": 0.55, "overhead_s": 0.004}


def _lengths(n: int, seed: int) -> VllmBenchmark:
    rng = np.random.default_rng(seed)
    table = pl.DataFrame(
        {
            "prompt_tokens": rng.integers(100, 2000, n),
            "output_tokens": rng.integers(20, 300, n),
            "ttft_s": np.ones(n),
            "tpot_s": np.ones(n),
        }
    )
    return VllmBenchmark(table, 8.0, 1.0, None, 0, {})


@pytest.fixture(scope="module")
def bench_file(tmp_path_factory):
    """A benchmark 'measured' on a simulated server whose roofline parameters are known."""
    truth = RooflineModel(GPU, MODEL, 1, **TRUTH)
    measured = simulate_benchmark(_lengths(300, 1), GPU, MODEL, 1, perf=truth, seed=0)
    return write_vllm_benchmark(measured, tmp_path_factory.mktemp("bench") / "run [1].json", request_rate=8.0)


@pytest.fixture(scope="module")
def calibrated(bench_file):
    return calibrate_vllm(bench_file, GPU, MODEL, 1, name="h100-llama8b")


def test_read_round_trip(bench_file):
    bench = read_vllm_benchmark(bench_file)
    assert bench.requests.height == 300 and bench.failed == 0
    assert bench.request_rate == 8.0 and bench.burstiness == 1.0 and bench.max_concurrency is None
    assert bench.source["file"] == "run [1].json" and len(bench.source["sha256"]) == 64
    m = bench.metrics()
    assert set(m) == {f"{c}@{q}" for c in ("ttft_s", "tpot_s") for q in (0.1, 0.5, 0.9)}
    assert 0.01 < m["tpot_s@0.5"] < 0.05  # ~20 ms per token for an 8B model at mbu 0.55 + 4 ms overhead


def test_calibration_reproduces_the_benchmark(calibrated):
    fit = calibrated.fit
    assert max(abs(v["error_pct"]) for v in fit.values()) < 4.0
    # the default roofline is far off this server (it is faster): the calibration is needed
    assert all(v["default"] < 0.7 * v["measured"] for v in fit.values())
    truth = RooflineModel(GPU, MODEL, 1, **TRUTH)
    dom = calibrated.domain
    assert 20 < dom.max_decode_seqs <= 300 and 2000 < dom.max_tokens <= 8192 and dom.max_context < 2300
    # iteration times within 6 % of the truth over the domain the benchmark exercised
    for b in (1, 4, dom.max_decode_seqs):
        for c in (200, 1000, 2200):
            assert calibrated.decode_run_time(b, b * c, 1) == pytest.approx(truth.decode_time(b, c), rel=0.06)
    for n in (100, 1000, 2000):
        assert calibrated.iteration_time(Batch(n, n * n / 2)) == pytest.approx(truth.prefill_time(n), rel=0.06)


def test_held_out_workload(calibrated):
    """Another draw of lengths and arrivals at the same rate: the calibrated model predicts its percentiles."""
    truth = RooflineModel(GPU, MODEL, 1, **TRUTH)
    other = _lengths(300, 7)
    want = benchmark_metrics(simulate_benchmark(other, GPU, MODEL, 1, perf=truth, seed=5))
    got = benchmark_metrics(simulate_benchmark(other, GPU, MODEL, 1, perf=calibrated.roofline, seed=5))
    for k, v in want.items():  # queueing tails move more than the service times (measured: <= 9 %)
        assert got[k] == pytest.approx(v, rel=0.08 if k.startswith("tpot") or "0.5" in k else 0.15), k


def test_domain_errors(calibrated):
    dom = calibrated.domain
    with pytest.raises(HardwareError, match="outside what its measurements exercised"):
        calibrated.iteration_time(Batch(decode_seqs=dom.max_decode_seqs + 1, decode_context=100))
    with pytest.raises(HardwareError, match="tokens per sequence"):
        calibrated.decode_run_time(4, 4 * (dom.max_context - 10), 50)  # the run grows past the longest sequence
    with pytest.raises(HardwareError):
        calibrated.iteration_time(Batch(dom.max_tokens + 1, (dom.max_tokens + 1) ** 2 / 2))
    # a heavier workload than the benchmark's, simulated with the calibrated model, stops with the reason
    heavy = VllmBenchmark(_lengths(300, 2).requests, 40.0, 1.0, None, 0, {})
    with pytest.raises(HardwareError, match="h100-llama8b"):
        simulate_benchmark(heavy, GPU, MODEL, 1, perf=calibrated)
    # the unchecked roofline extrapolates on request
    assert simulate_benchmark(heavy, GPU, MODEL, 1, perf=calibrated.roofline).height == 300


def test_save_and_load_by_name(calibrated, tmp_path, monkeypatch):
    path = calibrated.save(tmp_path)
    assert path.name == "h100-llama8b.json"
    again = calibrated_model("h100-llama8b", tmp_path)
    assert again == calibrated and isinstance(again, CalibratedModel)
    monkeypatch.setenv("WORKBENCH_CALIBRATIONS", str(tmp_path))
    assert calibrated_model("h100-llama8b").params == calibrated.params
    assert calibrated_model(path).domain == calibrated.domain
    with pytest.raises(DatasetError, match=r"saved: \['h100-llama8b'\]"):
        calibrated_model("a100-other")
    monkeypatch.delenv("WORKBENCH_CALIBRATIONS")
    with pytest.raises(ConfigError, match="WORKBENCH_CALIBRATIONS"):
        calibrated_model("h100-llama8b")
    with pytest.raises(ConfigError, match="calibration name"):
        CalibratedModel("bad/name", GPU, MODEL, 1, {}, calibrated.domain)
    (tmp_path / "broken.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(DatasetError, match="not a workbench calibrated model"):
        calibrated_model("broken", tmp_path)


def _raw(n: int = 30) -> dict:
    return {
        "request_rate": "inf",
        "max_concurrency": None,
        "input_lens": [500] * n,
        "output_lens": [50] * n,
        "ttfts": [0.05] * n,
        "itls": [[0.02] * 49 for _ in range(n)],
        "errors": [""] * n,
    }


def test_reader_errors(tmp_path):
    def write(data) -> str:
        path = tmp_path / "b.json"
        path.write_text(json.dumps(data) if not isinstance(data, str) else data)
        return str(path)

    bench = read_vllm_benchmark(write(_raw()))
    assert math.isinf(bench.request_rate) and bench.requests["tpot_s"][0] == pytest.approx(0.02)
    summary = {k: v for k, v in _raw().items() if k not in ("itls", "ttfts")}
    with pytest.raises(DatasetError, match="--save-detailed"):
        read_vllm_benchmark(write(summary))
    short = _raw()
    short["ttfts"] = short["ttfts"][:-1]
    with pytest.raises(DatasetError, match="ttfts must be a list of 30"):
        read_vllm_benchmark(write(short))
    failed = _raw(40)
    failed["errors"][3] = "timeout"
    failed["ttfts"][3] = 0.0
    assert read_vllm_benchmark(write(failed)).failed == 1
    few = _raw(10)
    with pytest.raises(DatasetError, match="10 successful requests"):
        read_vllm_benchmark(write(few))
    negative = _raw()
    negative["input_lens"][5] = -3
    with pytest.raises(DatasetError, match="request 5: input_lens -3"):
        read_vllm_benchmark(write(negative))
    bad_rate = _raw()
    bad_rate["request_rate"] = 0
    with pytest.raises(DatasetError, match="request_rate must be > 0"):
        read_vllm_benchmark(write(bad_rate))
    with pytest.raises(DatasetError, match="not JSON"):
        read_vllm_benchmark(write("{nope"))
    with pytest.raises(DatasetError, match="cannot read"):
        read_vllm_benchmark(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="params must be among"):
        calibrate_vllm(read_vllm_benchmark(write(_raw())), GPU, MODEL, name="x", params=("speed",))


def test_max_concurrency_counts_ttft_from_admission():
    """With a client concurrency limit, queued requests are not sent yet: TTFT excludes the client's wait."""
    base = _lengths(60, 3).requests
    closed = VllmBenchmark(base, math.inf, 1.0, 4, 0, {})
    open_ = VllmBenchmark(base, math.inf, 1.0, None, 0, {})
    ttft_closed = simulate_benchmark(closed, GPU, MODEL, 1)["ttft_s"].max()
    ttft_open = simulate_benchmark(open_, GPU, MODEL, 1)["ttft_s"].max()
    assert ttft_closed < 0.2 * ttft_open


# ------------------------------------------------------------------------- the calibrated model by name, in use


def test_performance_model_resolves_names(calibrated, tmp_path, monkeypatch):
    """One resolution point: "roofline", "calibrated:<name>" (its own configuration only), errors otherwise."""
    from workbench.hardware import performance_model

    monkeypatch.setenv("WORKBENCH_CALIBRATIONS", str(tmp_path))
    calibrated.save()
    assert isinstance(performance_model("roofline", GPU, MODEL, 1), RooflineModel)
    assert isinstance(performance_model(None, "A100", MODEL, 2), RooflineModel)
    got = performance_model("calibrated:h100-llama8b", "h100", MODEL, 1)  # GPU aliases resolve
    assert got == calibrated and calibrated.spec == "calibrated:h100-llama8b"
    with pytest.raises(HardwareError, match=r"measured on Llama-3\.1-8B at TP 1 on H100-SXM.*A100"):
        performance_model("calibrated:h100-llama8b", "A100", MODEL, 1)
    with pytest.raises(HardwareError, match="at TP 2"):
        performance_model(calibrated, GPU, MODEL, 2)
    with pytest.raises(ConfigError, match="'roofline' or 'calibrated:<name>'"):
        performance_model("vidur", GPU, MODEL, 1)
    with pytest.raises(DatasetError, match=r"saved: \['h100-llama8b'\]"):
        performance_model("calibrated:nope", GPU, MODEL, 1)
    # simulation configs take the name (also from TOML): instance, pool
    from workbench.sim.config import InstanceConfig
    from workbench.sim.topology import Pool

    named = InstanceConfig(gpu=GPU, model=MODEL, perf="calibrated:h100-llama8b")
    assert named.performance_model() == calibrated
    with pytest.raises(HardwareError, match="cannot time"):
        InstanceConfig(gpu="A100", model=MODEL, perf="calibrated:h100-llama8b")
    with pytest.raises(ConfigError, match=r"pool 'p'\.perf.*cannot time"):
        Pool("p", gpu="A100", model=MODEL, perf="calibrated:h100-llama8b")


def test_size_fleet_with_the_calibrated_model_by_name(bench_file, calibrated, tmp_path, monkeypatch):
    """A model calibrated from a simulator-written benchmark sizes a fleet by name: the same count as the
    server's true parameters give (4 H100s at 30 req/s), where the default roofline, faster than that server,
    says 3; other GPUs cannot be sized with it, and batch caps beyond its benchmark are refused."""
    from workbench.hardware.calibrated import CalibratedModel
    from workbench.planning import SLO, candidate_grid, size_fleet
    from workbench.planning.workflow import PlanSpec
    from workbench.sim.measure import Precision
    from workbench.traces.lengths import Empirical
    from workbench.traces.synthetic import Poisson, Synthetic

    monkeypatch.setenv("WORKBENCH_CALIBRATIONS", str(tmp_path))
    calibrated.save()
    CalibratedModel("truth", calibrated.gpu, MODEL, 1, TRUTH, calibrated.domain).save()
    bench = read_vllm_benchmark(bench_file)
    lengths = Empirical(bench.requests["prompt_tokens"].to_numpy(), bench.requests["output_tokens"].to_numpy())
    gen = Synthetic(Poisson(30.0), lengths, name="bench-lengths")
    cap = calibrated.domain.max_decode_seqs
    cands = candidate_grid(["H100", "A100"], max_num_seqs=[cap])
    fast = Precision(tolerance=0.2, max_requests=32_000)
    slo = SLO(ttft_s=1.0, tpot_s=0.05)

    def size(perf):
        return size_fleet(gen, slo, cands, model=MODEL, qps=30, check=1, precision=fast, perf=perf)

    res = size("calibrated:h100-llama8b")
    assert res.best["candidate"] == f"mono 1xH100 cap{cap}" and res.best["sim_instances"] == 4
    assert "timed by calibrated:h100-llama8b" in res.explanation
    a100 = res.table.filter(pl.col("gpu") == "A100-80GB-SXM").row(0, named=True)
    assert not a100["fits"] and "cannot time" in a100["note"]
    assert size("calibrated:truth").best["sim_instances"] == 4
    assert size(calibrated).best["sim_instances"] == 4  # the object itself, unsaved, works alike
    assert size("roofline").best["sim_instances"] == 3
    with pytest.raises(ConfigError, match=f"max_num_seqs=\\[{cap}\\]"):
        size_fleet(gen, slo, candidate_grid(["H100"]), model=MODEL, qps=30, perf="calibrated:h100-llama8b")
    # the plan file names it too
    toml = tmp_path / "plan.toml"
    toml.write_text('[workload]\nqps = 30\n[plan]\nperf = "calibrated:h100-llama8b"\n')
    assert PlanSpec.from_toml(toml).perf == "calibrated:h100-llama8b"
    toml.write_text('[workload]\nqps = 30\n[plan]\nperf = "calibrated:other"\n')
    with pytest.raises(DatasetError, match="no calibrated model 'other'"):
        PlanSpec.from_toml(toml)
