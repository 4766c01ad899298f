"""Sweeps: determinism (sequential == parallel == dask), resumable cache, corruption detection, errors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

import workbench
from workbench.errors import ConfigError, WorkbenchError
from workbench.experiments import CacheWarning, config_key, config_record, grid, point_seed, sweep

CALLS: list[int] = []  # indices of points computed in this process (sequential runs only)


def run_point(cfg: dict, seed: int) -> dict:
    """A small stochastic 'simulation': the mean of exponential samples."""
    CALLS.append(cfg["x"])
    rng = np.random.default_rng(seed)
    return {"mean": float(rng.exponential(cfg["scale"], 200).mean()), "n": 200}


def run_rows(cfg: dict, seed: int) -> pl.DataFrame:
    """Several rows per point."""
    rng = np.random.default_rng(seed)
    return pl.DataFrame({"rep": [0, 1, 2], "value": rng.normal(cfg["x"], 1.0, 3)})


CRASH_AT: set[int] = set()  # values of x at which run_interruptible 'crashes' (an interrupted sweep)


def run_interruptible(cfg: dict, seed: int) -> dict:
    if cfg["x"] in CRASH_AT:
        raise RuntimeError("simulated crash")
    return run_point(cfg, seed)


@dataclass(frozen=True, slots=True)
class Inner:
    gpu: str = "H100"
    tp: int = 1


@dataclass(frozen=True, slots=True)
class Outer:
    qps: float
    pool: Inner = Inner()
    thresholds: tuple[int, ...] = (2048,)


CONFIGS = grid(x=range(6), scale=[1.0, 3.0])


@pytest.fixture(autouse=True)
def _reset_calls():
    CALLS.clear()


def test_grid_and_records():
    g = grid(a=[1, 2], b=["u", "v", "w"])
    assert len(g) == 6 and g[0] == {"a": 1, "b": "u"} and g[-1] == {"a": 2, "b": "w"}
    rec = config_record(Outer(qps=2.0, pool=Inner("A100", 2), thresholds=(1024, 4096)))
    assert rec == {"qps": 2.0, "pool.gpu": "A100", "pool.tp": 2, "thresholds": "[1024, 4096]"}
    assert config_record({"a": np.int64(3)}) == {"a": 3}


def test_keys_and_seeds_depend_on_content_only():
    a, b = Outer(qps=2.0), Outer(qps=2.0)
    assert config_key(a) == config_key(b) and point_seed(a) == point_seed(b)
    assert config_key(a) != config_key(Outer(qps=2.5))
    assert config_key(a) != config_key(Outer(qps=2.0, pool=Inner(tp=2)))
    assert config_key(a, seed=1) != config_key(a, seed=2)
    assert point_seed(a, 1) != point_seed(a, 2) != point_seed(Outer(qps=3.0), 2)
    # a dict with the same fields is a different configuration type
    assert config_key({"qps": 2.0}) != config_key(Outer(qps=2.0))


def test_sweep_table_shape_and_values():
    table = sweep(CONFIGS, run_point, seed=7)
    assert table.columns == ["x", "scale", "point_seed", "mean", "n"]
    assert table.height == len(CONFIGS)
    assert table["x"].to_list() == [c["x"] for c in CONFIGS]
    # each row is exactly run(config, point_seed(config))
    for row in table.iter_rows(named=True):
        cfg = {"x": row["x"], "scale": row["scale"]}
        assert row["point_seed"] == point_seed(cfg, 7)
        assert row["mean"] == run_point(cfg, point_seed(cfg, 7))["mean"]
    # the larger scale gives larger means on average
    means = table.group_by("scale").agg(pl.col("mean").mean()).sort("scale")["mean"].to_list()
    assert means[1] > 2 * means[0]


def test_seed_does_not_depend_on_position():
    forward = sweep(CONFIGS, run_point, seed=3)
    backward = sweep(CONFIGS[::-1], run_point, seed=3)
    assert_frame_equal(forward, backward.reverse())
    assert not forward.equals(sweep(CONFIGS, run_point, seed=4))


def test_sequential_equals_parallel_and_multirow():
    seq = sweep(CONFIGS, run_rows, seed=11)
    par = sweep(CONFIGS, run_rows, seed=11, n_jobs=2)
    thr = sweep(CONFIGS, run_rows, seed=11, n_jobs=2, backend="threading")
    assert seq.height == 3 * len(CONFIGS)
    assert_frame_equal(seq, par)
    assert_frame_equal(seq, thr)


def test_dataclass_configs():
    configs = [Outer(qps=q, pool=Inner(tp=t)) for q in (1.0, 2.0) for t in (1, 2)]
    table = sweep(configs, lambda c, s: {"load": c.qps * c.pool.tp}, seed=0)
    assert table.columns[:4] == ["qps", "pool.gpu", "pool.tp", "thresholds"]
    assert table["load"].to_list() == [1.0, 2.0, 2.0, 4.0]


def test_dask_backend_identical():
    distributed = pytest.importorskip("distributed")
    seq = sweep(CONFIGS[:6], run_rows, seed=5)
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None):
        dsk = sweep(CONFIGS[:6], run_rows, seed=5, backend="dask")
    assert_frame_equal(seq, dsk)


def test_dask_without_client_is_a_clear_error():
    pytest.importorskip("distributed")
    with pytest.raises(WorkbenchError, match="running Client"):
        sweep(CONFIGS[:2], run_point, backend="dask")


def test_resume_computes_only_missing_points(tmp_path: Path):
    CRASH_AT.add(3)
    try:
        with pytest.raises(RuntimeError, match="simulated crash") as info:
            sweep(CONFIGS, run_interruptible, seed=2, cache_dir=tmp_path)
    finally:
        CRASH_AT.clear()
    assert any("sweep point 6" in note for note in info.value.__notes__)
    assert sorted(CALLS) == [0, 0, 1, 1, 2, 2]  # points before the crash, all cached
    assert len(list(tmp_path.glob("*.parquet"))) == 6
    CALLS.clear()
    resumed = sweep(CONFIGS, run_interruptible, seed=2, cache_dir=tmp_path)
    assert sorted(CALLS) == [3, 3, 4, 4, 5, 5]  # only the missing points
    assert_frame_equal(resumed, sweep(CONFIGS, run_interruptible, seed=2))  # same as an uncached sweep
    CALLS.clear()
    # drop every other file: a rerun computes exactly those, and a complete cache computes nothing
    files = sorted(tmp_path.glob("*.parquet"))
    for f in files[::2]:
        f.unlink()
    assert_frame_equal(resumed, sweep(CONFIGS, run_interruptible, seed=2, cache_dir=tmp_path))
    assert len(CALLS) == len(files[::2])
    CALLS.clear()
    assert_frame_equal(resumed, sweep(CONFIGS, run_interruptible, seed=2, cache_dir=tmp_path))
    assert CALLS == []


def test_cache_is_keyed_by_version_seed_and_run(tmp_path: Path, monkeypatch):
    sweep(CONFIGS[:2], run_point, seed=1, cache_dir=tmp_path)
    CALLS.clear()
    sweep(CONFIGS[:2], run_point, seed=2, cache_dir=tmp_path)
    assert len(CALLS) == 2
    CALLS.clear()
    monkeypatch.setattr(workbench, "__version__", "99.0")
    sweep(CONFIGS[:2], run_point, seed=1, cache_dir=tmp_path)
    assert len(CALLS) == 2


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupted_cache_file_is_recomputed_with_warning(tmp_path: Path, damage: str):
    first = sweep(CONFIGS[:4], run_point, seed=9, cache_dir=tmp_path)
    victim = sorted(tmp_path.glob("*.parquet"))[1]
    data = bytearray(victim.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
    else:
        data = data[: len(data) - 9]
    victim.write_bytes(bytes(data))
    CALLS.clear()
    with pytest.warns(CacheWarning, match="corrupted"):
        again = sweep(CONFIGS[:4], run_point, seed=9, cache_dir=tmp_path)
    assert len(CALLS) == 1
    assert_frame_equal(first, again)
    # the damaged file was replaced by a good one with the same (deterministic) name
    assert victim.read_bytes() != bytes(data) and len(list(tmp_path.glob("*.parquet"))) == 4


def test_progress_bar_only_when_asked(capsys):
    sweep(CONFIGS[:3], run_point)
    assert "sweep" not in capsys.readouterr().err
    sweep(CONFIGS[:3], run_point, progress=True)
    assert "sweep" in capsys.readouterr().err


def test_bad_input():
    with pytest.raises(ConfigError, match="configs is empty"):
        sweep([], run_point)
    with pytest.raises(ConfigError, match="unknown backend 'spark'"):
        sweep(CONFIGS, run_point, backend="spark")
    with pytest.raises(ConfigError, match="n_jobs"):
        sweep(CONFIGS, run_point, n_jobs=0)
    with pytest.raises(ConfigError, match=r"'config\.qps' is not finite"):
        sweep([{"qps": float("nan")}], run_point)
    with pytest.raises(ConfigError, match="unsupported type"):
        sweep([{"f": object()}], run_point)
    with pytest.raises(WorkbenchError, match="return a dict of scalars"):
        sweep([{"x": 1}], lambda c, s: [1, 2])
    with pytest.raises(WorkbenchError, match=r"column\(s\) \['x'\]"):
        sweep([{"x": 1}], lambda c, s: {"x": 2})
