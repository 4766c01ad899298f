"""Property-based fuzzing of the input boundary (issue 14): trace loaders, Trace construction, CDF files, and
the config/TOML loaders.

For random malformed (and some valid) inputs the outcome is a correct load or one
:class:`~workbench.errors.WorkbenchError`: never another exception type, never a hang (each example runs under
an alarm). A load that succeeds must give a valid table. Example counts are small so the file runs in about ten
seconds; ``WORKBENCH_FUZZ_EXAMPLES=500`` runs a longer, random session.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import string
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench import traces
from workbench.config import from_dict, load_toml
from workbench.errors import WorkbenchError
from workbench.sim.config import SimConfig
from workbench.sim.topology import Fleet
from workbench.traces import SCHEMA, TotalTokenCdf, Trace

#: ``WORKBENCH_FUZZ_EXAMPLES=500`` runs more, random examples (a longer local fuzzing session).
EXAMPLES = int(os.environ.get("WORKBENCH_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=EXAMPLES or 30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=not EXAMPLES,  # in the suite: the same examples every run, so a CI failure reproduces
    database=None,
)
#: Seconds one example may take before it counts as a hang.
HANG_S = 20


@contextlib.contextmanager
def no_hang():
    def alarm(signum, frame):
        raise TimeoutError(f"an input took more than {HANG_S} s (a hang)")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(HANG_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def outcome(call):
    """Run ``call``: its result, or the WorkbenchError it raised (any other exception fails the test)."""
    with no_hang():
        try:
            return call()
        except WorkbenchError as exc:
            assert str(exc).strip(), "an error with no message"
            return exc


def assert_valid(trace: Trace) -> None:
    df = trace.requests
    assert dict(df.schema) == SCHEMA
    assert (df["prompt_tokens"] >= 1).all() and (df["output_tokens"] >= 1).all()
    assert df["request_id"].n_unique() == df.height
    if trace.has_arrivals and df.height:
        arr = df["arrival_s"]
        assert arr.null_count() == 0 and arr.is_sorted() and arr.min() == 0.0 and arr.is_finite().all()


# ------------------------------------------------------------------------------------------------- strategies
NAMES = [
    "arrival_s", "prompt_tokens", "output_tokens", "request_id", "session_id", "turn", "client",
    "request_class", "TIMESTAMP", "ContextTokens", "GeneratedTokens", "timestamp", "input_length",
    "output_length", "hash_ids", "num_prefill_tokens", "num_decode_tokens", "Timestamp", "Model",
    "Request tokens", "Response tokens", "t", "in", "out", "", " ", "x,y", 'q"uote',
]  # fmt: skip
CELLS = st.one_of(
    st.integers(-5, 10**13).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        ["", "nan", "inf", "-inf", "true", "false", "null", "NaN", "1e12", "0", "-0", "1.5", " 7 "]
    ),
    st.sampled_from(
        [
            "2023-11-16 18:17:03.9799600",
            "2023-11-16T18:17:03Z",
            "2023-11-16 18:17:03+01:00",
            "2023-11-16",
            "16/11/2023 18:17",
            "2023-13-45 25:61:61",
        ]
    ),
    st.text(alphabet=string.printable, max_size=8),
)
FILE_NAMES = st.sampled_from(["t", "run[1]", "star*", "a?b", "sp ace", "ünï", "x{1,2}", "-dash", ".hidden"])
SUFFIXES = st.sampled_from([".csv", ".tsv", ".jsonl", ".json", ".parquet", ".txt", ""])
OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "format": st.sampled_from(["azure", "mooncake", "burstgpt", "lengths", "canonical", "generic", "nope"]),
        "mapping": st.dictionaries(
            st.sampled_from(["arrival_s", "prompt_tokens", "output_tokens", "client", "bogus"]),
            st.sampled_from(NAMES),
            max_size=4,
        ),
        "time_unit": st.sampled_from(["s", "ms", "us", "datetime", "hours", ""]),
        "sort": st.booleans(),
        "duplicates": st.sampled_from(["keep", "drop", "error", "ignore"]),
    },
)


def _csv(header, rows, sep) -> str:
    def cell(v: str) -> str:
        return f'"{v.replace(chr(34), chr(34) * 2)}"' if any(c in v for c in (sep, '"', "\n", "\r")) else v

    lines = [sep.join(cell(h) for h in header)] + [sep.join(cell(v) for v in r) for r in rows]
    return "\n".join(lines) + "\n"


@st.composite
def table_files(draw, tmp: Path):
    header = draw(st.lists(st.sampled_from(NAMES), min_size=0, max_size=6))
    width = len(header)
    rows = draw(
        st.lists(
            st.lists(CELLS, min_size=max(0, width - 1), max_size=width + 1),  # ragged rows too
            max_size=12,
        )
    )
    suffix = draw(SUFFIXES)
    path = tmp / f"{draw(FILE_NAMES)}{suffix}"
    kind = draw(st.sampled_from(["text", "json", "parquet", "garbage"]))
    if kind == "text":
        path.write_text(_csv(header, rows, "\t" if suffix == ".tsv" else ","))
    elif kind == "json":
        out = []
        for r in rows:
            rec = {h: _json_value(v) for h, v in zip(header, r, strict=False)}
            text = json.dumps(rec)
            out.append(text[: len(text) // 2] if draw(st.booleans()) and draw(st.booleans()) else text)
        path.write_text("\n".join(out) + ("\n" if out else ""))
    elif kind == "parquet":
        names = list(dict.fromkeys(header))
        cols = {}
        for i, name in enumerate(names):
            values = [r[i] if i < len(r) else None for r in rows]
            cols[name] = _typed(values, draw(st.sampled_from(["str", "int", "float", "bool", "list"])))
        try:
            pl.DataFrame(cols).write_parquet(path)
        except (pl.exceptions.PolarsError, OSError, OverflowError, TypeError, ValueError):
            path.write_bytes(b"PAR1")  # values polars cannot store: a truncated Parquet file instead
    else:
        path.write_bytes(draw(st.binary(max_size=64)))
    return path


def _json_value(v: str):
    for cast in (int, float):
        with contextlib.suppress(ValueError):
            return cast(v) if not (cast is float and v.strip().lower() in ("nan", "inf", "-inf")) else v
    return {"true": True, "false": False, "null": None}.get(v, v)


def _typed(values, dtype):
    def conv(v):
        if v is None:
            return None
        with contextlib.suppress(ValueError, OverflowError):
            if dtype == "int":
                return int(float(v)) if math.isfinite(float(v)) else None
            if dtype == "float":
                return float(v)
            if dtype == "bool":
                return v.strip().lower() in ("true", "1")
            if dtype == "list":
                return [abs(int(float(v))) % 1000]
            return v
        return None

    return [conv(v) for v in values]


# ---------------------------------------------------------------------------------------------------- loaders
@FUZZ
@given(data=st.data(), options=OPTIONS)
def test_any_file_loads_or_gives_one_workbench_error(tmp_path_factory, data, options):
    path = data.draw(table_files(tmp_path_factory.mktemp("fuzz")))
    got = outcome(lambda: traces.load(path, **options))
    if isinstance(got, Trace):
        assert_valid(got)
    got = outcome(lambda: traces.scan(path, **{k: v for k, v in options.items() if k in ("format", "mapping")}))
    if isinstance(got, pl.LazyFrame):
        outcome(got.collect)  # unvalidated, but still never a raw exception ... or a polars one:
    # (scan is documented as unvalidated; collecting it may raise polars errors, which we accept here)


COLUMN_VALUES = st.one_of(
    st.lists(st.integers(-3, 2**40), min_size=3, max_size=3),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=3, max_size=3),
    st.lists(st.sampled_from(["a", "1", ""]), min_size=3, max_size=3),
    st.lists(st.booleans(), min_size=3, max_size=3),
    st.lists(st.none(), min_size=3, max_size=3),
)


@FUZZ
@given(
    columns=st.dictionaries(st.sampled_from([*SCHEMA, "extra"]), COLUMN_VALUES, max_size=6),
    has_arrivals=st.booleans(),
    block=st.sampled_from([None, 16, 512]),
)
def test_a_trace_is_valid_by_construction_or_refused(columns, has_arrivals, block):
    def build():
        df = pl.DataFrame(columns, strict=False) if columns else pl.DataFrame()
        return Trace(df, has_arrivals=has_arrivals, prefix_block_tokens=block)

    got = outcome(build)
    if isinstance(got, Trace):
        df = got.requests
        assert dict(df.schema) == SCHEMA and (df["prompt_tokens"] >= 1).all()
        if has_arrivals:
            assert df["arrival_s"].is_sorted() and df["arrival_s"].is_finite().all()


@FUZZ
@given(
    text=st.one_of(
        st.text(max_size=40),
        st.recursive(
            st.one_of(st.integers(-10, 10**6), st.floats(), st.booleans(), st.none(), st.text(max_size=3)),
            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["cdf", "x"]), inner),
            max_leaves=12,
        ).map(json.dumps),
    )
)
def test_any_cdf_file_reads_or_gives_one_workbench_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("cdf") / "c [1].json"
    path.write_text(text)
    got = outcome(lambda: TotalTokenCdf.from_json(path))
    if isinstance(got, TotalTokenCdf):
        import numpy as np

        prompt, output = got.sample(np.random.default_rng(0), 50)
        assert (prompt >= 1).all() and (output >= 1).all()


# ------------------------------------------------------------------------------------------- config and TOML
KEYS = [
    "name", "gpu", "model", "tp", "instances", "mig", "router", "router_params", "scheduler", "role",
    "max_tokens", "classes", "accuracy", "autoscale", "policy", "min_instances", "max_instances",
    "max_num_seqs", "block_size", "prefix_caching", "interconnect", "decode_router", "link_latency_s",
    "n_instances", "instance", "memory_utilization", "bogus",
]  # fmt: skip
SCALARS = st.one_of(
    st.integers(-3, 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.sampled_from(
        ["H100", "h100 ", "A100-80GB", "jsq", "JSQ ", "kpa", "prefill", "3g", "Llama-3.1-8B", "", "x"]
    ),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=4),
    max_leaves=10,
)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"


def _toml(doc: dict) -> str:
    lines = []
    for k, v in doc.items():
        if k == "pools" and isinstance(v, list) and all(isinstance(p, dict) for p in v):
            continue
        lines.append(f"{json.dumps(k)} = {_toml_value(v)}")
    for pool in doc.get("pools", []) if isinstance(doc.get("pools"), list) else []:
        if isinstance(pool, dict):
            lines.append("[[pools]]")
            lines.extend(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in pool.items())
    return "\n".join(lines) + "\n"


@FUZZ
@given(
    doc=st.fixed_dictionaries(
        {},
        optional={
            "pools": st.lists(
                st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6).map(lambda p: {"name": "p", **p}),
                max_size=3,
            ),
            "router": VALUES,
            "interconnect": VALUES,
            "decode_router": VALUES,
            "bogus": VALUES,
        },
    ),
    garbage=st.one_of(st.none(), st.text(max_size=30)),
)
def test_any_fleet_toml_loads_or_gives_one_workbench_error(tmp_path_factory, doc, garbage):
    path = tmp_path_factory.mktemp("toml") / "fleet [x].toml"
    path.write_text(garbage if garbage is not None else _toml(doc))
    got = outcome(lambda: Fleet.from_toml(path))
    if isinstance(got, Fleet):
        assert got.pools and all(p.instances >= 1 or p.autoscale is not None for p in got.pools)
    outcome(lambda: Fleet.from_dict(doc))


@FUZZ
@given(doc=st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=4))
def test_any_sim_config_table_builds_or_gives_one_workbench_error(doc):
    got = outcome(lambda: from_dict(SimConfig, doc))
    if isinstance(got, SimConfig):
        assert got.n_instances >= 1


def test_the_toml_loader_reads_paths_literally(tmp_path):
    (tmp_path / "a1.toml").write_text("n_instances = 2\n")
    with pytest.raises(WorkbenchError, match="cannot read config"):
        load_toml(SimConfig, tmp_path / "a?.toml")
