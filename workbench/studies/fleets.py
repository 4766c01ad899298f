"""Single-run fleet comparisons behind the seed papers' claims.

Each runs a set of simulations and returns a comparison table (the replicated studies of
:mod:`workbench.studies.topologies` and :mod:`workbench.studies.routing` repeat them on common random numbers).

* :func:`policy_study` and :func:`policy_ranks`: routing policies on one pool at several loads (LMetric,
  arXiv 2603.15202);
* :func:`length_split_study`: one pool vs two pools split by length at the same GPU count, and
  :func:`slo_sizing`: the fewest GPUs each fleet shape needs to meet a P99 TTFT SLO (inference-fleet-sim,
  arXiv 2603.16054);
* :func:`disaggregation_study`: colocated vs prefill/decode pools at the same GPU count;
* :func:`autoscale_curve`: GPU-hours vs P99 TTFT of each autoscaling policy as its knob is swept, next to
  static fleets (Knative KPA; Carlsson & Eager, arXiv 2507.19667).

Every study returns ``(table, results)``: a polars table with :func:`~workbench.sim.fleet.summarize`'s
columns (one row per simulated fleet) and the :class:`~workbench.sim.result.SimResult` of each row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from workbench.config import as_float, from_dict, require_positive, require_range
from workbench.errors import ConfigError
from workbench.seeds import Streams
from workbench.sim.fleet import SUMMARY_SCHEMA, compare, simulate, summarize
from workbench.sim.invariants import rejections_in_table
from workbench.sim.measure import Precision
from workbench.sim.result import SimResult
from workbench.sim.topology import Fleet, Pool, monolithic

#: Policies compared in the LMetric paper's setting (load- and cache-aware), in table order.
SEED_POLICIES = ("round_robin", "jsq", "vllm_v1", "llmd", "sglang_cache_aware", "dynamo", "lmetric")


def _usd_per_gpu_hour(gpu_name: str) -> float:
    """Cloud price of one GPU of an instance's ``gpu`` (a MIG slice is priced as its whole GPU)."""
    from workbench.tco import CostBasis, gpu_hour_usd

    return gpu_hour_usd(gpu_name.split("-MIG-")[0], CostBasis())


def gpu_cost_usd(result: SimResult) -> float:
    """Cloud cost of the powered GPU time (``cloud_usd_per_gpu_hr`` of each instance's GPU, MIG by share)."""
    seg = result.segments.filter(pl.col("state") != "off").join(
        result.instances.select("instance", "gpu", "n_gpus"), on="instance"
    )
    hours = seg.group_by("gpu", "n_gpus").agg(((pl.col("end_s") - pl.col("start_s")).sum() / 3600).alias("h"))
    rows = hours.select("gpu", "n_gpus", "h").iter_rows()
    return float(sum(h * n * _usd_per_gpu_hour(g) for g, n, h in rows))


def fleet_usd_per_hour(result: SimResult) -> float:
    """Cloud price per hour of all the result's instances (GPUs per instance x price per GPU, MIG by share)."""
    return float(sum(n * _usd_per_gpu_hour(g) for g, n in result.instances.select("gpu", "n_gpus").iter_rows()))


def _requests(trace) -> pl.DataFrame:
    return trace.requests if hasattr(trace, "requests") else trace


def _subset(trace, mask: pl.Series):
    """Return the requests of ``trace`` where ``mask`` holds (same type as ``trace``)."""
    reqs = _requests(trace).filter(mask)
    return trace.with_requests(reqs) if hasattr(trace, "with_requests") else reqs


def _size() -> pl.Expr:
    return pl.col("prompt_tokens").cast(pl.Int64) + pl.col("output_tokens")


# ---------------------------------------------------------------------------------------------- routing
@rejections_in_table
def policy_study(
    trace,
    policies: Sequence[str] = SEED_POLICIES,
    *,
    loads: Sequence[float] = (1.0,),
    instances: int = 8,
    seed: int = 0,
    **pool,
) -> tuple[pl.DataFrame, dict[tuple[float, str], SimResult]]:
    """Run ``trace`` sped up by each of ``loads`` through a monolithic pool under each routing policy.

    Returns the comparison table (one row per load and policy, ``load`` as ``"x2"``) and the results keyed by
    (load, policy). Extra keyword arguments go to the :class:`Pool` (``gpu``, ``model``, ``scheduler`` ...).
    """
    from workbench.traces import rescale

    results, rows = {}, []
    for load in loads:
        t = rescale(trace, load) if load != 1.0 else trace
        for p in policies:
            res = simulate(t, monolithic(instances, router=p, **pool), seed=seed)
            results[(load, p)] = res
            rows.append({"load": f"x{load:g}", "policy": p, **summarize(res)})
    return pl.DataFrame(rows), results


def policy_ranks(table: pl.DataFrame, *, baseline: str = "round_robin") -> pl.DataFrame:
    """Rank of each policy at each load by P50 and P99 TTFT (1 = best), and its TTFT relative to ``baseline``.

    Columns: ``load``, ``policy``, ``rank_p50``, ``rank_p99``, ``p50_vs_base``, ``p99_vs_base`` (policy TTFT /
    baseline TTFT: 0.1 means ten times lower).
    """
    if baseline not in table["policy"].to_list():
        have = ", ".join(table["policy"].unique(maintain_order=True).to_list())
        raise ConfigError(f"baseline: policy {baseline!r} is not in the table; it has: {have}")
    base = table.filter(pl.col("policy") == baseline).select(
        "load", pl.col("ttft_p50_s").alias("_b50"), pl.col("ttft_p99_s").alias("_b99")
    )
    return (
        table.with_columns(
            pl.col("ttft_p50_s").rank("min").over("load").cast(pl.Int32).alias("rank_p50"),
            pl.col("ttft_p99_s").rank("min").over("load").cast(pl.Int32).alias("rank_p99"),
        )
        .join(base, on="load", maintain_order="left")
        .select(
            "load", "policy", "rank_p50", "rank_p99",
            (pl.col("ttft_p50_s") / pl.col("_b50")).alias("p50_vs_base"),
            (pl.col("ttft_p99_s") / pl.col("_b99")).alias("p99_vs_base"),
        )
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------- length split
def _two_pool(n_short: int, n_long: int, threshold: int, router: str, pool: Mapping) -> Fleet:
    """Short and long pools split at ``threshold``; a pool of 0 instances is left out."""
    if n_short == 0 or n_long == 0:
        name = "long" if n_short == 0 else "short"
        cap: dict[str, Any] = {} if name == "long" else {"max_tokens": threshold}
        return Fleet(pools=(Pool(name, instances=n_short + n_long, router=router, **cap, **pool),))
    return Fleet(
        pools=(
            Pool("short", instances=n_short, max_tokens=threshold, router=router, **pool),
            Pool("long", instances=n_long, router=router, **pool),
        ),
        router="length_pools",
    )


def _short_p99(res: SimResult, threshold: int) -> float:
    ok = res.requests.filter(~pl.col("rejected") & (_size() <= threshold))
    return as_float(ok["ttft_s"].quantile(0.99)) if ok.height else math.nan


@rejections_in_table
def length_split_study(
    trace, *, gpus: int = 8, thresholds: Sequence[int] = (4096,), short_share: float | None = None,
    seed: int = 0, router: str = "jsq", **pool,
) -> tuple[pl.DataFrame, dict[str, SimResult]]:  # fmt: skip
    """Monolithic pool vs two pools split by length (short / long) with the same GPU count.

    ``short_share`` of the GPUs serve requests with prompt + output <= threshold (default: the short requests'
    share of the tokens, so each pool gets GPUs in proportion to its work). The table adds the cloud cost and
    the P99 TTFT of the short requests (those under the first threshold).
    """
    fleets = {"monolithic": monolithic(gpus, router=router, **pool)}
    size = _requests(trace).select(_size()).to_series()
    for th in thresholds:
        short_tokens = as_float(size.filter(size <= th).sum())
        share = short_share if short_share is not None else short_tokens / as_float(size.sum())
        n_short = max(1, min(gpus - 1, round(gpus * share)))
        fleets[f"two-pool @{th} ({n_short}+{gpus - n_short})"] = _two_pool(n_short, gpus - n_short, th, router,
                                                                           pool)  # fmt: skip
    results = {name: simulate(trace, f, seed=seed) for name, f in fleets.items()}
    rows = [
        {"policy": name, **summarize(res), "short_ttft_p99_s": _short_p99(res, thresholds[0]),
         "cost_usd": gpu_cost_usd(res)}
        for name, res in results.items()
    ]  # fmt: skip
    return pl.DataFrame(rows), results


@rejections_in_table
def slo_sizing(
    trace, *, slo_s: float, thresholds: Sequence[int] = (8192,), quantile: float = 0.99, max_gpus: int = 16,
    seed: int = 0, router: str = "jsq", precision: Precision | None = None, **pool,
) -> tuple[pl.DataFrame, dict[str, SimResult]]:  # fmt: skip
    """Fewest GPUs with which a monolithic pool, and two pools split at each threshold, meet a TTFT SLO.

    The SLO: the ``quantile`` (P99) TTFT of all requests is at most ``slo_s``, judged by the measurement
    kernel (:mod:`workbench.sim.measure`: steady-state verdict with a confidence interval, the run as long as
    the verdict needs, "undecided" counted as not meeting). The monolithic pool is bisected on verdicts
    (:func:`~workbench.sim.measure.smallest_count`); a two-pool fleet grows both pools from one instance each
    until the *whole fleet* meets the fleet-level SLO, then each pool is bisected down
    (:func:`~workbench.sim.measure.smallest_pair`): no pool is sized or refuted on its own requests.

    ``trace`` is a generator (drawn afresh as the kernel needs: the way to a verdict that holds on a longer
    run) or a finite trace (a verdict that needs more requests than it holds is "undecided").

    Returns a table with one row per fleet shape: ``policy``, ``gpus`` (``None`` when ``max_gpus`` are not
    enough), ``short_gpus``, ``long_gpus``, ``meets_slo``, ``verdict`` and ``ttft_p99_lo``/``ttft_p99_hi``
    (the kernel's 95 % CI of the answer, or of the largest fleet tried), ``below`` (how the next-smaller fleet
    failed), ``simulated_requests`` (for the shape's verdicts), ``usd_per_hour`` (cloud price of the fleet's
    GPUs, :func:`fleet_usd_per_hour`), :func:`~workbench.sim.fleet.summarize`'s columns of the deciding run and
    ``short_ttft_p99_s`` (requests under the first threshold), and the deciding runs' results.

    The counts (``gpus``, ``short_gpus``, ``long_gpus`` and ``max_gpus``) are instances, one GPU each with the
    default ``tp = 1`` and no MIG; ``usd_per_hour`` prices the GPUs the instances really use (``tp`` GPUs, or a
    MIG share, each at its GPU type's price).
    """
    from workbench.sim.measure import (
        Target,
        fleet_runner,
        measure,
        request_source,
        smallest_count,
        smallest_pair,
    )

    require_positive("slo_s", slo_s)
    require_range("quantile", quantile, 0.0, 1.0)
    if isinstance(max_gpus, bool) or not isinstance(max_gpus, int) or max_gpus < 2:
        raise ConfigError(f"max_gpus must be an integer >= 2, got {max_gpus!r}")
    if isinstance(pool.get("gpu"), Mapping):
        raise ConfigError(
            f"gpu: slo_sizing grows each pool one instance at a time, which a GPU mix {pool['gpu']!r} (a fixed "
            "instance count per type) does not allow; give one GPU type"
        )
    source = request_source(trace)
    targets = (Target("ttft_s", quantile, float(slo_s)),)
    rows, results = [], {}

    def judge(fleet: Fleet):
        return measure(fleet_runner(fleet, source), targets, seed=seed, precision=precision)

    def add(name, verdicts, key, n=None, n_short=None, n_long=None):
        v = verdicts.get(key) if key is not None else None
        tried = v or (verdicts[max(verdicts, key=sum)] if verdicts else None)
        est = tried.estimate("ttft_s") if tried is not None else None
        below = None
        if key is not None:
            smaller = [
                k for k in verdicts
                if sum(k) == sum(key) - 1 and all(a <= b for a, b in zip(k, key, strict=True))
            ]  # fmt: skip
            below = verdicts[smaller[0]].summary() if smaller else None
        row = {"policy": name, "gpus": n, "short_gpus": n_short, "long_gpus": n_long,
               "meets_slo": bool(v is not None and v.meets), "verdict": None if tried is None else tried.status,
               "ttft_p99_lo": None if est is None else est.low,
               "ttft_p99_hi": None if est is None else est.high,
               "below": below, "simulated_requests": sum(x.requests for x in verdicts.values()),
               "usd_per_hour": None, **dict.fromkeys(SUMMARY_SCHEMA), "short_ttft_p99_s": None}  # fmt: skip
        if v is not None:
            res = v.result
            results[name] = res
            row.update(summarize(res), usd_per_hour=fleet_usd_per_hour(res))
            row.update(short_ttft_p99_s=_short_p99(res, thresholds[0]))
        rows.append(row)

    mono: dict[tuple[int, ...], object] = {}

    def mono_at(n: int):
        if (n,) not in mono:
            mono[(n,)] = judge(monolithic(n, router=router, **pool))
        return mono[(n,)]

    n = smallest_count(mono_at, start=1, high=2, cap=max_gpus)
    add("monolithic", mono, (n,) if n else None, n)

    reqs = _requests(source.take(4000, seed)[0])
    for th in thresholds:
        short = reqs.select(_size() <= th).to_series()
        need = (bool(short.any()), bool((~short).any()))
        pair: dict[tuple[int, ...], object] = {}

        def pair_at(a: int, b: int, th: int = th, pair: dict = pair):
            if (a, b) not in pair:
                pair[(a, b)] = judge(_two_pool(a, b, th, router, pool))
            return pair[(a, b)]

        found = smallest_pair(pair_at, (1, 1), need=need, cap=(max_gpus, max_gpus))
        name = f"two-pool @{th}"
        if found is None or sum(found) > max_gpus:
            add(name, pair, None)
            continue
        add(name, pair, found, sum(found), *found)
    schema: dict[str, Any]
    schema = {"policy": pl.Utf8, "gpus": pl.Int64, "short_gpus": pl.Int64, "long_gpus": pl.Int64,
              "meets_slo": pl.Boolean, "verdict": pl.Utf8, "ttft_p99_lo": pl.Float64, "ttft_p99_hi": pl.Float64,
              "below": pl.Utf8, "simulated_requests": pl.Int64, "usd_per_hour": pl.Float64, **SUMMARY_SCHEMA,
              "short_ttft_p99_s": pl.Float64}  # fmt: skip
    return pl.DataFrame(rows, schema=schema), results


# ---------------------------------------------------------------------------------------------- disaggregation
@rejections_in_table
def disaggregation_study(
    trace, *, gpus: int = 8, prefill_shares: Sequence[float] = (0.25, 0.5), interconnect: str = "infiniband",
    seed: int = 0, router: str = "jsq", **pool,
) -> tuple[pl.DataFrame, dict[str, SimResult]]:  # fmt: skip
    """Colocated pool vs prefill/decode pools with the same GPU count (one row per prefill share)."""
    fleets = {"colocated": monolithic(gpus, router=router, **pool)}
    for share in prefill_shares:
        n_p = max(1, min(gpus - 1, round(gpus * share)))
        fleets[f"disaggregated {n_p}P:{gpus - n_p}D"] = Fleet(
            pools=(
                Pool("prefill", role="prefill", instances=n_p, router=router, **pool),
                Pool("decode", role="decode", instances=gpus - n_p, router=router, **pool),
            ),
            interconnect=interconnect,
        )
    results = {name: simulate(trace, f, seed=seed) for name, f in fleets.items()}
    return compare(results), results


# ---------------------------------------------------------------------------------------------- autoscaling
#: (policy, knob, values) swept by :func:`autoscale_curve` (``threshold``: ``down_threshold`` = up / 4).
DEFAULT_SWEEPS: tuple[tuple[str, str, tuple[float, ...]], ...] = (
    ("kpa", "target_concurrency", (8.0, 16.0, 32.0, 64.0, 128.0)),
    ("saturation", "queue_threshold", (1, 5, 20)),
    ("delayed_off", "target_concurrency", (8.0, 16.0, 32.0, 64.0, 128.0)),
    ("delayed_off", "idle_timeout_s", (10.0, 60.0, 480.0)),
    ("threshold", "up_threshold", (8.0, 16.0, 32.0, 64.0)),
)


@rejections_in_table
def autoscale_curve(
    trace,
    sweeps: Sequence[tuple[str, str, Sequence[float]]] = DEFAULT_SWEEPS,
    *,
    max_instances: int = 8,
    min_instances: int = 1,
    static: Sequence[int] | None = None,
    autoscale: Mapping | None = None,
    seed: int = 0,
    router: str = "jsq",
    **pool,
) -> tuple[pl.DataFrame, dict[tuple[str, str, float], SimResult]]:
    """GPU-hours vs latency of autoscaling policies as one knob at a time is swept, and of static fleets.

    Parameters
    ----------
    sweeps
        (policy, :class:`~workbench.sim.autoscale.AutoscaleConfig` field, values) triples; a policy may appear
        with several knobs. Sweeping ``up_threshold`` of ``threshold`` sets ``down_threshold`` to a quarter of
        it.
    static
        Static fleet sizes, the reference curve (``policy = "static"``, knob ``instances``); default 1, 2, 4,
        ... up to ``max_instances``.
    autoscale
        Other :class:`~workbench.sim.autoscale.AutoscaleConfig` fields shared by all policies
        (``setup_delay_s`` ...).

    Returns
    -------
    table, results
        One row per (policy, knob, value) in sweep order: ``policy``, ``knob``, ``value``, ``curve``
        (``"policy: knob"``), the :func:`~workbench.sim.fleet.summarize` columns and ``cost_usd``; results keyed
        by (policy, knob, value).
    """
    from workbench.sim.autoscale import AutoscaleConfig

    if static is None:
        static = sorted({min(2**k, max_instances) for k in range(max_instances.bit_length() + 1)})
    shared = dict(autoscale or {})
    fleets: dict[tuple[str, str, float], Fleet] = {}
    for n in static:
        fleets[("static", "instances", float(n))] = monolithic(n, router=router, **pool)
    for k, (policy, knob, values) in enumerate(sweeps):
        for v in values:
            fields = {**shared, knob: v}
            if policy == "threshold" and knob == "up_threshold":
                fields["down_threshold"] = v / 4
            fields.update(policy=policy, min_instances=min_instances, max_instances=max_instances)
            try:
                cfg = from_dict(AutoscaleConfig, fields)  # unknown fields named, with the valid ones
            except ConfigError as err:
                raise ConfigError(f"sweeps[{k}] ({policy!r}, {knob!r}, {v!r}): {err}") from None
            start = max(min_instances, 1)
            fleets[(policy, knob, float(v))] = Fleet(
                pools=(Pool("main", instances=start, autoscale=cfg, router=router, **pool),)
            )
    results, rows = {}, []
    for key, fleet in fleets.items():
        res = simulate(trace, fleet, seed=seed)
        results[key] = res
        policy, knob, value = key
        rows.append({"policy": policy, "knob": knob, "value": value, "curve": f"{policy}: {knob}",
                     **summarize(res), "cost_usd": gpu_cost_usd(res)})  # fmt: skip
    return pl.DataFrame(rows), results


# ---------------------------------------------------------------------------------------------- traces
def _cdf_points(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(tokens, cumulative share) of a shipped CDF file (a bare list of pairs, or ``{"cdf": [...]}``)."""
    from workbench.traces import TotalTokenCdf

    parsed = TotalTokenCdf.from_json(name, allow_download=False)  # the one reader of these files
    return parsed.tokens.astype(float), parsed.cumulative


@dataclass(frozen=True, eq=False)
class CdfLengths:
    """Prompt lengths by inverting a piecewise-linear CDF; log-normal outputs (median, sigma 0.8)."""

    x: np.ndarray
    f: np.ndarray
    output_median: float = 200.0

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Prompt and output lengths of ``n`` requests (int32, >= 1)."""
        prompt = np.maximum(np.interp(rng.random(n), self.f, self.x), 1).astype(np.int32)
        output = np.maximum(rng.lognormal(math.log(self.output_median), 0.8, n), 1).astype(np.int32)
        return prompt, output


def cdf_workload(name: str, rate: float, *, output_median: float = 200.0):
    """Return a Poisson generator with prompt lengths from a shipped CDF.

    The CDFs are ``ifs_agent_heavy_cdf`` and ``ifs_lmsys_cdf``.

    The measurement kernel draws as many requests from it as a verdict needs (:func:`slo_sizing`).
    """
    from workbench.traces import Poisson, Synthetic

    x, f = _cdf_points(name)
    return Synthetic(arrivals=Poisson(rate), lengths=CdfLengths(x, f, output_median), name=name)


def cdf_trace(name: str, n: int, rate: float, *, output_median: float = 200.0, seed: int = 0):
    """Poisson trace with prompt lengths from a shipped CDF (``ifs_agent_heavy_cdf``, ``ifs_lmsys_cdf``).

    Prompts are drawn by inverting the piecewise-linear CDF; outputs are log-normal (median ``output_median``,
    sigma 0.8). The agent-heavy CDF is the heavy-tailed mix of the inference-fleet-sim paper. Note that the file
    is a CDF of *total* tokens: :class:`workbench.traces.TotalTokenCdf` samples it the way inference-fleet-sim
    does (80 % of the total to the prompt); this study reads it as a prompt CDF (kept so its results stay).
    """
    from workbench.traces import Empirical, Poisson, Synthetic

    x, f = _cdf_points(name)
    prompt, output = CdfLengths(x, f, output_median).sample(Streams(seed).rng(0), n)
    gen = Synthetic(arrivals=Poisson(rate), lengths=Empirical(prompt, output), name=name)
    return gen.generate(n, seed=seed)


__all__ = [
    "DEFAULT_SWEEPS",
    "SEED_POLICIES",
    "CdfLengths",
    "autoscale_curve",
    "cdf_trace",
    "cdf_workload",
    "disaggregation_study",
    "fleet_usd_per_hour",
    "gpu_cost_usd",
    "length_split_study",
    "policy_ranks",
    "policy_study",
    "slo_sizing",
]
