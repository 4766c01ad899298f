"""Fleet sizing: the minimum-cost fleet meeting an SLO (analytic screen, then simulation check).

>>> from workbench.planning import SLO, candidate_grid, size_fleet          # doctest: +SKIP
>>> result = size_fleet(trace, SLO(ttft_s=2.0, tpot_s=0.1), candidate_grid(["H100", "A100", "L40S"]),
...                     model="Llama-3.1-8B", qps=20)                      # doctest: +SKIP
>>> result.table.head(); print(result.explanation)                        # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from workbench.carbon import gco2e_per_1k_tokens
from workbench.config import require_int
from workbench.errors import ConfigError
from workbench.hardware import CalibratedModel
from workbench.planning import check as sim_check
from workbench.planning import costs, screen
from workbench.planning.question import Question, ask
from workbench.planning.spec import SLO, Candidate, gpu_name
from workbench.planning.workload import Workload
from workbench.sim.measure import MAX_GROWTH, Precision
from workbench.tco import CostBasis, gpu_hour_usd
from workbench.traces.schema import Trace

#: Columns of the configuration part of a sizing table.
CONFIG_COLUMNS = (
    "candidate",
    "topology",
    "gpu",
    "tp",
    "threshold",
    "gpu2",
    "tp2",
    "max_num_seqs",
    "clock",
    "router",
)


#: Columns of :meth:`SizingResult.ranked`: the candidate, its counts, cost, energy, latency and verdicts.
RANKED_COLUMNS = (
    "rank",
    "candidate",
    "instances",
    "sim_instances",
    "gpus",
    "usd_per_hour",
    "sim_usd_per_hour",
    "usd_per_m_output_tokens",
    "j_per_output_token",
    "gco2e_per_1k_output_tokens",
    "ttft_p99_s",
    "sim_ttft_p99_s",
    "tpot_p99_s",
    "sim_tpot_p99_s",
    "slo_met",
    "sim_slo_met",
)


def _config_frame(cands: Sequence[Candidate]) -> pl.DataFrame:
    second = [c.topology != "monolithic" for c in cands]
    return pl.DataFrame(
        {
            "candidate": [c.label for c in cands],
            "topology": [c.topology for c in cands],
            "gpu": [gpu_name(c.gpu) for c in cands],
            "tp": [c.tp for c in cands],
            "threshold": [c.threshold for c in cands],
            "gpu2": [gpu_name(c.second_gpu) if s else None for c, s in zip(cands, second, strict=True)],
            "tp2": [c.second_tp if s else None for c, s in zip(cands, second, strict=True)],
            "max_num_seqs": [c.max_num_seqs for c in cands],
            "clock": [c.clock for c in cands],
            "router": [c.router for c in cands],
        },
        schema_overrides={"threshold": pl.Int64, "gpu2": pl.Utf8, "tp2": pl.Int64},
    )


def metrics_table(
    wl: Workload,
    cands: Sequence[Candidate],
    model_name: str,
    cost: CostBasis,
    n1: np.ndarray,
    n2: np.ndarray,
    batch1: np.ndarray,
    batch2: np.ndarray,
    busy1: np.ndarray,
    busy2: np.ndarray,
) -> pl.DataFrame:
    """Cost, energy and carbon columns for candidates with instance counts ``n1``/``n2`` (vectorised)."""
    g1 = np.array([gpu_name(c.gpu) for c in cands], dtype=object)
    g2 = np.array([gpu_name(c.second_gpu) if c.topology != "monolithic" else "" for c in cands], dtype=object)
    t1 = np.array([c.tp for c in cands])
    t2 = np.array([c.second_tp if c.topology != "monolithic" else 0 for c in cands])
    clk = np.array([c.clock for c in cands], float)
    price = {}
    for g, t in {*zip(g1, t1, strict=True), *zip(g2, t2, strict=True)}:
        if g:
            price[(g, t)] = gpu_hour_usd(g, cost, model_name, int(t))
    p1 = np.array([price[(g, t)] for g, t in zip(g1, t1, strict=True)])
    p2 = np.array([price.get((g, t), 0.0) for g, t in zip(g2, t2, strict=True)])
    gpus = n1 * t1 + n2 * t2
    usd_h = n1 * t1 * p1 + n2 * t2 * p2
    watts = costs.pool_power_w(g1, t1, model_name, n1, batch1, busy1, clk) + costs.pool_power_w(
        g2, t2, model_name, n2, batch2, busy2, clk
    )
    tok_s = wl.output_tokens_per_s
    place = cost.place()
    j_tok = watts / tok_s
    return pl.DataFrame(
        {
            "instances": (n1 + n2).astype(np.int64),
            "gpus": gpus.astype(np.int64),
            "usd_per_hour": usd_h,
            "usd_per_m_output_tokens": usd_h / (tok_s * 3600.0) * 1e6,
            "j_per_output_token": j_tok,
            "gco2e_per_1k_output_tokens": gco2e_per_1k_tokens(j_tok, place),
            "power_kw": watts / 1000.0,
        }
    )


def screen_table(
    wl: Workload,
    slo: SLO,
    cands: Sequence[Candidate],
    model_name: str = "Llama-3.1-8B",
    cost: CostBasis | None = None,
    perf: screen.PerfSpec = "roofline",
    arrivals: str = "burst",
) -> pl.DataFrame:
    """Step 1 on its own: the analytic minimum instance count and metrics of every candidate (one row each).

    Rows keep the order of ``cands``. Latency columns hold the SLO quantile (P99 unless a goodput target is
    set) and the median; ``miss`` is the factor by which an infeasible candidate's best reachable latency
    exceeds the target (0 when the SLO is met); ``stable_instances1``/``2`` are the fewest instances per pool
    whose capacity exceeds the load (the lower end of the kernel's bracket).

    Parameters
    ----------
    wl
        The prepared workload (:func:`workload`).
    slo
        Latency targets.
    cands
        Fleet shapes.
    model_name
        Model served.
    cost
        Cost basis (default :class:`CostBasis`).
    perf
        Performance model of the screen (:data:`~workbench.planning.screen.PerfSpec`).
    arrivals
        Arrival model of the screen: ``"burst"`` (default), ``"renewal"`` or ``"poisson"`` (see
        :mod:`workbench.planning.screen`).

    Returns
    -------
    polars.DataFrame
        One row per candidate, in the order of ``cands``.
    """
    if not cands:
        raise ConfigError("candidate list is empty: give at least one Candidate")
    cost = cost or CostBasis()
    r = screen.solve(wl, slo, cands, model_name, screen.perf_factory(perf), arrivals)
    n1, n2 = r["n1"].astype(float), r["n2"].astype(float)
    m = metrics_table(wl, cands, model_name, cost, n1, n2, r["batch1"], r["batch2"], r["util1"], r["util2"])
    lat = pl.DataFrame(
        {
            "instances1": r["n1"],
            "instances2": r["n2"],
            "stable_instances1": r["n1_stable"],
            "stable_instances2": r["n2_stable"],
            "ttft_p50_s": r["ttft_50"],
            "ttft_p99_s": r["ttft_q"],
            "tpot_p50_s": r["tpot_50"],
            "tpot_p99_s": r["tpot_q"],
            "busy1": r["util1"],
            "busy2": r["util2"],
            "slo_met": r["ok"],
            "fits": r["fits"],
            "miss": r["miss"],
            "note": r["why"],
        }
    )
    table = pl.concat([_config_frame(cands), lat, m], how="horizontal")
    # an infeasible candidate has no instance count, hence no cost, energy or carbon
    metric_cols = ["instances1", "instances2", *m.columns]
    return table.with_columns(
        [pl.when(pl.col("slo_met")).then(pl.col(c)).otherwise(None).alias(c) for c in metric_cols]
    )


@dataclass(frozen=True)
class SizingResult:
    """Answer of :func:`size_fleet`.

    Attributes
    ----------
    table
        One row per candidate ranked by cost (SLO-meeting first): analytic counts and metrics, and for the
        checked candidates the simulated counts (``sim_instances``, ``sim_ttft_p99_s``, ``sim_slo_met`` ...).
    best
        The minimum-cost candidate that meets the SLO (verified by simulation when checked), as a row dict;
        ``None`` when no candidate meets it.
    explanation
        One paragraph in words.
    checks
        Every simulation of the check (candidate, instance counts, latencies, SLO met).
    slo, qps, workload_name
        The question.
    timings
        Seconds spent in the screen and the check.
    """

    table: pl.DataFrame
    best: dict | None
    explanation: str
    checks: pl.DataFrame
    slo: SLO
    qps: float
    workload_name: str
    timings: dict = field(default_factory=dict)

    def ranked(self, columns: Sequence[str] = RANKED_COLUMNS) -> pl.DataFrame:
        """Return the ranked table cut to ``columns`` (those present; the ``sim_*`` ones only after a check)."""
        return self.table.select([c for c in columns if c in self.table.columns])


def _rank(table: pl.DataFrame) -> pl.DataFrame:
    """Rank verified candidates first (by simulated cost), then the other SLO-meeting ones, then the misses."""
    if "sim_slo_met" in table.columns:
        tier = (
            pl.when(pl.col("sim_slo_met").fill_null(False))
            .then(0)
            .when(pl.col("slo_met") & pl.col("sim_slo_met").is_null())
            .then(1)
            .otherwise(2)
        )
        cost = pl.coalesce("sim_usd_per_hour", "usd_per_hour")
    else:
        tier, cost = pl.when(pl.col("slo_met")).then(1).otherwise(2), pl.col("usd_per_hour")
    return (
        table.with_columns(_tier=tier, _cost=cost)
        .sort(["_tier", "_cost", "miss", "gpus"], nulls_last=True)
        .drop("_tier", "_cost")
        .with_row_index("rank", offset=1)
    )


def size_fleet(
    trace: Question | Trace | Workload | object,
    slo: SLO | Sequence[Candidate] | None = None,
    candidates: Sequence[Candidate] | None = None,
    *,
    model: str | None = None,
    qps: float | None = None,
    cost: CostBasis | None = None,
    check: int = 3,
    precision: Precision | None = None,
    per_pool: bool = False,
    stop_early: bool = False,
    seed: int | None = None,
    perf: screen.PerfSpec | None = None,
    arrivals: str = "burst",
    progress: bool | Callable[[int, int], None] | None = None,
) -> SizingResult:
    """Find the minimum-cost fleet meeting ``slo`` for a workload.

    Two forms: ``size_fleet(question, candidates, check=...)`` with a :class:`~workbench.planning.Question`
    (workload, SLO, model, cost basis, seed, performance model, rate), or the question's parts loose,
    ``size_fleet(trace, slo, candidates, model=..., qps=..., cost=..., seed=..., perf=...)`` (unset ones take
    the :class:`~workbench.planning.Question` defaults: Llama-3.1-8B, the trace's own rate, ``CostBasis()``,
    seed 0, the roofline).

    Parameters
    ----------
    trace
        A :class:`~workbench.planning.Question`, or the workload: a :class:`~workbench.traces.Trace` (real
        or generated), a workload generator with ``.generate`` (e.g.
        :class:`~workbench.traces.synthetic.Synthetic`: the screen samples 4,000 requests drawn with ``seed``,
        the measurement kernel draws as many as its verdicts need), or a prepared :class:`Workload`. A trace
        is finite: verdicts that need more requests than it holds are "undecided".
    slo
        Latency targets (with a question: the candidates).
    candidates
        Fleet shapes to size (see :func:`~workbench.planning.candidate_grid`).
    model
        Model served (name from the model zoo; default Llama-3.1-8B).
    qps
        Scale the trace to this mean arrival rate (``None``: its own rate).
    cost
        Cost basis (:class:`~workbench.tco.CostBasis`; cloud $/GPU-hour by default).
    check
        Candidates sized by the measurement kernel (:mod:`workbench.sim.measure`), cheapest analytic first
        (0: analytic only): each count is judged by a steady-state whole-fleet verdict, bisected inside the
        screen's bracket, and the answer is the smallest count that meets. When the kernel refutes all of them,
        up to ``check`` more are tried before the answer says none was verified.
    precision
        The kernel's tolerance, confidence level and request cap (:class:`~workbench.sim.measure.Precision`;
        default 5 %, 95 %, 8,000 to 128,000 requests per verdict).
    per_pool
        Also require every pool of a two-pool fleet to meet the SLO on its own requests (default: the SLO is
        the fleet's, over all requests).
    stop_early
        Stop verifying once no remaining candidate's analytic cost can beat the best verified cost.
    seed
        Seed of the length sample and of the kernel's runs (every count is judged on the same requests).
    arrivals
        Arrival model of the screen (:data:`~workbench.planning.screen.ARRIVALS`; default ``"burst"``).
    perf
        Performance model by name, for the screen and the simulation check alike: ``"roofline"`` (default) or
        ``"calibrated:<name>"``, a calibration saved with :meth:`~workbench.hardware.CalibratedModel.save`
        (e.g. from :func:`workbench.validation.calibrate_vllm`; resolved by
        :func:`workbench.hardware.performance_model`). A calibration times only the GPU, model and TP it was
        measured on (other candidates cannot be sized: ``fits`` false, the reason in ``note``) and only the
        batches its benchmark exercised: candidates' ``max_num_seqs`` must not exceed its decode batch, the
        simulated instances batch at most its tokens per iteration, and a batch outside it stops the check
        with a :class:`~workbench.errors.HardwareError`. A factory ``(gpu, model, tp) -> PerformanceModel``
        changes the screen only (the check simulates the roofline).
    progress
        Progress bar over the simulation check (``None``: in a terminal or a notebook, not in scripts' logs);
        a callable is called as ``progress(done, total)`` after each checked candidate instead.

    Returns
    -------
    SizingResult
        The ranked candidates, the answer and its verdict.
    """
    question, candidates = ask(trace, slo, candidates, model=model, qps=qps, cost=cost, seed=seed, perf=perf)
    if not candidates:
        raise ConfigError("candidate list is empty: give at least one Candidate")
    check = require_int("check", check, low=0)
    slo, model, cost, seed, perf = question.slo, question.model, question.cost, question.seed, question.perf
    wl = question.prepared()
    spec = perf if isinstance(perf, str | CalibratedModel) else "roofline"  # what the check simulates
    _check_calibration(spec, candidates, wl)
    t0 = time.perf_counter()
    table = screen_table(wl, slo, candidates, model, cost, perf, arrivals).with_row_index("_i")
    t1 = time.perf_counter()
    checks = pl.DataFrame()
    if check > 0 and table["slo_met"].any():
        sim_rows, checks = sim_check.check_candidates(
            wl,
            slo,
            candidates,
            table,
            model=model,
            cost=cost,
            budget=check,
            precision=precision,
            per_pool=per_pool,
            seed=seed,
            stop_early=stop_early,
            progress=progress,
            perf=spec,
        )
        if sim_rows.height:
            table = table.join(sim_rows, on="_i", how="left")
    t2 = time.perf_counter()
    table = _rank(table.drop("_i"))
    best = _best(table)
    text = explain(table, best, slo, wl, model, checks, perf=spec if isinstance(spec, str) else spec.spec)
    return SizingResult(
        table=table,
        best=best,
        explanation=text,
        checks=checks,
        slo=slo,
        qps=wl.qps,
        workload_name=wl.name,
        timings={"screen_s": t1 - t0, "check_s": t2 - t1},
    )


def _check_calibration(perf: str | CalibratedModel, candidates: Sequence[Candidate], wl: Workload) -> None:
    """Check a calibrated model's domain against the candidates' batch caps and the longest request.

    The longest request is the workload's.
    """
    from workbench.hardware import calibration_domain

    dom = calibration_domain(perf)
    if dom is None:
        return
    over = [c.label for c in candidates if c.max_num_seqs > dom.max_decode_seqs]
    if over:
        raise ConfigError(
            f"perf={perf!r} measured at most {dom.max_decode_seqs} decoding sequences per iteration, but "
            f"{', '.join(over[:3])}{' ...' if len(over) > 3 else ''} allow(s) max_num_seqs above it: size with "
            f"candidate_grid(..., max_num_seqs=[{dom.max_decode_seqs}]) (the server's batch cap as "
            "benchmarked), or benchmark at a higher concurrency"
        )
    lengths = wl.trace.requests.select(pl.col("prompt_tokens") + pl.col("output_tokens")).to_series()
    longest = int(lengths.max() or 0)  # type: ignore[arg-type]
    if longest > dom.max_context:
        raise ConfigError(
            f"perf={perf!r} measured sequences of at most {dom.max_context} tokens, but the workload has a "
            f"request of {longest} prompt + output tokens: benchmark longer requests, or cut the workload"
        )


def _best(table: pl.DataFrame) -> dict | None:
    """Return the first-ranked candidate that meets the SLO (verified by simulation when any was simulated)."""
    met = pl.col("sim_slo_met").fill_null(False) if "sim_slo_met" in table.columns else pl.col("slo_met")
    ok = table.filter(met)
    return ok.row(0, named=True) if ok.height else None


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _fmt_lat(ttft: float, tpot: float, slo: SLO) -> str:
    q = f"P{slo.quantile * 100:g}"
    return f"{q} TTFT {ttft:.2f} s, {q} TPOT {tpot * 1e3:.0f} ms"


def _compare(usd: float, ref: float) -> str:
    """``"12% more"``, ``"5% less"`` or ``"the same"`` (cost ``usd`` against ``ref``)."""
    change = usd / ref - 1.0
    if abs(change) < 0.005:
        return "the same"
    return f"{abs(change):.0%} {'more' if change > 0 else 'less'}"


def _simulated(table: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Split the candidates that meet the SLO analytically into verified, refuted and not simulated."""
    met = table.filter(pl.col("slo_met"))
    if "sim_slo_met" not in table.columns:
        return met.clear(), met.clear(), met
    return (
        met.filter(pl.col("sim_slo_met").fill_null(False)),
        met.filter(~pl.col("sim_slo_met").fill_null(True)),
        met.filter(pl.col("sim_slo_met").is_null()),
    )


def _fmt_ci_row(r: dict, slo: SLO) -> str:
    """Latency CIs of one row of the kernel's verdicts (``checks``)."""
    q = f"P{slo.quantile * 100:g}"
    parts = []
    if slo.ttft_s is not None and r.get("ttft_p99_s") is not None:
        parts.append(f"{q} TTFT {sim_check.fmt_ci(r['ttft_p99_s'], r['ttft_p99_lo'], r['ttft_p99_hi'])}")
    if slo.tpot_s is not None and r.get("tpot_p99_s") is not None:
        ci = sim_check.fmt_ci(r["tpot_p99_s"], r["tpot_p99_lo"], r["tpot_p99_hi"], "ms", 1e3)
        parts.append(f"{q} TPOT {ci}")
    if r.get("rejected_share"):
        parts.append(f"{r['rejected_share']:.1%} rejected")
    return ", ".join(parts)


def _no_fleet(table: pl.DataFrame, slo: SLO, model: str, head: str, checks: pl.DataFrame | None) -> str:
    """Return the answer when no candidate is verified (or none meets the SLO analytically)."""
    _, refuted, unchecked = _simulated(table)
    n_met = int(table["slo_met"].sum())
    if n_met:  # the screen found fleets, the simulator refuted every one it checked
        names = ", ".join(refuted["candidate"].to_list())
        which = "the one simulated" if refuted.height == 1 else f"all {refuted.height} simulated"
        text = (
            f"{head}, no fleet is verified: {_n(n_met, 'candidate')} met the SLO analytically, but {which} "
            f"({names}) met it in no whole-fleet simulation up to {MAX_GROWTH}x the analytic count."
        )
        if checks is not None and checks.height:
            last = checks.filter(pl.col("candidate") == refuted["candidate"][0])
            if last.height:
                r = (
                    last.with_columns(_n=pl.col("instances1") + pl.col("instances2"))
                    .sort("_n")
                    .row(-1, named=True)
                )
                text += (
                    f" {refuted['candidate'][0]} with {r['_n']} instances was {r['verdict']}"
                    + (f": {_fmt_ci_row(r, slo)}" if r["ttft_p99_s"] is not None or r["tpot_p99_s"] is not None
                       else "")
                    + "."
                )  # fmt: skip
        if unchecked.height:
            text += (
                f" {_n(unchecked.height, 'other candidate')} met it analytically but "
                f"{'was' if unchecked.height == 1 else 'were'} not simulated (raise check= to verify more)."
            )
        return text + " The analytic screen is optimistic here: relax the target or simulate larger fleets."
    fits = table.filter(pl.col("fits"))
    if fits.height == 0:
        note = table["note"][0]
        return (
            f"{head}, no candidate can serve the model: {model} does not fit on any candidate GPU at the given "
            f"tensor-parallel degree ({note}). Add GPUs with more memory or a higher tensor-parallel degree."
        )
    row = fits.sort("miss").row(0, named=True)
    worst = "TTFT" if slo.ttft_s is not None and row["ttft_p99_s"] > slo.ttft_s else "TPOT"
    skipped = table.height - fits.height
    by = f"by {row['miss']:.0%}" if np.isfinite(row["miss"]) else "at any instance count"
    return (
        f"{head}, no candidate meets the SLO. The closest is {row['candidate']}, whose predicted "
        f"{_fmt_lat(row['ttft_p99_s'], row['tpot_p99_s'], slo)} misses the {worst} target {by} "
        "even with unlimited instances: adding instances cannot remove the per-request prefill and decode "
        "time. Relax the target, add faster GPUs or a higher tensor-parallel degree."
        + (f" ({skipped} candidate(s) cannot hold {model} at all.)" if skipped else "")
    )


def _measured(row: dict, slo: SLO) -> str:
    """Return the answer's measured quantiles with their CIs (``"P99 TTFT 0.43 s [0.41, 0.45]"``)."""
    q = f"P{slo.quantile * 100:g}"
    parts = []
    if slo.ttft_s is not None and row.get("sim_ttft_p99_s") is not None:
        ci = sim_check.fmt_ci(row["sim_ttft_p99_s"], row.get("sim_ttft_p99_lo"), row.get("sim_ttft_p99_hi"))
        parts.append(f"{q} TTFT {ci}")
    if slo.tpot_s is not None and row.get("sim_tpot_p99_s") is not None:
        ci = sim_check.fmt_ci(
            row["sim_tpot_p99_s"], row.get("sim_tpot_p99_lo"), row.get("sim_tpot_p99_hi"), "ms", 1e3
        )
        parts.append(f"{q} TPOT {ci}")
    if slo.goodput is not None and row.get("sim_goodput") is not None:
        parts.append(f"goodput {row['sim_goodput']:.3f}")
    return ", ".join(parts) + " (95 % CI)"


def _kernel_sentence(best: dict, slo: SLO) -> str:
    """How the measurement kernel reached the answer: the screen's count, the verdict, the count below.

    Says when the screen is off by more than 2x (its error panel is in README and ``benchmarks/``).
    """
    n_sim, n_an = best["sim_instances"], best["instances"]
    text = (
        f"The analytic screen predicted {_n(n_an, 'instance')} "
        f"({_fmt_lat(best['ttft_p99_s'], best['tpot_p99_s'], slo)}); the measurement kernel "
        f"{'agreed' if n_sim == n_an else 'disagreed'}: {_n(n_sim, 'instance')} "
        f"{'meets' if n_sim == 1 else 'meet'} the SLO on a steady-state whole-fleet "
        f"simulation ({_measured(best, slo)}"
        + (", within the kernel's tolerance, not wholly below the target" if best.get("sim_marginal") else "")
        + ")"
    )
    below = best.get("sim_below")
    if below and best.get("sim_below_instances") is not None:
        text += f", while {_below_words(best['sim_below_instances'], below)}"
    verdicts = _n(best.get("sim_verdicts") or 0, "verdict")
    text += f" ({verdicts}, {best.get('sim_requests') or 0:,} requests simulated)."
    ratio = max(n_sim, 1) / max(n_an, 1)
    if ratio > 2.0 or ratio < 0.5:
        text += (
            f" The screen is off by {max(ratio, 1 / ratio):.1f}x here (more than 2x): trust the kernel's "
            "count, "
            "not the analytic one."
        )
    return text


def _below_words(count: int, description: str) -> str:
    """``(2, "fails: P99 TTFT ...")`` -> ``"2 instances fail (P99 TTFT ...)"``: the next-smaller fleet."""
    status, _, rest = description.partition(": ")
    status = status.split(" ")[0]
    one = count == 1
    verb = {
        "fails": "fails" if one else "fail",
        "unstable": "is unstable" if one else "are unstable",
        "undecided": "stays undecided" if one else "stay undecided",
    }.get(status, status)
    return f"{_n(count, 'instance')} {verb}" + (f" ({rest})" if rest else "")


def explain(
    table: pl.DataFrame,
    best: dict | None,
    slo: SLO,
    wl: Workload,
    model: str,
    checks: pl.DataFrame | None = None,
    perf: str = "roofline",
) -> str:
    """One paragraph: the answer, its cost, analytic vs simulated count, the runner-up (or why there is none).

    Costs are compared like with like: simulated against simulated, analytic against analytic. A performance
    model other than the roofline is named in the first sentence.
    """
    timed = "" if perf == "roofline" else f" timed by {perf}"
    head = f"For {wl.name} at {wl.qps:.3g} req/s ({model}{timed}, {slo.label})"
    if best is None:
        return _no_fleet(table, slo, model, head, checks)
    simulated = best.get("sim_instances") is not None
    n = best["sim_instances"] if simulated else best["instances"]
    usd = best["sim_usd_per_hour"] if simulated else best["usd_per_hour"]
    usd_tok = best["sim_usd_per_m_output_tokens"] if simulated else best["usd_per_m_output_tokens"]
    gpus = best["sim_gpus"] if simulated else best["gpus"]
    joules = best["sim_j_per_output_token"] if simulated else best["j_per_output_token"]
    carbon = best["sim_gco2e_per_1k_output_tokens"] if simulated else best["gco2e_per_1k_output_tokens"]
    source = "simulated" if simulated else "analytic estimate"
    parts = [
        f"{head}, the minimum-cost fleet is {best['candidate']} with {_n(n, 'instance')} "
        f"({_n(gpus, 'GPU')}) at ${usd:,.2f}/h, ${usd_tok:.3f} per million output tokens, "
        f"{joules:.2f} J per output token and {carbon:.2f} gCO2e per 1k output tokens ({source})."
    ]
    if simulated:
        parts.append(_kernel_sentence(best, slo))
    else:
        parts.append(
            f"Predicted latencies: {_fmt_lat(best['ttft_p99_s'], best['tpot_p99_s'], slo)} (analytic only)."
        )
    verified, refuted, unchecked = _simulated(table.filter(pl.col("candidate") != best["candidate"]))
    if simulated and verified.height:
        nxt = verified.sort("sim_usd_per_hour").row(0, named=True)
        parts.append(
            f"The runner-up verified by simulation, {nxt['candidate']}, costs "
            f"{_compare(nxt['sim_usd_per_hour'], usd)} per hour (${nxt['sim_usd_per_hour']:,.2f}/h)."
        )
    if unchecked.height:
        nxt = unchecked.sort("usd_per_hour").row(0, named=True)
        verdict = _compare(nxt["usd_per_hour"], best["usd_per_hour"])
        if not simulated:
            parts.append(f"The runner-up, {nxt['candidate']}, costs {verdict} per hour (analytic).")
        else:
            text = (
                f"The next candidate, {nxt['candidate']}, was not simulated; by the analytic screen it costs "
                f"{verdict} per hour than the answer does"
            )
            if nxt["usd_per_hour"] < usd:  # the screen is normally optimistic, so it could still win
                text += (
                    f", and its analytic ${nxt['usd_per_hour']:,.2f}/h is below the answer's simulated "
                    f"${usd:,.2f}/h: raise check= to verify it"
                )
            parts.append(text + ".")
    if refuted.height:
        parts.append(
            f"The simulator refuted {_n(refuted.height, 'candidate')} that met the SLO analytically "
            f"({', '.join(refuted['candidate'].to_list())})."
        )
    n_met = int(table["slo_met"].sum())
    parts.append(f"{n_met} of {table.height} candidates meet the SLO analytically.")
    return " ".join(parts)
