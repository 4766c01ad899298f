"""CALVO (arXiv 2603.21257): KV-cache loading as a first-class, asynchronously managed stage.

CALVO serves long-context requests whose reusable KV blocks sit on remote servers (distributed prefix
caching). It makes loading a stage of its own: loads progress asynchronously while the GPU keeps computing,
and the loading delay enters each request's service cost when scheduling. The paper reports up to 61.67 %
higher SLO attainment than the compute-centric baseline, which loads synchronously as a sub-phase of GPU
execution and ignores the load time when scheduling.

Here both mechanisms are those of the simulator's KV hierarchy (:mod:`workbench.sim.hierarchy`):

* **the stage**: ``promotion="overlap"`` (the request waits for its blocks while its instance keeps running
  its batch; vLLM v1's asynchronous KV connectors, SGLang HiCache, CALVO) against ``promotion="blocking"``
  (the iteration that admits the request lasts its load time longer, so the whole batch waits: vLLM v0 with
  LMCache's synchronous retrieve);
* **the cost**: the ``kv_aware`` router (LMetric's cost with the expected load time of the blocks found below
  each instance's GPU, at the links' current contention) against ``lmetric`` (the same cost, blind to the
  tiers: only GPU hits count).

The workload is the agentic closed loop of :mod:`workbench.studies.kv_hierarchy`
(:class:`~workbench.studies.kv_hierarchy.AgenticArm`: sessions starting in MMPP bursts, each step's prompt the
whole conversation so far, fan-out tool calls): long prompts (about 17,000 tokens on average) of which about 80
% are a prefix computed before. Four H100 / Llama-3.1-8B instances share a Mooncake-style store (every computed
prefix block is written to it; 2 TB) reached over one 100 GbE NIC per GPU, so a prefix that has left an
instance's GPU comes back over the network.

The workload is a **finite burst**: ``rate x duration_s`` sessions (400 at the headline) start over
``duration_s`` seconds and are served to completion; requests released in the first ``warmup_s`` seconds (caches
still empty) are not counted. It is not a steady state, and cannot be one here: at the loads where loading
matters this closed loop has none (sessions slow down, live longer and add load, so congestion keeps growing
the longer sessions keep starting: at 1 session/s, a quarter of the headline's rate, the blocking engine meets
the SLO for about 94 % of the requests of a 400 s run and 62 % of an 800 s one). The numbers are therefore
those of the stated burst, like a testbed replaying a fixed workload; the stage's advantage is that the fleet
takes a larger burst before it tips into that congestion. Each replication draws its own sessions; all arms of
a replication run on the same draw (common random numbers).

**SLO** (stated, per request): TTFT <= 2 s and TPOT <= 100 ms (an interactive agent: first token within two
seconds of a step, then faster than reading speed). SLO attainment is the share of all requests meeting both
(a rejected request misses; a one-token answer has no TPOT and needs only the TTFT).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from workbench.sim.fleet import simulate
from workbench.sim.kvtiers import KVHierarchy
from workbench.sim.topology import monolithic
from workbench.studies.claims import NOT_REPRODUCED, REPRODUCED, UNDER_CONDITIONS, Claim, interval, percent
from workbench.studies.kv_hierarchy import AgenticArm
from workbench.studies.replications import REPLICATIONS, Replicated, replicate

#: Published: SLO attainment of CALVO against its baseline, at best ("up to").
PAPER_GAIN = 0.6167
#: The stated SLO: time to first token and time per output token (seconds).
TTFT_SLO_S, TPOT_SLO_S = 2.0, 0.1
#: Short names of the NICs the study uses (:data:`workbench.sim.links.LINKS`).
NICS = {"ethernet_100g": "100GbE", "cx7_400g": "400G"}
#: What each replication reports.
METRICS = (
    "slo_attainment",
    "ttft_p99_s",
    "ttft_mean_s",
    "tpot_p50_s",
    "loaded_share",
    "hit_rate",
    "kv_load_ms",
    "wasted_loads",
    "requests",
    "rejected",
)


@dataclass(frozen=True)
class CalvoArm:
    """One engine and router on the agentic workload with a shared KV store.

    Attributes
    ----------
    arm
        Label.
    promotion
        ``"blocking"`` (loading inside GPU execution) or ``"overlap"`` (loading as its own asynchronous stage).
    router
        ``"lmetric"`` (blind to the tiers) or ``"kv_aware"`` (load time in the cost).
    nic
        NIC per GPU (the path from the store).
    rate, duration_s
        Mean session starts per second (MMPP bursts, :class:`~workbench.studies.kv_hierarchy.AgenticArm`) over
        ``duration_s`` seconds: ``rate x duration_s`` sessions, served to completion.
    warmup_s
        Requests released before this time are not counted.
    mean_steps, think_s
        Mean LLM steps per session, mean think/tool time between steps.
    instances
        H100 / Llama-3.1-8B instances.
    store_gb
        Capacity of the shared store.
    """

    arm: str
    promotion: str = "blocking"
    router: str = "lmetric"
    nic: str = "ethernet_100g"
    rate: float = 4.0
    duration_s: float = 100.0
    warmup_s: float = 30.0
    mean_steps: float = 8.0
    think_s: float = 2.0
    instances: int = 4
    store_gb: float = 2048.0

    @property
    def sessions(self) -> int:
        """Sessions per replication: ``rate x duration_s``."""
        return max(1, round(self.rate * self.duration_s))

    def workload(self, seed: int):
        """Return the replication's sessions (:meth:`workbench.studies.kv_hierarchy.AgenticArm.workload`)."""
        agentic = AgenticArm(self.arm, sessions=self.sessions, rate=self.rate, mean_steps=self.mean_steps,
                             think_s=self.think_s)  # fmt: skip
        return agentic.workload(seed)

    def hierarchy(self) -> KVHierarchy:
        """Return the shared store, the NICs and the promotion mode."""
        return KVHierarchy(store={"capacity_gb": self.store_gb}, promotion=self.promotion, nic=self.nic)


def label(promotion: str, router: str = "lmetric", rate: float = 4.0, nic: str = "ethernet_100g") -> str:
    """Return an arm's label: ``"overlap, kv_aware"`` at the headline setting, else with its rate and NIC."""
    base = f"{promotion}, {router}"
    if rate == CalvoArm.rate and nic == CalvoArm.nic:
        return base
    return f"{base} @ {rate:g}/s, {NICS.get(nic, nic)}"


def arm(promotion: str, router: str = "lmetric", rate: float = 4.0, nic: str = "ethernet_100g") -> CalvoArm:
    """Return the arm of that engine, router, load and NIC (labelled by :func:`label`)."""
    return CalvoArm(label(promotion, router, rate, nic), promotion=promotion, router=router, rate=rate, nic=nic)


def slo_met(requests: pl.DataFrame, ttft_s: float = TTFT_SLO_S, tpot_s: float = TPOT_SLO_S) -> pl.Series:
    """Per request: served, TTFT within ``ttft_s`` and TPOT within ``tpot_s`` (no TPOT: one output token)."""
    return requests.select(
        (~pl.col("rejected")) & (pl.col("ttft_s").fill_null(float("inf")) <= ttft_s)
        & (pl.col("tpot_s").fill_null(0.0) <= tpot_s)
    ).to_series()  # fmt: skip


def run(arm: CalvoArm, seed: int) -> dict[str, float]:
    """Run one replication of the CALVO study and return its measures.

    SLO attainment, TTFT (P99, mean), median TPOT, the share of prompt tokens loaded from the store, the
    prefix-hit rate, the mean load wait, the share of loaded prefix entries recomputed anyway (evicted, or cut
    off from their GPU prefix, before their request was admitted; whole run) and the request counts (after the
    warm-up).
    """
    fleet = dataclasses.replace(monolithic(arm.instances, router=arm.router), hierarchy=arm.hierarchy())
    result = simulate(arm.workload(seed), fleet, seed=seed)
    q = result.requests.filter(pl.col("arrival_s") >= arm.warmup_s)
    served = q.filter(~pl.col("rejected"))
    counters = result.counters["kv_hierarchy"]
    loaded, wasted = int(counters["loaded_entries"]), int(counters["loaded_unused_entries"])
    ttft, tpot = pl.col("ttft_s"), pl.col("tpot_s")
    row = served.select(
        ttft_p99_s=ttft.quantile(0.99), ttft_mean_s=ttft.mean(), tpot_p50_s=tpot.median(),
        loaded_share=pl.col("store_hit_tokens").sum() / pl.col("prompt_tokens").cast(pl.Int64).sum(),
        hit_rate=pl.col("cached_tokens").cast(pl.Int64).sum() / pl.col("prompt_tokens").cast(pl.Int64).sum(),
        kv_load_ms=pl.col("kv_load_s").mean() * 1e3,
    ).row(0, named=True)  # fmt: skip
    return {
        "slo_attainment": float(slo_met(q).to_numpy().mean()) if q.height else 0.0,
        **{k: float(v) for k, v in row.items()},
        "wasted_loads": wasted / max(1, loaded),
        "requests": float(q.height),
        "rejected": float(q["rejected"].sum()),
    }


#: The headline comparison: both engines with both routers, at 4 sessions/s over 100 GbE.
ARMS = (
    arm("blocking", "lmetric"),
    arm("overlap", "lmetric"),
    arm("blocking", "kv_aware"),
    arm("overlap", "kv_aware"),
)
#: Where the stage's gain comes from: lighter loads (2 and 3 sessions/s) and a 4x faster NIC (400G), each
#: blocking vs overlap with ``lmetric`` (the headline arms give the point at 4/s over 100 GbE).
CONDITIONS = tuple(
    arm(p, "lmetric", rate, nic)
    for rate, nic in ((2.0, "ethernet_100g"), (3.0, "ethernet_100g"), (4.0, "cx7_400g"))
    for p in ("blocking", "overlap")
)
#: Labels of the compared engines at the headline setting: the compute-centric baseline, loading as a stage,
#: and the stage with the load time in the router's cost (CALVO's two mechanisms together).
BASELINE, STAGE, CALVO = label("blocking"), label("overlap"), label("overlap", "kv_aware")


def study(arms: Sequence[CalvoArm] = ARMS, *, replications: int = REPLICATIONS, seed: int = 0,
          n_jobs: int = 1) -> Replicated:  # fmt: skip
    """Every arm on the same ``replications`` seeds (common random numbers).

    :data:`ARMS` by default, and ``study(CONDITIONS)`` for the conditions (same seeds, so its draws are the
    headline's).
    """
    return replicate(run, arms, replications=replications, seed=seed, n_jobs=n_jobs)


def gains(*reps: Replicated, metric: str = "slo_attainment") -> pl.DataFrame:
    """Overlap against blocking (router ``lmetric``) at every load and NIC of the studies ``reps``.

    Paired relative change of ``metric`` with its 95 % interval, and the blocking arm's share of prompt tokens
    loaded from the store and mean ``metric``.

    Returns
    -------
    polars.DataFrame
        Columns ``rate``, ``nic``, ``loaded_share``, ``baseline``, ``gain``, ``gain_lo``, ``gain_hi``,
        ``significant``; one row per (NIC, rate) found with both engines, sorted by NIC then rate.
    """
    rows = []
    for rep in reps:
        runs = rep.runs.filter(pl.col("router") == "lmetric")
        for rate, nic in runs.select("rate", "nic").unique().iter_rows():
            blocking, overlap = label("blocking", "lmetric", rate, nic), label("overlap", "lmetric", rate, nic)
            if blocking not in rep.arms or overlap not in rep.arms:
                continue
            g = rep.ratio(overlap, blocking, metric)
            rows.append({
                "rate": float(rate), "nic": NICS.get(nic, nic),
                "loaded_share": _mean(rep.values(blocking, "loaded_share")),
                "baseline": _mean(rep.values(blocking, metric)),
                "gain": g.value, "gain_lo": g.low, "gain_hi": g.high, "significant": g.side_of(0.0) != 0,
            })  # fmt: skip
    schema = {"rate": pl.Float64, "nic": pl.Utf8, "loaded_share": pl.Float64, "baseline": pl.Float64,
              "gain": pl.Float64, "gain_lo": pl.Float64, "gain_hi": pl.Float64, "significant": pl.Boolean}
    return pl.DataFrame(rows, schema=schema, orient="row").sort("nic", "rate")  # fmt: skip


def _mean(values: pl.Series) -> float:
    return float(values.to_numpy().mean())


def _pct(value: float, low: float, high: float) -> str:
    """``"+41 % [+29, +54]"``; one decimal when the interval lies within 5 % of zero."""
    d = 1 if max(abs(low), abs(high)) < 0.05 else 0
    return f"{100 * value:+.{d}f} % [{100 * low:+.{d}f}, {100 * high:+.{d}f}]"


def _nic_effect(table: pl.DataFrame) -> str:
    """Whether the gain shrinks with a 4x faster NIC at the same load (a sentence, empty without both)."""
    fast = table.filter(pl.col("nic") == NICS["cx7_400g"])
    for r in fast.iter_rows(named=True):
        slow = table.filter((pl.col("nic") == NICS["ethernet_100g"]) & (pl.col("rate") == r["rate"]))
        if slow.height:
            s = slow.row(0, named=True)
            if r["gain_hi"] >= s["gain_lo"]:
                return (
                    f"With a 4x faster NIC the gain hardly shrinks ({100 * r['gain']:+.0f} % vs "
                    f"{100 * s['gain']:+.0f} % at {r['rate']:g}/s), so it is mostly not the stall itself. "
                )
            return f"A 4x faster NIC shrinks the gain ({100 * r['gain']:+.0f} % vs {100 * s['gain']:+.0f} %). "
    return ""


def claim(rep: Replicated, conditions: Replicated | None = None) -> Claim:
    """Return the SLO-attainment gains of the stage and of both mechanisms against the baseline.

    ``rep`` holds the :data:`ARMS` runs; ``conditions`` (:data:`CONDITIONS`, optional) adds where the stage's
    gain holds.
    """
    stage = rep.ratio(STAGE, BASELINE, "slo_attainment")
    full = rep.ratio(CALVO, BASELINE, "slo_attainment")
    router = rep.difference(CALVO, STAGE, "slo_attainment")
    points = rep.difference(STAGE, BASELINE, "slo_attainment").estimate
    p99 = rep.ratio(STAGE, BASELINE, "ttft_p99_s")
    base, over = rep.estimate(BASELINE, "slo_attainment"), rep.estimate(STAGE, "slo_attainment")
    wasted = (rep.estimate(BASELINE, "wasted_loads"), rep.estimate(STAGE, "wasted_loads"))
    table = gains(rep, *([conditions] if conditions is not None else []))
    where = "; ".join(
        f"{r['rate']:g}/s burst, {r['nic']} ({100 * r['loaded_share']:.0f} % loaded): "
        + _pct(r["gain"], r["gain_lo"], r["gain_hi"])
        for r in table.iter_rows(named=True)
    )
    gained = table.filter(pl.col("gain_lo") > 0)
    flat = table.filter(pl.col("gain_lo") <= 0)
    gained_at = ", ".join(f"{r:g}/s {n}" for r, n in gained.select("rate", "nic").iter_rows())
    flat_at = ", ".join(f"{r:g}/s {n}" for r, n in flat.select("rate", "nic").iter_rows())
    first = rep.runs.filter(pl.col("arm") == BASELINE).row(0, named=True)
    sessions = round(first["rate"] * first["duration_s"])
    if stage.low <= 0:
        verdict = NOT_REPRODUCED
        reason = "an asynchronous loading stage raises no SLO attainment significantly at the headline load"
    elif flat.height == 0 and stage.high >= PAPER_GAIN:
        verdict = REPRODUCED
        reason = "the stage's gain is significant at every load and NIC tried and reaches the published size"
    else:
        verdict = UNDER_CONDITIONS
        loaded = rep.estimate(BASELINE, "loaded_share").value
        reason = (
            "loading as an asynchronous stage raises SLO attainment significantly, by up to about the "
            f"published size, only near saturation ({gained_at}), where the GPU caches overflow and "
            f"{100 * loaded:.0f} % of the prompt tokens come back from the store"
            + (f"; none at {flat_at}, where few tokens are loaded" if flat.height else "")
            + ". "
            + _nic_effect(table)
            + "A blocking engine tips into congestion, its requests queue longer, and a queued request whose "
            f"planned prefix leaves the GPU before admission recomputes it ({100 * wasted[0].value:.0f} % of "
            f"loaded entries vs {100 * wasted[1].value:.0f} % with overlap); the simulator plans a load when "
            "the request reaches its instance, not at admission, which may overstate this. The load time in "
            f"the router's cost (kv_aware) changes SLO attainment by {100 * router.estimate.value:+.0f} points "
            f"({'significant' if router.significant else 'not significant'}) on top of the stage"
            + (": it trades GPU hits for loads" if router.estimate.high < 0 else "")
        )  # fmt: skip
    return Claim(
        paper="CALVO (arXiv 2603.21257)",
        published="KV loading as a first-class, asynchronously managed stage, with the load delay in the "
        f"scheduling cost: up to +{100 * PAPER_GAIN:.2f} % SLO attainment over a compute-centric engine",
        setup=(
            f"{first['instances']} x H100 / Llama-3.1-8B; a burst of {sessions} agent sessions (closed loop) "
            f"starting over {first['duration_s']:g} s, served to completion, requests of the first "
            f"{first['warmup_s']:g} s not counted (no steady state at these loads); ~80 % of prompt tokens a "
            f"reused prefix; shared store over 100 GbE per GPU; SLO TTFT <= {TTFT_SLO_S:g} s and TPOT <= "
            f"{1e3 * TPOT_SLO_S:g} ms; blocking vs overlapped loads, lmetric vs kv_aware; "
            f"{rep.replications} seeds"
        ),
        result=(
            f"SLO attainment {interval(base)} blocking -> {interval(over)} overlap: {percent(stage)} "
            f"({100 * points.value:+.1f} points), {percent(full)} with overlap + kv_aware; P99 TTFT "
            f"{percent(p99)}; overlap vs blocking by load: {where}"
        ),
        verdict=verdict,
        reason=reason,
        estimate=stage,
    )


__all__ = [
    "ARMS",
    "BASELINE",
    "CALVO",
    "CONDITIONS",
    "METRICS",
    "NICS",
    "PAPER_GAIN",
    "STAGE",
    "TPOT_SLO_S",
    "TTFT_SLO_S",
    "CalvoArm",
    "arm",
    "claim",
    "gains",
    "label",
    "run",
    "slo_met",
    "study",
]
