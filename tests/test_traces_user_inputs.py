"""Inputs a new user tries (issue 14): literal file names, epoch times, and the messages of odd inputs.

Each test failed on the main branch before the fix it guards (the issue's items 1, 2 and 7).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from workbench import sim, traces
from workbench.cli import app
from workbench.errors import WorkloadError

TABLE = pl.DataFrame({"arrival_s": [0.0, 1.0, 2.0], "prompt_tokens": [7, 7, 7], "output_tokens": [5, 5, 5]})
DECOY = pl.DataFrame({"arrival_s": [0.0], "prompt_tokens": [99], "output_tokens": [5]})


def _write(df: pl.DataFrame, path: Path) -> Path:
    {".csv": df.write_csv, ".parquet": df.write_parquet, ".jsonl": df.write_ndjson}[path.suffix](path)
    return path


# ---------------------------------------------------------------------------------------- item 1: literal paths
@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
@pytest.mark.parametrize("stem, decoys", [("run[1]", ["run1"]), ("star*", ["star1", "starx"]), ("q?", ["q1"])])
def test_a_path_means_that_file_never_a_pattern(tmp_path, suffix, stem, decoys):
    # files the name would match as a glob pattern, holding other rows
    for d in decoys:
        _write(DECOY, tmp_path / f"{d}{suffix}")
    path = _write(TABLE, tmp_path / f"{stem}{suffix}")
    trace = traces.load(path)
    assert trace.requests["prompt_tokens"].to_list() == [7, 7, 7]
    assert traces.scan(path).collect()["prompt_tokens"].to_list() == [7, 7, 7]
    # a pattern whose literal file does not exist is "not found", even when other files match it
    _write(DECOY, tmp_path / f"zz1{suffix}")
    with pytest.raises(WorkloadError, match="file not found"):
        traces.load(tmp_path / f"zz*{suffix}")


def test_cli_reads_a_bracketed_name_literally(tmp_path):
    _write(DECOY, tmp_path / "run1.csv")
    path = _write(TABLE, tmp_path / "run[1].csv")
    out = CliRunner().invoke(app, ["describe", str(path)])
    assert out.exit_code == 0, out.output
    assert "run[1]: 3 requests" in out.output


# ---------------------------------------------------------------------------------- item 2: epoch arrival times
def _poisson_file(path: Path, offset: float, n: int = 400) -> Path:
    rng = np.random.default_rng(0)
    t = np.cumsum(rng.exponential(0.25, n))
    t -= t[0]
    df = pl.DataFrame({"t": t + offset, "in": rng.integers(100, 1000, n), "out": rng.integers(10, 200, n)})
    df.write_csv(path)
    return path


def test_epoch_times_are_shifted_to_zero_with_the_offset_in_meta(tmp_path):
    mapping = {"arrival_s": "t", "prompt_tokens": "in", "output_tokens": "out"}
    with pytest.warns(UserWarning, match=r"start at 1\.7e\+09 s; shifted to start at 0"):
        epoch = traces.load(_poisson_file(tmp_path / "epoch.csv", 1.7e9), mapping=mapping)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a file that starts at 0 is not shifted and not warned about
        plain = traces.load(_poisson_file(tmp_path / "plain.csv", 0.0), mapping=mapping)
    assert epoch.requests["arrival_s"][0] == 0.0 and epoch.meta["time_offset_s"] == pytest.approx(1.7e9)
    assert plain.meta["time_offset_s"] == 0.0
    np.testing.assert_allclose(epoch.requests["arrival_s"], plain.requests["arrival_s"], atol=1e-6)
    # simulated: the same utilisation and energy as the trace that starts at 0 (not 54 years of idle)
    a, b = sim.simulate(epoch), sim.simulate(plain)
    sa, sb = sim.summary(a), sim.summary(b)
    assert sa["utilization"][0] == pytest.approx(sb["utilization"][0], rel=1e-3)
    assert sa["duration_s"][0] == pytest.approx(sb["duration_s"][0], rel=1e-6) and sa["duration_s"][0] < 200


# ------------------------------------------------------------------------------------- item 7: clear messages
@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_format_given_reads_a_file_without_extension(tmp_path, suffix):
    path = _write(TABLE, tmp_path / f"t{suffix}").rename(tmp_path / "trace_export")
    with pytest.raises(WorkloadError, match=r"unknown file extension ''.*pass format="):
        traces.load(path)
    assert traces.load(path, format="canonical").requests["prompt_tokens"].to_list() == [7, 7, 7]


def test_tokens_beyond_int32_name_the_limit(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("arrival_s,prompt_tokens,output_tokens\n0,100,5\n1,1000000000000,5\n")
    with pytest.raises(WorkloadError, match="at most 2,147,483,647 \\(the Int32 limit") as info:
        traces.load(path)
    assert (info.value.field, info.value.row) == ("prompt_tokens", 2)


@pytest.mark.parametrize("zone", ["Z", "+00:00", "+0000", "+00"])
def test_iso_timestamps_with_a_zone_are_accepted(tmp_path, zone):
    path = tmp_path / "zoned.csv"
    path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        f"2023-11-16T18:17:03.5{zone},100,5\n2023-11-16T18:17:04.25{zone},200,6\n"
    )
    assert traces.load(path).requests["arrival_s"].to_list() == [0.0, 0.75]


def test_zone_offsets_convert_to_utc(tmp_path):
    path = tmp_path / "offsets.csv"
    # 19:00 at +01:00 is 18:00 UTC, one hour before 19:00 UTC
    path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 19:00:00+01:00,100,5\n2023-11-16 19:00:00Z,200,6\n"
    )
    assert traces.load(path).requests["arrival_s"].to_list() == [0.0, 3600.0]


def test_an_unparseable_timestamp_is_quoted_with_what_is_accepted(tmp_path):
    path = tmp_path / "slash.csv"
    header = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
    path.write_text(header + "2023-11-16 18:17:03,1,1\n16/11/2023 18:17:04,1,1\n")
    with pytest.raises(WorkloadError, match=r"'16/11/2023 18:17:04'.*ISO 8601.*Z or a \+HH:MM offset") as info:
        traces.load(path)
    assert (info.value.field, info.value.row) == ("TIMESTAMP", 2)
    generic = tmp_path / "generic.csv"
    generic.write_text("t,in,out\n0,1,1\nsoon,1,1\n")
    with pytest.raises(WorkloadError, match=r"'soon'.*number of seconds"):
        traces.load(generic, mapping={"arrival_s": "t", "prompt_tokens": "in", "output_tokens": "out"})


def test_a_folder_is_refused_plainly(tmp_path):
    folder = tmp_path / "traces.csv"
    folder.mkdir()
    with pytest.raises(WorkloadError, match="this is a folder, not a file") as info:
        traces.load(folder)
    assert "polars" not in str(info.value).lower()
    with pytest.raises(WorkloadError, match="this is a folder"):
        traces.scan(folder)


@pytest.mark.parametrize("value", ["true", "false"])
@pytest.mark.parametrize("row", [1, 2])
def test_json_booleans_are_not_token_counts(tmp_path, value, row):
    path = tmp_path / "bool.jsonl"
    good = '{"arrival_s": 0, "prompt_tokens": 10, "output_tokens": 5}\n'
    bad = f'{{"arrival_s": 1, "prompt_tokens": {value}, "output_tokens": 5}}\n'
    path.write_text(good + bad if row == 2 else bad.replace('"arrival_s": 1', '"arrival_s": 0') + good)
    with pytest.raises(WorkloadError, match="must be a number, not a boolean") as info:
        traces.load(path)
    assert info.value.field == "prompt_tokens" and info.value.row == row


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_duplicate_column_names_are_an_error(tmp_path, kind):
    path = tmp_path / f"dup.{kind}"
    if kind == "csv":
        path.write_text("arrival_s,prompt_tokens,prompt_tokens,output_tokens\n0,10,20,5\n")
    else:
        path.write_text('{"arrival_s": 0, "prompt_tokens": 10, "prompt_tokens": 20, "output_tokens": 5}\n')
    with pytest.raises(WorkloadError, match="names column 'prompt_tokens' twice") as info:
        traces.load(path)
    assert info.value.field == "prompt_tokens" and info.value.row == 0


def test_more_hash_blocks_than_the_prompt_holds_is_an_error(tmp_path):
    path = tmp_path / "hashes.jsonl"
    rows = [
        {"timestamp": 0, "input_length": 1000, "output_length": 5, "hash_ids": [0, 1]},
        {"timestamp": 10, "input_length": 100, "output_length": 5, "hash_ids": list(range(2, 12))},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(WorkloadError, match="more ids than the prompt has 512-token blocks") as info:
        traces.load(path)
    assert (info.value.field, info.value.row) == ("hash_ids", 2)
    rows[1]["hash_ids"] = [2]  # one block: fine
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert len(traces.load(path)) == 2
