"""What-if tools for fleet owners: planning modes, grid flexibility, reliability margins, rate sweeps.

* :func:`plan` (:mod:`~workbench.whatif.modes`): size and rank fleets of several GPU types under a fixed budget,
  facility power, performance target or GPU count (Wattlytics' planning modes), from the per-instance capacity
  at the SLO (:func:`capacity_at_slo`, the planning screen) and the TCO model (:mod:`workbench.tco`);
  :func:`plan_workload` measures that capacity at each fleet's own size (it depends on the fleet size);
* :func:`grid_flex` (:mod:`~workbench.whatif.gridflex`): the largest power cut a fleet can offer the grid by
  capping batch size and lowering the GPU clock while it still meets the SLO, checked by simulation; both the
  cut in the power ceiling (a demand-response guarantee) and the cut in mean power drawn are reported;
* :func:`availability`, :func:`spares_needed`, :func:`failure_study` (:mod:`~workbench.whatif.reliability`):
  failures and repairs -> availability -> spare instances, and failure injection in the simulator;
* :func:`rate_sweep` (:mod:`~workbench.whatif.sweep`): arrival rate against GPU types side by side.

Impossible questions (a budget or power cap below one node, a cut below idle power, availability zero) raise
:class:`WhatIfError` naming the limit and the numbers.
"""

from workbench.whatif._common import WhatIfError, capacity_at_slo, capacity_measure, kernel_capacity
from workbench.whatif.gridflex import (
    OBJECTIVES,
    GridFlexResult,
    check_setting,
    grid_flex,
    least_damaging,
    power_ceiling_kw,
)
from workbench.whatif.modes import (
    METRICS,
    MODES,
    ModeCosts,
    efficiency,
    fleet_metrics,
    instances_in,
    plan,
    plan_workload,
    refine_count,
)
from workbench.whatif.reliability import (
    availability,
    failure_study,
    margin_table,
    prob_enough,
    simulate_with_failures,
    spares_needed,
)
from workbench.whatif.sweep import rate_sweep

__all__ = [
    "METRICS",
    "MODES",
    "OBJECTIVES",
    "GridFlexResult",
    "ModeCosts",
    "WhatIfError",
    "availability",
    "capacity_at_slo",
    "capacity_measure",
    "check_setting",
    "efficiency",
    "failure_study",
    "fleet_metrics",
    "grid_flex",
    "instances_in",
    "kernel_capacity",
    "least_damaging",
    "margin_table",
    "plan",
    "plan_workload",
    "power_ceiling_kw",
    "prob_enough",
    "rate_sweep",
    "refine_count",
    "simulate_with_failures",
    "spares_needed",
]
