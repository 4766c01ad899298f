"""Two-pool versus monolithic: does splitting by prompt length lower the cost of a fleet meeting an SLO?

inference-fleet-sim (arXiv 2603.16054) reports that a fleet split into a short-context and a long-context pool
beats a monolithic fleet on long-tailed workloads: short requests pack many more sequences per GPU (their KV
footprint is small) and no longer queue behind long prefills. :func:`pool_split_study` asks the same question
of any workload: for each GPU type, the cheapest monolithic fleet and the cheapest two-pool fleet (best
threshold) that meet the SLO, analytically and, with ``check > 0``, verified by simulation.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from workbench.planning.sizing import size_fleet
from workbench.planning.spec import SLO, Candidate, CostBasis
from workbench.planning.workload import Workload


def _cheapest(result, simulated: bool) -> dict | None:
    table = result.table
    if simulated and "sim_slo_met" in table.columns:
        ok = table.filter(pl.col("sim_slo_met").fill_null(False)).sort("sim_usd_per_hour")
        if ok.height:
            row = ok.row(0, named=True)
            return {"usd_per_hour": row["sim_usd_per_hour"], "instances": row["sim_instances"], **_cfg(row)}
        return None
    ok = table.filter(pl.col("slo_met")).sort("usd_per_hour")
    if not ok.height:
        return None
    row = ok.row(0, named=True)
    return {"usd_per_hour": row["usd_per_hour"], "instances": row["instances"], **_cfg(row)}


def _cfg(row: dict) -> dict:
    return {"candidate": row["candidate"], "threshold": row["threshold"]}


def pool_split_study(
    wl: Workload,
    slo: SLO,
    *,
    gpus: Sequence[str] = ("H100", "A100", "L40S"),
    thresholds: Sequence[int] = (1024, 2048, 4096, 8192),
    model: str = "Llama-3.1-8B",
    cost: CostBasis | None = None,
    check: int = 0,
    sim_requests: int = 3000,
    seed: int = 0,
) -> pl.DataFrame:
    """Cheapest monolithic vs cheapest two-pool fleet per GPU type.

    Returns one row per (GPU, method): ``method`` is ``"analytic"`` (the screen) and, with ``check > 0``,
    ``"simulated"`` (each topology's ``check`` cheapest candidates bisected by simulation). Columns: costs
    and instances of both, the best threshold, ``saving`` (1 - two-pool cost / monolithic cost) and
    ``two_pool_wins``.
    """
    rows = []
    for g in gpus:
        mono = [Candidate(g)]
        split = [Candidate(g, topology="length_pools", threshold=t) for t in thresholds]
        res = {
            name: size_fleet(
                wl,
                slo,
                cands,
                model=model,
                cost=cost,
                check=check,
                sim_requests=sim_requests,
                seed=seed,
                stop_early=False,
            )
            for name, cands in (("mono", mono), ("split", split))
        }
        for method in ("analytic", "simulated") if check > 0 else ("analytic",):
            m = _cheapest(res["mono"], method == "simulated")
            s = _cheapest(res["split"], method == "simulated")
            m_usd = m["usd_per_hour"] if m else None
            s_usd = s["usd_per_hour"] if s else None
            rows.append(
                {
                    "workload": wl.name,
                    "qps": wl.qps,
                    "gpu": mono[0].gpu,
                    "method": method,
                    "mono_instances": m["instances"] if m else None,
                    "mono_usd_per_hour": m_usd,
                    "two_pool_threshold": s["threshold"] if s else None,
                    "two_pool_instances": s["instances"] if s else None,
                    "two_pool_usd_per_hour": s_usd,
                    "saving": (1.0 - s_usd / m_usd) if (m_usd and s_usd) else None,
                    "two_pool_wins": bool(s_usd is not None and (m_usd is None or s_usd < m_usd)),
                }
            )
    return pl.DataFrame(rows, schema_overrides={"mono_instances": pl.Int64, "two_pool_instances": pl.Int64})
