"""Two-pool versus monolithic fleets: the cost of splitting a fleet by prompt length.

Does splitting by prompt length lower the cost of a fleet meeting an SLO?

inference-fleet-sim (arXiv 2603.16054) reports that a fleet split into a short-context and a long-context pool
beats a monolithic fleet on long-tailed workloads: short requests pack many more sequences per GPU (their KV
footprint is small) and no longer queue behind long prefills. :func:`pool_split_study` asks the same question
of any workload: for each GPU type, the cheapest monolithic fleet and the cheapest two-pool fleet (best
threshold) that meet the SLO, analytically and, with ``check > 0``, verified by simulation.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from workbench.config import as_int
from workbench.errors import ConfigError
from workbench.planning.sizing import size_fleet
from workbench.planning.spec import SLO, Candidate
from workbench.planning.workload import Workload, prepare_workload
from workbench.sim.measure import Precision
from workbench.tco import CostBasis
from workbench.traces.schema import Trace


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
    wl: Workload | Trace | object,
    slo: SLO,
    *,
    gpus: Sequence[str] = ("H100", "A100", "L40S"),
    thresholds: Sequence[int] = (1024, 2048, 4096, 8192),
    model: str = "Llama-3.1-8B",
    cost: CostBasis | None = None,
    check: int = 0,
    precision: Precision | None = None,
    seed: int = 0,
    progress: bool | None = None,
) -> pl.DataFrame:
    """Cheapest monolithic vs cheapest two-pool fleet per GPU type.

    Parameters
    ----------
    wl
        The workload: a prepared :class:`Workload`, a trace, or a generator (drawn with ``seed``, as by
        :func:`~workbench.planning.size_fleet`).
    slo
        Latency targets.
    gpus
        GPU types; both pools of a two-pool fleet use the same GPU.
    thresholds
        Prompt-token thresholds of the split. A threshold at or above the workload's longest prompt, or below
        its shortest, leaves one pool empty (a monolithic fleet in disguise) and is skipped; the thresholds
        actually compared are in ``thresholds_used``.
    check
        Candidates per topology sized by the measurement kernel (0: analytic only): whole-fleet verdicts on
        the fleet-level SLO, so a two-pool fleet is never refuted by one pool's own tail.
    precision
        The kernel's tolerance and request cap (:class:`~workbench.sim.measure.Precision`).
    progress
        Progress bar over the GPU types (``None``: in a terminal or a notebook only).

    Returns
    -------
    pl.DataFrame
        One row per (GPU, method): ``method`` is ``"analytic"`` (the screen) and, with ``check > 0``,
        ``"simulated"`` (each topology's ``check`` cheapest candidates sized by the measurement kernel).
        Columns: costs
        and instances of both, the best threshold, ``saving`` (1 - two-pool cost / monolithic cost),
        ``two_pool_wins`` and ``thresholds_used``.

    Raises
    ------
    ConfigError
        Empty ``gpus`` or ``thresholds``, or no threshold that splits the workload.
    """
    gpus, thresholds = list(gpus), list(thresholds)
    if not gpus:
        raise ConfigError("gpus is empty: give at least one GPU type to compare")
    if not thresholds:
        raise ConfigError("thresholds is empty: give at least one prompt-token threshold")
    wl = prepare_workload(wl, None, seed=seed)
    shortest, longest = _prompt_range(wl)
    used = _splitting(thresholds, shortest, longest)
    if not used:
        raise ConfigError(
            f"no threshold in {thresholds} splits the workload {wl.name!r} (prompts of {shortest:,} to "
            f"{longest:,} tokens): a threshold at or above the longest prompt, or below the shortest, leaves "
            "one pool empty"
        )
    from tqdm.auto import tqdm

    from workbench._progress import progress_enabled

    rows = []
    for g in tqdm(gpus, desc="split study", unit="GPU", disable=not progress_enabled(progress)):
        mono = [Candidate(g)]
        split = [Candidate(g, topology="length_pools", threshold=t) for t in used]
        res = {
            name: size_fleet(
                wl,
                slo,
                cands,
                model=model,
                cost=cost,
                check=check,
                precision=precision,
                seed=seed,
                stop_early=False,
                progress=False,
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
                    "thresholds_used": used,
                }
            )
    return pl.DataFrame(
        rows,
        schema_overrides={
            "mono_instances": pl.Int64,
            "two_pool_threshold": pl.Int64,
            "two_pool_instances": pl.Int64,
            "mono_usd_per_hour": pl.Float64,
            "two_pool_usd_per_hour": pl.Float64,
            "saving": pl.Float64,
            "thresholds_used": pl.List(pl.Int64),
        },
    )


def _prompt_range(wl: Workload) -> tuple[int, int]:
    """Shortest and longest prompt of the workload's trace (tokens)."""
    prompts = wl.trace.requests["prompt_tokens"]
    return as_int(prompts.min()), as_int(prompts.max())


def _splitting(thresholds: Sequence[int], shortest: int, longest: int) -> list[int]:
    return sorted({int(t) for t in thresholds if shortest <= t < longest})


def describe_split(table: pl.DataFrame) -> str:
    """Sentences summing up a :func:`pool_split_study` table: where two pools win or lose, and by how much.

    Simulated rows are used where present (the analytic ones otherwise), then the analytic verdicts are compared
    with them, matched by workload, rate and GPU (not by row position), where both methods found a fleet of each
    kind (a non-null ``saving``).
    """
    if table.height == 0:
        raise ConfigError("the split-study table is empty")
    method = "simulated" if (table["method"] == "simulated").any() else "analytic"
    parts = []
    for name in table["workload"].unique(maintain_order=True):
        rows = table.filter((pl.col("workload") == name) & (pl.col("method") == method))
        wins, losses, ties, none = [], [], [], []
        for r in rows.iter_rows(named=True):
            if r["saving"] is None:
                none.append(r["gpu"])
            elif r["saving"] > 0.005:
                wins.append(f"{r['gpu']} ({r['saving']:.0%} cheaper, threshold {r['two_pool_threshold']})")
            elif r["saving"] < -0.005:
                losses.append(f"{r['gpu']} ({-r['saving']:.0%} dearer)")
            else:
                ties.append(r["gpu"])
        text = [f"{name} ({method})"]
        if wins:
            text.append(f"two pools beat one on {_join(wins)}")
        if losses:
            text.append(f"two pools cost more on {_join(losses)}")
        if ties:
            text.append(f"they cost the same on {_join(ties)}")
        if none:
            text.append(f"no verified fleet to compare on {_join(none)}")
        parts.append(text[0] + ": " + "; ".join(text[1:]) + ".")
    if method == "simulated":
        keys = ["workload", "qps", "gpu"]
        verdicts = [
            table.filter((pl.col("method") == m) & pl.col("saving").is_not_null()).select(
                *keys, pl.col("two_pool_wins").alias(m)
            )
            for m in ("analytic", "simulated")
        ]
        both = verdicts[0].join(verdicts[1], on=keys, how="inner")
        agree = int((both["analytic"] == both["simulated"]).sum())
        skipped = table.filter(pl.col("method") == "simulated").height - both.height
        note = f" ({skipped} without a fleet of each kind from both methods left out)" if skipped else ""
        parts.append(
            f"The analytic screen reaches the simulator's verdict in {agree} of {both.height} cases{note}."
        )
    return " ".join(parts)


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
