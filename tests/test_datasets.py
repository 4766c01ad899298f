"""Dataset registry: local copies first, checksums, clear errors; never touches the network."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pooch
import pytest

from workbench import datasets, traces
from workbench.errors import DatasetError


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path):
    """Any download attempt fails loudly; the cache is an empty temp folder."""

    def refuse(*args, **kwargs):
        raise ConnectionError("network disabled in tests")

    monkeypatch.setattr(pooch, "retrieve", refuse)
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path / "cache"))


def test_registry_matches_shared_checksums(shared_traces):
    sums = dict(
        reversed(line.split())
        for line in (shared_traces / "SHA256SUMS").read_text().splitlines()
        if line.strip()
    )
    for d in datasets.REGISTRY.values():
        assert sums[d.file] == d.sha256, d.name
    table = datasets.list()
    assert table["local"].all() and table.height == len(datasets.REGISTRY)
    assert table.filter(table["url"].is_null())["name"].to_list() == [
        "servegen_windows",
        "servegen_length_pdfs",
        "mlenergy_v3",
    ]


def test_urls_are_pinned_raw_github():
    for d in datasets.REGISTRY.values():
        if d.url:
            assert d.url.startswith("https://raw.githubusercontent.com/")
            assert any(len(part) == 40 for part in d.url.split("/")), d.url  # a commit id, not a branch


def test_fetch_prefers_data_dir_and_verifies(shared_traces, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(shared_traces))
    path = datasets.fetch("mooncake_synthetic", allow_download=False)
    assert path == shared_traces / "mooncake_synthetic_trace.jsonl"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == datasets.get("mooncake_synthetic").sha256
    trace = traces.load("mooncake_synthetic")
    assert len(trace) == 3993 and "Apache-2.0" in trace.source
    assert len(traces.load("vidur_arxiv")) == 28257  # names work through traces.load too


def test_shipped_default_without_env(monkeypatch, shipped_data):
    monkeypatch.delenv("WORKBENCH_DATA_DIR", raising=False)
    assert datasets.fetch("azure_code") == shipped_data / "AzureLLMInferenceTrace_code.csv"


def test_missing_file_error_names_file_url_and_env(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path))
    with pytest.raises(DatasetError) as info:
        datasets.fetch("sarathi_sharegpt", allow_download=False)
    msg = str(info.value)
    assert "sarathi_sharegpt_8k_filtered_stats_llama2_tokenizer.csv" in msg
    assert datasets.get("sarathi_sharegpt").url in msg and "WORKBENCH_DATA_DIR" in msg
    # download attempted and failing (network refused by the fixture): same information
    with pytest.raises(DatasetError, match=r"could not download.*WORKBENCH_DATA_DIR"):
        datasets.fetch("sarathi_sharegpt")
    with pytest.raises(DatasetError, match="has no upstream URL"):
        datasets.fetch("servegen_windows")


def test_cached_copy_is_used_and_verified(monkeypatch, tmp_path, shared_traces):
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "empty"))
    cache = Path(datasets.cache_dir())
    cache.mkdir(parents=True)
    src = shared_traces / "ifs_lmsys_cdf.json"
    (cache / src.name).write_bytes(src.read_bytes())
    assert datasets.fetch("ifs_lmsys_cdf") == cache / src.name
    (cache / src.name).write_text("[]")
    with pytest.raises(DatasetError, match="checksum mismatch"):
        datasets.fetch("ifs_lmsys_cdf")


def test_unknown_and_non_trace_names():
    with pytest.raises(DatasetError, match="unknown dataset 'nope'; registered: azure_code"):
        datasets.get("nope")
    with pytest.raises(DatasetError, match="ServeGenMix"):
        traces.load("servegen_windows")
    with pytest.raises(DatasetError, match="with polars"):
        traces.load("splitwise_perf")
