"""Command line: the demo (main job), describe, datasets (through typer's CliRunner)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from workbench import cli, demo

runner = CliRunner()
BAD = Path(__file__).parent / "data" / "bad"


def test_demo_writes_table_and_charts(tmp_path):
    result = runner.invoke(cli.app, ["demo", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "azure_code_twin" in result.output and "rate_rps" in result.output
    names = {p.name for p in tmp_path.iterdir()}
    for stem in ("workload_rate", "workload_lengths", "workload_interarrival"):
        assert {f"{stem}.png", f"{stem}.svg"} <= names
        assert (tmp_path / f"{stem}.png").read_bytes()[:4] == b"\x89PNG"
    table = pl.read_csv(tmp_path / "workload_summary.csv")
    assert table["trace"].to_list() == ["azure_code", "azure_code_twin"]
    assert table["requests"][0] == 8819
    real, twin = table["rate_rps"].to_list()
    assert abs(twin / real - 1) < 0.15
    # the main job: a verified minimum-cost fleet, its TCO own vs rent
    for stem in ("fleet_sizing", "fleet_check", "own_tco"):
        assert (tmp_path / f"{stem}.png").read_bytes()[:4] == b"\x89PNG"
    sizing = pl.read_csv(tmp_path / "fleet_sizing.csv")
    assert sizing.height == 12 and sizing["rank"].to_list() == list(range(1, 13))
    best = sizing.row(0, named=True)
    assert best["sim_slo_met"] is True and best["sim_ttft_p99_s"] <= 2.0 and best["sim_tpot_p99_s"] <= 0.1
    text = " ".join(result.output.split())  # the answer paragraph is wrapped
    assert f"the minimum-cost fleet is {best['candidate']} with {best['sim_instances']} instances" in text
    own = pl.read_csv(tmp_path / "own_or_rent.csv")
    assert own["gpus"].sum() == best["sim_gpus"]
    assert (own["tco_usd"] > own["capex_usd"]).all() and (own["cloud_usd"] > 0).all()
    assert "per million output tokens" in text


def test_demo_steps_are_extensible(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(demo, "DEMO_STEPS", list(demo.DEMO_STEPS[:1]))
    demo.add_demo_step("count", lambda ctx: seen.append(len(ctx.traces["real"])), after="load default trace")
    ctx = demo.run_demo(tmp_path, echo=lambda s: None)
    assert seen == [8819] and [t for t, _ in demo.DEMO_STEPS] == ["load default trace", "count"]
    assert ctx.files == []


def test_describe_command_and_errors():
    ok = runner.invoke(cli.app, ["describe", "azure_code"])
    assert ok.exit_code == 0 and "8819" in ok.output
    bad = runner.invoke(cli.app, ["describe", str(BAD / "negative_tokens.csv")])
    assert bad.exit_code == 1
    assert "error: output_tokens must be a whole number > 0, got -5" in bad.output
    assert "Traceback" not in bad.output


def test_datasets_command():
    result = runner.invoke(cli.app, ["datasets"])
    assert result.exit_code == 0 and "mooncake_synthetic" in result.output
