"""Studies of the KV hierarchy, each a pure ``run(arm, seed)`` replicated with common random numbers.

Four questions (issue 20), each with its arms, its run and a default setting small enough for a notebook:

* :func:`tiers_run` -- hit rate and TTFT by tier on the Mooncake trace as the tiers grow (GPU only, then host
  DRAM of growing size, then a local SSD behind it);
* :func:`pd_run` -- prefill/decode disaggregation at scale with contended links: the KV of every finished
  prefill crosses the NICs, which the transfers share (against the same fleet with each transfer alone on its
  path, and with faster NICs);
* :func:`store_run` -- a shared remote store against per-instance host-memory caches of the same total
  capacity, with a cache-blind and a KV-load-aware router;
* :func:`agentic_run` -- an agentic workload (fan-out tool calls) run closed-loop against the open-loop replay
  of what a larger fleet logged for it.

:func:`replicate` runs every arm on the same ``replications`` seeds (replication ``r`` gets one seed for all
arms: common random numbers, so differences are paired), :func:`summary` gives each metric's mean and 95 %
confidence interval per arm and :func:`versus` the paired differences against a baseline arm, both from
:mod:`workbench.stats`. Every run reports its ``rejected`` requests (those the simulator refuses, e.g. a prompt
longer than the model's context: :meth:`~workbench.sim.instance.Instance.reject_reason`) as a metric of its row,
so the tables show them instead of one warning per run; the latency and hit metrics are over served requests.
Workloads are drawn afresh for each replication (the Mooncake trace's fitted twin,
:func:`workbench.traces.fit`, drawn by :func:`~workbench.studies._workloads.twin_trace`), so the intervals cover
the workload's randomness too. Replication seeds are those of every study
(:func:`workbench.studies.replications.replication_seed`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from workbench import stats
from workbench.config import as_float, as_int
from workbench.sim.fleet import simulate
from workbench.sim.invariants import rejections_in_table
from workbench.sim.kvtiers import KVHierarchy
from workbench.sim.topology import Fleet, Pool, monolithic
from workbench.studies._workloads import twin_trace
from workbench.studies.replications import replication_seed
from workbench.traces.agentic import AgentSessions
from workbench.traces.lengths import LogNormal
from workbench.traces.mmpp import MMPP

#: Replications each study runs unless told otherwise.
REPLICATIONS = 3
ARM, REPLICATION = "arm", "replication"


# ---------------------------------------------------------------------------------------------- replication
def replicate(run: Callable[[Any, int], dict], arms: Sequence[Any], *, replications: int = REPLICATIONS,
              seed: int = 0) -> pl.DataFrame:  # fmt: skip
    """One row per (arm, replication): the arm's label, the replication and ``run(arm, seed)``'s metrics.

    Parameters
    ----------
    run
        Pure ``run(arm, seed) -> dict`` of numbers.
    arms
        Arms with an ``arm`` label.
    replications
        Seeds per arm; replication ``r`` gets :func:`replication_seed` ``(seed, r)`` in every arm.
    seed
        Root seed.

    Returns
    -------
    polars.DataFrame
        Columns ``arm``, ``replication`` and the run's metrics.
    """
    rows = []
    for r in range(replications):
        s = replication_seed(seed, r)
        for arm in arms:
            rows.append({ARM: arm.arm, REPLICATION: r, **run(arm, s)})
    return pl.DataFrame(rows)


def summary(runs: pl.DataFrame, metrics: Sequence[str]) -> pl.DataFrame:
    """Mean and 95 % interval of ``metrics`` per arm (:func:`workbench.stats.summarize`).

    Parameters
    ----------
    runs
        A :func:`replicate` table.
    metrics
        Metric columns to summarise.

    Returns
    -------
    polars.DataFrame
        One row per arm: each metric's mean and interval.
    """
    return stats.summarize(runs, ARM, list(metrics))


def versus(runs: pl.DataFrame, baseline: str, metrics: Sequence[str]) -> pl.DataFrame:
    """Paired differences of every arm against ``baseline`` (:func:`workbench.stats.compare`).

    Parameters
    ----------
    runs
        A :func:`replicate` table.
    baseline
        The arm the others are compared with.
    metrics
        Metric columns to compare.

    Returns
    -------
    polars.DataFrame
        One row per other arm and metric: the paired difference and its interval.
    """
    return stats.compare(runs, ARM, baseline, list(metrics), pair_on=REPLICATION)


def _rejected(result) -> int:
    """Count the requests of ``result`` the simulator rejected (each with its reason in the request table)."""
    return int(result.requests["rejected"].sum())


def _hits(result) -> dict[str, float]:
    """Share of prompt tokens served from each place, TTFT mean and p99, mean load time."""
    q = result.requests.filter(~pl.col("rejected"))
    prompt = float(q["prompt_tokens"].cast(pl.Int64).sum())
    out = {"rejected": _rejected(result), "hit_rate": float(q["cached_tokens"].cast(pl.Int64).sum()) / prompt}
    for tier in ("gpu", "dram", "ssd", "store"):
        col = f"{tier}_hit_tokens"
        out[f"{tier}_share"] = float(q[col].sum()) / prompt if col in q.columns else (
            out["hit_rate"] if tier == "gpu" else 0.0)  # fmt: skip
    out["ttft_mean_s"] = float(q["ttft_s"].mean())
    out["ttft_p99_s"] = float(q["ttft_s"].quantile(0.99))
    out["kv_load_ms"] = float(q["kv_load_s"].mean()) * 1e3 if "kv_load_s" in q.columns else 0.0
    return out


# ---------------------------------------------------------------------------------------------- 1. tiers grow
@dataclass(frozen=True)
class TierArm:
    """A fleet with host DRAM and local SSD of given sizes per GPU (0: none) on the Mooncake twin.

    Attributes
    ----------
    arm
        Label.
    dram_gb, ssd_gb
        Tier capacities per GPU.
    instances, gpu, model, router
        The monolithic fleet.
    requests, speedup, dataset
        Workload: requests of the dataset's twin per replication, replayed ``speedup`` times faster.
    """

    arm: str
    dram_gb: float = 0.0
    ssd_gb: float = 0.0
    instances: int = 2
    gpu: str = "H100-SXM"
    model: str = "Llama-3.1-8B"
    router: str = "lmetric"
    requests: int = 800
    speedup: float = 1.0
    dataset: str = "mooncake_synthetic"

    def hierarchy(self) -> KVHierarchy | None:
        """Return the arm's KV hierarchy: a DRAM and/or SSD tier per instance (``None`` without either)."""
        if not (self.dram_gb or self.ssd_gb):
            return None
        return KVHierarchy(
            dram={"capacity_gb": self.dram_gb} if self.dram_gb else None,
            ssd={"capacity_gb": self.ssd_gb} if self.ssd_gb else None,
        )


#: Tiers growing: GPU only, host DRAM of 32 / 128 / 512 GB per GPU, then 128 GB DRAM + 2 TB SSD.
TIER_ARMS = (
    TierArm("gpu"),
    TierArm("dram32", dram_gb=32),
    TierArm("dram128", dram_gb=128),
    TierArm("dram512", dram_gb=512),
    TierArm("dram128+ssd2000", dram_gb=128, ssd_gb=2000),
)
TIER_METRICS = (
    "hit_rate",
    "gpu_share",
    "dram_share",
    "ssd_share",
    "ttft_mean_s",
    "ttft_p99_s",
    "kv_load_ms",
    "rejected",
)


@rejections_in_table
def tiers_run(arm: TierArm, seed: int) -> dict[str, float]:
    """One replication: hit shares by tier, TTFT mean/p99 and mean load time."""
    trace = twin_trace(arm.dataset, arm.requests, seed, arm.speedup)
    fleet = monolithic(arm.instances, gpu=arm.gpu, model=arm.model, router=arm.router)
    return _hits(simulate(trace, dataclasses.replace(fleet, hierarchy=arm.hierarchy()), seed=seed))


# ---------------------------------------------------------------------------------------------- 2. P/D links
@dataclass(frozen=True)
class PDArm:
    """A disaggregated fleet whose KV transfers cross the NICs (one GPU per node: no NVLink shortcut).

    Attributes
    ----------
    arm
        Label.
    nic
        NIC kind (:data:`workbench.sim.links.LINKS`).
    contention
        Transfers share the NICs (``False``: each alone on its path, the no-contention reference).
    prefill, decode
        Instances per pool.
    requests, speedup, dataset
        Workload.
    """

    arm: str
    nic: str = "ethernet_100g"
    contention: bool = True
    prefill: int = 6
    decode: int = 2
    requests: int = 600
    speedup: float = 1.0
    dataset: str = "mooncake_synthetic"


PD_ARMS = (
    PDArm("100GbE shared"),
    PDArm("100GbE alone", contention=False),
    PDArm("400G shared", nic="cx7_400g"),
)
PD_METRICS = ("transfer_mean_s", "transfer_p99_s", "tpot_p50_s", "e2e_p99_s", "rejected")


@rejections_in_table
def pd_run(arm: PDArm, seed: int) -> dict[str, float]:
    """One replication: KV transfer time (mean, p99), median TPOT and p99 end-to-end latency."""
    trace = twin_trace(arm.dataset, arm.requests, seed, arm.speedup)
    fleet = Fleet(
        pools=(Pool("prefill", role="prefill", instances=arm.prefill), Pool("decode", role="decode",
                                                                             instances=arm.decode)),
        hierarchy=KVHierarchy(nic=arm.nic, gpus_per_node=1, contention=arm.contention),
    )  # fmt: skip
    result = simulate(trace, fleet, seed=seed)
    q = result.requests.filter(~pl.col("rejected") & (pl.col("kv_transfer_s") > 0))
    return {
        "rejected": _rejected(result),
        "transfer_mean_s": as_float(q["kv_transfer_s"].mean()),
        "transfer_p99_s": as_float(q["kv_transfer_s"].quantile(0.99)),
        "tpot_p50_s": as_float(q["tpot_s"].median()),
        "e2e_p99_s": as_float(q["e2e_s"].quantile(0.99)),
    }


# ---------------------------------------------------------------------------------------------- 3. store
@dataclass(frozen=True)
class StoreArm:
    """Per-instance host-memory caches or one shared store of the same total capacity.

    Attributes
    ----------
    arm
        Label.
    where
        ``"none"``, ``"local"`` (``capacity_gb / instances`` of DRAM per GPU) or ``"store"`` (one store of
        ``capacity_gb`` written at prefill).
    router
        In-pool router.
    capacity_gb, instances, requests, speedup, dataset
        Total capacity, fleet and workload.
    """

    arm: str
    where: str = "none"
    router: str = "round_robin"
    capacity_gb: float = 256.0
    instances: int = 4
    requests: int = 800
    speedup: float = 1.0
    dataset: str = "mooncake_synthetic"

    def hierarchy(self) -> KVHierarchy | None:
        """Return the arm's KV hierarchy: its capacity as DRAM split over the instances, or as a store."""
        if self.where == "local":
            return KVHierarchy(dram={"capacity_gb": self.capacity_gb / self.instances})
        if self.where == "store":
            return KVHierarchy(store={"capacity_gb": self.capacity_gb})
        return None


STORE_ARMS = (
    StoreArm("none"),
    StoreArm("local", where="local"),
    StoreArm("store", where="store"),
    StoreArm("store+kv_aware", where="store", router="kv_aware"),
)
STORE_METRICS = ("hit_rate", "store_share", "dram_share", "ttft_mean_s", "ttft_p99_s", "rejected")


@rejections_in_table
def store_run(arm: StoreArm, seed: int) -> dict[str, float]:
    """One replication: hit shares, TTFT mean and p99."""
    trace = twin_trace(arm.dataset, arm.requests, seed, arm.speedup)
    fleet = dataclasses.replace(monolithic(arm.instances, router=arm.router), hierarchy=arm.hierarchy())
    return _hits(simulate(trace, fleet, seed=seed))


# ---------------------------------------------------------------------------------------------- 4. agentic
@dataclass(frozen=True)
class AgenticArm:
    """An agentic workload run closed-loop, or open-loop from the trace a larger fleet logged for it.

    Attributes
    ----------
    arm
        Label.
    mode
        ``"closed"`` or ``"open"`` (replay of the closed-loop run on ``logged_instances``).
    instances, logged_instances
        The fleet studied, and the fleet whose run was logged.
    sessions, rate, mean_steps, think_s, fanout_prob, fanout
        The workload (:class:`~workbench.traces.agentic.AgentSessions`; session starts in MMPP bursts).
    """

    arm: str
    mode: str = "closed"
    instances: int = 1
    logged_instances: int = 4
    sessions: int = 100
    rate: float = 0.6
    mean_steps: float = 6.0
    think_s: float = 2.0
    fanout_prob: float = 0.3
    fanout: int = 4

    def workload(self, seed: int):
        """Return the replication's agentic sessions drawn with ``seed`` (bursty starts, fan-out steps)."""
        gen = AgentSessions(
            sessions=MMPP.bursts(self.rate, peak_ratio=4.0, burst_share=0.2, burst_s=20.0),
            mean_steps=self.mean_steps,
            think_s=self.think_s,
            fanout_prob=self.fanout_prob,
            fanout=self.fanout,
            lengths=LogNormal(np.log(800), 0.6, np.log(200), 0.6),
            system_prompt_tokens=2048,
        )
        return gen.generate(n_sessions=self.sessions, seed=seed)


AGENTIC_ARMS = (AgenticArm("closed"), AgenticArm("open replay", mode="open"))
AGENTIC_METRICS = (
    "ttft_mean_s",
    "log10_ttft_mean",
    "ttft_p99_s",
    "queue_mean_s",
    "span_s",
    "hit_rate",
    "rejected",
)


@rejections_in_table
def agentic_run(arm: AgenticArm, seed: int) -> dict[str, float]:
    """Run one replication of the agentic study and return its measures.

    TTFT mean (and its log10: replications differ by orders of magnitude once a fleet is overloaded, and a
    paired difference of logs is a ratio), p99, mean queueing, the time to finish all sessions and the hit rate.
    """
    work = arm.workload(seed)
    fleet = monolithic(arm.instances, router="lmetric")
    if arm.mode == "closed":
        result = simulate(work, fleet, seed=seed)
    else:
        logged = simulate(work, monolithic(arm.logged_instances, router="lmetric"), seed=seed)
        result = simulate(work.replay(logged), fleet, seed=seed)
    q = result.requests.filter(~pl.col("rejected"))
    ttft = as_float(q["ttft_s"].mean())
    return {
        "rejected": _rejected(result),
        "ttft_mean_s": ttft,
        "log10_ttft_mean": float(np.log10(ttft)),
        "ttft_p99_s": as_float(q["ttft_s"].quantile(0.99)),
        "queue_mean_s": as_float(q["queue_s"].mean()),
        "span_s": as_float(q["finish_s"].max()) - as_float(q["arrival_s"].min()),
        "hit_rate": as_int(q["cached_tokens"].cast(pl.Int64).sum())
        / as_int(q["prompt_tokens"].cast(pl.Int64).sum()),
    }


__all__ = [
    "AGENTIC_ARMS",
    "AGENTIC_METRICS",
    "PD_ARMS",
    "PD_METRICS",
    "REPLICATIONS",
    "STORE_ARMS",
    "STORE_METRICS",
    "TIER_ARMS",
    "TIER_METRICS",
    "AgenticArm",
    "PDArm",
    "StoreArm",
    "TierArm",
    "agentic_run",
    "pd_run",
    "replicate",
    "replication_seed",
    "store_run",
    "summary",
    "tiers_run",
    "twin_trace",
    "versus",
]
