"""Sweeps: determinism (sequential == parallel == dask), resumable cache, corruption detection, errors."""

from __future__ import annotations

import functools
import sys
import threading
import types
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

import workbench
from workbench.errors import ConfigError, WorkbenchError
from workbench.experiments import (
    CacheWarning,
    config_key,
    config_record,
    grid,
    point_seed,
    progress_enabled,
    run_fingerprint,
    sweep,
)

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


def test_dask_backend_identical_threads():
    distributed = pytest.importorskip("distributed")
    seq = sweep(CONFIGS[:6], run_rows, seed=5)
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None):
        dsk = sweep(CONFIGS[:6], run_rows, seed=5, backend="dask")
    assert_frame_equal(seq, dsk)


def run_where(cfg: dict, seed: int) -> dict:
    """run_rows' numbers plus the process that computed them (to prove the points left this process)."""
    import os

    rng = np.random.default_rng(seed)
    return {"value": float(rng.normal(cfg["x"], 1.0)), "pid": os.getpid()}


def test_dask_process_cluster_identical(tmp_path: Path):
    """Two worker processes: run, configs and results are pickled; the table equals the sequential one."""
    distributed = pytest.importorskip("distributed")
    seq = sweep(CONFIGS, run_where, seed=5).drop("pid")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40
    )
    with cluster, distributed.Client(cluster):
        dsk = sweep(CONFIGS, run_where, seed=5, backend="dask", cache_dir=tmp_path)
        again = sweep(CONFIGS, run_where, seed=5, backend="dask", cache_dir=tmp_path)  # all from the cache
    import os

    assert os.getpid() not in set(dsk["pid"].to_list())  # computed on the workers, not here
    assert_frame_equal(seq, dsk.drop("pid"))
    assert_frame_equal(dsk, again)
    assert len(list(tmp_path.glob("*.parquet"))) == len(CONFIGS)


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


def test_progress_default_on_in_a_notebook_kernel(monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)
    fake = types.ModuleType("IPython")
    shell = types.SimpleNamespace(kernel=object())
    fake.get_ipython = lambda: shell  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", fake)
    assert progress_enabled(None)  # a Jupyter kernel: stderr is no terminal, but bars render
    monkeypatch.setenv("PYTEST_CURRENT_TEST", "x")
    assert progress_enabled(None)  # also when nbval runs the notebook: stored outputs must not differ
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    shell.kernel = None  # a plain (terminal-less) IPython shell, e.g. `ipython script.py > log`
    assert not progress_enabled(None)
    monkeypatch.delitem(sys.modules, "IPython")
    assert not progress_enabled(None)  # a script with stderr redirected
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert progress_enabled(None)  # a terminal
    monkeypatch.setenv("PYTEST_CURRENT_TEST", "x")
    assert not progress_enabled(None)  # but not in the unit tests
    assert progress_enabled(True) and not progress_enabled(False)


def test_one_progress_rule_for_every_layer(monkeypatch):
    from workbench import _progress, experiments

    assert experiments.progress_enabled is _progress.progress_enabled  # one helper, importable by sim
    monkeypatch.delitem(sys.modules, "IPython", raising=False)

    class Closed:
        def isatty(self):
            raise ValueError("I/O operation on closed file")

    monkeypatch.setattr(sys, "stderr", Closed())
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)
    assert not _progress.interactive()  # a closed stderr is no terminal, and no error
    monkeypatch.setattr(sys, "stderr", None)
    assert not _progress.interactive()


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


# ---------------------------------------------------------------------------------- cache key of ``run``


def scaled(cfg: dict, seed: int, k: float) -> dict:
    return {"y": cfg["x"] * k}


class Scale:
    """A callable class with plain instance state."""

    def __init__(self, k: float) -> None:
        self.k = k

    def __call__(self, cfg: dict, seed: int) -> dict:
        return {"y": cfg["x"] * self.k}


@dataclass(frozen=True)
class ScaleDC:
    k: float
    table: pl.DataFrame = field(default_factory=lambda: pl.DataFrame({"a": [1, 2]}))

    def __call__(self, cfg: dict, seed: int) -> dict:
        return {"y": cfg["x"] * self.k + self.table["a"].sum()}


class Opaque:
    """A callable whose state is a lock: nothing stable to fingerprint."""

    __slots__ = ("lock",)

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def __call__(self, cfg: dict, seed: int) -> dict:
        return {"y": 1}


def _twice(run_a, run_b, tmp_path: Path) -> tuple[float, float]:
    a = sweep([{"x": 2}], run_a, cache_dir=tmp_path)["y"][0]
    b = sweep([{"x": 2}], run_b, cache_dir=tmp_path)["y"][0]
    return a, b


@pytest.mark.parametrize(
    "pair",
    [
        (lambda c, s: {"y": c["x"] * 1}, lambda c, s: {"y": c["x"] * 100}),
        (functools.partial(scaled, k=1), functools.partial(scaled, k=100)),
        (functools.partial(scaled, k=1), functools.partial(scaled, k=1.0 + 99)),
        (Scale(1), Scale(100)),
        (ScaleDC(1), ScaleDC(100)),
        (ScaleDC(1), ScaleDC(1, pl.DataFrame({"a": [1, 100]}))),
    ],
    ids=["lambdas", "partials", "partials-float", "instances", "dataclass", "dataclass-frame"],
)
def test_different_callables_never_share_a_cache_entry(pair, tmp_path: Path):
    run_a, run_b = pair
    assert config_key({"x": 2}, run=run_a) != config_key({"x": 2}, run=run_b)
    a, b = _twice(run_a, run_b, tmp_path)
    assert (a, b) == (run_a({"x": 2}, 0)["y"], run_b({"x": 2}, 0)["y"]) and a != b
    assert len(list(tmp_path.glob("*.parquet"))) == 2


def test_closures_and_defaults_enter_the_key(tmp_path: Path):
    def make(k):
        return lambda c, s: {"y": c["x"] * k}

    def with_default(c, s, k=3):
        return {"y": c["x"] * k}

    def with_default_7(c, s, k=7):
        return {"y": c["x"] * k}

    assert _twice(make(2), make(5), tmp_path) == (4, 10)
    with_default_7.__name__ = with_default_7.__qualname__ = (
        with_default.__qualname__
    )  # same name, other default
    assert run_fingerprint(with_default) != run_fingerprint(with_default_7)


def test_equal_callables_share_the_cache(tmp_path: Path):
    # the same computation rebuilt (another partial object, another instance with equal state) hits the cache
    assert run_fingerprint(functools.partial(scaled, k=3)) == run_fingerprint(functools.partial(scaled, k=3))
    assert run_fingerprint(Scale(3)) == run_fingerprint(Scale(3))
    assert run_fingerprint(ScaleDC(3)) == run_fingerprint(ScaleDC(3))
    sweep(CONFIGS[:2], run_point, cache_dir=tmp_path)
    CALLS.clear()
    sweep(CONFIGS[:2], run_point, cache_dir=tmp_path)  # CALLS (a mutable global it writes) is not in the key
    assert CALLS == []


def test_unfingerprintable_run_is_refused_unless_keyed(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"cannot fingerprint run\.lock .*cache_key="):
        sweep([{"x": 1}], Opaque(), cache_dir=tmp_path)
    assert sweep([{"x": 1}], Opaque())["y"].to_list() == [1]  # without a cache nothing needs a key
    keyed = sweep([{"x": 1}], Opaque(), cache_dir=tmp_path, cache_key="opaque-v1")
    assert keyed["y"].to_list() == [1] and len(list(tmp_path.glob("*.parquet"))) == 1
    assert config_key({"x": 1}, cache_key="a") != config_key({"x": 1}, cache_key="b")
    with pytest.raises(ConfigError, match="cache_key must be a non-empty string"):
        sweep([{"x": 1}], Opaque(), cache_dir=tmp_path, cache_key="")


def test_point_seed_does_not_depend_on_version(monkeypatch):
    cfg = Outer(qps=2.0)
    seeds, key = point_seed(cfg, 4), config_key(cfg, seed=4)
    monkeypatch.setattr(workbench, "__version__", "99.0")
    assert point_seed(cfg, 4) == seeds  # configuration and root seed only, as documented
    assert config_key(cfg, seed=4) != key  # the cache still recomputes under a new version
    # golden value: a change here changes every sweep's random numbers
    assert point_seed({"x": 1}, 0) == point_seed({"x": 1}, 0) == GOLDEN_SEED


GOLDEN_SEED = 2966453807622030465  # point_seed({"x": 1}, 0)


@pytest.mark.parametrize("name", ["{key}..parquet", "{key}.abc.parquet", "{key}.{digest}x.parquet"])
def test_cache_file_with_malformed_checksum_is_not_used(tmp_path: Path, name: str):
    sweep([{"x": 1, "scale": 1.0}], run_point, cache_dir=tmp_path)
    good = next(tmp_path.glob("*.parquet"))
    key, digest = good.name.split(".")[:2]
    good.unlink()
    bad = tmp_path / name.format(key=key, digest=digest)
    pl.DataFrame({"mean": [999.0], "n": [1]}).write_parquet(bad)  # a planted file, no valid checksum
    CALLS.clear()
    with pytest.warns(CacheWarning, match="malformed name"):
        table = sweep([{"x": 1, "scale": 1.0}], run_point, cache_dir=tmp_path)
    assert CALLS == [1] and table["mean"][0] != 999.0
    assert not bad.exists() and len(list(tmp_path.glob("*.parquet"))) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sweep([{"x": 1, "scale": 1.0}], run_point, cache_dir=tmp_path)  # the recomputed file is valid


FACTOR = 3


def run_factor(cfg: dict, seed: int) -> dict:
    return {"y": _times_factor(cfg["x"])}


def _times_factor(x: float) -> float:
    return x * FACTOR


def test_module_constants_and_helpers_enter_the_key(monkeypatch):
    before = run_fingerprint(run_factor)
    monkeypatch.setattr(sys.modules[__name__], "FACTOR", 4)  # a constant read by a helper it calls
    assert run_fingerprint(run_factor) != before
    monkeypatch.setattr(sys.modules[__name__], "FACTOR", 3)
    assert run_fingerprint(run_factor) == before


def test_fingerprint_of_set_literal_constant_is_the_same_in_every_process(tmp_path: Path):
    """``x in {...}`` compiles to a frozenset constant whose repr depends on PYTHONHASHSEED."""
    import os
    import subprocess

    (tmp_path / "setrun.py").write_text(
        "def run(c, seed):\n    return {'hit': c['x'] in {'alpha', 'beta', 'gamma', 'delta', 'epsilon'}}\n"
    )
    script = (
        "import setrun; from workbench.experiments import run_fingerprint; print(run_fingerprint(setrun.run))"
    )
    prints = set()
    for hashseed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": hashseed, "PYTHONPATH": str(tmp_path)}
        out = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        prints.add(out.stdout.strip())
    assert len(prints) == 1 and len(next(iter(prints))) == 64


class Doubler:
    """A same-module class that ``run_with_class`` builds and calls."""

    base = 2

    def apply(self, x: float) -> float:
        return x * self.base


def run_with_class(cfg: dict, seed: int) -> dict:
    return {"y": Doubler().apply(cfg["x"])}


class Stepper:
    """A callable class whose ``__call__`` delegates to another method."""

    def __call__(self, cfg: dict, seed: int) -> dict:
        return {"y": self.step(cfg["x"])}

    def step(self, x: float) -> float:
        return x + 1


def test_same_module_classes_enter_the_key(monkeypatch):
    before, callable_before = run_fingerprint(run_with_class), run_fingerprint(Stepper())
    monkeypatch.setattr(Doubler, "apply", lambda self, x: x * self.base + 1)  # other method code
    assert run_fingerprint(run_with_class) != before
    monkeypatch.undo()
    monkeypatch.setattr(Doubler, "base", 3)  # another class constant
    assert run_fingerprint(run_with_class) != before
    monkeypatch.undo()
    assert run_fingerprint(run_with_class) == before
    monkeypatch.setattr(Stepper, "step", lambda self, x: x + 2)  # a helper method, not __call__ itself
    assert run_fingerprint(Stepper()) != callable_before
    monkeypatch.undo()
    assert run_fingerprint(Stepper()) == callable_before
