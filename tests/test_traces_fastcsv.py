"""The Arrow reader for big Azure-style CSV files gives the streaming scan's table, or steps aside."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from workbench import traces
from workbench.errors import WorkloadError
from workbench.traces import _fastcsv
from workbench.traces.formats import FORMATS

BAD = Path(__file__).parent / "data" / "bad"
AZURE = FORMATS["azure"]


@pytest.fixture
def small_ranges(monkeypatch):
    """Use the Arrow reader for every file, in blocks of about 1 KB (many blocks even for tiny files)."""
    monkeypatch.setattr(_fastcsv, "MIN_BYTES", 0)
    monkeypatch.setattr(_fastcsv, "BLOCK_BYTES", 1024)


def _read(path: Path, **kw):
    sep = "\t" if path.suffix == ".tsv" else ","
    return _fastcsv.read(path, dict(AZURE.columns), AZURE.csv_dtypes(), separator=sep, **kw)


def test_same_table_as_streaming_scan(shipped_data, small_ranges):
    path = shipped_data / "AzureLLMInferenceTrace_code.csv"
    fast = _read(path)
    assert fast is not None and fast.n_chunks() > 100  # really read in many parallel blocks
    slow = AZURE.scan(path, "csv").collect(engine="streaming")
    assert fast.select(slow.columns).equals(slow)
    trace = traces.load(path)
    assert len(trace) == 8819 and trace.requests["arrival_s"][-1] == pytest.approx(3435.948056)


def test_tsv(tmp_path, shipped_data, small_ranges):
    src = pl.read_csv(shipped_data / "AzureLLMInferenceTrace_code.csv", infer_schema=False)
    tsv = tmp_path / "code.tsv"
    src.write_csv(tsv, separator="\t")
    assert _read(tsv) is not None
    csv = traces.load(shipped_data / "AzureLLMInferenceTrace_code.csv")
    assert traces.load(tsv).requests.equals(csv.requests)


def test_small_files_and_unusual_files_step_aside(tmp_path, shipped_data):
    path = shipped_data / "AzureLLMInferenceTrace_code.csv"
    assert _read(path) is None  # below MIN_BYTES
    quoted = tmp_path / "quoted.csv"
    quoted.write_text('TIMESTAMP,ContextTokens,GeneratedTokens\n"2023-11-16 18:17:03.9799600",4808,10\n')
    assert _read(quoted, min_bytes=0)["prompt_tokens"].to_list() == [4808]  # quotes are CSV, not unusual
    odd = tmp_path / "odd.csv"
    odd.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.9799600,4808.5,10\n")
    assert _read(odd, min_bytes=0) is None  # not an integer: the streaming scan reports it
    other = tmp_path / "other.csv"
    other.write_text("TIMESTAMP,ContextTokens,Tokens\n2023-11-16 18:17:03.9799600,4808,10\n")
    assert _read(other, min_bytes=0) is None
    assert _read(path, min_bytes=0) is not None  # one default-size block


CSV_BAD = ["bad_datetime.csv", "duplicate_rows.csv", "extra_field.csv", "nan_tokens.csv", "negative_tokens.csv"]
CSV_BAD += ["non_numeric_tokens.csv", "unsorted_timestamps.csv", "zero_tokens.csv", "missing_column.csv"]


@pytest.mark.parametrize("name", CSV_BAD)
def test_bad_files_give_the_same_error(name, small_ranges, monkeypatch):
    with pytest.raises(WorkloadError) as fast:
        traces.load(BAD / name, duplicates="error")  # strict: repeated lines are kept by default
    monkeypatch.setattr(_fastcsv, "MIN_BYTES", 10**12)
    with pytest.raises(WorkloadError) as slow:
        traces.load(BAD / name, duplicates="error")
    assert str(fast.value) == str(slow.value)


def test_blank_line_is_reported_not_skipped(tmp_path, small_ranges):
    path = tmp_path / "blank.csv"
    path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.9799600,4808,10\n\n"
        "2023-11-16 18:17:05.0319600,3180,8\n"
    )
    with pytest.raises(WorkloadError) as info:
        traces.load(path)
    assert info.value.row == 2


@pytest.mark.parametrize("stamp", ["2023-11-16", "2023-11-16 18", "2023-11-16 18:17", "2023-11-16T18:17"])
def test_short_iso_forms_get_the_streaming_error_whatever_the_size(tmp_path, small_ranges, monkeypatch, stamp):
    # Arrow's ISO parser reads these (as whole minutes); the streaming parser rejects them
    path = tmp_path / "short.csv"
    path.write_text(f"TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 00:00:01.5,4808,10\n{stamp},3180,8\n")
    assert _read(path) is None
    with pytest.raises(WorkloadError) as fast:
        traces.load(path)
    monkeypatch.setattr(_fastcsv, "MIN_BYTES", 10**12)
    with pytest.raises(WorkloadError) as slow:
        traces.load(path)
    assert str(fast.value) == str(slow.value) and fast.value.row == 2 and "unparseable" in str(fast.value)


def test_whole_minute_timestamps_are_read_by_the_streaming_scan(tmp_path, small_ranges):
    path = tmp_path / "minute.csv"
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:00.0000000,4808,10\n"
                    "2023-11-16 18:17:01.5,3180,8\n")  # fmt: skip
    assert _read(path) is None  # may be a short form: stepped aside
    assert traces.load(path).requests["arrival_s"].to_list() == [0.0, 1.5]
