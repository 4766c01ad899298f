"""Fleet simulation: pools, a front router, in-pool routers, disaggregation and autoscaling on one clock.

:func:`simulate` builds a :class:`~workbench.sim.simulation.Simulation` with one instance per (possible)
pool member and plugs a :class:`FleetController` into its hooks:

* routing: the front router picks an entry pool (requests too long for every pool, or with no pool for their
  class, are rejected and listed), the pool's router picks an instance;
* disaggregation: a request finishing prefill on a ``role = "prefill"`` instance moves its KV cache to a
  decode pool in ``kv_bytes / link_bandwidth + latency`` seconds; a decode instance admits it when it has
  the KV blocks (``kv_ready`` requests wait in its queue otherwise);
* autoscaling: every ``interval_s`` each autoscaled pool's policy sets the desired instance count; instances
  start (cold start ``setup_delay_s``) or drain.

The result is the core :class:`~workbench.sim.result.SimResult` (``pool`` and ``instance`` columns, rejected
rows with their reason) plus a ``prefill_instance`` column for disaggregated fleets and autoscaling counters.
The controller lives in :mod:`workbench.sim.controller`, the routers' views in :mod:`workbench.sim.views`,
and the comparison tables (:func:`compare`, :func:`latency_cdf`, :func:`instance_stats`,
:func:`instance_count`, :func:`gpu_hours`, re-exported here) in :mod:`workbench.sim.metrics`;
:mod:`workbench.studies.fleets` runs the seed papers' comparisons.
"""

from __future__ import annotations

import math

import polars as pl

from workbench.sim.closed_loop import open_workload
from workbench.sim.controller import FleetController
from workbench.sim.hierarchy import attach_hierarchy, finish_hierarchy
from workbench.sim.metrics import (
    SUMMARY_SCHEMA,
    compare,
    gpu_hours,
    instance_count,
    instance_stats,
    latency_cdf,
    summarize,
)
from workbench.sim.result import SimResult
from workbench.sim.simulation import DEFER, Simulation, trace_rows
from workbench.sim.topology import Fleet, monolithic


def simulate(
    trace,
    fleet: Fleet | int,
    *,
    seed: int = 0,
    record_segments: bool = True,
    router: str | None = None,
    setup=None,
    progress: bool | None = None,
    check: bool = True,
) -> SimResult:
    """Simulate ``trace`` through ``fleet``.

    Parameters
    ----------
    trace
        A :class:`~workbench.traces.schema.Trace` (or a polars DataFrame in the canonical schema), or a
        :class:`~workbench.traces.agentic.SessionWorkload` to run closed-loop
        (:mod:`workbench.sim.closed_loop`).
    fleet
        The fleet (its KV hierarchy, if any, is ``fleet.hierarchy``: :mod:`workbench.sim.hierarchy`), or an
        instance count for a monolithic H100 / Llama-3.1-8B pool behind ``router``.
    seed
        Seed of all random streams (randomised routers).
    record_segments
        Keep per-instance time series (needed for GPU-hours, instance counts and energy).
    router
        With an integer ``fleet``: the pool's router (default ``jsq``).
    setup
        Optional ``setup(sim, controller)`` called before the run, e.g. to schedule failures
        (``sim.fail_instance``) or swap an instance's performance model.
    progress
        Progress bar of the run (see :meth:`Simulation.run <workbench.sim.simulation.Simulation.run>`):
        ``None`` shows one only for long traces in an interactive session.
    check
        Check the result against :mod:`workbench.sim.invariants` (default on). Requests no pool can hold (the
        one rule of :meth:`Instance.reject_reason <workbench.sim.instance.Instance.reject_reason>`: model
        context and KV cache) are rejected with a reason and reported in a warning and the summary tables.

    Returns
    -------
    SimResult
        Core result tables; ``requests`` has ``pool``/``instance`` (and ``prefill_instance`` for
        disaggregated fleets); rejected requests are rows with ``rejected = True`` and a ``reject_reason``.
        ``counters`` adds ``cold_starts``, ``gpu_hours`` and, with autoscaling, ``timeline`` (time, pool,
        powered instances).

    Examples
    --------
    >>> import polars as pl
    >>> reqs = pl.DataFrame({"request_id": [0, 1, 2], "arrival_s": [0.0, 0.1, 0.2],
    ...                      "prompt_tokens": [100, 50, 10**7], "output_tokens": [10, 5, 5]})
    >>> res = simulate(reqs, 2, router="jsq")
    >>> res.requests["rejected"].to_list()
    [False, False, True]
    """
    if isinstance(fleet, int):
        fleet = monolithic(fleet, router=router or "jsq")
    trace, loop = open_workload(trace)
    requests, block = trace_rows(trace)
    sim = Simulation(seed=seed, prefix_block_tokens=block, record_segments=record_segments, check=check)
    ctl = FleetController(sim, fleet)
    ctl.kv = attach_hierarchy(sim, fleet.hierarchy, requests.height)
    if loop is not None:
        loop.bind(sim)
    last = float(requests["arrival_s"].max()) if requests.height else 0.0
    ctl.start_autoscaling(last)
    if setup is not None:
        setup(sim, ctl)
    result = sim._run_checked(requests, block, progress)  # rows checked above: not twice
    return finish_hierarchy(_finish_result(result, ctl), ctl.kv)


def _finish_result(result: SimResult, ctl: FleetController) -> SimResult:
    reqs = result.requests
    if ctl.decode:
        pre = ctl.prefill_of
        col = pl.Series("prefill_instance", [pre.get(i, -1) for i in range(reqs.height)], dtype=pl.Int32)
        reqs = reqs.with_columns(pl.when(col >= 0).then(col).otherwise(None).alias("prefill_instance"))
    counters = dict(result.counters)
    counters["gpu_hours"] = gpu_hours(result) if result.segments.height else math.nan
    if ctl.timeline:
        schema = {"time_s": pl.Float64, "pool": pl.Utf8, "instances": pl.Int64}
        counters["timeline"] = pl.DataFrame(ctl.timeline, schema=schema, orient="row")
    return SimResult(requests=reqs, segments=result.segments, instances=result.instances, counters=counters)


# ---------------------------------------------------------------------------------------------- analysis


__all__ = [
    "DEFER",
    "SUMMARY_SCHEMA",
    "FleetController",
    "compare",
    "gpu_hours",
    "instance_count",
    "instance_stats",
    "latency_cdf",
    "simulate",
    "summarize",
]
