"""Trade-offs: Pareto fronts over cost, energy per token, carbon and tail latency.

:func:`pareto_mask` finds the non-dominated rows of any table of objectives (all minimised). Two sources of
points:

* :func:`tradeoff_table` - the analytic screen over a grid of GPU types, pool splits, batch caps and clocks
  (thousands of points in well under a second);
* :func:`simulate_points` - fixed fleets (instance counts included) simulated through
  :func:`workbench.experiments.sweep` (parallel, resumable), which is where routers differ.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence

import numpy as np
import polars as pl

from workbench.errors import ConfigError
from workbench.planning.spec import SLO, Candidate, CostBasis, candidate_grid
from workbench.planning.workload import Workload
from workbench.sim.measure import Precision

#: Default objectives (all minimised).
OBJECTIVES: tuple[str, ...] = (
    "usd_per_m_output_tokens",
    "j_per_output_token",
    "gco2e_per_1k_output_tokens",
    "ttft_p99_s",
)


def pareto_mask(values: np.ndarray, *, chunk: int = 1024) -> np.ndarray:
    """Rows of ``values`` (n x k, all minimised) that no other row dominates.

    A row dominates another when it is no worse in every objective and better in at least one. Rows with NaN
    are never on the front. Exact duplicates are all kept.

    Parameters
    ----------
    values
        Points x objectives.
    chunk
        Rows compared at once (memory ``chunk x n x k`` booleans).

    Returns
    -------
    numpy.ndarray
        Boolean mask of the rows on the front.
    """
    v = np.asarray(values, dtype=float)
    if v.ndim != 2:
        raise ConfigError(f"values must be a 2-D array (points x objectives), got shape {v.shape}")
    finite = np.isfinite(v).all(axis=1)
    out = np.zeros(len(v), bool)
    idx = np.flatnonzero(finite)
    pts = v[idx]
    keep = np.ones(len(pts), bool)
    for start in range(0, len(pts), chunk):
        block = pts[start : start + chunk]
        no_worse = np.all(pts[None, :, :] <= block[:, None, :], axis=2)
        better = np.any(pts[None, :, :] < block[:, None, :], axis=2)
        keep[start : start + chunk] = ~(no_worse & better).any(axis=1)
    out[idx[keep]] = True
    return out


def pareto_front(
    table: pl.DataFrame, objectives: Sequence[str] = OBJECTIVES, *, only_feasible: bool = True
) -> pl.DataFrame:
    """``table`` with a boolean ``pareto`` column (non-dominated over ``objectives``, all minimised).

    With ``only_feasible`` (default) rows whose ``slo_met`` is false are never on the front.

    Parameters
    ----------
    table
        Candidates, one row each, with the ``objectives`` columns (and ``slo_met`` when ``only_feasible``).
    objectives
        Columns to minimise.
    only_feasible
        Keep rows that miss the SLO off the front.

    Returns
    -------
    polars.DataFrame
        ``table`` with the ``pareto`` column added.
    """
    missing = [c for c in objectives if c not in table.columns]
    if missing:
        raise ConfigError(
            f"objective column(s) {missing} not in the table; columns: {', '.join(table.columns)}"
        )
    if not objectives:
        raise ConfigError("give at least one objective")
    values = table.select([pl.col(c).cast(pl.Float64) for c in objectives]).to_numpy()
    if only_feasible and "slo_met" in table.columns:
        values[~table["slo_met"].fill_null(False).to_numpy()] = np.nan
    return table.with_columns(pareto=pl.Series(pareto_mask(values)))


def tradeoff_table(
    wl: Workload,
    slo: SLO,
    *,
    gpus: Sequence[str],
    model: str = "Llama-3.1-8B",
    tps: Sequence[int] = (1,),
    topologies: Sequence[str] = ("monolithic", "length_pools"),
    thresholds: Sequence[int] = (2048, 4096, 8192),
    gpus2: Sequence[str | None] = (None,),
    max_num_seqs: Sequence[int] = (64, 128, 256),
    clocks: Sequence[float] = (0.6, 0.8, 1.0),
    cost: CostBasis | None = None,
    objectives: Sequence[str] = OBJECTIVES,
    perf: str = "roofline",
) -> pl.DataFrame:
    """Screen a grid of fleet shapes analytically and mark the Pareto front.

    The front is the ``pareto`` column; ``perf`` names the performance model
    (:func:`workbench.hardware.performance_model`).
    """
    from workbench.planning.sizing import screen_table

    cands = candidate_grid(
        gpus,
        tps=tps,
        topologies=topologies,
        thresholds=thresholds,
        gpus2=gpus2,
        max_num_seqs=max_num_seqs,
        clocks=clocks,
    )
    return pareto_front(screen_table(wl, slo, cands, model, cost, perf), objectives)


# ---------------------------------------------------------------------------------- simulated points (sweep)


def trace_fingerprint(wl: Workload) -> str:
    """Short hash of a workload's requests (arrivals and lengths): part of every simulated point's config."""
    df = wl.trace.requests.select("arrival_s", "prompt_tokens", "output_tokens")
    h = hashlib.sha256()
    for col in df.columns:
        h.update(df[col].to_numpy().tobytes())
    return h.hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class SimPoint:
    """A pure ``run(config, seed)`` for :func:`workbench.experiments.sweep`: simulate one fixed fleet.

    The config (see :func:`point_configs`) holds everything but the trace: :class:`Candidate` fields,
    ``instances1``/``instances2``, ``model``, the kernel's ``precision``, the SLO and cost basis as nested
    dicts, and the
    workload ``fingerprint``, so the sweep cache never mixes workloads or targets. Returns latencies, goodput,
    SLO verdict, cost, and the exact energy of the simulation (:func:`workbench.power.energy`).
    """

    wl: Workload

    def __call__(self, config: dict, seed: int) -> dict:
        """Simulate the fleet that ``config`` describes on the workload and return its measurements."""
        from workbench.carbon import site
        from workbench.planning.check import build_fleet, verdict_columns
        from workbench.planning.costs import gpu_hour_usd
        from workbench.power import energy
        from workbench.sim.measure import Precision, verify

        if config.get("fingerprint") != trace_fingerprint(self.wl):
            raise ConfigError("config fingerprint does not match the workload of this SimPoint")
        fields = {f.name for f in dataclasses.fields(Candidate)}
        cand = Candidate(**{k: v for k, v in config.items() if k in fields})
        slo, cost, model = SLO(**config["slo"]), CostBasis(**config["cost"]), config["model"]
        n1, n2 = int(config["instances1"]), int(config.get("instances2") or 0)
        precision = Precision(**config["precision"])
        v = verify(build_fleet(cand, n1, n2, model), self.wl.requests, slo, seed=seed % (2**31),
                   precision=precision)  # fmt: skip
        cols = verdict_columns(v, slo)
        scored = v.result.requests.sort("arrival_s").slice(v.warmup).filter(~pl.col("rejected"))
        j_tok = float(energy(v.result).fleet["j_per_output_token"][0])
        place = site(cost.site)
        usd = n1 * cand.tp * gpu_hour_usd(cand.gpu, cost, model, cand.tp)
        if n2:
            usd += n2 * cand.second_tp * gpu_hour_usd(cand.second_gpu, cost, model, cand.second_tp)
        tok_s = self.wl.output_tokens_per_s
        return {
            "verdict": v.status,
            "ttft_p50_s": float(scored["ttft_s"].quantile(0.5)) if scored.height else None,
            "ttft_p99_s": cols["ttft_p99_s"],
            "ttft_p99_lo": cols["ttft_p99_lo"],
            "ttft_p99_hi": cols["ttft_p99_hi"],
            "tpot_p50_s": float(scored["tpot_s"].fill_null(0.0).quantile(0.5)) if scored.height else None,
            "tpot_p99_s": cols["tpot_p99_s"],
            "tpot_p99_lo": cols["tpot_p99_lo"],
            "tpot_p99_hi": cols["tpot_p99_hi"],
            "goodput": cols["goodput"],
            "slo_met": v.meets,
            "requests": v.requests,
            "usd_per_hour": usd,
            "usd_per_m_output_tokens": usd / (tok_s * 3600.0) * 1e6,
            "j_per_output_token": j_tok,
            "gco2e_per_1k_output_tokens": j_tok * 1000.0 * place.pue / 3.6e6 * place.need("grid_gco2e_per_kwh"),
        }


def point_configs(
    cands: Sequence[Candidate],
    counts: Sequence[tuple[int, int]],
    wl: Workload,
    *,
    slo: SLO,
    model: str = "Llama-3.1-8B",
    cost: CostBasis | None = None,
    precision: Precision | None = None,
) -> list[dict]:
    """Sweep configurations (dicts) for candidates at fixed instance counts ``(n1, n2)``."""
    fp = trace_fingerprint(wl)
    extra = {
        "model": model,
        "precision": dataclasses.asdict(precision or Precision()),
        "slo": dataclasses.asdict(slo),
        "cost": dataclasses.asdict(cost or CostBasis()),
        "fingerprint": fp,
    }
    return [
        {**dataclasses.asdict(c), "instances1": int(n1), "instances2": int(n2), **extra}
        for c, (n1, n2) in zip(cands, counts, strict=True)
    ]


def simulate_points(
    wl: Workload,
    slo: SLO,
    cands: Sequence[Candidate],
    counts: Sequence[tuple[int, int]],
    *,
    model: str = "Llama-3.1-8B",
    cost: CostBasis | None = None,
    precision: Precision | None = None,
    seed: int = 0,
    n_jobs: int = 1,
    cache_dir: str | None = None,
    backend: str | None = None,
    objectives: Sequence[str] = OBJECTIVES,
) -> pl.DataFrame:
    """Judge fixed fleets with the measurement kernel in a (parallel, resumable) sweep; mark the Pareto front.

    Each point is a kernel verdict (:func:`workbench.sim.measure.verify`) with its CIs, on the workload's
    requests (``precision``: tolerance and request cap).
    """
    from workbench.experiments import sweep

    configs = point_configs(cands, counts, wl, slo=slo, model=model, cost=cost, precision=precision)
    run = SimPoint(wl)
    table = sweep(configs, run, seed=seed, n_jobs=n_jobs, cache_dir=cache_dir, backend=backend)
    return pareto_front(table.drop("fingerprint"), objectives)
