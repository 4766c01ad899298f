"""Workload explorer: pick a dataset or a generator, see its summary and charts, optionally with a fitted twin.

The logic is :func:`explore` (pure: name, options -> traces, table, charts); :func:`trace_explorer` only wires
ipywidgets controls to it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from workbench import presets, traces
from workbench.traces import Trace

if TYPE_CHECKING:
    import ipywidgets


def _same_trace(trace: Trace, seed: int) -> Trace:
    """Return ``trace`` whatever the ``seed`` (a menu entry of a trace added by hand)."""
    return trace


def sources() -> dict[str, Callable[[int], Trace]]:
    """Return the available choices: the local :mod:`workbench.presets` (datasets and generators).

    They are keyed by their menu line; values map a seed to a :class:`Trace`.
    """
    return {
        f"{name}: {presets.get(name).description}": functools.partial(presets.generate, name)
        for name in presets.available()
    }


@dataclass(frozen=True)
class Exploration:
    """What the explorer shows: the traces, their :func:`~workbench.traces.describe` table and charts."""

    traces: list[Trace]
    table: pl.DataFrame
    charts: dict


def explore(source: str | Trace, *, twin: bool = True, seed: int = 0) -> Exploration:
    """Load or generate ``source`` (a name from :func:`sources`, or a Trace), optionally add its fitted twin."""
    from workbench.viz.traces import CHARTS

    trace = source if isinstance(source, Trace) else sources()[source](seed)
    items = [trace]
    if twin and trace.has_arrivals and len(trace) >= 3:
        items.append(traces.fit(trace).generate(duration_s=trace.duration_s, seed=seed + 1))
    charts = {name: build(items) for name, build in CHARTS.items()}
    return Exploration(items, traces.describe(items), charts)


def trace_explorer(default: str | None = None, *, results=None) -> ipywidgets.VBox:
    """Build the trace explorer: source dropdown, twin checkbox, seed, then the summary table and charts.

    Every change shows the workload itself at once; its fitted twin (a fit and a generation, about a second)
    is added in the background. ``box.add_source(label, trace)`` offers another trace (the app's uploads).

    Parameters
    ----------
    default
        Initially selected source (a key of :func:`sources`; default: the first one).
    results
        A :class:`~workbench.widgets.live.Results` receiving the summary table and charts shown.

    Returns
    -------
    ipywidgets.VBox
        The controls, a status line and an output area that :func:`explore` refills on every change.
    """
    import ipywidgets as w

    from workbench.widgets.live import Live, live_parts

    choices: dict[str, Callable[[int], Trace]] = sources()
    options = list(choices)
    pick = w.Dropdown(
        options=options,
        value=default or options[0],
        description="workload",
        layout=w.Layout(width="520px"),
        style={"description_width": "80px"},
    )
    twin = w.Checkbox(value=True, description="compare with fitted synthetic twin")
    seed = w.BoundedIntText(value=0, min=0, max=2**31 - 1, description="seed", layout=w.Layout(width="160px"))
    out, status, bar = live_parts()
    live = Live(out, status, bar)

    def shown(result: Exploration) -> list:
        if results is not None:
            results.publish({"workload_summary": result.table}, result.charts)
        return [traces.summary_table(result.table), *result.charts.values()]

    def update(_=None) -> None:
        trace = choices[pick.value](seed.value)
        live.update(
            lambda: shown(explore(trace, twin=False)),
            (lambda progress: shown(explore(trace, twin=True, seed=seed.value))) if twin.value else None,
            label="fitting the synthetic twin",
        )

    def add_source(label: str, trace: Trace) -> None:
        choices[label] = functools.partial(_same_trace, trace)
        pick.options = list(choices)
        pick.value = label

    for control in (pick, twin, seed):
        control.observe(update, names="value")
    update()
    box = w.VBox([w.HBox([pick, seed]), twin, w.HBox([bar, status]), out])
    box.live, box.controls, box.add_source = live, {"workload": pick, "twin": twin, "seed": seed}, add_source
    return box
