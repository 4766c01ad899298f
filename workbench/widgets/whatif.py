"""Widgets for the what-if tools: a planning-modes explorer and a grid-flexibility explorer.

The logic lives in plain functions (:func:`explore_modes`, :func:`explore_cut`) that the widgets call on every
change (and tests call directly); the widgets only wire controls to them and show charts and tables.
"""

from __future__ import annotations

import math
from typing import Any

import altair as alt
import polars as pl

from workbench.config import as_float
from workbench.tco import CostBasis
from workbench.viz.whatif import mode_ranking
from workbench.whatif import METRICS, MODES, GridFlexResult, ModeCosts, WhatIfError, least_damaging, plan

#: Default target per mode (USD, kW, output tokens/s, GPUs).
DEFAULT_TARGETS = {"budget": 2e6, "power": 50.0, "performance": 100_000.0, "count": 64.0}
SHOWN = ["rank", "gpu", "nodes", "gpus", "instances", "capacity_instances", "tokens_per_s", "facility_kw",
         "tco_usd", "usd_per_mtok", "tokens_per_s_per_musd", "note"]  # fmt: skip


def explore_modes(
    capacity: pl.DataFrame,
    mode: str = "budget",
    target: float | None = None,
    rank_by: str | None = None,
    *,
    costs: CostBasis | ModeCosts | None = None,
    pue: float | None = None,
    electricity_usd_per_kwh: float | None = None,
    measure=None,
) -> tuple[alt.Chart | None, pl.DataFrame, str]:
    """Ranking chart, table and a message (the error text when the question has no answer) for one mode.

    ``measure`` (:func:`workbench.whatif.capacity_measure`) re-measures capacity at each fleet's size.
    """
    import dataclasses

    costs = ModeCosts.of(costs)
    given = (("pue", pue), ("electricity_usd_per_kwh", electricity_usd_per_kwh))
    changes: dict[str, Any] = {k: v for k, v in given if v}  # CostBasis fields (floats)
    costs = dataclasses.replace(costs, basis=dataclasses.replace(costs.basis, **changes))
    target = DEFAULT_TARGETS[mode] if target is None else target
    try:
        table = plan(mode, target, capacity, costs=costs, rank_by=rank_by, measure=measure)
    except WhatIfError as exc:
        return None, pl.DataFrame(), str(exc)
    best = table.row(0, named=True)
    msg = f"best: {best['gpu']} ({best['nodes']} nodes, {best['gpus']} GPUs) by {table['rank_by'][0]}"
    return mode_ranking(table), table.select(SHOWN), msg


def modes_explorer(
    capacity: pl.DataFrame, costs: CostBasis | ModeCosts | None = None, measure=None, *, results=None
):
    """Build the planning-modes explorer: mode, target, ranking metric, PUE and electricity price controls.

    Every change redraws the ranking chart and table (:func:`explore_modes`).

    Parameters
    ----------
    capacity
        Capacity at the SLO per GPU type (:func:`workbench.whatif.capacity_at_slo`).
    costs
        Cost basis (``None``: the default :class:`~workbench.whatif.ModeCosts`).
    measure
        Capacity re-measured at each fleet's size (:func:`workbench.whatif.capacity_measure`); ``None``:
        ``capacity`` as given.
    results
        A :class:`~workbench.widgets.live.Results` that receives what is shown.

    Returns
    -------
    ipywidgets.VBox
        The controls, a status line and the output; ``box.live`` and ``box.controls`` (the controls by name)
        serve tests and benchmarks.
    """
    import ipywidgets as w

    from workbench.widgets.live import Live, live_parts

    style = {"description_width": "120px"}
    mode = w.Dropdown(options=list(MODES), value="budget", description="mode", style=style)
    target = w.FloatText(DEFAULT_TARGETS["budget"], description="target", style=style)
    rank = w.Dropdown(options=["(mode default)", *METRICS], value="(mode default)", description="rank by",
                      style=style)  # fmt: skip
    pue = w.FloatSlider(1.2, min=1.0, max=2.0, step=0.05, description="PUE", style=style)
    price = w.FloatSlider(0.08, min=0.02, max=0.4, step=0.01, description="USD/kWh", style=style)
    out, status, _ = live_parts()
    live = Live(out, status)

    def on_mode(change) -> None:
        target.value = DEFAULT_TARGETS[change["new"]]

    def redraw(_=None) -> None:
        def quick():
            chart, table, msg = explore_modes(
                capacity, mode.value, target.value, None if rank.value.startswith("(") else rank.value,
                costs=costs, pue=pue.value, electricity_usd_per_kwh=price.value, measure=measure,
            )  # fmt: skip
            if results is not None and chart is not None:
                results.publish({"whatif_modes": table}, {"mode_ranking": chart})
            return [msg, chart, table if chart is not None else None]

        live.update(quick)

    mode.observe(on_mode, names="value")
    for ctl in (mode, target, rank, pue, price):
        ctl.observe(redraw, names="value")
    redraw()
    box = w.VBox([w.HBox([w.VBox([mode, target, rank]), w.VBox([pue, price])]), status, out])
    box.live, box.controls = live, {"mode": mode, "target": target, "rank": rank, "pue": pue, "price": price}
    return box


def explore_cut(result: GridFlexResult, cut: float) -> pl.DataFrame:
    """Return the least SLO-damaging setting that sheds at least ``cut`` of the result's objective.

    The objective is the ceiling or the mean power; the row is chosen as :func:`workbench.whatif.grid_flex`
    with ``cut`` chooses it. The table is empty beyond reach.
    """
    return least_damaging(result.options, result.objective_column, cut).head(1)


def slider_max(result: GridFlexResult, step: float = 0.01) -> float:
    """Return the deepest cut on a slider of ``step``: the deepest option rounded *down*, so it is reachable."""
    top = as_float(result.options[result.objective_column].max())
    return max(math.floor(top / step + 1e-9) * step, 0.0)


def describe_cut(result: GridFlexResult, cut: float) -> tuple[str, pl.DataFrame]:
    """Return a line about the setting a ``cut`` takes (or why none does) and its row (empty beyond reach)."""
    row = explore_cut(result, cut)
    if row.height == 0:
        top = as_float(result.options[result.objective_column].max())
        return f"cut {cut:.0%}: beyond the deepest setting tried ({top:.1%})", row
    verdict = "meets" if row["slo_met"][0] else "misses"
    setting = f"cap {row['max_num_seqs'][0]}, clock {row['clock'][0]:g}"
    return f"cut {cut:.0%}: {setting} {verdict} the SLO (predicted)", row


def flex_explorer(result: GridFlexResult):
    """Build the grid-flex explorer: a slider over the power cut shows the setting it takes and its SLO ratio.

    Parameters
    ----------
    result
        A :func:`workbench.whatif.grid_flex` answer; the slider spans its options (:func:`slider_max`).

    Returns
    -------
    ipywidgets.VBox
        The slider and the output (:func:`describe_cut`'s line and the setting's predicted row).
    """
    import ipywidgets as w
    from IPython.display import display

    cut = w.FloatSlider(0.0, min=0.0, max=slider_max(result), step=0.01, description="power cut",
                        readout_format=".0%")  # fmt: skip
    out = w.Output()

    def redraw(_=None) -> None:
        with out:
            out.clear_output(wait=True)
            text, row = describe_cut(result, cut.value)
            print(text)
            if row.height:
                display(row)

    cut.observe(redraw, names="value")
    redraw()
    return w.VBox([cut, out])
