"""Widgets for fleet routing: pick policies, load and fleet; see latency CDFs, per-instance load and cache hits.

The logic lives in :func:`explore`, a plain function the widget calls on every run (and tests call directly);
the widget only wires controls to it and shows the charts and the comparison table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import altair as alt
import polars as pl

from workbench.sim.fleet import compare, instance_stats, latency_cdf, simulate
from workbench.sim.routing import POOL_ROUTERS, ROUTERS
from workbench.sim.topology import Fleet, Pool, monolithic
from workbench.viz.fleet import instance_load, latency_cdfs

#: Fleet shapes offered by the explorer.
TOPOLOGIES = ("monolithic", "length pools", "disaggregated")


def build_fleet(topology: str, instances: int, router: str, *, threshold: int = 8192, **pool) -> Fleet:
    """Build a fleet of ``instances`` H100s with ``router`` inside each pool.

    ``"length pools"`` gives a quarter of the instances (at least one) to requests above ``threshold`` tokens;
    ``"disaggregated"`` splits them evenly into prefill and decode pools.
    """
    from workbench.config import require_choice

    topology = require_choice("topology", topology, TOPOLOGIES)
    if topology == "monolithic" or instances < 2:
        return monolithic(instances, router=router, **pool)
    if topology == "length pools":
        n_long = max(1, instances // 4)
        return Fleet(
            pools=(
                Pool("short", instances=instances - n_long, max_tokens=threshold, router=router, **pool),
                Pool("long", instances=n_long, router=router, **pool),
            ),
            router="length_pools",
        )
    n_p = instances // 2
    return Fleet(
        pools=(
            Pool("prefill", role="prefill", instances=n_p, router=router, **pool),
            Pool("decode", role="decode", instances=instances - n_p, **pool),
        )
    )


def explore(
    trace,
    policies: Sequence[str] = ("round_robin", "jsq", "lmetric"),
    *,
    load: float = 1.0,
    instances: int = 8,
    topology: str = "monolithic",
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[alt.HConcatChart, alt.HConcatChart, pl.DataFrame]:
    """Simulate ``trace`` (sped up ``load`` times) under each routing policy on the chosen fleet.

    Returns the latency-CDF chart (TTFT and TPOT side by side), the per-instance load and hit-rate chart and
    the comparison table (one row per policy). ``progress(done, total)`` is called after each policy.
    """
    from workbench.traces import rescale

    t = rescale(trace, load) if load != 1.0 else trace
    results = {}
    for k, p in enumerate(policies):
        results[p] = simulate(t, build_fleet(topology, instances, p), seed=seed)
        if progress is not None:
            progress(k + 1, len(policies))
    table = compare(results, load=f"x{load:g}")
    return latency_cdfs(latency_cdf(results)), instance_load(instance_stats(results)), table


def analytic(trace, *, load: float = 1.0, instances: int = 8) -> pl.DataFrame:
    """Return the analytic answer before any simulation.

    Each of ``instances`` H100s is an M/G/c queue over its batch slots, fed an equal share of the trace's
    mean rate (a random split; load-aware routers do better).
    """
    from workbench.widgets.instance import analytic as one_instance

    rate = len(trace) / trace.duration_s * load if trace.has_arrivals and trace.duration_s > 0 else 0.0
    lengths = trace.requests.select("prompt_tokens", "output_tokens")
    return one_instance(lengths, gpu="H100", qps=max(rate / instances, 1e-9)).with_columns(
        pl.lit("analytic (random split)").alias("source"), pl.lit(rate).alias("fleet_req_s")
    )


SHOWN = ("policy", "ttft_p50_s", "ttft_p99_s", "tpot_p50_s", "hit_rate", "rejected")


def routing_explorer(trace, *, instances: int = 8, results=None):
    """Build the routing explorer: policies, load (trace speed-up), instance count and fleet shape.

    Every change shows the analytic answer (:func:`analytic`) at once and simulates the policies in the
    background (a progress bar per policy), replacing the answer with the comparison table and charts; a newer
    input drops the stale run.

    Parameters
    ----------
    trace
        The workload (a :class:`~workbench.traces.Trace` with arrival times).
    instances
        Initial instance count.
    results
        A :class:`~workbench.widgets.live.Results` that receives the table and charts shown.

    Returns
    -------
    ipywidgets.VBox
        The controls, the progress bar and status line, and the output; ``box.live`` (its
        :class:`~workbench.widgets.live.Live`) and ``box.controls`` (the controls by name) serve tests and
        benchmarks.
    """
    import ipywidgets as w

    from workbench.widgets.live import Live, explorer_box, live_parts

    style = {"description_width": "110px"}
    options = [p for p in ROUTERS if p not in POOL_ROUTERS]
    c = {
        "policies": w.SelectMultiple(
            options=options,
            value=("round_robin", "jsq", "vllm_v1", "lmetric"),
            rows=8,
            description="policies",
            style=style,
        ),
        "load": w.FloatSlider(1.0, min=0.25, max=4.0, step=0.25, description="load (speed-up)", style=style),
        "instances": w.IntSlider(instances, min=2, max=32, description="instances", style=style),
        "topology": w.Dropdown(options=TOPOLOGIES, value="monolithic", description="fleet", style=style),
    }
    out, status, bar = live_parts()
    live = Live(out, status, bar)

    def update(_=None) -> None:
        policies = tuple(c["policies"].value) or ("jsq",)
        load, n, topology = c["load"].value, c["instances"].value, c["topology"].value

        def quick():
            table = analytic(trace, load=load, instances=n)
            if results is not None:
                results.publish({"routing_analytic": table}, {})
            return [table]

        def slow(progress):
            cdf, per_instance, table = explore(trace, policies, load=load, instances=n, topology=topology,
                                               progress=progress)  # fmt: skip
            if results is not None:
                results.publish({"routing": table}, {"latency_cdfs": cdf, "instance_load": per_instance})
            return [table.select(SHOWN), cdf, per_instance]

        live.update(quick, slow, label=f"simulating {len(policies)} policies")

    layout = w.HBox([c["policies"], w.VBox([c["load"], c["instances"], c["topology"]])])
    return explorer_box(c, update, live, layout)


__all__ = ["TOPOLOGIES", "analytic", "build_fleet", "explore", "routing_explorer"]
