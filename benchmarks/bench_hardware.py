"""Speed of the performance models: scalar iteration_time and the closed-form decode runs.

Run: ``.venv/bin/python benchmarks/bench_hardware.py``. Prints microseconds per call and ratios against
baselines timed in the same process (a no-op method call; the generic O(k) ``DecodeRunMixin``).
"""

from __future__ import annotations

import timeit

from workbench.hardware import Batch, DecodeRunMixin, RooflineModel, TablePerformanceModel
from workbench.hardware.calibrate import calibrated_roofline


class _Generic(DecodeRunMixin):
    def __init__(self, inner):
        self.inner = inner

    def iteration_time(self, batch):
        return self.inner.iteration_time(batch)


class _Noop:
    def iteration_time(self, batch):
        return 0.0


def per_call_us(fn, number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def main() -> None:
    batch = Batch(prefill_tokens=512, prefill_context=512 * 256.0, decode_seqs=32, decode_context=32 * 1500)
    noop = per_call_us(lambda: _Noop().iteration_time(batch), 200_000)
    dense = RooflineModel("H100", "Llama-3.1-8B")
    moe = RooflineModel("H100", "Mixtral-8x7B", 2)
    cal = calibrated_roofline("llama2-70b", "h100-80gb", 4)
    table = TablePerformanceModel(
        (256.0, 1024.0, 4096.0), (0.01, 0.04, 0.2), (1.0, 16.0, 128.0), (0.007, 0.008, 0.012), 1e-8
    )
    print(f"baseline no-op method call: {noop:.3f} us")
    for name, perf in (("roofline dense", dense), ("roofline MoE", moe), ("calibrated", cal), ("table", table)):
        t = per_call_us(lambda perf=perf: perf.iteration_time(batch), 200_000)
        print(f"iteration_time {name:15s}: {t:.3f} us/call  ({t / noop:.1f}x no-op)")
    for k in (100, 1000):
        closed = per_call_us(lambda k=k: dense.decode_run_time(64, 64 * 1500, k), 50_000)
        generic = per_call_us(lambda k=k: _Generic(dense).decode_run_time(64, 64 * 1500, k), 200)
        print(
            f"decode_run_time k={k:5d}: closed {closed:.3f} us, generic {generic:.1f} us, "
            f"speed-up {generic / closed:.0f}x"
        )
        dur = dense.decode_run_time(64, 64 * 1500, k)
        closed = per_call_us(lambda dur=dur: dense.decode_iterations_within(64, 64 * 1500, dur), 50_000)
        generic = per_call_us(lambda dur=dur: _Generic(dense).decode_iterations_within(64, 64 * 1500, dur), 200)
        print(
            f"decode_iterations_within k={k:5d}: closed {closed:.3f} us, generic {generic:.1f} us, "
            f"speed-up {generic / closed:.0f}x"
        )


if __name__ == "__main__":
    main()
