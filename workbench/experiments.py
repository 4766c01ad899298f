"""Parameter sweeps: a pure ``run(config, seed)`` over many configurations, in parallel, with a resumable cache.

:func:`sweep` evaluates ``run`` once per configuration and concatenates the results into one polars table whose
first columns are the configuration's fields. Three guarantees:

* **Reproducible.** Each point's seed is derived from one root :class:`numpy.random.SeedSequence` and a hash of
  the configuration (not its position), so the table is identical whether the sweep runs sequentially, on
  ``n_jobs`` processes or on a Dask cluster, and whether points come from the cache or are recomputed.
* **Resumable.** With ``cache_dir`` every finished point is written at once to its own Parquet file named by a
  hash of (configuration, root seed, a fingerprint of ``run``, package version); a rerun of an interrupted sweep
  computes only the missing points.
* **Checked.** The fingerprint of ``run`` (:func:`run_fingerprint`) covers its code, defaults, closure values,
  instance state and the functions, classes and immutable constants of its own module that it uses, so two
  lambdas, two ``functools.partial`` or two instances of a callable class that compute different things never
  share a cache entry; a callable it cannot fingerprint is refused with a clear error (pass ``cache_key=``
  then). It cannot see everything: mutable module globals (lists, dicts) and code in other modules than
  ``run``'s own (other than :mod:`workbench`, covered by the package version) do not enter, so a ``run`` that
  depends on those must be given a ``cache_key=`` that changes with them. The file name carries the SHA-256 of
  its bytes; a file whose bytes or name do not match (a truncated write, a flipped bit, a renamed file) is
  reported with a :class:`CacheWarning`, deleted and recomputed.

Backends (joblib): ``None`` (sequential when ``n_jobs == 1``, else ``"loky"`` processes), ``"loky"``,
``"threading"``, ``"multiprocessing"`` or ``"dask"``. For Dask (``pip install 'workbench[dask]'``), create a
``distributed.Client`` first (``Client(n_workers=4)`` starts a local process cluster, or give the scheduler
address of a real cluster); joblib then sends every point to it, pickled, so ``run`` and the configurations
must be importable on the workers (module-level functions or instances of module-level classes)::

    from dask.distributed import Client
    with Client(n_workers=4):
        table = sweep(configs, run_one, backend="dask", cache_dir="cache/")

The cache folder must then be visible to the process calling :func:`sweep` (workers only compute; the caller
writes the cache).

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
import enum
import functools
import hashlib
import io
import itertools
import json
import math
import os
import re
import types
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

import workbench
from workbench._progress import progress_enabled
from workbench.config import require_choice
from workbench.errors import ConfigError, WorkbenchError
from workbench.seeds import Streams

__all__ = [
    "BACKENDS",
    "CacheWarning",
    "config_key",
    "config_record",
    "grid",
    "point_seed",
    "progress_enabled",
    "run_fingerprint",
    "sweep",
]

#: Accepted values of ``backend`` (``None`` picks sequential or loky from ``n_jobs``).
BACKENDS: tuple[str, ...] = ("sequential", "loky", "threading", "multiprocessing", "dask")

Config = Mapping[str, Any] | Any  # a mapping or a dataclass instance
RunFn = Callable[[Any, int], Mapping[str, Any] | pl.DataFrame]


class CacheWarning(UserWarning):
    """A cache file was unreadable or failed its checksum and is being recomputed."""


# --------------------------------------------------------------------------------------------- configurations


def grid(**axes: Iterable[Any]) -> list[dict[str, Any]]:
    """Cartesian product of named axes as a list of dicts (the last axis varies fastest).

    Parameters
    ----------
    **axes
        Axis name -> its values.

    Returns
    -------
    list of dict
        One configuration per combination.

    Examples
    --------
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
    """Flat ``{column: value}`` view of a configuration (nested fields joined by ``.``, lists as JSON text).

    Parameters
    ----------
    config
        A mapping or a dataclass instance.

    Returns
    -------
    dict
        Column name -> plain value.
    """
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


def _canonical(config: Config) -> dict[str, Any]:
    """Return the configuration's content: its type (``"dict"`` for mappings) and its fields as JSON.

    The fields are plain JSON values.
    """
    return {
        "type": type(config).__qualname__ if not isinstance(config, Mapping) else "dict",
        "config": _plain(config, "config"),
    }


def _digest(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def config_key(
    config: Config, *, seed: int = 0, run: Callable | None = None, cache_key: str | None = None
) -> str:
    """Hex SHA-256 of a configuration, the root seed, what ``run`` computes and the package version.

    ``run`` enters through :func:`run_fingerprint` (its code, defaults, closure, bound state); ``cache_key``,
    when given, replaces that fingerprint (for callables that cannot be fingerprinted, or to pin a key by hand).

    Parameters
    ----------
    config
        The configuration (mapping or dataclass of plain values).
    seed
        Root seed of the sweep.
    run
        The run function whose code enters the key.
    cache_key
        A key to use instead of ``run``'s fingerprint.

    Returns
    -------
    str
        64 hex digits.
    """
    token = _run_token(run, cache_key)
    return _key(config, seed, token)


def _run_token(run: Callable | None, cache_key: str | None) -> Any:
    if cache_key is not None:
        if not (isinstance(cache_key, str) and cache_key):
            raise ConfigError(f"cache_key must be a non-empty string, got {cache_key!r}")
        return {"cache_key": cache_key}
    if run is None:
        return None
    return {"name": _run_name(run), "fingerprint": run_fingerprint(run)}


def _key(config: Config, seed: int, run_token: Any) -> str:
    return _digest({**_canonical(config), "seed": int(seed), "run": run_token, "version": package_version()})


def package_version() -> str:
    """Return the installed workbench version (``workbench.__version__``, else the distribution metadata)."""
    version = getattr(workbench, "__version__", None)
    if version is None:  # imported as a namespace package (e.g. a stale editable install)
        from importlib.metadata import version as dist_version

        version = dist_version("workbench")
    return str(version)


def _run_name(run: Callable) -> str:
    return f"{getattr(run, '__module__', '?')}.{getattr(run, '__qualname__', type(run).__qualname__)}"


def point_seed(config: Config, seed: int = 0) -> int:
    """Return the seed a sweep passes to ``run`` for ``config``.

    A child of ``SeedSequence(seed)`` keyed by the config.

    It depends on the configuration's content and the root seed only (not its position, not ``run``, not the
    package version), so reordering or extending a sweep, or upgrading the package, does not change existing
    points' seeds. Configurations that should differ only in randomness need a field that differs (e.g.
    ``replication``).

    Parameters
    ----------
    config
        A sweep configuration (mapping or dataclass of plain values).
    seed
        Root seed of the sweep.

    Returns
    -------
    int
        A 64-bit seed.
    """
    digest = hashlib.sha256(_digest(_canonical(config)).encode()).digest()
    words = tuple(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4))
    return Streams(int(seed)).integer(words)


# ---------------------------------------------------------------------------------- fingerprint of ``run``

#: Deepest nesting of objects :func:`run_fingerprint` follows.
_MAX_DEPTH = 24
#: Depth up to which the code of same-module functions that ``run`` calls enters the fingerprint.
_FOLLOW_DEPTH = 8
_CODE_TYPES = (types.FunctionType, types.MethodType, functools.partial)
#: Class attributes that say where a class is defined, not what it computes (left out of its fingerprint).
_CLASS_PLACE = frozenset({"__module__", "__firstlineno__", "__static_attributes__"})


class _Opaque(ConfigError):
    """A part of ``run`` whose state cannot be fingerprinted."""


def run_fingerprint(run: Callable) -> str:
    """Hex SHA-256 of what ``run`` computes, stable across processes and sessions (part of the cache key).

    What enters:

    * plain functions and lambdas: qualified name, bytecode and constants (nested code included), argument
      defaults, closure values, and the module-level names the code reads that hold immutable plain values
      (numbers, strings, tuples and frozensets of them), other functions of the same module or classes of the
      same module (their methods and plain class attributes), followed in turn a few calls deep;
    * ``functools.partial``: the function, the bound positional and keyword arguments;
    * bound methods: the function and the instance;
    * callable instances: the class (all its methods, and those of its bases from the same module) and the
      instance's state, from ``__sweep_key__()`` when the class defines it (a string), else the dataclass
      fields (``compare=True`` ones), else ``__dict__`` and ``__slots__``; values may be plain data, numpy
      arrays, polars frames, dataclasses and other such objects.

    What does not enter, so a change there does **not** invalidate the cache:

    * mutable module globals (lists, dicts, sets, counters): they are left out on purpose, since a counter or
      a memo a function writes would otherwise change the key on every run;
    * the code of functions and classes in other modules than the one that defines them (the package version
      in the cache key covers :mod:`workbench` itself, nothing covers your other modules);
    * line numbers and file names (moving a function does not invalidate its cache).

    When ``run`` depends on any of these, pass ``cache_key=`` to :func:`sweep` and change it with them.
    Bytecode is specific to the Python version, so a new Python recomputes the cache.

    Raises
    ------
    ConfigError
        A part of ``run`` has no stable state (an object without fields whose ``repr`` shows only its memory
        address, a lock, a generator ...); pass ``cache_key=`` to :func:`sweep` instead.
    """
    try:
        token = _token(run, "run", set(), 0)
    except _Opaque as exc:
        raise ConfigError(
            f"cannot fingerprint {exc} for the sweep cache key; give its class a __sweep_key__() method "
            "returning a string, make it a dataclass, or pass cache_key='...' to sweep"
        ) from None
    return _digest(token)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _frame_token(frame: pl.DataFrame) -> list:
    schema = [[name, str(dtype)] for name, dtype in frame.schema.items()]
    if frame.height == 0:
        return ["frame", schema, ""]
    try:
        rows = b"".join(frame.hash_rows(seed=s).to_numpy().tobytes() for s in (0, 1))  # 128 bits a row
    except Exception:  # a column type hash_rows does not support: its IPC bytes
        buf = io.BytesIO()
        frame.write_ipc(buf, compression="uncompressed")
        rows = buf.getvalue()
    return ["frame", schema, pl.__version__, _sha(rows)]


def _code_token(code: types.CodeType) -> list:
    # constants through _token, not repr: a set literal's frozenset has a hash-seed-dependent repr order
    consts = [
        _code_token(c)
        if isinstance(c, types.CodeType)
        else ["c", type(c).__name__, _token(c, "constant", set(), 0)]
        for c in code.co_consts
    ]
    return ["code", _sha(code.co_code), consts, list(code.co_names), code.co_argcount, code.co_kwonlyargcount]


def _global_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            names |= _global_names(c)
    return names


def _immutable_plain(value: Any) -> bool:
    if value is None or isinstance(value, bool | int | float | str | bytes | np.generic):
        return True
    if isinstance(value, tuple | frozenset):
        return all(_immutable_plain(v) for v in value)
    return False


def _function_token(fn: types.FunctionType, where: str, seen: set[int], depth: int) -> list:
    name = f"{fn.__module__}.{fn.__qualname__}"
    refs: dict[str, Any] = {}
    module = fn.__module__
    for ref in sorted(_global_names(fn.__code__)):
        if ref not in fn.__globals__:
            continue
        value = fn.__globals__[ref]
        if _immutable_plain(value):
            refs[ref] = _token(value, f"{where} global {ref!r}", seen, depth + 1)
        elif isinstance(value, (*_CODE_TYPES, type)) and getattr(value, "__module__", None) == module:
            # helpers and classes of the same module, a few calls deep (deeper ones enter by name only)
            if depth >= _FOLLOW_DEPTH:
                refs[ref] = ref
            elif isinstance(value, type):
                refs[ref] = _class_token(value, f"{where} global {ref!r}", seen, depth + 1)
            else:
                refs[ref] = _token(value, f"{where} global {ref!r}", seen, depth + 1)
    closure = [_cell(c) for c in (fn.__closure__ or ())]
    return [
        "function",
        name,
        _code_token(fn.__code__),
        _token(fn.__defaults__, f"{where} defaults", seen, depth + 1),
        _token(fn.__kwdefaults__, f"{where} keyword defaults", seen, depth + 1),
        [
            _token(v, f"{where} closure variable {n!r}", seen, depth + 1)
            for n, v in zip(fn.__code__.co_freevars, closure, strict=True)
        ],
        refs,
    ]


def _class_token(cls: type, where: str, seen: set[int], depth: int) -> list:
    """Return a class's code: its methods (and its same-module bases') and plain class attributes."""
    if id(cls) in seen:  # a method that names its own class
        return ["type", cls.__module__, cls.__qualname__]
    seen = seen | {id(cls)}
    members: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if klass.__module__ != cls.__module__:
            continue
        for attr, value in vars(klass).items():
            if attr in _CLASS_PLACE:
                continue
            member = _member_code(value)
            if member is None and _immutable_plain(value):
                member = value
            if member is not None:
                members[f"{klass.__qualname__}.{attr}"] = _token(member, f"{where}.{attr}", seen, depth + 1)
    return ["class", cls.__module__, cls.__qualname__, {k: members[k] for k in sorted(members)}]


def _member_code(value: Any) -> list | None:
    """Return the functions behind a class attribute (method, static/class method, property), else ``None``."""
    if isinstance(value, staticmethod | classmethod):
        value = value.__func__
    elif isinstance(value, functools.cached_property):
        value = value.func
    elif isinstance(value, property):
        return [f for f in (value.fget, value.fset, value.fdel) if f is not None]
    return [value] if isinstance(value, types.FunctionType) else None


def _cell(cell: types.CellType) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # a free variable not assigned yet
        return None


def _state(obj: Any) -> dict[str, Any] | None:
    """Return an object's fields: dataclass fields, else ``__dict__`` and ``__slots__``.

    ``None`` when it has none.
    """
    if dataclasses.is_dataclass(obj):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.compare}
    state: dict[str, Any] = {}
    for cls in type(obj).__mro__:
        for slot in getattr(cls, "__slots__", ()):
            if slot not in ("__dict__", "__weakref__") and hasattr(obj, slot):
                state[slot] = getattr(obj, slot)
    state.update(getattr(obj, "__dict__", {}))
    return state if state or hasattr(obj, "__dict__") else None


def _token(obj: Any, where: str, seen: set[int], depth: int) -> Any:
    """Return a JSON-able structure that identifies ``obj``'s content (see :func:`run_fingerprint`)."""
    if depth > _MAX_DEPTH:
        raise _Opaque(f"{where} (nested more than {_MAX_DEPTH} levels deep)")
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    if isinstance(obj, float):
        return ["float", repr(obj)]
    if isinstance(obj, bytes | bytearray):
        return ["bytes", _sha(bytes(obj))]
    if isinstance(obj, np.generic):
        return ["np", obj.dtype.str, repr(obj.item())]
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            return ["ndarray", list(obj.shape), [_token(v, f"{where}[]", seen, depth + 1) for v in obj.ravel()]]
        return ["ndarray", obj.dtype.str, list(obj.shape), _sha(np.ascontiguousarray(obj).tobytes())]
    if isinstance(obj, pl.Series):
        return _frame_token(obj.to_frame())
    if isinstance(obj, pl.DataFrame):
        return _frame_token(obj)
    if isinstance(obj, list | tuple):
        return [type(obj).__name__, [_token(v, f"{where}[{i}]", seen, depth + 1) for i, v in enumerate(obj)]]
    if isinstance(obj, set | frozenset):
        items = [_token(v, f"{where} item", seen, depth + 1) for v in obj]
        return ["set", sorted(items, key=lambda t: json.dumps(t, sort_keys=True))]
    if isinstance(obj, Mapping):
        items = [
            [_token(k, f"{where} key", seen, depth + 1), _token(v, f"{where}[{k!r}]", seen, depth + 1)]
            for k, v in obj.items()
        ]
        return ["dict", sorted(items, key=lambda t: json.dumps(t, sort_keys=True))]
    if isinstance(obj, types.ModuleType):
        return ["module", obj.__name__]
    if isinstance(obj, type):
        return ["type", obj.__module__, obj.__qualname__]
    if isinstance(obj, enum.Enum):
        return ["enum", type(obj).__module__, type(obj).__qualname__, obj.name]
    if isinstance(obj, types.CodeType):
        return _code_token(obj)
    if id(obj) in seen:  # a cycle (or a repeat) back to an object already being described
        return ["seen", type(obj).__qualname__]
    seen = seen | {id(obj)}
    if isinstance(obj, functools.partial):
        return [
            "partial",
            _token(obj.func, f"{where}.func", seen, depth + 1),
            _token(obj.args, f"{where}.args", seen, depth + 1),
            _token(obj.keywords, f"{where}.keywords", seen, depth + 1),
        ]
    if isinstance(obj, types.MethodType):
        return [
            "method",
            _token(obj.__func__, where, seen, depth + 1),
            _token(obj.__self__, f"{where}.__self__", seen, depth + 1),
        ]
    if isinstance(obj, types.FunctionType):
        return _function_token(obj, where, seen, depth)
    if isinstance(obj, types.BuiltinFunctionType | types.BuiltinMethodType | np.ufunc):
        owner = getattr(obj, "__self__", None)
        return [
            "builtin",
            getattr(obj, "__module__", None),
            getattr(obj, "__qualname__", obj.__name__),
            None
            if owner is None or isinstance(owner, types.ModuleType)
            else _token(owner, f"{where}.__self__", seen, depth + 1),
        ]
    cls = type(obj)
    name = f"{cls.__module__}.{cls.__qualname__}"
    call = (
        _class_token(cls, f"{where} class", seen, depth + 1)
        if callable(obj) and isinstance(cls.__call__, types.FunctionType)
        else None
    )
    custom = getattr(obj, "__sweep_key__", None)
    if callable(custom):
        return ["object", name, call, ["sweep_key", str(custom())]]
    state = _state(obj)
    if state is not None:
        return [
            "object",
            name,
            call,
            {k: _token(v, f"{where}.{k}", seen, depth + 1) for k, v in sorted(state.items())},
        ]
    text = repr(obj)
    if cls.__repr__ is not object.__repr__ and " at 0x" not in text:
        return ["object", name, call, ["repr", text]]
    raise _Opaque(f"{where} (a {cls.__qualname__} with no fields and no stable repr)")


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


#: Hex digits of a cache file's checksum (the leading part of the SHA-256 of its bytes).
_CHECKSUM_HEX = 32
_CHECKSUM = re.compile(f"[0-9a-f]{{{_CHECKSUM_HEX}}}")


class _Cache:
    """One Parquet file per point: ``<key>.<first 32 hex digits of sha256 of its bytes>.parquet``, atomic."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def load(self, key: str) -> pl.DataFrame | None:
        for path in sorted(self.folder.glob(f"{key}.*.parquet")):
            expected = path.name[len(key) + 1 : -len(".parquet")]
            problem = None
            if not _CHECKSUM.fullmatch(expected):
                problem = f"malformed name: {expected!r} is not a {_CHECKSUM_HEX}-digit hex checksum"
            else:
                data = path.read_bytes()
                if hashlib.sha256(data).hexdigest()[:_CHECKSUM_HEX] != expected:
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
        path = self.folder / f"{key}.{hashlib.sha256(data).hexdigest()[:_CHECKSUM_HEX]}.parquet"
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return path


# ----------------------------------------------------------------------------------------------------- sweep


def sweep(
    configs: Sequence[Config],
    run: RunFn,
    *,
    seed: int = 0,
    n_jobs: int = 1,
    cache_dir: str | os.PathLike | None = None,
    backend: str | None = None,
    progress: bool | None = None,
    cache_key: str | None = None,
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
        Folder of the resumable Parquet cache; ``None`` disables caching. A point's file is keyed by
        :func:`config_key`: the configuration, ``seed``, ``run``'s fingerprint (:func:`run_fingerprint`: code,
        defaults, closure, instance state) and the package version.
    backend
        ``None`` or one of :data:`BACKENDS`; ``"dask"`` needs a running ``distributed.Client``.
    progress
        Show a tqdm bar; ``None`` shows it in a terminal or a Jupyter/IPython kernel, not in pytest or logs.
    cache_key
        With ``cache_dir``: a string that stands for ``run`` in the cache key, instead of
        :func:`run_fingerprint` (for callables it cannot fingerprint). Change it whenever ``run`` changes.

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
        backend = require_choice("backend", backend, BACKENDS)
    if not (isinstance(n_jobs, int) and n_jobs != 0):
        raise ConfigError(f"n_jobs must be a non-zero integer, got {n_jobs!r}")
    records = [config_record(c) for c in configs]
    seeds = [point_seed(c, seed) for c in configs]
    cache = _Cache(cache_dir) if cache_dir is not None else None
    keys: list[str] = []
    if cache is not None:  # the fingerprint of run is only needed (and only checked) for the cache
        token = _run_token(run, cache_key)
        keys = [_key(c, seed, token) for c in configs]

    frames: dict[int, pl.DataFrame] = {}
    if cache is not None:
        for i, key in enumerate(keys):
            hit = cache.load(key)
            if hit is not None:
                frames[i] = hit
    todo = [i for i in range(len(configs)) if i not in frames]

    from tqdm.auto import tqdm

    with tqdm(
        total=len(configs), initial=len(frames), desc="sweep", disable=not progress_enabled(progress)
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
