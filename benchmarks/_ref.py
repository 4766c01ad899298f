"""The machine-speed baseline of every simulator benchmark: ``../shared/bench/ref_loop.py`` (a plain heapq
M/M/8 loop in pure Python), measured in the same process so that ratios cancel most of a shared machine's
noise; and which simulator core runs (compiled or pure Python)."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

from workbench import _pure

REF_LOOP = Path(__file__).resolve().parents[1].parent / "shared" / "bench" / "ref_loop.py"


def _module():
    if not REF_LOOP.exists():
        return None
    spec = importlib.util.spec_from_file_location("ref_loop", REF_LOOP)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


_REF = _module()


def ref_speed(n: int = 100_000) -> float:
    """Customers per second of the reference loop now (one run; ``nan`` without the file)."""
    if _REF is None:
        return float("nan")
    t = time.perf_counter()
    _REF.run(n)
    return n / (time.perf_counter() - t)


def core() -> str:
    """Which simulator core runs."""
    return "compiled (Cython)" if _pure.compiled() else "pure Python"


def timed_ratio(fn, work: int, repeat: int = 1):
    """Run ``fn()`` ``repeat`` times, each right after a reference-loop run; returns (result of the last run,
    best seconds, best ratio of ``work`` per second to the reference loop's customers per second)."""
    best_dt, best_ratio, out = float("inf"), 0.0, None
    for _ in range(repeat):
        ref = ref_speed()
        t = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t
        ref = max(ref, ref_speed())  # the faster of the two reference runs around it
        best_dt = min(best_dt, dt)
        best_ratio = max(best_ratio, work / dt / ref)
    return out, best_dt, best_ratio
