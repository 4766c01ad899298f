"""Which implementation of the simulator's core runs.

The compiled one (Cython builds of the ``.py`` modules listed in :data:`CORE`, typed by the ``.pxd`` files
beside them; ``setup.py`` builds them in place at ``pip install -e .``) or the pure-Python one (the ``.py``
files themselves, the reference).

The pure-Python modules are loaded when ``WORKBENCH_PURE_PYTHON=1``, when a compiled build is missing, and
when it is *stale* (older than its ``.py`` or ``.pxd``: an edited source is never shadowed by an old build).
It is all or nothing: the compiled modules share typed classes (``cimport``), so one missing or stale build
makes every core module load from its source.
CI runs the suite on the compiled core and compares its results with the pure-Python core's
(``tests/test_compiled_core.py``).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path

#: Modules that ``setup.py`` compiles (each has a ``.py`` and a ``.pxd``).
CORE = (
    "workbench.hardware.closed_forms",
    "workbench.sim.request",
    "workbench.sim.kvcache",
    "workbench.sim.engine",
    "workbench.sim.instance",
    "workbench.sim.simulation",
    "workbench.sim.controller",
)
#: Environment variable that forces the pure-Python implementation.
ENV = "WORKBENCH_PURE_PYTHON"
_ROOT = Path(__file__).parent


def requested() -> bool:
    """Whether the environment asks for the pure-Python implementation."""
    return os.environ.get(ENV, "") not in ("", "0")


def _paths(name: str) -> tuple[Path, list[Path]]:
    """Return the ``.py`` source of core module ``name`` and its compiled builds beside it."""
    source = _ROOT.joinpath(*name.split(".")[1:]).with_suffix(".py")
    builds = [source.with_suffix(s) for s in importlib.machinery.EXTENSION_SUFFIXES]
    return source, [b for b in builds if b.exists()]


def fresh_build(name: str) -> bool:
    """Whether core module ``name`` has a compiled build newer than its ``.py`` and ``.pxd``."""
    source, builds = _paths(name)
    if not builds:
        return False
    newest_source = max(p.stat().st_mtime for p in (source, source.with_suffix(".pxd")) if p.exists())
    return builds[0].stat().st_mtime >= newest_source


_all_fresh: bool | None = None


def all_fresh() -> bool:
    """Whether every core module has a fresh build (decided once per process)."""
    global _all_fresh
    if _all_fresh is None:
        _all_fresh = all(fresh_build(name) for name in CORE)
    return _all_fresh


class _CoreFinder:
    """Meta-path finder choosing between a core module's source and its compiled build.

    A core module comes from its ``.py`` unless the compiled core is wanted and every module of it has a fresh
    build.
    """

    @staticmethod
    def find_spec(name: str, path=None, target=None):
        if name not in CORE or (not requested() and all_fresh()):
            return None  # the default machinery loads the compiled build
        source, _ = _paths(name)
        loader = importlib.machinery.SourceFileLoader(name, str(source))
        return importlib.util.spec_from_file_location(name, source, loader=loader)


def install() -> None:
    """Put the core's finder first on ``sys.meta_path`` (``workbench/__init__`` does, before any import)."""
    if not any(f is _CoreFinder for f in sys.meta_path):
        sys.meta_path.insert(0, _CoreFinder)


def is_compiled(function: object) -> bool:
    """Whether ``function`` was compiled by Cython.

    A module of the core passes one of its own functions to learn whether it runs as its compiled build (typed
    fast paths) or as its ``.py`` source.
    """
    return type(function).__name__ == "cython_function_or_method"


def compiled() -> bool:
    """Whether the simulator runs on its compiled core (every core module loaded from a compiled build)."""
    import importlib

    return all(
        not str(getattr(importlib.import_module(name), "__file__", "")).endswith(".py") for name in CORE
    )
