"""The measurement kernel: does fleet F meet SLO S on workload W? One steady-state verdict with its CI.

Every planner, study, widget and the demo asks this question through :func:`measure` (any system that turns
``n`` requests and a seed into a per-request table) or :func:`verify` (a :class:`~workbench.sim.topology.Fleet`
on a :class:`RequestSource`). A verdict is one of

``"meets"``
    every target's confidence interval lies on the good side of it (or, once the interval is within the
    relative tolerance, the point estimate does: ``marginal``);
``"fails"``
    some target's interval lies wholly on the bad side (or its point estimate does, once precise);
``"unstable"``
    the backlog of requests waiting for their first token grows over the run (arrivals above service
    capacity), however good the early percentiles look;
``"undecided"``
    the request cap (or the end of a finite trace) came before the interval settled: the CI is reported,
    nothing is passed silently.

How a verdict is reached (sequential: it stops as soon as the verdict is clear):

1. simulate ``start_requests`` requests on the seed;
2. warm-up: the requests that arrive while the empty fleet fills up are deleted, up to the first arrival that
   sees the steady number of requests in the system (the median over the run's second half;
   :func:`workbench.stats.fill_truncation`). The number in system fills over a request's lifetime: a fleet
   with long outputs shows no queueing for its first minute while its batches fill. MSER-5
   (:func:`workbench.stats.mser_truncation`) on that series and on the backlog says whether the run has
   settled: when its minimum falls at the edge of its search, the run is extended. (MSER-5 as the cut itself
   deletes whole bursts of a real trace replay: a third of the Azure code trace at 100 req/s, halving its
   P99 TPOT.)
3. stability: the backlog seen by each arrival (requests arrived earlier without a first token) is tested for
   an upward trend over the scored window (:func:`workbench.stats.trend`, batch means): a one-sided
   p-value below ``stability_p`` *and* a growth of at least ``min_growth`` of the arrival rate is
   ``"unstable"``;
4. each target's quantile gets a sectioning confidence interval (:func:`workbench.stats.quantile_interval`,
   valid for dependent output: contiguous batches, Student t); rejected requests count as infinitely late,
   so the quantile of all requests is the served requests' quantile at ``q / (1 - rejected share)``;
5. the run is extended ``growth``-fold (re-simulated from the start on the same seed: the same first requests,
   common random numbers) until a verdict is clear or ``max_requests`` is reached.

Candidates compared on one :class:`RequestSource` and seed see the same arrivals and lengths (common random
numbers), so a bisection over instance counts compares like with like.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from workbench import stats
from workbench.config import require_int, require_positive, require_range
from workbench.errors import ConfigError, WorkbenchError
from workbench.seeds import Streams

#: The four verdicts.
VERDICTS: tuple[str, ...] = ("meets", "fails", "unstable", "undecided")


@dataclass(frozen=True)
class Precision:
    """How hard the kernel works for a verdict.

    Attributes
    ----------
    tolerance
        Relative half-width of the quantile's CI at which the run stops even if the interval straddles the
        target (the verdict then follows the point estimate and is ``marginal``).
    level
        Confidence level of the intervals.
    start_requests
        Requests of the first look.
    max_requests
        Cap on the requests of one run; at the cap an unsettled verdict is ``"undecided"``.
    growth
        Factor by which each further look extends the run.
    stability_p
        One-sided p-value below which an upward backlog trend counts.
    min_growth
        Smallest backlog growth, as a share of the arrival rate, reported as unstable (0.01: one arrival in a
        hundred is not served).
    batches
        Most contiguous batches of the quantile intervals (:func:`workbench.stats.quantile_interval_cdf`).
    """

    tolerance: float = 0.05
    level: float = 0.95
    start_requests: int = 8000
    max_requests: int = 128_000
    growth: float = 2.0
    stability_p: float = 0.01
    min_growth: float = 0.01
    batches: int = 20

    def __post_init__(self) -> None:
        require_range("tolerance", self.tolerance, 1e-4, 1.0)
        require_range("level", self.level, 0.5, 0.9999)
        require_int("start_requests", self.start_requests, low=100)
        require_int("max_requests", self.max_requests, low=100)
        if self.max_requests < self.start_requests:
            raise ConfigError(
                f"max_requests ({self.max_requests}) must be >= start_requests ({self.start_requests})"
            )
        require_range("growth", self.growth, 1.1, 100.0)
        require_range("stability_p", self.stability_p, 1e-9, 0.5)
        require_positive("min_growth", self.min_growth, allow_zero=True)
        require_int("batches", self.batches, low=stats.MIN_BATCHES)


#: Default precision (5 % relative tolerance, 95 % intervals, 8,000 to 128,000 requests).
DEFAULT = Precision()


@dataclass(frozen=True)
class Target:
    """One SLO target over the per-request output.

    Attributes
    ----------
    column
        Per-request column (``"ttft_s"``, ``"tpot_s"``, ``"wait_s"`` ...).
    quantile
        Quantile the limit applies to (0.99 for P99); for ``kind="share"`` the share itself is measured.
    limit
        Upper bound on the quantile (``kind="quantile"``) or lower bound on the share (``kind="share"``);
        ``None`` measures without a verdict (the run stops on precision alone).
    kind
        ``"quantile"``: the ``quantile`` of ``column`` must be at most ``limit``; ``"share"``: the mean of the
        boolean ``column`` (e.g. requests meeting every target) must be at least ``limit``.
    pool
        Only the requests of this pool (``None``: the whole fleet, the default SLO scope).
    label
        Short name for texts (``"P99 TTFT"``).
    """

    column: str
    quantile: float = 0.99
    limit: float | None = None
    kind: str = "quantile"
    pool: str | None = None
    label: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("quantile", "share"):
            raise ConfigError(f"Target.kind must be 'quantile' or 'share', got {self.kind!r}")
        require_range("Target.quantile", self.quantile, 1e-6, 1.0 - 1e-6)
        if not self.label:
            name = self.column.removesuffix("_s").upper()
            text = f"P{self.quantile * 100:g} {name}" if self.kind == "quantile" else f"share {self.column}"
            object.__setattr__(self, "label", text + (f" ({self.pool})" if self.pool else ""))

    def good_side(self) -> int:
        """Side of the limit (:meth:`workbench.stats.Estimate.side_of`) on which the target is met."""
        return -1 if self.kind == "quantile" else 1


@dataclass(frozen=True)
class Measurement:
    """One target's estimate in a verdict.

    Attributes
    ----------
    target
        The target.
    estimate
        Point estimate and confidence interval (quantile, or share).
    side
        ``-1``/``+1``: the interval lies wholly below/above the limit; ``0``: it straddles it (or no limit).
    precise
        The interval's relative half-width is within the tolerance.
    rejected_share
        Share of the scored requests that were rejected (counted as infinitely late).
    """

    target: Target
    estimate: stats.Estimate
    side: int
    precise: bool
    rejected_share: float = 0.0

    @property
    def met(self) -> bool | None:
        """Whether the target is met.

        By the interval, or by the point estimate once precise (``None``: not settled, or no limit).
        """
        t = self.target
        if t.limit is None:
            return None
        if self.side != 0:
            return self.side == t.good_side()
        if not self.precise:
            return None
        v = self.estimate.value
        return v <= t.limit if t.kind == "quantile" else v >= t.limit

    def describe(self) -> str:
        """``"P99 TTFT 0.43 s [0.41, 0.45] < 0.5 s"``-style text (milliseconds for sub-second targets)."""
        t, e = self.target, self.estimate
        unit, scale = "", 1.0
        if t.column.endswith("_s") and t.kind == "quantile":
            ref = t.limit if t.limit is not None else e.value
            unit, scale = (" ms", 1e3) if ref < 0.1 else (" s", 1.0)
        body = f"{t.label} {_num(e.value * scale)}{unit} [{_num(e.low * scale)}, {_num(e.high * scale)}]"
        if t.limit is None:
            return body
        sign = {-1: "<", 1: ">"}.get(self.side, "~")
        text = f"{body} {sign} {_num(t.limit * scale)}{unit}"
        if self.rejected_share:
            text += f" ({self.rejected_share:.2%} rejected)"
        return text


def _num(x: float) -> str:
    if math.isinf(x):
        return "inf"
    return f"{x:.3g}"


@dataclass(frozen=True)
class Look:
    """One look of the sequential procedure: its run length and what it showed."""

    requests: int
    warmup: int
    status: str
    reason: str


@dataclass(frozen=True)
class Verdict:
    """The kernel's answer for one system.

    Attributes
    ----------
    status
        ``"meets"``, ``"fails"``, ``"unstable"`` or ``"undecided"``.
    measurements
        One per target (empty when the run was judged unstable before estimation).
    requests
        Requests simulated in all looks together (the cost of the verdict).
    run_requests
        Requests of the deciding run.
    warmup
        Leading requests of that run deleted as warm-up (MSER-5).
    seeds
        Seeds of the runs.
    marginal
        The verdict follows a point estimate: an interval within the tolerance straddles a limit.
    backlog_growth
        Fitted growth of the waiting backlog over the scored window, requests per second, and ``backlog_p``
        its one-sided p-value.
    arrival_rate
        Arrival rate of the scored window (requests per second).
    reason
        One sentence: why the kernel stopped.
    looks
        Every look (run length, warm-up, provisional status).
    result
        The deciding run's raw result (e.g. the :class:`~workbench.sim.result.SimResult`), for energy and
        counters; not part of equality.
    """

    status: str
    measurements: tuple[Measurement, ...]
    requests: int
    run_requests: int
    warmup: int
    seeds: tuple[int, ...]
    marginal: bool = False
    backlog_growth: float = 0.0
    backlog_p: float = 1.0
    arrival_rate: float = 0.0
    reason: str = ""
    looks: tuple[Look, ...] = ()
    result: Any = field(default=None, repr=False, compare=False)

    @property
    def meets(self) -> bool:
        """``status == "meets"``."""
        return self.status == "meets"

    @property
    def scored(self) -> int:
        """Requests of the deciding run after the warm-up."""
        return self.run_requests - self.warmup

    def measurement(self, column: str, pool: str | None = None) -> Measurement | None:
        """Return the measurement of ``column`` (and ``pool``), or ``None``."""
        for m in self.measurements:
            if m.target.column == column and m.target.pool == pool:
                return m
        return None

    def estimate(self, column: str = "ttft_s", pool: str | None = None) -> stats.Estimate | None:
        """Return the estimate of ``column``'s target (``None`` when not measured)."""
        m = self.measurement(column, pool)
        return None if m is None else m.estimate

    def binding(self) -> Measurement | None:
        """Return the measurement that decided the verdict: the failing one, else the closest to its limit."""
        ms = [m for m in self.measurements if m.target.limit is not None]
        if not ms:
            return self.measurements[0] if self.measurements else None
        failed = [m for m in ms if m.met is False]
        pool = failed or ms

        def closeness(m: Measurement) -> float:
            t, v = m.target, m.estimate.value
            assert t.limit is not None
            return v / t.limit if t.kind == "quantile" else (t.limit / v if v > 0 else math.inf)

        return max(pool, key=closeness)

    def describe(self) -> str:
        """Return the verdict in words, with the CI, the requests and the warm-up."""
        head = self.status + (" (marginal: within the tolerance of the target)" if self.marginal else "")
        parts = [m.describe() for m in self.measurements]
        if self.status == "unstable":
            parts = [f"backlog grows {self.backlog_growth:.3g} req/s (p = {self.backlog_p:.2g})", *parts]
        seeds = ", ".join(str(s) for s in self.seeds)
        level = self.measurements[0].estimate.level if self.measurements else DEFAULT.level
        return (
            f"{head}: " + "; ".join(parts) + f" ({level:.0%} CI; {self.run_requests:,} requests, "
            f"{self.warmup:,} warm-up removed, {self.requests:,} simulated in all, seed {seeds})"
        )

    def summary(self) -> str:
        """Return the verdict in a few words: status and the deciding measurement.

        For example ``"fails: P99 TTFT 0.61 s"``.
        """
        if self.status == "unstable":
            return (
                f"unstable: the backlog grows {self.backlog_growth:.3g} req/s "
                f"({self.backlog_growth / max(self.arrival_rate, 1e-12):.1%} of arrivals)"
            )
        m = self.binding()
        if m is None:
            return f"{self.status}: {self.reason}"
        return f"{self.status}: {m.describe()}" + (" (marginal)" if self.marginal else "")

    def row(self, prefix: str = "") -> dict:
        """Flat columns for tables: status, per-target value/low/high, requests, warm-up, growth."""
        out: dict[str, Any] = {
            f"{prefix}verdict": self.status,
            f"{prefix}marginal": self.marginal,
            f"{prefix}requests": self.requests,
            f"{prefix}run_requests": self.run_requests,
            f"{prefix}warmup": self.warmup,
            f"{prefix}backlog_growth": self.backlog_growth,
        }
        for m in self.measurements:
            name = m.target.column.removesuffix("_s") + (f"_{m.target.pool}" if m.target.pool else "")
            q = f"p{m.target.quantile * 100:g}" if m.target.kind == "quantile" else "share"
            key = f"{prefix}{name}_{q}".replace(".", "_")
            out[key], out[f"{key}_lo"], out[f"{key}_hi"] = m.estimate.value, m.estimate.low, m.estimate.high
        return out


# ---------------------------------------------------------------------------------------------- run output
@dataclass(frozen=True)
class Run:
    """What one simulation gives the kernel.

    Attributes
    ----------
    requests
        One row per request in arrival order: ``arrival_s``, the targets' columns, optionally ``rejected``
        (bool), ``pool`` and the backlog column (first-token time).
    result
        The raw result (kept on the verdict).
    exhausted
        The source had fewer requests than asked (a finite trace): the run cannot be extended.
    replicable
        Another seed gives other requests (a generator); ``False`` for a finite trace, whose requests are the
        same on every seed.
    """

    requests: pl.DataFrame
    result: Any = None
    exhausted: bool = False
    replicable: bool = True


Runner = Callable[[int, int], Run]


def _backlog(arrival: np.ndarray, served: np.ndarray) -> np.ndarray:
    """Count the requests that arrived before each arrival and had not been served by then (arrival order)."""
    done = np.sort(served)
    return np.maximum(np.arange(arrival.size) - np.searchsorted(done, arrival, side="right"), 0)


def _series(df: pl.DataFrame, target: Target) -> tuple[np.ndarray, float]:
    """Return (served values in arrival order, rejected share) of one target over ``df`` (already scored)."""
    if target.pool is not None:
        df = df.filter(pl.col("pool") == target.pool)
    if df.height == 0:
        raise stats.StatisticsError(f"{target.label}: no scored request")
    rejected = df["rejected"].to_numpy() if "rejected" in df.columns else np.zeros(df.height, bool)
    if target.kind == "share":
        return df[target.column].cast(pl.Float64).fill_null(0.0).to_numpy(), 0.0
    col = df[target.column]
    served = col.filter(~pl.Series(rejected)) if rejected.any() else col
    if target.column == "tpot_s":  # a one-token output has no TPOT: it cannot miss the target
        served = served.fill_null(0.0)
    values = served.cast(pl.Float64).to_numpy()
    if np.isnan(values).any():
        raise WorkbenchError(f"{target.label}: {int(np.isnan(values).sum())} served requests have no value")
    return values, float(rejected.mean())


def _estimate(df: pl.DataFrame, target: Target, precision: Precision) -> Measurement:
    values, rej = _series(df, target)
    if target.kind == "share":
        est = stats.mean_interval(values, precision.level)
    else:
        q = target.quantile / (1.0 - rej) if rej else target.quantile
        if q >= 1.0:  # more rejected than the quantile allows: the quantile is infinite
            inf = math.inf
            est = stats.Estimate(inf, inf, inf, 0, precision.level)
        else:
            est = stats.quantile_interval_cdf(values, q, precision.level, precision.batches)
    side = est.side_of(target.limit) if target.limit is not None else 0
    precise = est.relative_half_width <= precision.tolerance or (math.isinf(est.value) and est.low == est.high)
    return Measurement(target, est, side, bool(precise), rej)


def _mser(values: np.ndarray) -> tuple[int, bool]:
    try:
        return stats.mser_truncation(values)
    except stats.StatisticsError:
        return 0, False


@dataclass(frozen=True)
class _Outcome:
    """What one look found: ``status`` ("" to extend), why, the measurements and the run's statistics."""

    status: str
    reason: str
    measurements: tuple[Measurement, ...]
    warmup: int
    growth: float
    p: float
    rate: float


def _judge(
    run: Run, targets: Sequence[Target], precision: Precision, backlog_column: str, last: bool
) -> _Outcome:
    """One look at a run: warm-up, stability, intervals and the verdict they allow."""
    df = run.requests
    if df.height == 0:
        raise WorkbenchError("the measured run has no requests")
    arrival = df["arrival_s"].cast(pl.Float64).to_numpy()
    rejected = df["rejected"].to_numpy() if "rejected" in df.columns else np.zeros(df.height, bool)
    served_at = df[backlog_column].cast(pl.Float64).to_numpy() if backlog_column in df.columns else arrival
    served_at = np.where(rejected | np.isnan(served_at), arrival, served_at)
    backlog = _backlog(arrival, served_at).astype(float)
    finish = df["finish_s"].cast(pl.Float64).to_numpy() if "finish_s" in df.columns else served_at
    in_system = _backlog(arrival, np.where(rejected | np.isnan(finish), arrival, finish)).astype(float)
    # the warm-up is the fill of the empty fleet (first reach of the steady number in system); MSER-5 on the
    # level series only says whether the run has settled (its minimum at the edge of its search: extend)
    cut = stats.fill_truncation(in_system)
    steady = _mser(in_system)[1] and _mser(backlog)[1]
    scored = df.slice(cut)
    t_sc, b_sc = arrival[cut:], backlog[cut:]
    span = float(t_sc[-1] - t_sc[0]) if t_sc.size > 1 else 0.0
    rate = (t_sc.size - 1) / span if span > 0 else math.inf
    try:
        growth, p = stats.trend(t_sc, b_sc)
    except stats.StatisticsError:
        growth, p = 0.0, 1.0
    if p < precision.stability_p and growth > precision.min_growth * rate and growth > 0:
        reason = (
            f"the backlog grows {growth:.3g} req/s ({growth / rate:.1%} of arrivals, p = {p:.2g}) over "
            f"{span:,.0f} s of steady arrivals"
        )
        return _Outcome("unstable", reason, (), cut, growth, p, rate)
    try:
        ms = tuple(_estimate(scored, t, precision) for t in targets)
    except stats.StatisticsError as err:
        return _Outcome("", f"too few scored requests for an interval ({err})", (), cut, growth, p, rate)
    verdicts = [m.met for m in ms if m.target.limit is not None]
    if any(m.side == -m.target.good_side() for m in ms if m.target.limit is not None):
        bad = next(m for m in ms if m.target.limit is not None and m.side == -m.target.good_side())
        return _Outcome(
            "fails", f"{bad.target.label}: the whole interval misses the target", ms, cut, growth, p, rate
        )
    if not steady and not last:
        return _Outcome(
            "", "warm-up not over (MSER-5 minimum at the edge of its search)", ms, cut, growth, p, rate
        )
    if verdicts and all(v is not None for v in verdicts):
        status = "meets" if all(verdicts) else "fails"
        note = "" if steady else "decided on the last look although MSER-5 did not find the warm-up's end"
        return _Outcome(status, note, ms, cut, growth, p, rate)
    if not verdicts and all(m.precise for m in ms):
        return _Outcome("meets", "precision reached", ms, cut, growth, p, rate)
    return _Outcome(
        "", "an interval straddles its target and is wider than the tolerance", ms, cut, growth, p, rate
    )


def measure(
    run: Runner,
    targets: Sequence[Target],
    *,
    seed: int = 0,
    precision: Precision | None = None,
    backlog_column: str = "first_token_s",
) -> Verdict:
    """Steady-state verdict of one system against ``targets``, run as long as the verdict needs.

    Parameters
    ----------
    run
        ``run(n, seed) -> Run``: simulate the first ``n`` requests of the workload on ``seed`` (the same ``n``
        and seed must give the same requests: common random numbers).
    targets
        The SLO's targets (:func:`slo_targets`); a target without a limit is measured to the tolerance.
    seed
        Seed of the runs.
    precision
        Tolerance, confidence level, run lengths and stability test (:class:`Precision`).
    backlog_column
        Per-request column holding the time a request stops waiting (first token); the backlog seen by each
        arrival is counted from it.

    Returns
    -------
    Verdict
        Status, per-target estimates with their CIs, requests simulated, warm-up removed and seeds.
    """
    if not targets:
        raise ConfigError("measure needs at least one target")
    p = precision or DEFAULT
    n, total, seeds = p.start_requests, 0, [seed]
    looks: list[Look] = []
    confirming = False
    while True:
        out = run(n, seeds[-1])
        got = out.requests.height
        total += got
        last = out.exhausted or n >= p.max_requests
        o = _judge(out, targets, p, backlog_column, last)
        status, reason, ms = o.status, o.reason, o.measurements
        if status and status != "unstable" and looks and not confirming and out.replicable:
            # decided after extending: the length was chosen by the data, which biases the interval of the
            # deciding look (it stops when its interval happens to be narrow); an independent run of that
            # length on the next seed gives the reported verdict
            looks.append(
                Look(got, o.warmup, status, f"{reason or _reason(status, ms)}; confirming on a new seed")
            )
            seeds.append(_confirm_seed(seed))
            confirming = True
            continue
        final = bool(status) or last
        if not status and final:
            status = "undecided"
            where = "the trace's requests" if out.exhausted else f"the cap of {p.max_requests:,} requests"
            reason = f"{reason}; {where} ran out"
        looks.append(Look(got, o.warmup, status or "extend", reason))
        if final:
            marginal = _marginal(status, ms)
            if status == "undecided" and not ms:
                reason += " (no interval could be formed)"
            if status == "meets" and all(m.target.limit is None for m in ms):
                status = "measured"
            return Verdict(
                status=status,
                measurements=ms,
                requests=total,
                run_requests=got,
                warmup=o.warmup,
                seeds=tuple(seeds),
                marginal=bool(marginal),
                backlog_growth=float(o.growth),
                backlog_p=float(o.p),
                arrival_rate=float(o.rate),
                reason=reason or _reason(status, ms),
                looks=tuple(looks),
                result=out.result,
            )
        n = min(p.max_requests, math.ceil(n * p.growth))


def _marginal(status: str, ms: Sequence[Measurement]) -> bool:
    """Whether the verdict rests on a point estimate.

    A met target whose interval straddles its limit ("meets"), or no target failed by its whole interval
    ("fails").
    """
    judged = [m for m in ms if m.target.limit is not None]
    if status == "meets":
        return any(m.side == 0 for m in judged)
    if status == "fails":
        return not any(m.side == -m.target.good_side() for m in judged)
    return False


def _confirm_seed(seed: int) -> int:
    """Return the seed of the confirmation run.

    It is independent of ``seed``'s stream, and the same for every candidate.
    """
    return int(Streams(int(seed)).sequence("measure/confirm").generate_state(1)[0] % (2**31))


def _reason(status: str, ms: Sequence[Measurement]) -> str:
    if status == "meets":
        if all(m.side != 0 for m in ms if m.target.limit is not None):
            return "every interval lies below its target"
        return "the intervals are within the tolerance; the point estimates meet the targets"
    return "the point estimate misses the target within the tolerance"


# ---------------------------------------------------------------------------------------------- searches
#: Largest factor above the starting count the upward searches try.
MAX_GROWTH = 16


def smallest_count(
    verdict: Callable[[int], Verdict], *, low: int = 0, start: int = 1, high: int | None = None,
    cap: int | None = None,
) -> int | None:  # fmt: skip
    """Smallest count ``n > low`` whose verdict meets (verdicts assumed monotone in ``n``); ``None`` if none.

    Bisection on the kernel's verdicts inside a bracket: ``start`` (an estimate, e.g. the analytic screen's)
    is judged first; if it fails, counts double from ``high`` (or ``2 x start``) until one meets. The answer's
    lower neighbour is always judged, even when it equals the assumed bound ``low``, so the answer can say how
    the count below failed (and a wrong bound is corrected by searching below it).

    Parameters
    ----------
    verdict
        The kernel's verdict at ``n`` (memoise it: the search may ask twice).
    low
        Count known (or assumed) not to meet, e.g. below the throughput bound.
    start
        First count judged.
    high
        Count to try after ``start`` fails (an upper bracket); ``None``: ``2 x start``.
    cap
        Largest count tried (default :data:`MAX_GROWTH` x ``start``).
    """
    start = max(start, low + 1)
    cap = cap if cap is not None else max(start * MAX_GROWTH, start + 1)
    if verdict(start).meets:
        hi, lo = start, low
    else:
        lo, hi = start, None
        nxt = high if high is not None and high > start else 2 * start
        while hi is None:
            nxt = min(nxt, cap)
            if nxt <= lo:
                return None
            if verdict(nxt).meets:
                hi = nxt
            else:
                lo, nxt = nxt, 2 * nxt
    assert hi is not None  # bracketed above
    while True:
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if verdict(mid).meets:
                hi = mid
            else:
                lo = mid
        if hi - 1 < 1 or not verdict(hi - 1).meets:
            return hi
        hi, lo = hi - 1, 0  # the assumed lower bound met: search below it


def smallest_pair(
    verdict: Callable[[int, int], Verdict],
    start: tuple[int, int],
    *,
    need: tuple[bool, bool] = (True, True),
    floor: tuple[int, int] = (0, 0),
    cap: tuple[int, int] | None = None,
) -> tuple[int, int] | None:
    """Fewest instances of a two-pool fleet whose *whole-fleet* verdict meets: grow together, then shrink each.

    From ``start`` both pools double together until the fleet meets (``None`` when none up to ``cap`` does);
    then the second pool and the first are each bisected down (:func:`smallest_count`) with the other held,
    and the second once more if the first shrank. A pool is never sized on its own requests, so no candidate
    is refuted by one pool's tail.

    Parameters
    ----------
    verdict
        The whole fleet's verdict at ``(n1, n2)`` (memoised by the caller).
    start
        Counts to start from (e.g. the screen's, which sizes each pool for its own requests).
    need
        Whether each pool serves any request (a pool without requests stays at 0).
    floor
        Counts assumed not to meet on their own (throughput bounds) for the bisections.
    cap
        Largest counts tried (default :data:`MAX_GROWTH` x ``start``).
    """
    n1 = max(start[0], 1) if need[0] else 0
    n2 = max(start[1], 1) if need[1] else 0
    cap1, cap2 = cap if cap is not None else (max(n1, 1) * MAX_GROWTH, max(n2, 1) * MAX_GROWTH)
    while not verdict(n1, n2).meets:
        g1, g2 = (min(2 * n1, cap1) if need[0] else 0), (min(2 * n2, cap2) if need[1] else 0)
        if (g1, g2) == (n1, n2):
            return None
        n1, n2 = g1, g2
    if need[1]:
        n2 = smallest_count(lambda n: verdict(n1, n), low=max(floor[1] - 1, 0), start=n2) or n2
    if need[0]:
        n1 = smallest_count(lambda n: verdict(n, n2), low=max(floor[0] - 1, 0), start=n1) or n1
    if need[1] and n2 > 1 and verdict(n1, n2 - 1).meets:  # the first pool shrank: one more pass
        n2 = smallest_count(lambda n: verdict(n1, n), low=0, start=n2 - 1) or n2
    return n1, n2


# ---------------------------------------------------------------------------------------------- SLOs, fleets
def slo_targets(slo: Any, pools: Sequence[str] | None = None) -> tuple[Target, ...]:
    """Return the targets of an SLO (anything with ``ttft_s``, ``tpot_s``, ``goodput`` and ``quantile``).

    Fleet-level by default: the quantile is over all requests of the workload. ``pools`` adds the same
    targets for each named pool (per-pool SLOs, only when asked for). A goodput target becomes a ``share``
    target on the ``good`` column (requests meeting every latency target; :func:`add_good_column`).
    """
    q = float(slo.quantile)
    scopes: list[str | None] = [None, *(pools or ())]
    out: list[Target] = []
    for pool in scopes:
        if getattr(slo, "goodput", None) is not None:
            out.append(Target("good", q, float(slo.goodput), kind="share", pool=pool, label="goodput"
                              + (f" ({pool})" if pool else "")))  # fmt: skip
            continue
        if slo.ttft_s is not None:
            out.append(Target("ttft_s", q, float(slo.ttft_s), pool=pool))
        if slo.tpot_s is not None:
            out.append(Target("tpot_s", q, float(slo.tpot_s), pool=pool))
    return tuple(out)


def add_good_column(requests: pl.DataFrame, slo: Any) -> pl.DataFrame:
    """Add a boolean ``good`` to ``requests``: served and within every latency target of ``slo``."""
    good = ~pl.col("rejected") if "rejected" in requests.columns else pl.lit(True)
    if slo.ttft_s is not None:
        good = good & (pl.col("ttft_s").fill_null(math.inf) <= slo.ttft_s)
    if slo.tpot_s is not None:
        good = good & (pl.col("tpot_s").fill_null(0.0) <= slo.tpot_s)
    return requests.with_columns(good.alias("good"))


@dataclass(frozen=True, eq=False)
class RequestSource:
    """Where a measurement draws its requests: a finite trace (its first ``n``) or a generator (``n`` per seed).

    Build one with :func:`request_source`. The same ``n`` and seed always give the same requests, so every
    candidate measured on one source sees the same arrivals and lengths (common random numbers).

    Attributes
    ----------
    name
        Workload name for texts.
    trace
        The finite trace (requests beyond its end cannot be drawn); ``None`` for a generator.
    draw
        ``draw(n, seed) -> Trace`` for a generator; ``None`` for a trace.
    """

    name: str
    trace: Any = None
    draw: Callable[[int, int], Any] | None = None

    @property
    def limit(self) -> int | None:
        """Most requests available (a trace's length), ``None`` for a generator."""
        return None if self.trace is None else int(self.trace.requests.height)

    def take(self, n: int, seed: int) -> tuple[Any, bool]:
        """``(trace of the first n requests, exhausted)``; a trace ignores ``seed``.

        A trace less than twice as long as ``n`` is taken whole (a further look could only add the rest).
        """
        if self.trace is not None:
            have = self.trace.requests.height
            if 2 * n > have:
                return self.trace, True
            return self.trace.with_requests(self.trace.requests.head(n)), False
        assert self.draw is not None
        return self.draw(n, seed), False

    def rescaled(self, factor: float) -> RequestSource:
        """Return the same requests sped up by ``factor``.

        See :func:`workbench.traces.transforms.rescale`: arrival times divided by it, the mean rate multiplied.
        """
        from workbench.traces.transforms import rescale

        require_positive("factor", factor)
        if self.trace is not None:
            return RequestSource(self.name, trace=rescale(self.trace, factor))
        draw = self.draw
        assert draw is not None
        return RequestSource(self.name, draw=lambda n, seed: rescale(draw(n, seed), factor))


def request_source(workload: Any, name: str | None = None) -> RequestSource:
    """Make a :class:`RequestSource` from a trace, a generator, a source or a workload.

    A generator has ``.generate(n=, seed=)``; anything with a ``requests`` source (a prepared
    :class:`~workbench.planning.Workload`) is accepted too.
    """
    if isinstance(workload, RequestSource):
        return workload
    if isinstance(getattr(workload, "requests", None), RequestSource):
        return workload.requests
    from workbench.traces.schema import Trace

    if isinstance(workload, Trace):
        return RequestSource(name or workload.name, trace=workload)
    generate = getattr(workload, "generate", None)
    if callable(generate):
        return RequestSource(
            name or str(getattr(workload, "name", type(workload).__name__)),
            draw=lambda n, seed: generate(n=n, seed=seed),
        )
    raise ConfigError(
        f"a measurement needs a Trace, a generator with .generate(n=, seed=) or a RequestSource, "
        f"got {type(workload).__name__}"
    )


def trace_runner(source: RequestSource, simulate: Callable[[Any, int], Any], *, good: Any = None) -> Runner:
    """``run(n, seed)`` for :func:`measure` from any ``simulate(trace, seed) -> SimResult``.

    ``good`` (an SLO) adds the ``good`` column a goodput target needs. The requests are sorted by arrival.
    """

    def run(n: int, seed: int) -> Run:
        trace, exhausted = source.take(n, seed)
        res = simulate(trace, seed)
        reqs = res.requests.sort("arrival_s", maintain_order=True)
        if good is not None:
            reqs = add_good_column(reqs, good)
        return Run(reqs, res, exhausted, replicable=source.trace is None)

    return run


def fleet_runner(
    fleet: Any,
    source: RequestSource,
    *,
    setup: Callable | None = None,
    good: Any = None,
    record_segments: bool = True,
) -> Runner:
    """``run(n, seed)`` for :func:`measure`: simulate the first ``n`` requests of ``source`` through ``fleet``.

    ``setup(sim, controller)`` is passed to :func:`workbench.sim.fleet.simulate` (clocks, failures); ``good``
    (an SLO) adds the ``good`` column a goodput target needs.
    """
    from workbench.sim.fleet import simulate

    def sim(trace: Any, seed: int) -> Any:
        return simulate(trace, fleet, seed=seed, setup=setup, record_segments=record_segments, progress=False)

    return trace_runner(source, sim, good=good)


def verify(
    fleet: Any,
    workload: Any,
    slo: Any,
    *,
    seed: int = 0,
    precision: Precision | None = None,
    setup: Callable | None = None,
    pools: Sequence[str] | None = None,
) -> Verdict:
    """Decide whether ``fleet`` meets ``slo`` on ``workload``: the kernel's verdict for a fleet.

    Parameters
    ----------
    fleet
        A :class:`~workbench.sim.topology.Fleet` (or an instance count, as :func:`workbench.sim.fleet.simulate`
        takes).
    workload
        A :class:`RequestSource`, a :class:`~workbench.traces.Trace` (its first requests; finite) or a
        generator (drawn afresh per run length and seed).
    slo
        Latency targets (:class:`~workbench.planning.SLO` or anything with ``ttft_s``, ``tpot_s``, ``goodput``
        and ``quantile``); fleet-level.
    seed, precision
        See :func:`measure`.
    setup
        Hook passed to the simulator (clock, failure injection).
    pools
        Pools that must also meet the SLO on their own requests (per-pool SLOs, only when asked for).
    """
    source = request_source(workload)
    targets = slo_targets(slo, pools)
    good = slo if getattr(slo, "goodput", None) is not None else None
    return measure(fleet_runner(fleet, source, setup=setup, good=good), targets, seed=seed, precision=precision)


__all__ = [
    "DEFAULT",
    "MAX_GROWTH",
    "VERDICTS",
    "Look",
    "Measurement",
    "Precision",
    "RequestSource",
    "Run",
    "Target",
    "Verdict",
    "add_good_column",
    "fleet_runner",
    "measure",
    "request_source",
    "slo_targets",
    "smallest_count",
    "smallest_pair",
    "trace_runner",
    "verify",
]
