"""Registry of public LLM-serving data files: names, checksums, citations; local copies first, then pooch.

A pure file registry: it resolves a name to a verified local file and knows nothing about what is in the file
(it imports nothing from :mod:`workbench.traces`). ``workbench.traces.load(name)`` reads a request dataset
through it; ``workbench.traces.ServeGenMix.from_datasets()`` the ServeGen files.

Resolution order for :func:`fetch`:

1. ``$WORKBENCH_DATA_DIR/<file>`` (a folder of local copies, e.g. ``../shared/data/traces``);
2. the copy shipped in the repository's ``data/`` folder (only the Azure code trace, so ``make demo`` needs
   nothing else);
3. the pooch cache (``$WORKBENCH_CACHE_DIR`` or the OS cache folder), downloading the upstream file at its
   pinned commit when ``allow_download`` is true.

Every file is verified against its SHA-256 before use. A file that is neither local nor downloadable raises one
:class:`~workbench.errors.DatasetError` naming the file, the URL and how to set ``WORKBENCH_DATA_DIR``.

Examples
--------
>>> from workbench import datasets
>>> "azure_code" in datasets.list()["name"].to_list()
True
>>> datasets.fetch("azure_code").name
'AzureLLMInferenceTrace_code.csv'
"""

from __future__ import annotations

import builtins
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from workbench._paths import DATA_DIR
from workbench.errors import DatasetError

GH = "https://raw.githubusercontent.com"


@dataclass(frozen=True, slots=True)
class Dataset:
    """One registered file.

    Attributes
    ----------
    name
        Short name used by :func:`fetch` and by ``workbench.traces.load(name)``.
    file
        File name (in ``WORKBENCH_DATA_DIR``, ``data/`` or the cache).
    sha256
        Expected checksum.
    url
        Upstream raw URL at the pinned commit, or ``None`` for files converted by us (local copy needed).
    kind
        ``trace`` (requests with arrivals), ``lengths`` (no arrivals), ``servegen`` (client-mixture inputs),
        ``cdf`` (a CDF of total tokens per request, inference-fleet-sim's workload format) or ``table`` (other
        reference data: read with polars).
    license, citation
        License and the citation the data owners ask for.
    """

    name: str
    file: str
    sha256: str
    url: str | None
    kind: str
    license: str
    citation: str


_AZURE = "Azure LLM inference trace 2023 (Azure/AzurePublicDataset). Cite: Patel et al., Splitwise, ISCA 2024."
_REGISTRY = [
    Dataset(
        "azure_code",
        "AzureLLMInferenceTrace_code.csv",
        "54e9a6d2a4bd06ba1e060304b900abbc74cbea53de96506e60fe5bb4f2277fb6",
        f"{GH}/Azure/AzurePublicDataset/b469a113cedca53ddc3bdea71a143dc4b7d8700c/data/"
        "AzureLLMInferenceTrace_code.csv",
        "trace",
        "CC-BY-4.0",
        _AZURE,
    ),
    Dataset(
        "mooncake_synthetic",
        "mooncake_synthetic_trace.jsonl",
        "bd070915a98fc0ed264d7cfef2ce746002eb3076a695ec31ba2674c0111ec131",
        f"{GH}/kvcache-ai/Mooncake/3b5a594133958449a1feaf1c9e0fc1b553e34a28/FAST25-release/traces/"
        "synthetic_trace.jsonl",
        "trace",
        "Apache-2.0",
        "Mooncake (kvcache-ai/Mooncake). Cite: Qin et al., Mooncake, USENIX FAST 2025.",
    ),
    Dataset(
        "vidur_arxiv",
        "vidur_arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv",
        "9d3580538d915ca75e4aaaa54590b42dbb17abc6d74c8913310cf07c232adcdc",
        f"{GH}/microsoft/vidur/7d47513363ec447a741ac5e47241580b47724fbf/data/processed_traces/"
        "arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv",
        "lengths",
        "MIT",
        "Vidur (microsoft/vidur). Cite: Agrawal et al., Vidur, MLSys 2024.",
    ),
    Dataset(
        "sarathi_sharegpt",
        "sarathi_sharegpt_8k_filtered_stats_llama2_tokenizer.csv",
        "6d6c296302a853e2669a674a96f269283e60c57e60363bd450588a1066919f9f",
        f"{GH}/microsoft/sarathi-serve/72339db5b120614033b317880ad3a05a5e4c9415/data/processed_traces/"
        "sharegpt_8k_filtered_stats_llama2_tokenizer.csv",
        "lengths",
        "Apache-2.0",
        "Sarathi-Serve (microsoft/sarathi-serve). Cite: Agrawal et al., Sarathi-Serve, OSDI 2024.",
    ),
    Dataset(
        "servegen_windows",
        "servegen_client_windows.parquet",
        "4fd4dcfef952ee77ec13e88bad357a6684a204b8eed61c7b88fc6d9ac5b88255",
        None,
        "servegen",
        "Apache-2.0 (converted)",
        "ServeGen (alibaba/ServeGen). Cite: Xiang et al., ServeGen, arXiv:2505.09999, 2025.",
    ),
    Dataset(
        "servegen_length_pdfs",
        "servegen_client_length_pdfs.parquet",
        "39b9105f972950eac8de9cd0536a13bc5294794ae51502c39ff52fd061ad6a6a",
        None,
        "servegen",
        "Apache-2.0 (converted)",
        "ServeGen (alibaba/ServeGen). Cite: Xiang et al., ServeGen, arXiv:2505.09999, 2025.",
    ),
    Dataset(
        "splitwise_perf",
        "splitwise_sim_perf_model.csv",
        "dbbe505d1d64fc4bd1ec03c50edf944643586de4f68a81e94cbd55dd5bdfbf41",
        f"{GH}/Mutinifni/splitwise-sim/8f99e7dc9b407f4ce2488d03dd44c0b8b946dab0/data/perf_model.csv",
        "table",
        "MIT",
        "SplitwiseSim (Mutinifni/splitwise-sim). Cite: Patel et al., Splitwise, ISCA 2024.",
    ),
    Dataset(
        "mlenergy_v3",
        "mlenergy_leaderboard_v3_llm_runs.csv",
        "d53c224d428c61aea152b9fd00bf3211ee66e8c8c2919b87d0df70e1e7a24080",
        None,
        "table",
        "Apache-2.0 (converted)",
        "ML.ENERGY Benchmark v3. Cite: Chung et al., The ML.ENERGY Benchmark, NeurIPS D&B 2025.",
    ),
    Dataset(
        "ifs_lmsys_cdf",
        "ifs_lmsys_cdf.json",
        "93430d8338e2fe2f932e8d3fb1fcb1c88cfe98fce9dec86ac18e52949d656ff4",
        f"{GH}/vllm-project/semantic-router/c73afa9a2bd399fc37ae57283c6689848995cbf5/bench/fleet-simulator/"
        "data/lmsys_cdf.json",
        "cdf",
        "Apache-2.0",
        "inference-fleet-sim (vllm-project/semantic-router), arXiv:2603.16054.",
    ),
    Dataset(
        "ifs_agent_heavy_cdf",
        "ifs_agent_heavy_cdf.json",
        "b5d126806598dfa6edda9dfe2e76b53620cdec6dca4c0decf6f764b8cb839470",
        f"{GH}/vllm-project/semantic-router/c73afa9a2bd399fc37ae57283c6689848995cbf5/bench/fleet-simulator/"
        "data/agent_heavy_cdf.json",
        "cdf",
        "Apache-2.0",
        "inference-fleet-sim (vllm-project/semantic-router), arXiv:2603.16054.",
    ),
]
#: Registered datasets by name.
REGISTRY: dict[str, Dataset] = {d.name: d for d in _REGISTRY}
_VERIFIED: dict[tuple[str, int, int], str] = {}


def list() -> pl.DataFrame:
    """List the registered datasets: name, file, kind, license, url (null for converted files), local (bool)."""
    rows = [
        {
            "name": d.name,
            "file": d.file,
            "kind": d.kind,
            "license": d.license,
            "url": d.url,
            "local": _local(d) is not None,
        }
        for d in REGISTRY.values()
    ]
    return pl.DataFrame(rows)


def get(name: str) -> Dataset:
    """Return the registry entry for ``name``.

    Names match ignoring case and surrounding spaces (the workbench's rule for names,
    :func:`workbench.config.require_choice`); an unknown name raises a :class:`DatasetError` listing the names.
    """
    key = name.strip().casefold() if isinstance(name, str) else None
    found = next((d for n, d in REGISTRY.items() if n.casefold() == key), None)
    if found is None:
        raise DatasetError(f"unknown dataset {name!r}; registered: {', '.join(REGISTRY)}", field="name")
    return found


def sha256(path: Path) -> str:
    """SHA-256 of a file (cached by path, size and mtime)."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _VERIFIED:
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        _VERIFIED[key] = digest.hexdigest()
    return _VERIFIED[key]


def _verify(d: Dataset, path: Path) -> Path:
    actual = sha256(path)
    if actual != d.sha256:
        raise DatasetError(
            f"checksum mismatch for dataset {d.name!r}: expected sha256 {d.sha256}, got {actual}; "
            "the file is corrupt or a different version — replace it with the original",
            file=str(path),
            field="sha256",
        )
    return path


def _candidates(d: Dataset) -> builtins.list[Path]:
    out = []
    env = os.environ.get("WORKBENCH_DATA_DIR")
    if env:
        out.append(Path(env) / d.file)
    out.append(DATA_DIR / d.file)
    return out


def _local(d: Dataset) -> Path | None:
    return next((p for p in _candidates(d) if p.is_file()), None)


def cache_dir() -> Path:
    """Download cache: ``$WORKBENCH_CACHE_DIR`` or the OS cache folder (``pooch.os_cache('workbench')``)."""
    import pooch

    env = os.environ.get("WORKBENCH_CACHE_DIR")
    return Path(env) if env else Path(pooch.os_cache("workbench"))


def fetch(name: str, *, allow_download: bool = True, progress: bool = False) -> Path:
    """Path of a verified local copy of dataset ``name``, downloading it when needed and allowed.

    Parameters
    ----------
    name
        Registered name (see :func:`list`).
    allow_download
        When false, never touch the network (tests): a missing file raises :class:`DatasetError`.
    progress
        Show a download progress bar (tqdm; ``workbench data fetch`` does).

    Raises
    ------
    DatasetError
        Unknown name, checksum mismatch, or a file that is neither local nor downloadable (the message names
        the file, the URL and ``WORKBENCH_DATA_DIR``).
    """
    d = get(name)
    local = _local(d)
    if local is not None:
        return _verify(d, local)
    cached = cache_dir() / d.file
    if cached.is_file():
        return _verify(d, cached)
    hint = (
        (
            f"download it from {d.url} "
            if d.url
            else "this file was converted for the workbench and has no upstream "
            "URL; copy it from the project's shared data folder "
        )
        + "and set WORKBENCH_DATA_DIR to the folder holding it "
        "(e.g. export WORKBENCH_DATA_DIR=../shared/data/traces)"
    )
    if d.url is None or not allow_download:
        raise DatasetError(f"dataset {name!r} is not available locally; {hint}", file=d.file)
    import pooch

    try:
        path = pooch.retrieve(
            d.url, known_hash=f"sha256:{d.sha256}", fname=d.file, path=cache_dir(), progressbar=progress
        )
    except Exception as exc:  # network errors come in many types; report one clear error
        raise DatasetError(
            f"could not download dataset {name!r} ({type(exc).__name__}: {exc}); {hint}", file=d.file
        ) from None
    return Path(path)


def trace_file(name: str, *, allow_download: bool = True) -> Path:
    """:func:`fetch` for a request dataset (kinds ``trace``, ``lengths``).

    What :func:`workbench.traces.load` and :func:`workbench.traces.scan` read for a dataset name.

    Raises
    ------
    DatasetError
        As :func:`fetch`, and for a dataset of another kind (the message says how to read it).
    """
    d = get(name)
    if d.kind not in ("trace", "lengths"):
        raise DatasetError(
            f"dataset {name!r} is a {d.kind} file, not a request trace; "
            + {
                "servegen": "use workbench.traces.ServeGenMix.from_datasets()",
                "cdf": f"use workbench.traces.TotalTokenCdf.from_json({name!r}) as the lengths of a generator, "
                "e.g. Synthetic(Poisson(rate), TotalTokenCdf.from_json(...))",
            }.get(d.kind, "read workbench.datasets.fetch(name) with polars"),
            field="name",
        )
    return fetch(name, allow_download=allow_download)
