"""Update latency of every control of every explorer: the time from a changed value to a new answer on screen.

Run: ``.venv/bin/python benchmarks/bench_widgets.py [--repeat 5]``. Each explorer is built as the app builds it
(in process, no browser); each control is moved ``repeat`` times between two values. ``quick`` is the time until
the output holds the new answer (the analytic one where a simulation follows; the browser adds its draw of the
Vega spec, a few tens of ms); ``full`` is the time until the background simulation's answer replaced it (``-``
where the answer is analytic only). The target is quick <= 0.5 s. Median and max over the repeats, and the
median as a ratio to ``../shared/bench/ref_loop.py`` measured in the same process (the machine's speed: lower
is better, comparable across machines).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import polars as pl

TARGET_S = 0.5


def _ref_seconds() -> float:
    """Seconds the reference loop takes for 100,000 customers (best of 3)."""
    path = Path(__file__).resolve().parents[2] / "shared" / "bench" / "ref_loop.py"
    spec = importlib.util.spec_from_file_location("ref_loop", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"missing {path}")
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    return 100_000 / ref.speed()


def _calibrations() -> None:
    """Give the sizing explorer's performance-model menu a second entry: a saved calibration of the H100 (the
    roofline's own parameters, a wide domain) in a temporary ``$WORKBENCH_CALIBRATIONS``, unless one is set."""
    import os
    import tempfile

    from workbench.hardware.calibrated import CALIBRATIONS_ENV, CalibratedModel, Domain

    if os.environ.get(CALIBRATIONS_ENV):
        return
    os.environ[CALIBRATIONS_ENV] = tempfile.mkdtemp(prefix="bench-widgets-")
    CalibratedModel("bench-h100", "H100-SXM", "Llama-3.1-8B", 1, {}, Domain(256, 16384, 131072)).save()


def _explorers() -> dict[str, object]:
    from workbench import traces
    from workbench.app.ui import ROUTING_REQUESTS
    from workbench.planning import SLO, workload
    from workbench.tco import CostBasis
    from workbench.whatif import capacity_at_slo
    from workbench.widgets.energy import tco_explorer
    from workbench.widgets.fleet import routing_explorer
    from workbench.widgets.instance import instance_explorer
    from workbench.widgets.planning import fleet_sizing_explorer
    from workbench.widgets.traces import trace_explorer
    from workbench.widgets.whatif import modes_explorer

    _calibrations()
    azure = traces.load("azure_code", allow_download=False)
    cap = capacity_at_slo(
        workload(azure, 20.0), SLO(2.0, 0.1), ["H100", "A100", "L40S", "L4", "H200"], instances=4
    )
    return {
        "workloads": trace_explorer(),
        "instance": instance_explorer(azure.requests.select("prompt_tokens", "output_tokens"), requests=1000),
        "routing": routing_explorer(azure.with_requests(azure.requests.head(ROUTING_REQUESTS)), instances=4),
        "sizing": fleet_sizing_explorer(),
        "tco": tco_explorer(),
        "whatif": modes_explorer(cap, CostBasis(utilisation=0.6, pue=1.2, lifetime_years=5.0)),
    }


def _alternate(control) -> tuple[object, object]:
    """Two values to move ``control`` between."""
    value = control.value
    if hasattr(control, "options") and not isinstance(value, tuple):
        options = [o[1] if isinstance(o, tuple) else o for o in control.options]
        other = next(o for o in options if o != value)
        return other, value
    if isinstance(value, tuple):  # multiple selection: drop or add one option
        options = [o[1] if isinstance(o, tuple) else o for o in control.options]
        return (value[:-1] if len(value) > 1 else (*value, next(o for o in options if o not in value))), value
    if isinstance(value, bool):
        return not value, value
    step = getattr(control, "step", 1) or 1
    top = getattr(control, "max", value + step)
    return (value + step if value + step <= top else value - step), value


def bench(repeat: int) -> pl.DataFrame:
    rows = []
    ref = _ref_seconds()
    boxes = _explorers()
    for box in boxes.values():  # every explorer's first background run done: none competes for the GIL below
        box.live.wait(300)
    for name, box in boxes.items():
        live = box.live
        for label, control in box.controls.items():
            if name == "workloads" and label == "seed":
                continue  # a text box: same path as the dropdown
            quick, full = [], []
            a, b = _alternate(control)
            for i in range(repeat):
                start = time.perf_counter()
                control.value = a if i % 2 == 0 else b  # observers run synchronously: quick answer shown
                quick.append(time.perf_counter() - start)
                if live.wait(300) and "slow_s" in live.timings and live._pending is None:
                    full.append(time.perf_counter() - start)
                live.timings.pop("slow_s", None)
            if control.value != b:  # leave the control as found, so the next control starts from the default
                control.value = b
                live.wait(300)
            rows.append({
                "explorer": name, "control": label,
                "quick_median_s": statistics.median(quick), "quick_max_s": max(quick),
                "full_median_s": statistics.median(full) if full else None,
                "quick_vs_ref": statistics.median(quick) / ref,
            })  # fmt: skip
            print(f"{name:10s} {label:12s} quick {rows[-1]['quick_median_s']:.3f} s (max {max(quick):.3f})"
                  + (f", full {rows[-1]['full_median_s']:.2f} s" if full else ""), flush=True)  # fmt: skip
    print(f"reference loop: {ref:.3f} s")
    return pl.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    table = bench(args.repeat)
    with pl.Config(tbl_rows=60, tbl_width_chars=140, float_precision=3):
        print(table)
    slow = table.filter(pl.col("quick_median_s") > TARGET_S)
    print(f"{table.height - slow.height} of {table.height} controls answer within {TARGET_S} s (median)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
