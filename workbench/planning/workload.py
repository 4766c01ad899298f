"""The workload side of a sizing question: a trace at a target rate and a fixed sample of its lengths."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from workbench.config import as_float, require_int
from workbench.errors import ConfigError, WorkloadError
from workbench.seeds import Streams
from workbench.sim.measure import RequestSource
from workbench.traces.schema import Trace


@dataclass(frozen=True)
class Workload:
    """A trace scaled to ``qps`` and a seeded sample of its (prompt, output) lengths for the analytic screen.

    Attributes
    ----------
    trace
        The requests with arrivals at the target rate (used by the simulation check).
    qps
        Mean arrival rate, requests per second.
    prompt, output
        Sampled prompt and output lengths (same rows), at most ``n_sample`` of them.
    source
        Where the measurement kernel (:mod:`workbench.sim.measure`) draws its requests: for a generator, fresh
        draws of any length and seed at the same rate; for a trace, its requests (``None``: ``trace``).
    """

    trace: Trace
    qps: float
    prompt: np.ndarray
    output: np.ndarray
    source: RequestSource | None = None

    @property
    def name(self) -> str:
        """The trace's name."""
        return self.trace.name

    @property
    def requests(self) -> RequestSource:
        """The :class:`~workbench.sim.measure.RequestSource` the kernel measures on (see ``source``)."""
        return self.source if self.source is not None else RequestSource(self.trace.name, trace=self.trace)

    def idc(self, window_s: float) -> float:
        """Index of dispersion of arrival counts in windows of ``window_s`` seconds (1 for Poisson).

        The queueing screen uses it as the squared coefficient of variation of arrivals on the time scale
        that matters for the SLO: bursty traces (the Azure code trace reaches 60-90 at 1-2 s) need far more
        instances than their mean rate suggests.
        """
        arr = self.trace.requests["arrival_s"].to_numpy()
        bins = np.floor((arr - arr[0]) / window_s).astype(np.int64)
        if bins[-1] < 2:
            return 1.0
        counts = np.bincount(bins)
        return float(max(counts.var() / max(counts.mean(), 1e-12), 0.0))

    def burst_rate(self, window_s: float, q: float) -> float:
        """Arrival rate that the ``q``-quantile request sees in windows of ``window_s`` (>= the mean rate).

        Each request is tagged with the rate of its window (count / ``window_s``); deviations from the mean are
        shrunk by ``sqrt(1 - 1/IDC)`` so that only the variance beyond Poisson counting noise remains (a Poisson
        trace gives back its mean rate). The request-weighted ``q`` quantile is the rate a pointwise-stationary
        approximation must serve so that at most ``1 - q`` of requests arrive in heavier windows.
        """
        arr = self.trace.requests["arrival_s"].to_numpy()
        bins = np.floor((arr - arr[0]) / window_s).astype(np.int64)
        if bins[-1] < 2:
            return self.qps
        counts = np.bincount(bins)
        rate = counts.mean() / window_s
        idc = counts.var() / max(counts.mean(), 1e-12)
        shrink = np.sqrt(max(0.0, 1.0 - 1.0 / idc)) if idc > 1 else 0.0
        seen = rate + (counts[bins] / window_s - rate) * shrink
        return float(max(np.quantile(seen, q), rate)) * self.qps / rate

    @property
    def output_tokens_per_s(self) -> float:
        """Mean output tokens per second the fleet must generate."""
        return self.qps * float(self.output.mean())


#: Requests drawn from a workload generator (a :class:`~workbench.traces.synthetic.Synthetic` ...) by default.
GENERATED_REQUESTS = 4000


def check_qps(qps: object) -> None:
    """Raise :class:`ConfigError` unless ``qps`` is ``None`` or a finite number > 0 (not a boolean)."""
    if qps is None:
        return
    if isinstance(qps, bool) or not (isinstance(qps, int | float | np.number) and qps > 0 and np.isfinite(qps)):
        raise ConfigError(f"qps must be a finite number > 0 (requests per second), got {qps!r}")


def as_trace(source: object, *, n_requests: int = GENERATED_REQUESTS, seed: int = 0) -> Trace:
    """Return a workload source as a trace.

    A :class:`Trace` as is, a generator (``.generate``) drawn ``n_requests``.

    Raises :class:`ConfigError` naming the type of anything else.
    """
    if isinstance(source, Trace):
        return source
    generate = getattr(source, "generate", None)
    if callable(generate):
        trace = generate(n=require_int("n_requests", n_requests), seed=seed)
        if not isinstance(trace, Trace):
            raise ConfigError(
                f"{type(source).__name__}.generate returned {type(trace).__name__}, not a workbench Trace"
            )
        return trace
    raise ConfigError(
        f"the workload must be a Trace, a prepared Workload or a generator with .generate() "
        f"(e.g. workbench.traces.synthetic.Synthetic), got {type(source).__name__}"
    )


def at_qps(trace: Trace, qps: float | None, *, seed: int = 0) -> Trace:
    """``trace`` with arrivals rescaled to mean rate ``qps`` (Poisson arrivals for length-only traces).

    Parameters
    ----------
    trace
        A trace with at least one request.
    qps
        Target mean arrival rate (``None``: keep the trace's arrivals; required for a length-only trace).
    seed
        Seed of the Poisson arrivals of a length-only trace.

    Returns
    -------
    Trace
        The trace at mean rate ``qps``, its first arrival at 0 when rescaled.
    """
    if trace.requests.height == 0:
        raise WorkloadError("the workload trace has no requests", field="requests")
    check_qps(qps)
    df = trace.requests
    if not trace.has_arrivals or df["arrival_s"].null_count() == df.height:
        if qps is None:
            raise ConfigError(f"trace {trace.name!r} has no arrival times: give qps to attach Poisson arrivals")
        rng = Streams(seed).rng("workload/arrivals")
        arrivals = np.cumsum(rng.exponential(1.0 / qps, df.height))
        return trace.with_requests(df.with_columns(arrival_s=pl.Series(arrivals)), has_arrivals=True)
    if qps is None:
        return trace
    arr = df["arrival_s"].to_numpy()
    span = float(arr[-1] - arr[0])
    if span <= 0:
        raise WorkloadError("all arrivals are at the same time; cannot rescale to a rate", field="arrival_s")
    current = (df.height - 1) / span
    factor = current / qps
    return trace.with_requests(df.with_columns(arrival_s=(pl.col("arrival_s") - arr[0]) * factor))


def workload(
    trace: Trace | object,
    qps: float | None = None,
    *,
    n_sample: int = 512,
    seed: int = 0,
    n_requests: int = GENERATED_REQUESTS,
) -> Workload:
    """Prepare a trace (or a generator's draw) for sizing: rescale to ``qps`` and draw the length sample.

    Parameters
    ----------
    trace
        Any :class:`~workbench.traces.Trace` (real or generated), or a workload generator with
        ``.generate(n=..., seed=...)`` (:class:`~workbench.traces.synthetic.Synthetic`,
        :class:`~workbench.traces.synthetic.ServeGenMix`), drawn ``n_requests`` with ``seed``.
    qps
        Target mean arrival rate; ``None`` keeps the trace's own rate.
    n_sample
        Requests in the length sample of the analytic screen.
    seed
        Seed of the sample, of a generator's draw and of Poisson arrivals for length-only traces.
    n_requests
        Requests drawn from a generator (ignored for traces).

    Returns
    -------
    Workload
        The scaled trace, its mean rate and the length sample (with the generator kept as ``source`` when one
        was drawn).
    """
    n_sample = require_int("n_sample", n_sample)
    drawn = as_trace(trace, n_requests=n_requests, seed=seed)
    scaled = at_qps(drawn, qps, seed=seed)
    df = scaled.requests
    rate = qps if qps is not None else (df.height - 1) / max(scaled.duration_s, 1e-12)
    if not rate > 0:
        name = getattr(trace, "name", drawn.name)
        raise ConfigError(f"workload {name!r} has zero arrival rate; give qps > 0")
    rng = Streams(seed).rng("workload/sample")
    take = np.sort(rng.choice(df.height, size=min(n_sample, df.height), replace=False))
    prompt = df["prompt_tokens"].to_numpy()[take].astype(np.float64)
    output = df["output_tokens"].to_numpy()[take].astype(np.float64)
    source = _generator_source(trace, drawn, scaled) if drawn is not trace else None
    return Workload(trace=scaled, qps=float(rate), prompt=prompt, output=output, source=source)


def _generator_source(generator: object, drawn: Trace, scaled: Trace) -> RequestSource:
    """Fresh draws of ``generator`` at the rate of ``scaled`` (its first draw ``drawn`` rescaled once).

    Every draw is rescaled by the one factor of the first draw, so a longer draw is the same process at the
    same mean rate (not renormalised to its own empirical rate).
    """
    a, b = drawn.requests["arrival_s"], scaled.requests["arrival_s"]
    span_a = as_float(a.max()) - as_float(a.min())
    span_b = as_float(b.max()) - as_float(b.min())
    factor = span_b / span_a if span_a > 0 else 1.0
    generate = generator.generate  # type: ignore[attr-defined]

    def draw(n: int, seed: int) -> Trace:
        t = generate(n=n, seed=seed)
        t0 = float(t.requests["arrival_s"].min())
        return t.with_requests(t.requests.with_columns(arrival_s=(pl.col("arrival_s") - t0) * factor))

    return RequestSource(scaled.name, draw=draw)


def prepare_workload(trace: Workload | Trace | object, qps: float | None, *, seed: int) -> Workload:
    """Return the :class:`Workload` a sizing question runs on.

    A prepared one as is, else :func:`workload` of it.

    A generator is drawn :data:`GENERATED_REQUESTS` requests with ``seed`` for the screen's sample; the
    measurement kernel draws as many more as its verdicts need from the workload's ``source``.

    Parameters
    ----------
    trace
        A prepared :class:`Workload`, a :class:`~workbench.traces.Trace` or a generator (``.generate``).
    qps
        Target mean arrival rate (``None``: the trace's own rate, or the prepared workload's).
    seed
        Seed of the length sample, of a generator's draw and of Poisson arrivals for length-only traces.

    Returns
    -------
    Workload
        The workload at ``qps``.

    Raises
    ------
    ConfigError
        A prepared workload with a ``qps`` other than its own.
    """
    if isinstance(trace, Workload):
        if qps is not None and qps != trace.qps:
            raise ConfigError(
                f"the workload is already prepared at {trace.qps:g} req/s, so qps={qps!r} would be ignored; "
                "pass the trace itself, or workload(trace, qps)"
            )
        return trace
    return workload(trace, qps, seed=seed)
