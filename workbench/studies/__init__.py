"""The seed papers' claims as studies: each a pure ``run(arm, seed)`` replicated with common random numbers.

Every study module holds an arm dataclass (one compared configuration), a ``run(arm, seed) -> dict`` that
simulates or computes one replication, a ``study(...)`` that replicates its arms through
:func:`workbench.experiments.sweep` (:func:`~workbench.studies.replications.replicate`) and a ``claim(...)``
that reads the replications into a :class:`~workbench.studies.claims.Claim` (the published claim, our result
with its 95 % confidence interval, a verdict). Notebook ``07_seed_claims`` shows them all.
"""

from __future__ import annotations

from workbench.studies.claims import VERDICTS, Claim, claims_table
from workbench.studies.replications import REPLICATIONS, Replicated, replicate, replication_seed

__all__ = ["REPLICATIONS", "VERDICTS", "Claim", "Replicated", "claims_table", "replicate", "replication_seed"]
