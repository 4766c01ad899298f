"""The config-file commands: run, plan, sweep (sequential, parallel, cached, Dask), data; their errors."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from workbench import cli
from workbench.errors import ConfigError
from workbench.jobs import SweepSpec, apply_override
from workbench.planning.workflow import PlanSpec

runner = CliRunner()
EXAMPLES = Path(__file__).parents[1] / "examples"


def _ok(args: list[str]):
    result = runner.invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    return result


def _fails(args: list[str], message: str):
    result = runner.invoke(cli.app, args)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), (result.output, result.exception)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and message in lines[-1], result.output
    assert "Traceback" not in result.output
    return result


def test_help_shows_the_examples():
    out = _ok(["--help"]).output
    for example in ("workbench run examples/fleet.toml", "workbench plan examples/plan.toml",
                    "workbench sweep examples/sweep.toml"):  # fmt: skip
        assert example in out
    for command in ("run", "plan", "sweep", "data", "app"):
        assert f" {command} " in out


def test_run_prints_summary_and_writes_tables(tmp_path):
    args = ["--requests", "1500", "--rate-scale", "2", "--ttft-slo", "2", "--tpot-slo", "0.1"]
    args += ["--out", str(tmp_path)]
    out = _ok(["run", str(EXAMPLES / "fleet.toml"), "--trace", "azure_code", *args]).output
    assert "4 instances in 2 pool(s)" in out and "1500 requests x2" in out and "slo_attainment" in out
    summary = pl.read_csv(tmp_path / "summary.csv")
    requests = pl.read_csv(tmp_path / "requests.csv")
    pools = pl.read_csv(tmp_path / "pools.csv")
    assert summary["requests"][0] == 1500 == requests.height
    assert sorted(pools["pool"].to_list()) == ["long", "short"] and pools["requests"].sum() == 1500
    assert 0 < summary["slo_attainment"][0] <= 1


def test_run_errors_are_one_line(tmp_path):
    _fails(["run", str(EXAMPLES / "fleet.toml"), "--trace", str(tmp_path / "run[1].csv")], "file not found")
    _fails(["run", str(tmp_path / "missing.toml"), "--trace", "azure_code"], "cannot read fleet config")
    bad = tmp_path / "bad.toml"
    bad.write_text('[[pools]]\nname = "a"\ngpu = "B9"\n')
    _fails(["run", str(bad), "--trace", "azure_code"], "B9")
    _fails(["run", str(EXAMPLES / "fleet.toml"), "--trace", "azure_code", "--rate-scale", "-1"], "--rate-scale")
    _fails(["run", str(EXAMPLES / "fleet.toml"), "--trace", "azure_code", "--out", str(tmp_path),
            "--format", "xlsx"], "--format")  # fmt: skip


def test_plan_example_prints_the_answer(tmp_path):
    out = _ok(["plan", str(EXAMPLES / "plan.toml"), "--out", str(tmp_path), "--format", "parquet"]).output
    assert "the minimum-cost fleet is" in " ".join(out.split())
    ranked = pl.read_parquet(tmp_path / "ranked.parquet")
    assert ranked["rank"][0] == 1 and ranked["sim_slo_met"][0] is True
    assert (tmp_path / "tradeoffs.parquet").exists()


def test_plan_spec_validates_at_the_boundary(tmp_path):
    spec = PlanSpec.from_toml(EXAMPLES / "plan.toml")
    assert spec.qps == 10.0 and spec.gpus == ("H100", "A100", "L40S") and spec.check == 2
    cases = {
        "[workload]\nqps = 10\npreset = 'nope'\n": "unknown workload preset 'nope'",
        "[workload]\npreset = 'poisson'\n": "qps is required",
        "[workload]\nqps = -1\n": "qps",
        "[workload]\nqps = 1\n[slo]\nttft = 1\n": "unknown key(s) ['ttft']",
        "[workload]\nqps = 1\n[candidates]\ngpus = []\n": "non-empty list",
        "[workload]\nqps = 1\n[plan]\nseed = -1\n": "seed",
        "[workload]\nqps = 1\n[extra]\n": "unknown table(s) ['extra']",
        "[workload\n": "cannot read plan config",
    }
    for text, message in cases.items():
        path = tmp_path / "p.toml"
        path.write_text(text)
        with pytest.raises(ConfigError, match=None) as info:
            PlanSpec.from_toml(path)
        assert message in str(info.value), (text, str(info.value))


def test_sweep_sequential_parallel_and_cached_agree(tmp_path):
    spec = SweepSpec.from_toml(EXAMPLES / "sweep.toml")
    small = SweepSpec(spec.fleet, spec.trace, {"rate_scale": [1.0, 4.0], "pools.short.router": ["jsq", "p2c"]},
                      requests=400, seed=3)  # fmt: skip
    one = small.run(jobs=1, progress=False)
    two = small.run(jobs=2, progress=False)
    cached = small.run(jobs=1, cache_dir=tmp_path / "cache", progress=False)
    again = small.run(jobs=2, cache_dir=tmp_path / "cache", progress=False)
    assert one.height == 4 and one.equals(two) and one.equals(cached) and one.equals(again)
    assert one["requests"].to_list() == [400] * 4
    fast = one.filter(pl.col("rate_scale") == 4.0)["ttft_p99_s"]
    slow = one.filter(pl.col("rate_scale") == 1.0)["ttft_p99_s"]
    assert (fast >= slow).all()  # four times the load never waits less


def test_sweep_on_dask_matches_sequential(tmp_path):
    distributed = pytest.importorskip("distributed")
    spec = SweepSpec.from_toml(EXAMPLES / "sweep.toml")
    small = SweepSpec(spec.fleet, spec.trace, {"pools.short.instances": [2, 3]}, requests=300)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:  # fmt: skip
        on_dask = small.run(dask=cluster.scheduler_address, progress=False)
    assert on_dask.equals(small.run(progress=False))


def test_sweep_command_and_its_errors(tmp_path):
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(f'[sweep]\nfleet = "{EXAMPLES / "fleet.toml"}"\ntrace = "azure_code"\nrequests = 300\n'
                     '[grid]\n"pools.long.instances" = [1, 2]\n')  # fmt: skip
    out = _ok(["sweep", str(sweep), "--jobs", "2", "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path)])
    assert "2 points over pools.long.instances" in out.output
    assert pl.read_csv(tmp_path / "sweep.csv")["pools.long.instances"].to_list() == [1, 2]
    sweep.write_text(sweep.read_text().replace("pools.long.instances", "pools.nope.instances"))
    _fails(["sweep", str(sweep)], "no pool 'nope'")
    sweep.write_text(
        sweep.read_text().replace('"pools.nope.instances" = [1, 2]', '"pools.long.gpu" = ["B9"]')
    )
    _fails(["sweep", str(sweep)], "grid point {'pools.long.gpu': 'B9'}")
    _fails(["sweep", str(EXAMPLES / "sweep.toml"), "--dask", "tcp://127.0.0.1:9"], "Dask scheduler")


def test_apply_override_copies():
    fleet = {"pools": [{"name": "a", "instances": 1}]}
    assert apply_override(fleet, "pools.a.instances", 3)["pools"][0]["instances"] == 3
    assert apply_override(fleet, "pools.0.tp", 2)["pools"][0]["tp"] == 2
    assert fleet == {"pools": [{"name": "a", "instances": 1}]}
    with pytest.raises(ConfigError, match="expected 'pools"):
        apply_override(fleet, "pools.a", 1)


def test_data_commands(tmp_path, monkeypatch):
    listed = _ok(["data", "list"]).output
    assert "azure_code" in listed and "mooncake_synthetic" in listed
    verified = _ok(["data", "verify", "azure_code"]).output
    assert "ok" in verified
    fetched = _ok(["data", "fetch", "azure_code"]).output
    assert fetched.startswith("azure_code: ") and fetched.strip().endswith("AzureLLMInferenceTrace_code.csv")
    _fails(["data", "verify", "nope"], "unknown dataset 'nope'")
    corrupt = tmp_path / "AzureLLMInferenceTrace_code.csv"
    corrupt.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n")
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path))
    bad = _fails(["data", "verify", "azure_code"], "do not match their checksum")
    assert "MISMATCH" in bad.output
    # (no download in tests: fetch of a local file only)
