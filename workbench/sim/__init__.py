"""Discrete-event simulation of continuous-batching LLM instances (and a queueing mode for validation).

Entry points: :func:`simulate` (a trace on ``n`` identical instances) and :func:`summary`; :class:`Simulation`
with its lifecycle hooks (router, add/start/drain/fail instances, ``on_finish`` hand-offs) for the fleet
layer; :func:`simulate_queue` (c FCFS servers, for Erlang-C checks); :mod:`workbench.sim.curves` (latency vs
load next to the analytic model); :mod:`workbench.sim.reference` (the straightforward per-iteration loop).

>>> from workbench.sim import InstanceConfig, SchedulerConfig, SimConfig, simulate, summary
"""

from workbench.sim.config import InstanceConfig, SchedulerConfig, SimConfig
from workbench.sim.engine import PRIO_ARRIVAL, PRIO_CONTROL, PRIO_ITERATION, Engine, SimulationError
from workbench.sim.instance import Instance
from workbench.sim.linear_perf import LinearPerfModel
from workbench.sim.metrics import summary
from workbench.sim.queueing import (
    Deterministic,
    Empirical,
    Exponential,
    Lognormal,
    QueueResult,
    service_distribution,
    simulate_queue,
)
from workbench.sim.request import Request
from workbench.sim.result import SimResult
from workbench.sim.routing.load import RoundRobin
from workbench.sim.simulation import Simulation, simulate

__all__ = [
    "PRIO_ARRIVAL",
    "PRIO_CONTROL",
    "PRIO_ITERATION",
    "Deterministic",
    "Empirical",
    "Engine",
    "Exponential",
    "Instance",
    "InstanceConfig",
    "LinearPerfModel",
    "Lognormal",
    "QueueResult",
    "Request",
    "RoundRobin",
    "SchedulerConfig",
    "SimConfig",
    "SimResult",
    "Simulation",
    "SimulationError",
    "service_distribution",
    "simulate",
    "simulate_queue",
    "summary",
]
