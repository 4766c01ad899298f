"""The machine-speed baseline of every simulator benchmark: ``../shared/bench/ref_loop.py`` (a plain heapq
M/M/8 loop in pure Python), measured in the same process so that ratios cancel most of a shared machine's
noise; and which simulator core runs (compiled or pure Python).

Ratios are taken over CPU time (``time.process_time``) of this single-threaded process: on a machine shared
with other jobs the wall time of a run depends on how much of a core it got, its CPU time much less so (on an
idle machine the two agree)."""

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
    t = time.process_time()
    _REF.run(n)
    return n / (time.process_time() - t)


def core() -> str:
    """Which simulator core runs."""
    return "compiled (Cython)" if _pure.compiled() else "pure Python"


def timed_ratio(fn, work: int, repeat: int = 1):
    """Run ``fn()`` ``repeat`` times, each between two reference-loop runs; returns (result of the last run,
    best CPU seconds, best ratio of ``work`` per CPU second to the reference loop's customers per CPU second,
    the faster reference run counting)."""
    best_dt, best_ratio, out = float("inf"), 0.0, None
    for _ in range(repeat):
        ref = ref_speed()
        t = time.process_time()
        out = fn()
        dt = time.process_time() - t
        ref = max(ref, ref_speed())  # the faster of the two reference runs around it
        best_dt = min(best_dt, dt)
        best_ratio = max(best_ratio, work / dt / ref)
    return out, best_dt, best_ratio
