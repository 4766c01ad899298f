"""Loaders on every trace file of the shared folder (values from its README), fixtures, and round trips."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench import traces
from workbench.errors import DatasetError, WorkloadError
from workbench.traces import SCHEMA, Trace

DATA = Path(__file__).parent / "data"


def _check_schema(trace: Trace) -> None:
    assert dict(trace.requests.schema) == SCHEMA
    assert trace.requests["request_id"].to_list() == list(range(len(trace)))


def test_azure_code(shared_traces):
    trace = traces.load(shared_traces / "AzureLLMInferenceTrace_code.csv")
    _check_schema(trace)
    df = trace.requests
    assert trace.meta["format"] == "azure" and trace.has_arrivals
    assert len(trace) == 8819
    # README: 57 min 16 s; ContextTokens 3-7,437 (median 1,469); GeneratedTokens 6-1,899 (median 13)
    assert trace.duration_s == pytest.approx(57 * 60 + 16, abs=1.0)
    assert (df["prompt_tokens"].min(), df["prompt_tokens"].max(), df["prompt_tokens"].median()) == (
        3,
        7437,
        1469,
    )
    assert (df["output_tokens"].min(), df["output_tokens"].max(), df["output_tokens"].median()) == (6, 1899, 13)
    assert df["arrival_s"][:3].to_list() == pytest.approx([0.0, 0.052, 0.098189])
    assert "CC-BY-4.0" in trace.source


def test_mooncake_synthetic(shared_traces):
    trace = traces.load(shared_traces / "mooncake_synthetic_trace.jsonl")
    _check_schema(trace)
    df = trace.requests
    assert trace.meta["format"] == "mooncake" and trace.prefix_block_tokens == 512
    assert len(trace) == 3993
    assert df["arrival_s"].min() == 0.0 and df["arrival_s"].max() == pytest.approx(1022.025)
    assert (df["arrival_s"] == 0).sum() >= 2  # equal timestamps are legal
    assert df["prompt_tokens"].mean() == pytest.approx(15325, abs=1)
    assert df["output_tokens"].mean() == pytest.approx(149, abs=1)
    nblocks = df["prefix_hashes"].list.len().to_numpy()
    assert np.array_equal(nblocks, np.ceil(df["prompt_tokens"].to_numpy() / 512).astype(int))
    assert df["prefix_hashes"][0].to_list()[:3] == [0, 1, 2]


@pytest.mark.parametrize(
    ("file", "rows", "prefill", "decode"),
    [
        (
            "vidur_arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv",
            28257,
            (1, 4054, 2730),
            (5, 4056, 167),
        ),
        ("sarathi_sharegpt_8k_filtered_stats_llama2_tokenizer.csv", 30731, (1, 8141, 1730), (2, 1024, 415)),
    ],
)
def test_length_tables(shared_traces, file, rows, prefill, decode):
    trace = traces.load(shared_traces / file)
    _check_schema(trace)
    df = trace.requests
    assert trace.meta["format"] == "lengths" and not trace.has_arrivals
    assert len(trace) == rows and df["arrival_s"].null_count() == rows
    p, d = df["prompt_tokens"], df["output_tokens"]
    assert (p.min(), p.max(), p.median()) == prefill
    assert (d.min(), d.max(), d.median()) == decode
    row = traces.describe(trace).row(0, named=True)
    assert row["rate_rps"] is None and row["prompt_p50"] == prefill[2]


def test_servegen_files_build_a_client_mix(shared_traces):
    with pytest.raises(WorkloadError, match="client mixture"):
        traces.load(shared_traces / "servegen_client_windows.parquet")
    mix = traces.ServeGenMix.from_files(
        shared_traces / "servegen_client_windows.parquet",
        shared_traces / "servegen_client_length_pdfs.parquet",
        model="m-mid",
        start_s=72_000,
        end_s=73_200,
        top_clients=8,
    )
    assert len(mix.clients) == 8 and mix.windows.height == 16  # 8 clients x two 600-s windows
    trace = mix.generate(seed=1)
    _check_schema(trace)
    df = trace.requests
    expected = (mix.windows["rate"] * 600).sum()
    assert len(trace) == pytest.approx(expected, rel=0.05)
    assert df["arrival_s"].min() >= 0 and df["arrival_s"].max() < 1200
    assert set(df["request_class"].unique()) == {"m-mid"}
    assert df["client"].n_unique() <= 8
    assert df["prompt_tokens"].min() >= 1
    again = mix.generate(seed=1)
    assert again.requests.equals(df)


def test_servegen_windows_readme_counts(shared_traces):
    win = pl.read_parquet(shared_traces / "servegen_client_windows.parquet")
    assert win.height == 648_576
    assert win["pat_name"].value_counts().sort("pat_name").rows() == [
        (None, 397_052),
        ("Gamma", 190_423),
        ("Weibull", 61_101),
    ]


def test_servegen_length_pdfs_readme_counts(shared_traces):
    pdfs = pl.read_parquet(shared_traces / "servegen_client_length_pdfs.parquet")
    assert pdfs.height == 7_607_627
    pmf = ("category", "model", "client_id", "window_start_s", "field")
    sums = pdfs.group_by(pmf).agg(pl.col("probability").sum())
    assert sums.height == 16_174
    assert ((sums["probability"] - 1.0).abs() < 1e-9).all()


def test_burstgpt_fixture_drops_failed_rows_with_count():
    with pytest.warns(UserWarning) as record:
        trace = traces.load(DATA / "burstgpt_sample.csv")
    messages = [str(w.message) for w in record]
    assert any("dropped 2 failed requests" in m for m in messages)
    assert any("start at 5 s; shifted to start at 0" in m for m in messages)
    assert trace.meta["format"] == "burstgpt" and trace.meta["dropped_rows"] == 2
    assert len(trace) == 8
    assert trace.requests["request_class"].to_list()[:3] == ["ChatGPT", "GPT-4", "ChatGPT"]
    # the file's first request (t = 5 s) arrives at 0; the offset is kept
    assert trace.requests["arrival_s"].to_list()[:2] == [0.0, 113.0] and trace.meta["time_offset_s"] == 5.0


def test_generic_mapping_ms():
    trace = traces.load(
        DATA / "generic_sample.csv",
        mapping={"arrival_s": "t_ms", "prompt_tokens": "in", "output_tokens": "out", "client": "user"},
        time_unit="ms",
    )
    assert trace.requests["arrival_s"].to_list() == [0.0, 0.25, 0.25, 1.0]
    assert trace.requests["client"].to_list() == ["alice", "bob", "alice", "carol"]
    assert trace.requests["request_class"].null_count() == 4


def test_shipped_default_needs_no_env(monkeypatch):
    monkeypatch.delenv("WORKBENCH_DATA_DIR", raising=False)
    trace = traces.load("azure_code")
    assert len(trace) == 8819 and trace.name == "azure_code"


def test_scan_pushes_a_window_into_the_read(shipped_data):
    path = shipped_data / "AzureLLMInferenceTrace_code.csv"
    lf = traces.scan(path)
    assert isinstance(lf, pl.LazyFrame) and dict(lf.collect_schema()) == SCHEMA
    window = lf.filter(pl.col("arrival_s") < 600.0).collect()
    full = traces.load(path).requests
    assert window.equals(full.filter(pl.col("arrival_s") < 600.0)) and 0 < window.height < full.height
    assert traces.scan("azure_code").collect().equals(full)
    with pytest.warns(UserWarning, match="dropped 2"):
        burst = traces.load(DATA / "burstgpt_sample.csv").requests
    # scan keeps the file's numeric times (a filter on them is pushed into the read); load shifts them to 0
    scanned = traces.scan(DATA / "burstgpt_sample.csv").collect()
    assert scanned.with_columns(pl.col("arrival_s") - 5.0).equals(burst)
    with pytest.raises(WorkloadError, match="file not found"):
        traces.scan(DATA / "nope.csv")
    # a dataset that is no request trace is refused as load refuses it (not scanned as a table)
    for read in (traces.load, traces.scan):
        with pytest.raises(DatasetError, match=r"'ifs_lmsys_cdf' is a cdf file.*TotalTokenCdf"):
            read("ifs_lmsys_cdf")


def test_lazy_view_is_the_same_data():
    trace = traces.load("azure_code")
    total = trace.lazy().select(pl.col("prompt_tokens").sum()).collect().item()
    assert total == trace.requests["prompt_tokens"].sum()


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".csv"])
def test_round_trip_real(tmp_path, suffix):
    trace = traces.load("azure_code")
    back = traces.load(traces.write(trace, tmp_path / f"t{suffix}"))
    assert back.requests.equals(trace.requests)
    if suffix == ".parquet":
        assert (back.name, back.source, back.prefix_block_tokens) == (trace.name, trace.source, None)


def test_round_trip_length_only(tmp_path, shared_traces):
    trace = traces.load(shared_traces / "vidur_arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv")
    back = traces.load(traces.write(trace, tmp_path / "v.csv"))
    assert not back.has_arrivals and back.requests.equals(trace.requests)


def test_csv_cannot_hold_hashes(tmp_path):
    gen = traces.Synthetic(traces.Poisson(1.0), traces.Fixed(600, 10), traces.Sessions(mean_turns=2))
    with pytest.raises(WorkloadError, match="CSV cannot store prefix_hashes"):
        traces.write(gen.generate(n=20, seed=0), tmp_path / "s.csv")


def test_has_prefix_hashes():
    sessions = traces.Synthetic(traces.Poisson(1.0), traces.Fixed(600, 10), traces.Sessions(mean_turns=2))
    hashed = sessions.generate(n=20, seed=0)
    plain = traces.Synthetic(traces.Poisson(1.0), traces.Fixed(600, 10)).generate(n=20, seed=0)
    assert hashed.has_prefix_hashes and not plain.has_prefix_hashes
    one = hashed.requests.with_columns(
        prefix_hashes=pl.when(pl.col("request_id") == 3).then(pl.col("prefix_hashes")).otherwise(None)
    )
    assert hashed.with_requests(one).has_prefix_hashes  # one request with hashes is enough
    assert not hashed.with_requests(hashed.requests.head(0)).has_prefix_hashes


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(1, 60),
    seed=st.integers(0, 2**32 - 1),
    suffix=st.sampled_from([".parquet", ".jsonl"]),
    turns=st.floats(1.0, 4.0),
)
def test_round_trip_identity_property(tmp_path_factory, n, seed, suffix, turns):
    gen = traces.Synthetic(
        traces.Renewal(2.0, 1.5),
        traces.LogNormal(6.0, 1.0, 4.0, 0.8, rho=0.3),
        traces.Sessions(mean_turns=turns, system_prompt_tokens=1024, system_prompt_share=0.5, block_tokens=256),
        request_class="chat",
    )
    trace = gen.generate(n=n, seed=seed)
    path = traces.write(trace, tmp_path_factory.mktemp("rt") / f"t{suffix}")
    first = trace.requests["arrival_s"][0]
    with pytest.warns(UserWarning, match="shifted to start at 0"):  # generators: first arrival = first gap
        back = traces.load(path)
    assert back.meta["time_offset_s"] == first
    assert back.requests.equals(trace.requests.with_columns(pl.col("arrival_s") - first))
    if suffix == ".parquet":
        assert back.prefix_block_tokens == 256


def test_validate_rejects_fractional_tokens():
    df = pl.DataFrame({"arrival_s": [0.0, 1.0], "prompt_tokens": [10.0, 2.5], "output_tokens": [1, 1]})
    with pytest.raises(WorkloadError, match="whole number") as info:
        traces.validate(df, file="x")
    assert (info.value.field, info.value.row) == ("prompt_tokens", 2)
    ok = traces.validate(df.with_columns(pl.col("prompt_tokens").round(0)))
    assert ok["prompt_tokens"].dtype == pl.Int32 and math.isclose(ok["prompt_tokens"][1], 2)


def test_validate_rejects_negative_hash_ids():
    df = pl.DataFrame(
        {
            "arrival_s": [0.0, 1.0],
            "prompt_tokens": [600, 10],
            "output_tokens": [1, 1],
            "prefix_hashes": [[0, 1], [2, -3]],
        }
    )
    with pytest.raises(WorkloadError, match=r"integer ids >= 0, got \[2, -3\]") as info:
        traces.validate(df, file="x.jsonl", names={"prefix_hashes": "hash_ids"})
    assert (info.value.field, info.value.row) == ("hash_ids", 2)
