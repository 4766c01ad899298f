"""Parameter sweeps: a pure ``run(config, seed)`` over many configurations, in parallel, with a resumable cache.

:func:`sweep` evaluates ``run`` once per configuration and concatenates the results into one polars table whose
first columns are the configuration's fields. Three guarantees:

* **Reproducible.** Each point's seed is derived from one root :class:`numpy.random.SeedSequence` and a hash of
  the configuration (not its position), so the table is identical whether the sweep runs sequentially, on
  ``n_jobs`` processes or on a Dask cluster, and whether points come from the cache or are recomputed.
* **Resumable.** With ``cache_dir`` every finished point is written at once to its own Parquet file named by a
  hash of (configuration, seed, ``run``'s name, package version); a rerun of an interrupted sweep computes only
  the missing points.
* **Never silently wrong.** The file name carries the SHA-256 of its bytes; a file whose bytes do not match (a
  truncated write, a flipped bit) is reported with a :class:`CacheWarning`, deleted and recomputed.

Backends (joblib): ``None`` (sequential when ``n_jobs == 1``, else ``"loky"`` processes), ``"loky"``,
``"threading"``, ``"multiprocessing"`` or ``"dask"``. For Dask, create a ``distributed.Client`` first (any
cluster: ``Client(processes=False)`` locally, or the scheduler address of a real cluster); joblib then sends
every point to it::

    from dask.distributed import Client
    with Client(n_workers=4):
        table = sweep(configs, run_one, backend="dask", cache_dir="cache/")

Examples
--------
>>> import numpy as np
>>> def run_one(cfg, seed):
...     rng = np.random.default_rng(seed)
...     return {"mean": float(rng.exponential(cfg["scale"], 1000).mean())}
>>> table = sweep(grid(scale=[1.0, 2.0]), run_one, seed=1)
>>> table.columns
['scale', 'point_seed', 'mean']
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import itertools
import json
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

import workbench
from workbench.config import require_choice
from workbench.errors import ConfigError, WorkbenchError

__all__ = ["BACKENDS", "CacheWarning", "config_key", "config_record", "grid", "point_seed", "sweep"]

#: Accepted values of ``backend`` (``None`` picks sequential or loky from ``n_jobs``).
BACKENDS: tuple[str, ...] = ("sequential", "loky", "threading", "multiprocessing", "dask")

Config = Mapping[str, Any] | Any  # a mapping or a dataclass instance
RunFn = Callable[[Any, int], Mapping[str, Any] | pl.DataFrame]


class CacheWarning(UserWarning):
    """A cache file was unreadable or failed its checksum and is being recomputed."""


# --------------------------------------------------------------------------------------------- configurations


def grid(**axes: Iterable[Any]) -> list[dict[str, Any]]:
    """Cartesian product of named axes as a list of dicts (the last axis varies fastest).

    >>> grid(gpu=["H100", "A100"], tp=[1, 2])[:2]
    [{'gpu': 'H100', 'tp': 1}, {'gpu': 'H100', 'tp': 2}]
    """
    names = list(axes)
    values = [list(v) for v in axes.values()]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]


def _plain(value: Any, name: str) -> Any:
    """Convert a configuration value to JSON-able Python (dataclasses/mappings to dicts, numpy to Python)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name), f"{name}.{f.name}") for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{name}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, f"{name}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"configuration field {name!r} is not finite: {value!r}")
        return value
    raise ConfigError(
        f"configuration field {name!r} has unsupported type {type(value).__name__}; "
        "use numbers, strings, booleans, None, lists, dicts or dataclasses"
    )


def config_record(config: Config) -> dict[str, Any]:
    """Flat ``{column: value}`` view of a configuration (nested fields joined by ``.``, lists as JSON text)."""
    if not (isinstance(config, Mapping) or (dataclasses.is_dataclass(config) and not isinstance(config, type))):
        raise ConfigError(
            f"a sweep configuration must be a dict or a dataclass instance, got {type(config).__name__}"
        )
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        elif isinstance(value, list):
            out[prefix] = json.dumps(value, sort_keys=True)
        else:
            out[prefix] = value

    walk("", _plain(config, "config"))
    return out


def config_key(config: Config, *, seed: int = 0, run: Callable | None = None) -> str:
    """Hex SHA-256 of a configuration's canonical JSON, the root seed, ``run``'s name and package version."""
    payload = {
        "type": type(config).__qualname__ if not isinstance(config, Mapping) else "dict",
        "config": _plain(config, "config"),
        "seed": int(seed),
        "run": _run_name(run) if run is not None else None,
        "version": package_version(),
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def package_version() -> str:
    """The installed workbench version (``workbench.__version__``, else the distribution metadata)."""
    version = getattr(workbench, "__version__", None)
    if version is None:  # imported as a namespace package (e.g. a stale editable install)
        from importlib.metadata import version as dist_version

        version = dist_version("workbench")
    return str(version)


def _run_name(run: Callable) -> str:
    return f"{getattr(run, '__module__', '?')}.{getattr(run, '__qualname__', type(run).__qualname__)}"


def point_seed(config: Config, seed: int = 0) -> int:
    """The seed a sweep passes to ``run`` for ``config``: a child of ``SeedSequence(seed)`` keyed by the config.

    It depends on the configuration's content only (not its position), so reordering or extending a sweep does
    not change existing points. Configurations that should differ only in randomness need a field that differs
    (e.g. ``replication``).
    """
    digest = hashlib.sha256(config_key(config).encode()).digest()
    words = tuple(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4))
    child = np.random.SeedSequence(entropy=int(seed), spawn_key=words)
    return int(child.generate_state(2, np.uint32).astype(np.uint64) @ np.array([1, 2**32], dtype=np.uint64))


# --------------------------------------------------------------------------------------------------- results


def _as_frame(result: Any, index: int) -> pl.DataFrame:
    if isinstance(result, pl.DataFrame):
        return result
    if isinstance(result, Mapping):
        return pl.DataFrame([dict(result)])
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        return pl.DataFrame([config_record(result)])
    raise WorkbenchError(
        f"sweep point {index}: run returned {type(result).__name__}; "
        "return a dict of scalars or a polars DataFrame"
    )


def _with_config(frame: pl.DataFrame, record: dict[str, Any], index: int) -> pl.DataFrame:
    clash = [c for c in record if c in frame.columns]
    if clash:
        raise WorkbenchError(
            f"sweep point {index}: run returned column(s) {clash} "
            "that are also configuration fields (or 'point_seed')"
        )
    if frame.width == 0:
        return pl.DataFrame([record])
    lits = [pl.lit(v, dtype=pl.UInt64 if k == "point_seed" else None).alias(k) for k, v in record.items()]
    return frame.select([*lits, *frame.columns])


def _evaluate(run: RunFn, config: Config, seed: int, index: int) -> tuple[int, pl.DataFrame]:
    try:
        result = run(config, seed)
    except Exception as exc:  # annotate which point failed, keep the original exception type
        exc.add_note(f"in sweep point {index}: {config!r} (seed {seed})")
        raise
    return index, _as_frame(result, index)


# ----------------------------------------------------------------------------------------------------- cache


class _Cache:
    """One Parquet file per point: ``<key>.<sha256-of-bytes>.parquet``, written atomically."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def load(self, key: str) -> pl.DataFrame | None:
        for path in sorted(self.folder.glob(f"{key}.*.parquet")):
            data = path.read_bytes()
            expected = path.name.split(".")[1]
            problem = None
            if hashlib.sha256(data).hexdigest()[: len(expected)] != expected:
                problem = "checksum mismatch"
            else:
                try:
                    return pl.read_parquet(io.BytesIO(data))
                except Exception as exc:  # a file that passes the checksum but polars cannot read
                    problem = f"unreadable ({exc})"
            warnings.warn(
                f"cache file {path} is corrupted ({problem}); recomputing it", CacheWarning, stacklevel=4
            )
            path.unlink(missing_ok=True)
        return None

    def store(self, key: str, frame: pl.DataFrame) -> Path:
        buf = io.BytesIO()
        frame.write_parquet(buf, statistics=False)
        data = buf.getvalue()
        path = self.folder / f"{key}.{hashlib.sha256(data).hexdigest()[:32]}.parquet"
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return path


# ----------------------------------------------------------------------------------------------------- sweep


def _progress_enabled(progress: bool | None) -> bool:
    if progress is not None:
        return bool(progress)
    return bool(getattr(sys.stderr, "isatty", lambda: False)()) and "PYTEST_CURRENT_TEST" not in os.environ


def sweep(
    configs: Sequence[Config],
    run: RunFn,
    *,
    seed: int = 0,
    n_jobs: int = 1,
    cache_dir: str | os.PathLike | None = None,
    backend: str | None = None,
    progress: bool | None = None,
) -> pl.DataFrame:
    """Evaluate ``run(config, point_seed)`` for every configuration and return one table.

    Parameters
    ----------
    configs
        Configurations: dicts or (frozen) dataclass instances with scalar, list or nested fields.
    run
        Pure function ``run(config, seed) -> dict | pl.DataFrame``; ``seed`` is an ``int`` for
        ``numpy.random.default_rng`` (or a simulator's ``seed=``). It must be picklable (module level) for
        process backends.
    seed
        Root seed; each point gets :func:`point_seed` ``(config, seed)``.
    n_jobs
        Parallel workers (joblib semantics; ``-1`` = all cores).
    cache_dir
        Folder of the resumable Parquet cache; ``None`` disables caching.
    backend
        ``None`` or one of :data:`BACKENDS`; ``"dask"`` needs a running ``distributed.Client``.
    progress
        Show a tqdm bar; ``None`` shows it only when stderr is a terminal.

    Returns
    -------
    pl.DataFrame
        The configuration columns (from :func:`config_record`), a ``point_seed`` column, then ``run``'s
        columns; points in the order of ``configs`` (rows of one point stay together). Result columns that
        some points lack are filled with nulls.
    """
    configs = list(configs)
    if not configs:
        raise ConfigError("configs is empty: give at least one configuration to sweep")
    if backend is not None:
        require_choice("backend", backend, BACKENDS)
    if not (isinstance(n_jobs, int) and n_jobs != 0):
        raise ConfigError(f"n_jobs must be a non-zero integer, got {n_jobs!r}")
    records = [config_record(c) for c in configs]
    seeds = [point_seed(c, seed) for c in configs]
    cache = _Cache(cache_dir) if cache_dir is not None else None
    keys = [config_key(c, seed=seed, run=run) for c in configs]

    frames: dict[int, pl.DataFrame] = {}
    if cache is not None:
        for i, key in enumerate(keys):
            hit = cache.load(key)
            if hit is not None:
                frames[i] = hit
    todo = [i for i in range(len(configs)) if i not in frames]

    from tqdm.auto import tqdm

    with tqdm(
        total=len(configs), initial=len(frames), desc="sweep", disable=not _progress_enabled(progress)
    ) as bar:
        for i, frame in _execute(run, configs, seeds, todo, n_jobs=n_jobs, backend=backend):
            frames[i] = frame
            if cache is not None:
                cache.store(keys[i], frame)
            bar.update(1)

    parts = [_with_config(frames[i], {**records[i], "point_seed": seeds[i]}, i) for i in range(len(configs))]
    return pl.concat(parts, how="diagonal_relaxed")


def _execute(
    run: RunFn, configs: list, seeds: list[int], todo: list[int], *, n_jobs: int, backend: str | None
) -> Iterable[tuple[int, pl.DataFrame]]:
    """Yield ``(index, frame)`` for the points in ``todo`` as they finish (any order)."""
    if not todo:
        return
    if backend == "sequential" or (backend is None and n_jobs == 1):
        for i in todo:
            yield _evaluate(run, configs[i], seeds[i], i)
        return
    import joblib

    if backend == "dask":
        try:
            from distributed import get_client

            get_client()
        except (ImportError, ValueError) as exc:
            raise WorkbenchError(
                "backend='dask' needs dask.distributed and a running Client: "
                "`from dask.distributed import Client; client = Client()` before calling sweep"
            ) from exc
    with joblib.parallel_config(backend=backend or "loky", n_jobs=n_jobs):
        tasks = (joblib.delayed(_evaluate)(run, configs[i], seeds[i], i) for i in todo)
        yield from joblib.Parallel(return_as="generator_unordered")(tasks)
