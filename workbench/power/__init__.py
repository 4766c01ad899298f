"""Power and energy: power versus batch and clock, idle and execution-idle, energy of a simulation.

Quick use::

    from workbench.power import instance_power, energy
    p = instance_power("H100-SXM", "meta-llama/Llama-3.1-8B-Instruct", tp=1)
    p.power_w("busy", batch=64)          # W for the instance
    report = energy(sim_result, pue=1.2) # exact integral over the segments
    report.fleet["j_per_output_token"]
"""

from workbench.power.classes import PowerClasses, evaluate_held_out, fit_power_classes
from workbench.power.curves import RULE_ERRORS, LogisticPower, load_fits, logistic_power, power_curve
from workbench.power.dvfs import (
    H100_WATTLYTICS,
    ClockChoice,
    DvfsCurve,
    busy_power_at_clock,
    clock_power_scale,
    clock_sweep,
    optimal_clock,
)
from workbench.power.energy import (
    EXEC_IDLE_POWER_RATIO,
    EnergyReport,
    InstancePower,
    energy,
    energy_timeseries,
    idle_power_w,
    instance_power,
    mean_power_w,
)
from workbench.power.fitting import (
    build_fits,
    fit_report,
    leave_one_out,
    load_runs,
    lookup_rule_errors,
    write_fits,
)

__all__ = [
    "EXEC_IDLE_POWER_RATIO",
    "H100_WATTLYTICS",
    "RULE_ERRORS",
    "ClockChoice",
    "DvfsCurve",
    "EnergyReport",
    "InstancePower",
    "LogisticPower",
    "PowerClasses",
    "build_fits",
    "busy_power_at_clock",
    "clock_power_scale",
    "clock_sweep",
    "energy",
    "energy_timeseries",
    "evaluate_held_out",
    "fit_power_classes",
    "fit_report",
    "idle_power_w",
    "instance_power",
    "leave_one_out",
    "load_fits",
    "load_runs",
    "logistic_power",
    "lookup_rule_errors",
    "mean_power_w",
    "optimal_clock",
    "power_curve",
    "write_fits",
]
