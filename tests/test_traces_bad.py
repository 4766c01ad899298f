"""Malformed inputs (tests/data/bad/): each file gives one WorkloadError naming file, field and row."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from workbench import datasets, traces
from workbench.errors import DatasetError, WorkloadError

BAD = Path(__file__).parent / "data" / "bad"

# file -> (field, row, words in the message). Rows count data records from 1; row 0 is the header.
EXPECTED = {
    "missing_column.csv": ("GeneratedTokens", 0, "missing column"),
    "non_numeric_tokens.csv": ("ContextTokens", 3, "'abc'"),
    "negative_tokens.csv": ("GeneratedTokens", 2, "-5"),
    "zero_tokens.csv": ("ContextTokens", 3, "> 0, got 0"),
    "nan_tokens.csv": ("ContextTokens", 4, "nan"),
    "unsorted_timestamps.csv": ("TIMESTAMP", 3, "not sorted"),
    "bad_datetime.csv": ("TIMESTAMP", 3, "unparseable"),
    "duplicate_request_id.csv": ("request_id", 3, "duplicate"),
    "empty.csv": (None, 0, "empty"),
    "header_only.csv": (None, 1, "no requests"),
    "truncated.jsonl": ("output_length", 4, "truncated JSON"),
    "negative_timestamp.jsonl": ("timestamp", 1, ">= 0"),
    "missing_field.jsonl": ("output_length", 2, "unparseable"),
    "string_hash_ids.jsonl": ("hash_ids", 2, "got 'x'"),
    "json_array.json": (None, 1, "expected JSON Lines"),
    "nan_timestamp.jsonl": ("timestamp", 3, "NaN is not a valid JSON value"),
    "extra_field.csv": (None, 3, "4 fields, the header has 3"),
    "duplicate_rows.csv": ("TIMESTAMP", 3, "repeats an earlier row exactly"),
}


def test_corpus_is_fully_listed():
    files = {p.name for p in BAD.iterdir() if p.is_file()}
    assert files == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_file_raises_one_clear_error(name):
    field, row, words = EXPECTED[name]
    with pytest.raises(WorkloadError) as info:
        traces.load(BAD / name, duplicates="error")  # the strict mode (repeated lines are kept by default)
    err = info.value
    assert err.file is not None and err.file.endswith(name)
    assert err.field == field
    assert err.row == row
    assert words in str(err)
    assert name in str(err) and f"row {row}" in str(err)


@pytest.mark.parametrize(("name", "passes"), [("extra_field.csv", 1), ("non_numeric_tokens.csv", 0)])
def test_ragged_record_search_runs_only_for_a_field_count_error(monkeypatch, name, passes):
    from workbench.traces import io

    calls = []
    real = io._raise_ragged_csv
    monkeypatch.setattr(io, "_raise_ragged_csv", lambda path: calls.append(path) or real(path))
    with pytest.raises(WorkloadError, match=EXPECTED[name][2]):
        traces.load(BAD / name)
    assert len(calls) == passes  # the pure-Python pass over the file only when polars counted fields


def test_unsorted_sorted_on_request_with_warning_and_nothing_dropped():
    with pytest.warns(UserWarning, match="not sorted .first at row 3.; sorted them"):
        trace = traces.load(BAD / "unsorted_timestamps.csv", sort=True)
    assert len(trace) == 4
    arr = trace.requests["arrival_s"].to_list()
    assert arr == sorted(arr)
    assert trace.requests["prompt_tokens"].to_list() == [110, 4808, 3180, 120]
    assert trace.requests["request_id"].to_list() == [0, 1, 2, 3]


def test_wrong_checksum(monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(BAD / "checksum"))
    with pytest.raises(DatasetError) as info:
        datasets.fetch("azure_code", allow_download=False)
    err = info.value
    assert err.field == "sha256"
    assert err.file.endswith("checksum/AzureLLMInferenceTrace_code.csv")
    assert "expected sha256 54e9a6d2" in str(err)
    assert isinstance(err, WorkloadError)


def test_unknown_format_and_extension(tmp_path):
    odd = tmp_path / "x.csv"
    odd.write_text("a,b\n1,2\n")
    with pytest.raises(WorkloadError, match="cannot infer the trace format"):
        traces.load(odd)
    with pytest.raises(WorkloadError, match="unknown format 'nope'"):
        traces.load(odd, format="nope")
    txt = tmp_path / "x.txt"
    txt.write_text("hello")
    with pytest.raises(WorkloadError, match="unknown file extension"):
        traces.load(txt)
    with pytest.raises(WorkloadError, match="file not found"):
        traces.load(tmp_path / "missing.csv")


def test_generic_mapping_errors(tmp_path):
    src = Path(__file__).parent / "data" / "generic_sample.csv"
    with pytest.raises(WorkloadError, match="unknown canonical column"):
        traces.load(src, mapping={"arrival": "t_ms"})
    with pytest.raises(WorkloadError) as info:
        traces.load(src, mapping={"arrival_s": "t_ms", "prompt_tokens": "in", "output_tokens": "nope"})
    assert info.value.field == "nope"
    with pytest.raises(WorkloadError, match="needs mapping"):
        traces.load(src, format="generic")


def test_no_warning_on_good_file(shipped_data):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(traces.load(shipped_data / "AzureLLMInferenceTrace_code.csv")) == 8819


def test_duplicate_rows_kept_or_dropped_on_request_with_count():
    path = BAD / "duplicate_rows.csv"
    with pytest.warns(UserWarning, match="1 row.s. repeat an earlier row exactly .first at row 3.; kept"):
        kept = traces.load(path, duplicates="keep")
    assert len(kept) == 4 and kept.meta["duplicate_rows"] == 1
    with pytest.warns(UserWarning, match="dropped them"):
        dropped = traces.load(path, duplicates="drop")
    assert len(dropped) == 3 and dropped.meta["duplicate_rows"] == 1
    assert dropped.requests["prompt_tokens"].to_list() == [4808, 3180, 110]
    assert dropped.requests["request_id"].to_list() == [0, 1, 2]
    with pytest.raises(WorkloadError, match="duplicates must be one of"):
        traces.load(path, duplicates="ignore")


def test_equal_timestamps_alone_are_legal(tmp_path):
    path = tmp_path / "ties.csv"
    path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:17:03.9799600,4808,10\n"
        "2023-11-16 18:17:03.9799600,4808,11\n"
        "2023-11-16 18:17:03.9799600,100,10\n"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trace = traces.load(path)
    assert len(trace) == 3 and "duplicate_rows" not in trace.meta
    assert trace.requests["arrival_s"].to_list() == [0.0, 0.0, 0.0]


def test_non_adjacent_repeat_among_ties_is_found(tmp_path):
    path = tmp_path / "ties.jsonl"
    rows = [(0, 600, [0, 1]), (5, 100, [2]), (5, 200, [3]), (5, 100, [2]), (9, 10, [4])]
    line = '{{"timestamp": {}, "input_length": {}, "output_length": 3, "hash_ids": {}}}\n'
    path.write_text("".join(line.format(*r) for r in rows))
    with pytest.raises(WorkloadError) as info:
        traces.load(path, duplicates="error")
    assert (info.value.field, info.value.row) == ("timestamp", 4)
