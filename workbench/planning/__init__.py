"""Fleet planning: the minimum-cost fleet meeting latency SLOs, and the trade-offs around it.

Two steps answer "what should I buy or rent for this workload and SLO?":

1. :func:`screen_table`, the analytic screen (:mod:`workbench.planning.screen`): for every candidate fleet
   shape the smallest instance count an M/G/c model of continuous-batching instances predicts meets the SLO,
   vectorised over thousands of candidates;
2. :func:`size_fleet`: the screen, then a simulation check (:mod:`workbench.planning.check`) that bisects the
   instance counts of the cheapest candidates with the fleet simulator, and a one-paragraph answer.

A :class:`Question` holds what is asked (workload, SLO, model, cost basis, seed, performance model).
Costs come from one :class:`workbench.tco.CostBasis` (cloud rent or owned TCO; the site's carbon).
:func:`pareto_front` and :func:`tradeoff_table` show the trade-offs between cost, energy, carbon and latency.

>>> from workbench.planning import SLO, Candidate, candidate_grid
>>> SLO(ttft_s=1.0, tpot_s=0.05).label
'P99 TTFT <= 1 s, P99 TPOT <= 50 ms'
>>> Candidate("H100", topology="length_pools", threshold=4096, gpu2="A100").label
'2-pool @4096: short 1xH100, long 1xA100 cap256'
"""

from workbench.planning.pareto import pareto_front, pareto_mask, tradeoff_table
from workbench.planning.question import Question
from workbench.planning.sizing import SizingResult, screen_table, size_fleet
from workbench.planning.spec import SLO, TOPOLOGIES, Candidate, candidate_grid
from workbench.planning.workload import Workload, at_qps, workload

__all__ = [
    "SLO",
    "TOPOLOGIES",
    "Candidate",
    "Question",
    "SizingResult",
    "Workload",
    "at_qps",
    "candidate_grid",
    "pareto_front",
    "pareto_mask",
    "screen_table",
    "size_fleet",
    "tradeoff_table",
    "workload",
]
