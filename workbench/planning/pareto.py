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

from workbench.carbon import gco2e_per_1k_tokens
from workbench.errors import ConfigError
from workbench.planning.spec import SLO, Candidate, candidate_grid
from workbench.planning.workload import Workload
from workbench.sim.measure import Precision
from workbench.tco import CostBasis, gpu_hour_usd

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

    The config (see :func:`point_configs`) holds everything the simulation depends on but the trace:
    :class:`Candidate` fields, ``instances1``/``instances2``, ``model``, the kernel's ``precision``, the SLO as
    a nested dict, and the workload ``fingerprint``, so the sweep cache never mixes workloads or targets.
    Returns latencies, goodput, SLO verdict and the exact energy of the simulation
    (:func:`workbench.power.energy`); prices are not a simulation input, so :func:`simulate_points` adds the
    cost and carbon columns afterwards (a point's seed and cache entry do not depend on the cost basis).
    """

    wl: Workload

    def __call__(self, config: dict, seed: int) -> dict:
        """Simulate the fleet that ``config`` describes on the workload and return its measurements."""
        from workbench.planning.check import build_fleet, verdict_columns
        from workbench.power import energy
        from workbench.sim.measure import Precision, verify

        if config.get("fingerprint") != trace_fingerprint(self.wl):
            raise ConfigError("config fingerprint does not match the workload of this SimPoint")
        fields = {f.name for f in dataclasses.fields(Candidate)}
        cand = Candidate(**{k: v for k, v in config.items() if k in fields})
        slo, model = SLO(**config["slo"]), config["model"]
        n1, n2 = int(config["instances1"]), int(config.get("instances2") or 0)
        precision = Precision(**config["precision"])
        v = verify(build_fleet(cand, n1, n2, model), self.wl.requests, slo, seed=seed % (2**31),
                   precision=precision)  # fmt: skip
        cols = verdict_columns(v, slo)
        scored = v.result.requests.sort("arrival_s").slice(v.warmup).filter(~pl.col("rejected"))
        j_tok = float(energy(v.result).fleet["j_per_output_token"][0])
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
            "j_per_output_token": j_tok,
        }


def price_points(table: pl.DataFrame, wl: Workload, model: str, cost: CostBasis) -> pl.DataFrame:
    """Add the cost and carbon columns of ``cost`` to a table of simulated points.

    ``table`` has the columns of :func:`point_configs` and :class:`SimPoint`; the result adds ``usd_per_hour``,
    ``usd_per_m_output_tokens`` (before ``j_per_output_token``) and ``gco2e_per_1k_output_tokens`` (after it).
    """
    usd = []
    for row in table.iter_rows(named=True):
        second = row["topology"] != "monolithic"
        gpu2 = row["gpu2"] if row["gpu2"] is not None else row["gpu"]
        tp2 = row["tp2"] if row["tp2"] is not None else row["tp"]
        n1, n2 = int(row["instances1"]), int(row["instances2"] or 0)
        value = n1 * row["tp"] * gpu_hour_usd(row["gpu"], cost, model, row["tp"])
        if n2 and second:
            value += n2 * tp2 * gpu_hour_usd(gpu2, cost, model, tp2)
        usd.append(value)
    usd_h = pl.Series("usd_per_hour", usd, pl.Float64)
    j_tok = table["j_per_output_token"]
    at = table.columns.index("j_per_output_token")
    table = table.insert_column(at, usd_h).insert_column(
        at + 1, (usd_h / (wl.output_tokens_per_s * 3600.0) * 1e6).alias("usd_per_m_output_tokens")
    )
    carbon = j_tok * float(gco2e_per_1k_tokens(1.0, cost.place()))  # linear in the energy; nulls stay null
    return table.insert_column(at + 3, carbon.cast(pl.Float64).alias("gco2e_per_1k_output_tokens"))


def point_configs(
    cands: Sequence[Candidate],
    counts: Sequence[tuple[int, int]],
    wl: Workload,
    *,
    slo: SLO,
    model: str = "Llama-3.1-8B",
    precision: Precision | None = None,
) -> list[dict]:
    """Build sweep configurations (dicts) for candidates at fixed instance counts ``(n1, n2)``.

    A configuration holds what the simulation depends on: no prices (see :func:`price_points`).
    """
    fp = trace_fingerprint(wl)
    extra = {
        "model": model,
        "precision": dataclasses.asdict(precision or Precision()),
        "slo": dataclasses.asdict(slo),
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
    requests (``precision``: tolerance and request cap), priced on ``cost`` afterwards (:func:`price_points`:
    changing the cost basis re-prices cached points without simulating them again).
    """
    from workbench.experiments import sweep

    configs = point_configs(cands, counts, wl, slo=slo, model=model, precision=precision)
    run = SimPoint(wl)
    table = sweep(configs, run, seed=seed, n_jobs=n_jobs, cache_dir=cache_dir, backend=backend)
    table = price_points(table, wl, model, cost or CostBasis())
    return pareto_front(table.drop("fingerprint"), objectives)
