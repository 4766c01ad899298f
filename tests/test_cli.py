"""Command line: demo steps, describe, datasets (through typer's CliRunner)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from workbench import cli

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


def test_demo_steps_are_extensible(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(cli, "DEMO_STEPS", list(cli.DEMO_STEPS[:1]))
    cli.add_demo_step("count", lambda ctx: seen.append(len(ctx.traces["real"])), after="load default trace")
    ctx = cli.run_demo(tmp_path, echo=lambda s: None)
    assert seen == [8819] and [t for t, _ in cli.DEMO_STEPS] == ["load default trace", "count"]
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
